"""`modeltap serve`, `agent` and `proxy`: the three servers."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from modeltap.cli._common import (
    deployment_option,
    friendly_errors,
    host_option,
    load_settings,
    log_level_option,
    port_option,
    run_server,
    workers_option,
    workspace_option,
)


@click.command()
@deployment_option("Deployment YAML, in the source platform's shape.")
@host_option
@port_option(5001)
@workspace_option
@workers_option("Scoring processes; each has its own writer and instance ids.")
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
@click.option(
    "--loop",
    type=click.Choice(["auto", "asyncio", "uvloop"]),
    default="auto",
    show_default=True,
    help="Event loop of the workers. uvloop is faster per request but serves connections "
    "unfairly while a run() holds the loop for milliseconds (p99 several times p50 at 16 "
    "connections); asyncio takes them in turn. auto: asyncio for an MLflow model, else uvloop.",
)
@click.option(
    "--collect",
    is_flag=True,
    help="Collect model_inputs and model_outputs even where the deployment file does not "
    "enable them (for an MLflow model: its input tables and predictions, no code needed).",
)
@click.option(
    "--max-body",
    default=64 * 1024 * 1024,
    show_default=True,
    type=click.IntRange(1),
    help="Largest request body accepted, in bytes; larger ones get 413 (and are logged, "
    "without the body, when payload logging is on).",
)
@click.option(
    "--shutdown-timeout",
    default=30.0,
    show_default=True,
    type=click.FloatRange(3, 3600),
    help="Seconds SIGTERM may take: requests in flight finish (up to a third, at most 10 s), "
    "workers deliver what they collected, then the sidecar writes it (docs/durability.md).",
)
@log_level_option("info")
@friendly_errors
def serve(
    deployment_file: Path,
    host: str,
    port: int,
    workspace: Path | None,
    workers: int,
    threads: bool,
    agent_port: int,
    with_agent: bool,
    loop: str,
    collect: bool,
    max_body: int,
    shutdown_timeout: float,
    log_level: str,
) -> None:
    """Serve a score.py, or an MLflow model folder, and collect its model data.

    \b
    Example:
      modeltap serve -f examples/iris/deployment.yml --port 5001
      curl -X POST localhost:5001/score -d '{"data": [[5.1, 3.5, 1.4, 0.2]]}'
      modeltap serve -f examples/mlflow-credit/deployment.yml --collect
    """
    from modeltap.serving import launch

    launch.collect_model_data(collect)  # read with the settings
    settings, ws_root = load_settings(deployment_file, workspace)
    options = launch.ServeOptions(
        workers=workers,
        threads=threads,
        with_agent=with_agent,
        agent_port=agent_port,
        loop=loop,
        max_body=max_body,
        shutdown_timeout=shutdown_timeout,
    )
    plan = launch.plan_serve(settings, ws_root, options)
    names = ", ".join(sorted(settings.collections)) or "nothing (no collection enabled)"
    click.echo(
        f"modeltap: serving {settings.endpoint}/{settings.deployment} on "
        f"http://{host}:{port} with {workers} worker(s) (event loop: {plan.loop}); collecting "
        f"{names} into workspace {ws_root}",
        err=True,
    )
    with launch.started(plan):
        run_server(launch.APP_FACTORY, host, port, log_level, **plan.server_options())


@click.command()
@deployment_option("Deployment YAML naming the collections to accept.")
@host_option
@port_option(50011)
@workspace_option
@log_level_option("warning")
@click.option(
    "--max-body",
    default=64 * 1024 * 1024,
    show_default=True,
    type=click.IntRange(1),
    help="Largest request body accepted, in bytes; larger ones get 413.",
)
@click.option(
    "--max-header-bytes",
    default=64 * 1024,
    show_default=True,
    type=click.IntRange(1024),
    help="Most bytes of headers one post may carry (ce-* headers are kept with the record); "
    "more get 431.",
)
@workers_option(
    "Receiving processes on the one port; each has its own writer, spool and instance ids."
)
@click.option(
    "--relay-socket",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also take the calls that `modeltap serve` workers log, on this Unix socket "
    "(serve sets this up for its sidecar).",
)
@click.option("--sidecar", is_flag=True, hidden=True, help="Run as serve's sidecar.")
@friendly_errors
def agent(
    deployment_file: Path,
    host: str,
    port: int,
    workspace: Path | None,
    log_level: str,
    max_body: int,
    max_header_bytes: int,
    workers: int,
    relay_socket: Path | None,
    sidecar: bool,
) -> None:
    """Receive what the azureml-ai-monitoring SDK sends, and store it.

    \b
    Example:
      modeltap agent -f deployment.yml --port 50011 &
      AZUREML_MDC_ENABLED=true python my_app.py   # uses azureml.ai.monitoring.Collector
    """
    from modeltap.serving.agent import ENV_MAX_BODY, ENV_MAX_HEADER_BYTES
    from modeltap.serving.relay import ENV_RELAY_SOCKET
    from modeltap.serving.shutdown import Budget

    if relay_socket is not None and workers > 1:
        raise click.UsageError("--relay-socket takes one receiving process: use --workers 1")
    settings, _ = load_settings(deployment_file, workspace)
    os.environ[ENV_MAX_BODY] = str(max_body)
    os.environ[ENV_MAX_HEADER_BYTES] = str(max_header_bytes)
    os.environ[ENV_RELAY_SOCKET] = str(relay_socket) if relay_socket else ""
    click.echo(
        f"modeltap: agent for {settings.endpoint}/{settings.deployment} on "
        f"http://{host}:{port}/modeldata/log with {workers} worker(s); collections: "
        f"{', '.join(sorted(settings.collections)) or 'none'}",
        err=True,
    )
    options: dict[str, Any] = {
        "access_log": False,
        "proxy_headers": False,  # nothing here uses the client's address
    }
    if sidecar:  # deaf to signals: serve stops it after the workers (serving/sidecar.py)
        from modeltap.serving.sidecar import run_sidecar

        run_sidecar("modeltap.serving.agent:create_agent_app", host, port, log_level, **options)
        return
    graceful = Budget.of(sidecar=False).graceful
    run_server(
        "modeltap.serving.agent:create_agent_app",
        host,
        port,
        log_level,
        graceful=graceful,
        workers=workers,
        **options,
    )


@click.command()
@click.option(
    "--upstream", required=True, help="The model server to forward to, e.g. http://127.0.0.1:8080."
)
@deployment_option("Deployment YAML enabling the request and response collections.")
@host_option
@port_option(5002)
@workspace_option
@click.option(
    "--log-path",
    "log_paths",
    multiple=True,
    metavar="PATTERN",
    help="A path whose calls are logged; repeat for more; * matches any characters "
    "('*' logs every call). [default: the scoring paths of common model servers: /score, "
    "/v1/models/*:predict, /v2/models/*/infer, /predictions/*, /invocations]",
)
@log_level_option("warning")
@friendly_errors
def proxy(
    upstream: str,
    deployment_file: Path,
    host: str,
    port: int,
    workspace: Path | None,
    log_paths: tuple[str, ...],
    log_level: str,
) -> None:
    """Log request and response payloads in front of any HTTP model server.

    \b
    Example:
      modeltap proxy --upstream http://127.0.0.1:8080 --port 5002 -f deployment.yml
      curl -X POST localhost:5002/v2/models/iris/infer -d @request.json
    """
    from modeltap.errors import ConfigError
    from modeltap.serving.proxy import DEFAULT_LOG_PATHS, ENV_LOG_PATHS, ENV_UPSTREAM
    from modeltap.serving.shutdown import Budget

    if not upstream.startswith(("http://", "https://")):
        raise ConfigError(f"{upstream!r} is not an http(s) URL", field="--upstream")
    settings, ws_root = load_settings(deployment_file, workspace)
    logged = sorted({"request", "response"} & set(settings.collections))
    if not logged:
        raise ConfigError(
            "the proxy records payloads: enable the request and/or response collections",
            field="data_collector.collections",
            source=str(settings.file),
        )
    for pattern in log_paths:
        if not pattern.startswith(("/", "*")) or "\n" in pattern:
            raise ConfigError(f"{pattern!r} is not a path (start it with /)", field="--log-path")
    os.environ[ENV_UPSTREAM] = upstream
    os.environ[ENV_LOG_PATHS] = "\n".join(log_paths)
    click.echo(
        f"modeltap: proxy http://{host}:{port} -> {upstream}; logging "
        f"{', '.join(logged)} of {' '.join(log_paths or DEFAULT_LOG_PATHS)} "
        f"into workspace {ws_root}",
        err=True,
    )
    run_server(
        "modeltap.serving.proxy:create_proxy_app",
        host,
        port,
        log_level,
        graceful=Budget.of(sidecar=False).graceful,
        access_log=False,
        server_header=False,  # the upstream's Server and Date headers pass through
        date_header=False,
    )


COMMANDS = [serve, agent, proxy]
