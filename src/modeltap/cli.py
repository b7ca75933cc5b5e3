"""The `modeltap` command. Thin: parse options, call the library, print clearly."""

from __future__ import annotations

import functools
import json
import logging
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from modeltap.errors import ModeltapError
from modeltap.version import __version__

if TYPE_CHECKING:
    from modeltap import inspect
    from modeltap.config import DeploymentSettings

F = TypeVar("F", bound=Callable[..., Any])


def _friendly_errors(func: F) -> F:
    """Our errors are for people: print them in one line and exit 2, without a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except ModeltapError as exc:
            click.echo(f"modeltap: error: {exc}", err=True)
            sys.exit(2)

    return wrapper  # type: ignore[return-value]


@click.group()
@click.version_option(__version__, prog_name="modeltap")
def main() -> None:
    """modeltap: collect what your models see and say in production."""


_WORKSPACE_HELP = "Workspace folder [default: $MODELTAP_WORKSPACE, else ./modeltap-workspace]."
_LOG_LEVELS = click.Choice(["critical", "error", "warning", "info", "debug"])

_workspace_option = click.option(
    "--workspace", type=click.Path(file_okay=False, path_type=Path), help=_WORKSPACE_HELP
)
_host_option = click.option(
    "--host", default="127.0.0.1", show_default=True, help="Address to bind."
)


def _deployment_option(help: str) -> Callable[[F], F]:
    return click.option(
        "-f",
        "--file",
        "deployment_file",
        required=True,
        type=click.Path(dir_okay=False, path_type=Path),
        help=help,
    )


def _port_option(default: int) -> Callable[[F], F]:
    return click.option("--port", default=default, show_default=True, type=click.IntRange(0, 65535))


def _workers_option(help: str) -> Callable[[F], F]:
    return click.option(
        "--workers", default=1, show_default=True, type=click.IntRange(1, 64), help=help
    )


def _log_level_option(default: str) -> Callable[[F], F]:
    return click.option("--log-level", default=default, show_default=True, type=_LOG_LEVELS)


def _load(deployment_file: Path, workspace: Path | None) -> tuple[DeploymentSettings, Path]:
    """Validated settings (printing their notes), exported for the server's processes."""
    from modeltap import runtime
    from modeltap.config import load_deployment, load_workspace

    ws = load_workspace(workspace if workspace is not None else runtime.default_workspace())
    settings = load_deployment(deployment_file, ws)
    for note in settings.notes:
        click.echo(f"modeltap: note: {note}", err=True)
    os.environ[runtime.ENV_DEPLOYMENT] = str(settings.file)
    os.environ[runtime.ENV_WORKSPACE] = str(ws.root)
    return settings, ws.root


def _run_server(app_factory: str, host: str, port: int, log_level: str, **options: Any) -> None:
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
        timeout_graceful_shutdown=10,
        **options,
    )


@main.command()
@_deployment_option("Deployment YAML, in the source platform's shape.")
@_host_option
@_port_option(5001)
@_workspace_option
@_workers_option("Scoring processes; each has its own writer and instance ids.")
@click.option(
    "--threads",
    is_flag=True,
    help="Run a sync run() in a thread pool, so a run() that waits on I/O does not hold up "
    "other requests of its worker [default: on the event loop, one at a time per worker].",
)
@click.option(
    "--agent-port",
    default=0,
    type=click.IntRange(0, 65535),
    help="Port of the agent sidecar for azureml-ai-monitoring score.py files [default: free].",
)
@click.option(
    "--agent/--no-agent",
    "with_agent",
    default=True,
    show_default=True,
    help="Run the sidecar process: the agent the source platform's SDK posts to, which also "
    "writes the workers' request/response records (durability memory).",
)
@_log_level_option("info")
@_friendly_errors
def serve(
    deployment_file: Path,
    host: str,
    port: int,
    workspace: Path | None,
    workers: int,
    threads: bool,
    agent_port: int,
    with_agent: bool,
    log_level: str,
) -> None:
    """Serve a score.py and collect its model data.

    \b
    Example:
      modeltap serve -f examples/iris/deployment.yml --port 5001
      curl -X POST localhost:5001/score -d '{"data": [[5.1, 3.5, 1.4, 0.2]]}'
    """
    from modeltap.errors import ConfigError
    from modeltap.serving.app import ENV_MODEL_DIR, ENV_SCRIPT, ENV_THREADS

    settings, ws_root = _load(deployment_file, workspace)
    if settings.code_dir is None or settings.scoring_script is None:
        raise ConfigError(
            "needs code and scoring_script to serve",
            field="code_configuration",
            source=str(settings.file),
        )
    os.environ[ENV_SCRIPT] = str(settings.code_dir / settings.scoring_script)
    os.environ[ENV_THREADS] = "1" if threads else ""
    if settings.model_dir is not None:
        os.environ[ENV_MODEL_DIR] = str(settings.model_dir)
    names = ", ".join(sorted(settings.collections)) or "nothing (no collection enabled)"
    click.echo(
        f"modeltap: serving {settings.endpoint}/{settings.deployment} on "
        f"http://{host}:{port} with {workers} worker(s); collecting {names} "
        f"into workspace {ws_root}",
        err=True,
    )
    custom = sorted(name for name, c in settings.collections.items() if not c.is_payload)
    # Payload records are made by the sidecar, off the scoring workers (serving/relay.py);
    # with durability spool each worker spools its own before the next request.
    relay = any(c.is_payload for c in settings.collections.values()) and (
        settings.pipeline.durability == "memory"
    )
    sidecar = None
    if with_agent and (custom or relay):
        from modeltap.serving.relay import ENV_RELAY_SOCKET
        from modeltap.serving.sidecar import AgentSidecar

        sidecar = AgentSidecar(settings.file, ws_root, custom, agent_port, relay=relay)
        sidecar.start()
        if custom:
            os.environ.update(sidecar.sdk_environment())
        if sidecar.relay_socket is not None:
            os.environ[ENV_RELAY_SOCKET] = str(sidecar.relay_socket)
    try:
        _run_server("modeltap.serving.app:create_app", host, port, log_level, workers=workers)
    finally:
        if sidecar is not None:
            sidecar.stop()


@main.command()
@_deployment_option("Deployment YAML naming the collections to accept.")
@_host_option
@_port_option(50011)
@_workspace_option
@_log_level_option("warning")
@click.option(
    "--max-body",
    default=64 * 1024 * 1024,
    show_default=True,
    type=click.IntRange(1),
    help="Largest request body accepted, in bytes; larger ones get 413.",
)
@_workers_option(
    "Receiving processes on the one port; each has its own writer, spool and instance ids."
)
@click.option(
    "--relay-socket",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also take the calls that `modeltap serve` workers log, on this Unix socket "
    "(serve sets this up for its sidecar).",
)
@_friendly_errors
def agent(
    deployment_file: Path,
    host: str,
    port: int,
    workspace: Path | None,
    log_level: str,
    max_body: int,
    workers: int,
    relay_socket: Path | None,
) -> None:
    """Receive what the azureml-ai-monitoring SDK sends, and store it.

    \b
    Example:
      modeltap agent -f deployment.yml --port 50011 &
      AZUREML_MDC_ENABLED=true python my_app.py   # uses azureml.ai.monitoring.Collector
    """
    from modeltap.agent import ENV_MAX_BODY
    from modeltap.serving.relay import ENV_RELAY_SOCKET

    if relay_socket is not None and workers > 1:
        raise click.UsageError("--relay-socket takes one receiving process: use --workers 1")
    settings, _ = _load(deployment_file, workspace)
    os.environ[ENV_MAX_BODY] = str(max_body)
    os.environ[ENV_RELAY_SOCKET] = str(relay_socket) if relay_socket else ""
    click.echo(
        f"modeltap: agent for {settings.endpoint}/{settings.deployment} on "
        f"http://{host}:{port}/modeldata/log with {workers} worker(s); collections: "
        f"{', '.join(sorted(settings.collections)) or 'none'}",
        err=True,
    )
    _run_server(
        "modeltap.agent:create_agent_app",
        host,
        port,
        log_level,
        access_log=False,
        proxy_headers=False,  # nothing here uses the client's address
        workers=workers,
    )


@main.command()
@click.option(
    "--upstream", required=True, help="The model server to forward to, e.g. http://127.0.0.1:8080."
)
@_deployment_option("Deployment YAML enabling the request and response collections.")
@_host_option
@_port_option(5002)
@_workspace_option
@_log_level_option("warning")
@_friendly_errors
def proxy(
    upstream: str,
    deployment_file: Path,
    host: str,
    port: int,
    workspace: Path | None,
    log_level: str,
) -> None:
    """Log request and response payloads in front of any HTTP model server.

    \b
    Example:
      modeltap proxy --upstream http://127.0.0.1:8080 --port 5002 -f deployment.yml
      curl -X POST localhost:5002/v2/models/iris/infer -d @request.json
    """
    from modeltap.errors import ConfigError
    from modeltap.serving.proxy import ENV_UPSTREAM

    if not upstream.startswith(("http://", "https://")):
        raise ConfigError(f"{upstream!r} is not an http(s) URL", field="--upstream")
    settings, ws_root = _load(deployment_file, workspace)
    logged = sorted({"request", "response"} & set(settings.collections))
    if not logged:
        raise ConfigError(
            "the proxy records payloads: enable the request and/or response collections",
            field="data_collector.collections",
            source=str(settings.file),
        )
    os.environ[ENV_UPSTREAM] = upstream
    click.echo(
        f"modeltap: proxy http://{host}:{port} -> {upstream}; logging "
        f"{', '.join(logged)} into workspace {ws_root}",
        err=True,
    )
    _run_server(
        "modeltap.serving.proxy:create_proxy_app",
        host,
        port,
        log_level,
        access_log=False,
        server_header=False,  # the upstream's Server and Date headers pass through
        date_header=False,
    )


@main.command("read")
@click.argument("source")
@click.option("--start", help="Rows at or after this time (ISO 8601; UTC without an offset).")
@click.option("--end", help="Rows before this time (ISO 8601; UTC without an offset).")
@_workspace_option
@click.option("--columns", help="Comma-separated data columns to keep.")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write all rows to a .parquet, .csv or .jsonl file instead of printing.",
)
@click.option(
    "--limit", default=20, show_default=True, type=click.IntRange(0), help="Rows to print."
)
@_friendly_errors
def read_command(
    source: str,
    start: str | None,
    end: str | None,
    workspace: Path | None,
    columns: str | None,
    output: Path | None,
    limit: int,
) -> None:
    """Load a collection (asset name, name:version, azureml:// URI or folder) as a table.

    \b
    Example:
      modeltap read my_endpoint-blue-model_inputs --start 2026-11-25T10:00 --end 2026-11-25T11:00
      modeltap read my_endpoint-blue-model_inputs -o inputs.parquet
    """
    import pandas as pd

    from modeltap import read

    names = [c.strip() for c in columns.split(",") if c.strip()] if columns else None
    try:
        df = read.load(source, start, end, workspace=workspace, columns=names)
    except (ValueError, TypeError) as exc:
        raise click.UsageError(str(exc)) from None
    if output is None:
        with pd.option_context("display.width", 200, "display.max_columns", 50):
            click.echo(df.head(limit).to_string() if len(df) else "(no rows)")
        click.echo(f"{len(df)} rows", err=True)
    else:
        suffix = output.suffix.lower()
        if suffix == ".parquet":
            df.to_parquet(output, index=False)
        elif suffix == ".csv":
            df.to_csv(output, index=False)
        elif suffix in (".jsonl", ".ndjson"):
            df.to_json(output, orient="records", lines=True, date_format="iso")
        else:
            raise click.UsageError("--output must end in .parquet, .csv or .jsonl")
        click.echo(f"modeltap: wrote {len(df)} rows to {output}", err=True)
    skipped = df.attrs.get(read.SKIPPED, {})
    if skipped.get("lines") or skipped.get("files"):
        click.echo(
            f"modeltap: skipped {skipped['lines']} bad lines and "
            f"{len(skipped['files'])} unreadable files (see the warnings above)",
            err=True,
        )


@main.group("assets")
def assets_group() -> None:
    """Data assets: the collections registered in a workspace, and what they hold."""


@assets_group.command("list")
@_workspace_option
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list, for scripts.")
@_friendly_errors
def assets_list(workspace: Path | None, as_json: bool) -> None:
    """List every data asset: its records, first and last record time, files and size.

    Counting reads every file (one line is one record); a progress bar shows on stderr
    when there are many.

    \b
    Example:
      modeltap assets list --workspace ./modeltap-workspace
      modeltap assets list --json | jq -r '.[] | "\\(.name) \\(.records)"'
    """
    from modeltap import inspect

    summaries = inspect.list_assets(workspace)
    if as_json:
        click.echo(json.dumps([s.as_dict(partitions=False) for s in summaries], indent=2))
        return
    if not summaries:
        click.echo(
            "no data assets (collections are registered when modeltap.configure() or "
            "`modeltap serve` starts; --workspace names another workspace)",
            err=True,
        )
        return
    _print_assets(summaries)
    for s in summaries:
        if s.error:
            click.echo(f"modeltap: warning: {s.asset.name}:{s.asset.version}: {s.error}", err=True)


@assets_group.command("show")
@click.argument("name", metavar="NAME[:VERSION]")
@_workspace_option
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object, for scripts.")
@_friendly_errors
def assets_show(name: str, workspace: Path | None, as_json: bool) -> None:
    """Show one data asset (its highest version unless NAME:VERSION names one).

    \b
    Example:
      modeltap assets show my_endpoint-blue-model_inputs
      modeltap assets show my_endpoint-blue-model_inputs:1 --json
    """
    from modeltap import inspect

    s = inspect.show_asset(name, workspace)
    if as_json:
        click.echo(json.dumps(s.as_dict(), indent=2))
        return
    a, p = s.asset, s.partitions
    span = f": {p.first} to {p.last}" if p.count else ""
    fields = [
        ("collection", f"{a.endpoint}/{a.deployment}/{a.collection}"),
        ("datastore URI", a.uri),
        ("folder", s.url or "-"),
        ("records", f"{s.records:,}"),
        ("first record", inspect.format_time(s.first) or "-"),
        ("last record", inspect.format_time(s.last) or "-"),
        ("files", f"{_n(s.files, 'line file')}, {_n(s.blobs, 'payload object')}"),
        ("size", _size(s.bytes)),
        ("partitions", f"{p.count:,}" + (f" ({p.rolling_rate}){span}" if p.count else "")),
        ("rolling rate", p.rolling_rate or "-"),
    ]
    click.echo(click.style(f"{a.name}:{a.version}", bold=True) + f"  ({a.type})")
    for key, value in fields:
        click.echo(f"  {key + ':':<15}{value}")


@main.group("data")
def data_group() -> None:
    """Look at collected records."""


@data_group.command("tail")
@click.argument("collection", metavar="ENDPOINT/DEPLOYMENT/COLLECTION")
@click.option(
    "-n",
    "--lines",
    "count",
    default=20,
    show_default=True,
    type=click.IntRange(0),
    help="How many of the newest records to print.",
)
@click.option(
    "-f",
    "--follow",
    is_flag=True,
    help="Then keep printing new records as they land (checks every second) until Ctrl-C.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the stored JSON lines as they are.")
@_workspace_option
@_friendly_errors
def data_tail(
    collection: str, count: int, follow: bool, as_json: bool, workspace: Path | None
) -> None:
    """Print the newest records of a collection: time, correlation id and data.

    Reads partitions from the newest backwards, only as many as it needs.

    \b
    Example:
      modeltap data tail my_endpoint/blue/model_inputs -n 5
      modeltap data tail my_endpoint/blue/request --follow --json
    """
    import shutil
    import time

    from modeltap import inspect
    from modeltap.errors import StorageError

    width = shutil.get_terminal_size().columns

    def show(lines: list[inspect.Line]) -> None:
        for line in lines:
            if as_json:
                click.echo(line.raw.decode("utf-8", "replace"))
            else:
                click.echo(_tail_line(line, width))

    with inspect.open_tail(collection, workspace) as tail:
        lines = tail.last(count)
        show(lines)
        if not lines and count and not follow:
            click.echo(f"modeltap: no records in {collection} yet", err=True)
        try:
            while follow:
                time.sleep(1.0)
                try:
                    show(tail.poll())
                except StorageError as exc:  # a passing outage must not end a long watch
                    click.echo(f"modeltap: warning: {exc}", err=True)
        except KeyboardInterrupt:
            pass
        if tail.bad_lines:
            click.echo(
                f"modeltap: skipped {tail.bad_lines} lines that are not JSON objects", err=True
            )


def _tail_line(line: inspect.Line, width: int) -> str:
    """'time  correlationid  data' on one terminal line, the data as compact JSON."""
    import orjson

    when = str(line.record.get("time", "-"))
    cid = line.correlationid or "-"
    try:
        data = orjson.dumps(line.data).decode()
    except TypeError:
        data = str(line.data)
    room = max(width - len(when) - len(cid) - 4, 10)
    if len(data) > room:
        data = data[: room - 1] + "\N{HORIZONTAL ELLIPSIS}"
    return f"{click.style(when, fg='cyan')}  {click.style(cid, fg='yellow')}  {data}"


def _n(count: int, thing: str) -> str:
    return f"{count:,} {thing}{'' if count == 1 else 's'}"


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{n} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def _print_assets(summaries: list[inspect.AssetSummary]) -> None:
    """A rich table when the terminal is wide enough for it, else a block per asset."""
    from modeltap.inspect import format_time

    try:
        from rich import box  # type: ignore[import-not-found, unused-ignore]
        from rich.console import Console  # type: ignore[import-not-found, unused-ignore]
        from rich.table import Table  # type: ignore[import-not-found, unused-ignore]
        from rich.text import Text  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        console = None
    else:
        console = Console()
    rows = []
    for s in summaries:
        a = s.asset
        unknown = s.error is not None
        rows.append(
            (
                f"{a.name}:{a.version}",
                f"{a.endpoint}/{a.deployment}/{a.collection}",
                "?" if unknown else f"{s.records:,}",
                format_time(s.first) or "-",
                format_time(s.last) or "-",
                "?" if unknown else f"{s.files + s.blobs:,}",
                "?" if unknown else _size(s.bytes),
                a.uri,
            )
        )
    if console is None or console.width < _TABLE_WIDTH:
        for name, coll, records, first, last, files, size, uri in rows:
            click.echo(f"{click.style(name, bold=True)}  {coll}")
            span = f", {first} to {last}" if first != "-" else ""
            click.echo(
                f"  {records} record{'' if records == '1' else 's'}{span}, "
                f"{files} file{'' if files == '1' else 's'}, {size}"
            )
            click.echo(f"  {uri}")
        return
    table = Table(box=box.SIMPLE_HEAD, header_style="bold")
    table.add_column("asset\nendpoint/deployment/collection", no_wrap=True)
    table.add_column("records", justify="right", no_wrap=True)
    table.add_column("first record\nlast record", no_wrap=True)
    table.add_column("files", justify="right", no_wrap=True)
    table.add_column("size", justify="right", no_wrap=True)
    table.add_column("datastore URI", overflow="fold")
    for name, coll, records, first, last, files, size, uri in rows:
        cell = Text(name, style="bold")
        cell.append(f"\n{coll}", style="dim")
        table.add_row(cell, records, f"{first}\n{last}", files, size, Text(uri))
    console.print(table)


_TABLE_WIDTH = 120  # narrower terminals get a block per asset


def _exit_cleanly(signum: int, frame: object) -> None:
    sys.exit(0)


if __name__ == "__main__":  # pragma: no cover
    main()
