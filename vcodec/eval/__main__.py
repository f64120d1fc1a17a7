"""`python -m vcodec.eval eval|bdrate|plot ...`: the evaluation verbs without the rest of the command line."""

from __future__ import annotations

import os
import signal
import sys

import typer

from vcodec.eval.cli import app
from vcodec.help_text import hide_flag_types
from vcodec.io import OptionError
from vcodec.types import VcodecError


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """Run a verb; a VcodecError ends in one line on stderr and exit code 2 (bad option) or 1."""
    # Before torch loads libgomp: spinning OpenMP waits are slow on shared cores (see vcodec.cli).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    command = typer.main.get_command(app)
    hide_flag_types(command, name="python -m vcodec.eval")
    try:
        command.main(args=argv, prog_name="python -m vcodec.eval", standalone_mode=True)
    except SystemExit as done:  # click ends every run, successful or not, this way
        return done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    except VcodecError as error:
        print(f"vcodec: error: {error}", file=sys.stderr, flush=True)
        return 2 if isinstance(error, OptionError) else 1
    except KeyboardInterrupt:
        print("vcodec: error: interrupted (finished jobs are kept; rerun to resume)", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _interrupt)  # `kill` stops the workers too, as Ctrl-C does
    sys.exit(main())
