"""The admin CLI (installed as the ``pysync_cli`` package, console script ``pysync``)."""
