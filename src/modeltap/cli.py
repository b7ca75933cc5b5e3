"""The `modeltap` command. Thin: parse options, call the library, print clearly."""

from __future__ import annotations

import functools
import logging
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from modeltap.errors import ModeltapError
from modeltap.version import __version__

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


@main.command()
@click.option(
    "-f",
    "--file",
    "deployment_file",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Deployment YAML, in the source platform's shape.",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=5001, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--workspace",
    type=click.Path(file_okay=False, path_type=Path),
    help="Workspace folder [default: $MODELTAP_WORKSPACE, else ./modeltap-workspace].",
)
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Scoring processes; each has its own writer and instance ids.",
)
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
    help="Run the agent sidecar that the source platform's SDK posts to.",
)
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["critical", "error", "warning", "info", "debug"]),
)
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
    import uvicorn

    from modeltap import runtime
    from modeltap.config import load_deployment, load_workspace
    from modeltap.errors import ConfigError
    from modeltap.serving.app import ENV_MODEL_DIR, ENV_SCRIPT, ENV_THREADS

    ws = load_workspace(workspace if workspace is not None else runtime.default_workspace())
    settings = load_deployment(deployment_file, ws)
    if settings.code_dir is None or settings.scoring_script is None:
        raise ConfigError(
            "needs code and scoring_script to serve",
            field="code_configuration",
            source=str(settings.file),
        )
    for note in settings.notes:
        click.echo(f"modeltap: note: {note}", err=True)
    os.environ[runtime.ENV_DEPLOYMENT] = str(settings.file)
    os.environ[runtime.ENV_WORKSPACE] = str(ws.root)
    os.environ[ENV_SCRIPT] = str(settings.code_dir / settings.scoring_script)
    os.environ[ENV_THREADS] = "1" if threads else ""
    if settings.model_dir is not None:
        os.environ[ENV_MODEL_DIR] = str(settings.model_dir)
    names = ", ".join(sorted(settings.collections)) or "nothing (no collection enabled)"
    click.echo(
        f"modeltap: serving {settings.endpoint}/{settings.deployment} on "
        f"http://{host}:{port} with {workers} worker(s); collecting {names} "
        f"into workspace {ws.root}",
        err=True,
    )
    logging.basicConfig(level=log_level.upper(), format="%(levelname)s: %(name)s: %(message)s")
    # uvicorn shuts down gracefully (collection flushes in the app's lifespan), then re-raises
    # the signal it caught to the handler found at start: make that a clean exit 0.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _exit_cleanly)
    custom = sorted(name for name, c in settings.collections.items() if not c.is_payload)
    sidecar = None
    if with_agent and custom:
        from modeltap.serving.sidecar import AgentSidecar

        sidecar = AgentSidecar(settings.file, ws.root, custom, agent_port)
        sidecar.start()
        os.environ.update(sidecar.sdk_environment())
    try:
        uvicorn.run(
            "modeltap.serving.app:create_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level=log_level,
            timeout_graceful_shutdown=10,
        )
    finally:
        if sidecar is not None:
            sidecar.stop()


@main.command()
@click.option(
    "-f",
    "--file",
    "deployment_file",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Deployment YAML naming the collections to accept.",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=50011, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--workspace",
    type=click.Path(file_okay=False, path_type=Path),
    help="Workspace folder [default: $MODELTAP_WORKSPACE, else ./modeltap-workspace].",
)
@click.option(
    "--log-level",
    default="warning",
    show_default=True,
    type=click.Choice(["critical", "error", "warning", "info", "debug"]),
)
@click.option(
    "--max-body",
    default=64 * 1024 * 1024,
    show_default=True,
    type=click.IntRange(1),
    help="Largest request body accepted, in bytes; larger ones get 413.",
)
@_friendly_errors
def agent(
    deployment_file: Path,
    host: str,
    port: int,
    workspace: Path | None,
    log_level: str,
    max_body: int,
) -> None:
    """Receive what the azureml-ai-monitoring SDK sends, and store it.

    \b
    Example:
      modeltap agent -f deployment.yml --port 50011 &
      AZUREML_MDC_ENABLED=true python my_app.py   # uses azureml.ai.monitoring.Collector
    """
    import uvicorn

    from modeltap import runtime
    from modeltap.config import load_deployment, load_workspace

    ws = load_workspace(workspace if workspace is not None else runtime.default_workspace())
    settings = load_deployment(deployment_file, ws)
    os.environ[runtime.ENV_DEPLOYMENT] = str(settings.file)
    os.environ[runtime.ENV_WORKSPACE] = str(ws.root)
    os.environ["MODELTAP_AGENT_MAX_BODY"] = str(max_body)
    click.echo(
        f"modeltap: agent for {settings.endpoint}/{settings.deployment} on "
        f"http://{host}:{port}/modeldata/log; collections: "
        f"{', '.join(sorted(settings.collections)) or 'none'}",
        err=True,
    )
    logging.basicConfig(level=log_level.upper(), format="%(levelname)s: %(name)s: %(message)s")
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _exit_cleanly)
    uvicorn.run(
        "modeltap.agent:create_agent_app",
        factory=True,
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        timeout_graceful_shutdown=10,
    )


@main.command()
@click.option(
    "--upstream", required=True, help="The model server to forward to, e.g. http://127.0.0.1:8080."
)
@click.option(
    "-f",
    "--file",
    "deployment_file",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Deployment YAML enabling the request and response collections.",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=5002, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--workspace",
    type=click.Path(file_okay=False, path_type=Path),
    help="Workspace folder [default: $MODELTAP_WORKSPACE, else ./modeltap-workspace].",
)
@click.option(
    "--log-level",
    default="warning",
    show_default=True,
    type=click.Choice(["critical", "error", "warning", "info", "debug"]),
)
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
    import uvicorn

    from modeltap import runtime
    from modeltap.config import load_deployment, load_workspace
    from modeltap.errors import ConfigError
    from modeltap.serving.proxy import ENV_UPSTREAM

    if not upstream.startswith(("http://", "https://")):
        raise ConfigError(f"{upstream!r} is not an http(s) URL", field="--upstream")
    ws = load_workspace(workspace if workspace is not None else runtime.default_workspace())
    settings = load_deployment(deployment_file, ws)
    missing = {"request", "response"} - set(settings.collections)
    for note in settings.notes:
        click.echo(f"modeltap: note: {note}", err=True)
    if missing == {"request", "response"}:
        raise ConfigError(
            "the proxy records payloads: enable the request and/or response collections",
            field="data_collector.collections",
            source=str(settings.file),
        )
    os.environ[runtime.ENV_DEPLOYMENT] = str(settings.file)
    os.environ[runtime.ENV_WORKSPACE] = str(ws.root)
    os.environ[ENV_UPSTREAM] = upstream
    click.echo(
        f"modeltap: proxy http://{host}:{port} -> {upstream}; logging "
        f"{', '.join(sorted({'request', 'response'} - missing))} into workspace {ws.root}",
        err=True,
    )
    logging.basicConfig(level=log_level.upper(), format="%(levelname)s: %(name)s: %(message)s")
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _exit_cleanly)
    uvicorn.run(
        "modeltap.serving.proxy:create_proxy_app",
        factory=True,
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        server_header=False,  # the upstream's Server and Date headers pass through
        date_header=False,
        timeout_graceful_shutdown=10,
    )


@main.command("read")
@click.argument("source")
@click.option("--start", help="Rows at or after this time (ISO 8601; UTC without an offset).")
@click.option("--end", help="Rows before this time (ISO 8601; UTC without an offset).")
@click.option(
    "--workspace",
    type=click.Path(file_okay=False, path_type=Path),
    help="Workspace folder [default: $MODELTAP_WORKSPACE, else ./modeltap-workspace].",
)
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


def _exit_cleanly(signum: int, frame: object) -> None:
    sys.exit(0)


if __name__ == "__main__":  # pragma: no cover
    main()
