"""``python -m labsat`` runs the command line (importing this module alone runs nothing)."""

from labsat.cli import main

if __name__ == "__main__":
    main()
