"""What every command shares: options, one-line errors, settings loading, the server runner."""

from __future__ import annotations

import functools
import logging
import math
import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from modeltap.errors import ModeltapError

if TYPE_CHECKING:
    from modeltap.config import DeploymentSettings

__all__ = [
    "deployment_option",
    "friendly_errors",
    "host_option",
    "human_size",
    "load_settings",
    "log_level_option",
    "plural",
    "port_option",
    "run_server",
    "stop_on_signals",
    "workers_option",
    "workspace_option",
]

F = TypeVar("F", bound=Callable[..., Any])


def friendly_errors(func: F) -> F:
    """Our errors are for people: print them in one line and exit 2, without a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except ModeltapError as exc:
            click.echo(f"modeltap: error: {exc}", err=True)
            sys.exit(2)

    return wrapper  # type: ignore[return-value]


_WORKSPACE_HELP = "Workspace folder [default: $MODELTAP_WORKSPACE, else ./modeltap-workspace]."
_LOG_LEVELS = click.Choice(["critical", "error", "warning", "info", "debug"])

workspace_option = click.option(
    "--workspace", type=click.Path(file_okay=False, path_type=Path), help=_WORKSPACE_HELP
)
host_option = click.option(
    "--host", default="127.0.0.1", show_default=True, help="Address to bind."
)


def deployment_option(help: str) -> Callable[[F], F]:
    return click.option(
        "-f",
        "--file",
        "deployment_file",
        required=True,
        type=click.Path(dir_okay=False, path_type=Path),
        help=help,
    )


def port_option(default: int) -> Callable[[F], F]:
    return click.option("--port", default=default, show_default=True, type=click.IntRange(0, 65535))


def workers_option(help: str) -> Callable[[F], F]:
    return click.option(
        "--workers", default=1, show_default=True, type=click.IntRange(1, 64), help=help
    )


def log_level_option(default: str) -> Callable[[F], F]:
    return click.option("--log-level", default=default, show_default=True, type=_LOG_LEVELS)


def load_settings(deployment_file: Path, workspace: Path | None) -> tuple[DeploymentSettings, Path]:
    """Validated settings (printing their notes), exported for the server's processes."""
    from modeltap import runtime
    from modeltap.config import ENV_WORKSPACE, load_deployment, load_workspace
    from modeltap.redact import compile_rules
    from modeltap.storage.registry import open_datastore

    ws = load_workspace(workspace)
    settings = load_deployment(deployment_file, ws)
    compile_rules(settings.redact)  # a missing hash key stops here, not in each worker
    # Open each datastore once here (no I/O): a credential that is not set is one line
    # now, not a traceback from every worker process later.
    for name in sorted({c.datastore for c in settings.collections.values()}):
        open_datastore(name, ws.datastores[name], ws.root).close()
    for note in settings.notes:
        click.echo(f"modeltap: note: {note}", err=True)
    os.environ[runtime.ENV_DEPLOYMENT] = str(settings.file)
    os.environ[ENV_WORKSPACE] = str(ws.root)
    return settings, ws.root


def run_server(
    app_factory: str, host: str, port: int, log_level: str, graceful: float = 10, **options: Any
) -> None:
    """uvicorn, factory mode; on SIGTERM requests in flight get `graceful` seconds."""
    import uvicorn

    logging.basicConfig(level=log_level.upper(), format="%(levelname)s: %(name)s: %(message)s")
    # uvicorn shuts down gracefully (collection flushes in the app's lifespan), then re-raises
    # the signal it caught to the handler found at start: make that a clean exit 0.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _exit_cleanly)
    uvicorn.run(
        app_factory,
        factory=True,
        host=host,
        port=port,
        log_level=log_level,
        timeout_graceful_shutdown=math.ceil(graceful),
        **options,
    )


def stop_on_signals(stop: threading.Event, message: str | None = None) -> None:
    """SIGTERM and Ctrl-C set `stop` (after printing `message`), for loops that end cleanly.

    The event is set from a new thread, not in the handler: a handler runs between two
    bytecodes of the main thread, which may then hold the event's own lock (inside
    Event.wait), and setting it there would deadlock."""

    def set_stop() -> None:
        if message:
            click.echo(message, err=True)
        stop.set()

    def handler(signum: int, frame: object) -> None:
        threading.Thread(target=set_stop, name="modeltap-stop", daemon=True).start()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, handler)


def _exit_cleanly(signum: int, frame: object) -> None:
    sys.exit(0)


def plural(count: int, thing: str) -> str:
    return f"{count:,} {thing}{'' if count == 1 else 's'}"


def human_size(n: int) -> str:
    """Bytes for people: 950 B, 1.2 kB, 3.4 MB (powers of 1000)."""
    value = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{n} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")
