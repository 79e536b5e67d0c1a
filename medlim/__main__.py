"""``python -m medlim`` runs the command line."""

from __future__ import annotations

from medlim.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
