"""``python -m bridge``: the same as the ``tracebridge`` command."""

from bridge.cli.main import main

main()
