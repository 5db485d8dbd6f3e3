"""``python -m flows.cli`` is the ``addgp`` command."""

from flows.cli import main

main()
