"""The admin CLI (installed as the ``pysync.cli`` package, console script ``pysync``)."""
