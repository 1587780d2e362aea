"""``python -m theory``: print the derived constants and bounds (see ``theory.cli``)."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
