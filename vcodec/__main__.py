"""`python -m vcodec` runs the command line."""

from vcodec.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
