"""`modeltap serve`, `agent` and `proxy`: the three servers."""

from __future__ import annotations

import os
from pathlib import Path

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
    log_level: str,
) -> None:
    """Serve a score.py and collect its model data.

    \b
    Example:
      modeltap serve -f examples/iris/deployment.yml --port 5001
      curl -X POST localhost:5001/score -d '{"data": [[5.1, 3.5, 1.4, 0.2]]}'
    """
    from modeltap.errors import ConfigError
    from modeltap.redact import access_log_config
    from modeltap.serving.app import ENV_MODEL_DIR, ENV_SCRIPT, ENV_THREADS

    settings, ws_root = load_settings(deployment_file, workspace)
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
        # with redaction rules, request lines are logged without their query strings
        quiet = {"log_config": access_log_config()} if settings.redact.collections else {}
        run_server(
            "modeltap.serving.app:create_app", host, port, log_level, workers=workers, **quiet
        )
    finally:
        if sidecar is not None:
            sidecar.stop()


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
@friendly_errors
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
    from modeltap.serving.agent import ENV_MAX_BODY
    from modeltap.serving.relay import ENV_RELAY_SOCKET

    if relay_socket is not None and workers > 1:
        raise click.UsageError("--relay-socket takes one receiving process: use --workers 1")
    settings, _ = load_settings(deployment_file, workspace)
    os.environ[ENV_MAX_BODY] = str(max_body)
    os.environ[ENV_RELAY_SOCKET] = str(relay_socket) if relay_socket else ""
    click.echo(
        f"modeltap: agent for {settings.endpoint}/{settings.deployment} on "
        f"http://{host}:{port}/modeldata/log with {workers} worker(s); collections: "
        f"{', '.join(sorted(settings.collections)) or 'none'}",
        err=True,
    )
    run_server(
        "modeltap.serving.agent:create_agent_app",
        host,
        port,
        log_level,
        access_log=False,
        proxy_headers=False,  # nothing here uses the client's address
        workers=workers,
    )


@click.command()
@click.option(
    "--upstream", required=True, help="The model server to forward to, e.g. http://127.0.0.1:8080."
)
@deployment_option("Deployment YAML enabling the request and response collections.")
@host_option
@port_option(5002)
@workspace_option
@log_level_option("warning")
@friendly_errors
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
    settings, ws_root = load_settings(deployment_file, workspace)
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
    run_server(
        "modeltap.serving.proxy:create_proxy_app",
        host,
        port,
        log_level,
        access_log=False,
        server_header=False,  # the upstream's Server and Date headers pass through
        date_header=False,
    )


COMMANDS = [serve, agent, proxy]
