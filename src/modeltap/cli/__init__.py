"""The `modeltap` command: parse options, call the library, print clearly.

One module per command family, each listing its commands in `COMMANDS`; `_register`
below adds them to `main` (monitor and ui as their one group and command).
"""

from __future__ import annotations

import click

from modeltap.version import __version__

__all__ = ["main"]


@click.group()
@click.version_option(__version__, prog_name="modeltap")
def main() -> None:
    """modeltap: collect what your models see and say in production."""


def _register() -> None:
    from modeltap.cli import compact, data, monitor, privacy, serving, ui

    for command in (*serving.COMMANDS, *data.COMMANDS, *compact.COMMANDS, *privacy.COMMANDS):
        main.add_command(command)
    main.add_command(monitor.monitor_group)
    main.add_command(ui.ui_command)


_register()
