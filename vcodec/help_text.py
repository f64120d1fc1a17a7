"""What `--help` shows, shared by `vcodec` and `python -m vcodec.eval`.

Typer's rich help prints a type after every option, `<bool>` after flags too, though a flag takes no
value (`--overwrite <bool>` reads as if it wanted one). An empty metavar leaves a flag's type column blank.
"""

from __future__ import annotations

from typing import Any


def hide_flag_types(command: Any, parent: Any = None, name: str = "vcodec") -> None:
    """Blank the type shown after every flag of `command` and its subcommands, `--help` included (created
    here, as typer would on first use, from the same context settings)."""
    context = command.context_class(command, parent=parent, info_name=name, **(command.context_settings or {}))
    for param in [*command.params, command.get_help_option(context)]:
        if param is not None and getattr(param, "is_flag", False):
            param.metavar = ""
    for sub_name, sub in (getattr(command, "commands", None) or {}).items():
        hide_flag_types(sub, context, sub_name)
