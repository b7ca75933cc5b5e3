"""`modeltap ui`: the web page over a workspace's collected data and monitoring results."""

from __future__ import annotations

import os
import re
from pathlib import Path

import click

from modeltap.cli._common import (
    friendly_errors,
    host_option,
    log_level_option,
    port_option,
    run_server,
    workspace_option,
)
from modeltap.errors import ConfigError

__all__ = ["COMMANDS"]

# A token that is hard to guess and safe in a header, a cookie and a URL.
_TOKEN = re.compile(r"^[A-Za-z0-9._~+/=-]{16,}$")


@click.command("ui")
@workspace_option
@host_option
@port_option(8765)
@click.option(
    "--allow-remote",
    is_flag=True,
    help="Allow binding an address other than loopback (needs MODELTAP_UI_TOKEN set: every "
    "request must then carry the token).",
)
@log_level_option("warning")
@friendly_errors
def ui_command(
    workspace: Path | None, host: str, port: int, allow_remote: bool, log_level: str
) -> None:
    """Serve a read-only web page of the workspace: collections and their records, data
    assets, and monitoring results.

    It binds 127.0.0.1 by default. Another address needs --allow-remote and a token in
    MODELTAP_UI_TOKEN (16+ characters); open the page once with ?token=TOKEN.

    \b
    Example:
      modeltap ui --workspace ./modeltap-workspace
      MODELTAP_UI_TOKEN=$(openssl rand -hex 24) modeltap ui --host 0.0.0.0 --allow-remote
    """
    from modeltap.config import load_workspace
    from modeltap.ui.app import ENV_HOSTS, ENV_TOKEN, ENV_WORKSPACE
    from modeltap.ui.guard import is_loopback

    ws = load_workspace(workspace)  # a bad workspace.yml is an error now, not on the page
    token = os.environ.get(ENV_TOKEN) or None
    if token is not None and not _TOKEN.match(token):
        raise ConfigError(
            "must be 16 or more characters from A-Z a-z 0-9 . _ ~ + / = -", field=ENV_TOKEN
        )
    local = is_loopback(host)
    if not local and not (allow_remote and token):
        raise ConfigError(
            f"{host!r} is not a loopback address: the page would be open to the network. "
            f"Give --allow-remote and set {ENV_TOKEN} (every request must then carry it), "
            "or bind 127.0.0.1",
            field="--host",
        )
    os.environ[ENV_WORKSPACE] = str(ws.root)
    os.environ[ENV_HOSTS] = "1" if local else "0"
    shown = f"[{host}]" if ":" in host else host
    where = f"http://{shown}:{port}/"
    click.echo(f"modeltap ui: {where} (workspace {ws.root}); read-only, Ctrl-C to stop", err=True)
    if token is not None:
        click.echo(
            f"modeltap ui: open {where}?token=<{ENV_TOKEN}> once (a cookie keeps it)", err=True
        )
    run_server("modeltap.ui.app:app_from_env", host, port, log_level)


COMMANDS = [ui_command]
