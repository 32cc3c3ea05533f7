"""``python -m pysync``: the CLI from a source checkout, without installing the script."""

from pysync.cli.main import run

run()
