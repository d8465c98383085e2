"""``python -m labsat`` runs the command line."""

from labsat.cli import main

main()
