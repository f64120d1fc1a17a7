"""`python -m vcodec` runs the command line."""

from vcodec.cli import run

if __name__ == "__main__":
    run()
