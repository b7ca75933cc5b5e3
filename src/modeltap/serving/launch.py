"""What `modeltap serve` starts, decided from the deployment settings and the command line.

The command runs uvicorn's scoring workers (app.py) and, when something needs it, one
agent sidecar process beside them (sidecar.py). In two steps:

1. `plan_serve` decides, without starting anything: what the workers serve (the
   score.py, else the MLflow model), their event loop, which collections the sidecar
   receives (the platform SDK's, from a score.py) and whether it also writes the
   workers' request/response records (relay.py), and how the shutdown time is split
   (shutdown.Budget). Anything that cannot be served is a ConfigError here.
2. `started` sets up what the workers need around them while they run: the settings
   they read from the environment (uvicorn's factory mode passes nothing else), the
   AZUREML_MODEL_DIR folder, and the sidecar, stopped after every worker has exited.

    modeltap.serving.launch.collect_model_data(collect)   # before the settings are read
    plan = plan_serve(settings, workspace, ServeOptions(port=5001))
    with started(plan):
        run_server(APP_FACTORY, ..., **plan.server_options())
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modeltap.config import ENV_COLLECT_MODEL_DATA
from modeltap.errors import ConfigError
from modeltap.serving.limits import DEFAULT_MAX_BODY
from modeltap.serving.shutdown import DEFAULT_SHUTDOWN_TIMEOUT, ENV_DRAIN_SECONDS, Budget

if TYPE_CHECKING:
    from modeltap.config import DeploymentSettings
    from modeltap.serving.sidecar import AgentSidecar

__all__ = [
    "APP_FACTORY",
    "ServeOptions",
    "ServePlan",
    "collect_model_data",
    "plan_serve",
    "started",
]

APP_FACTORY = "modeltap.serving.app:create_app"


@dataclass(frozen=True)
class ServeOptions:
    """The command line of `modeltap serve` (its defaults)."""

    workers: int = 1
    threads: bool = False  # a sync run() in a thread pool
    with_agent: bool = True  # the sidecar may run
    agent_port: int = 0  # 0: a free one
    loop: str = "auto"  # auto, asyncio or uvloop
    max_body: int = DEFAULT_MAX_BODY
    shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT


@dataclass(frozen=True)
class ServePlan:
    """What serve starts (see plan_serve)."""

    settings: DeploymentSettings
    workspace: Path
    options: ServeOptions
    script: Path | None  # the score.py the workers serve; None: the MLflow model
    loop: str  # the workers' event loop, for uvicorn
    sdk_collections: tuple[str, ...]  # the platform SDK's (posted to the sidecar, if it runs)
    sidecar: bool  # the agent sidecar runs
    relay: bool  # it writes the workers' request/response records too
    budget: Budget

    def server_options(self) -> dict[str, Any]:
        """uvicorn's settings for the workers (run_server's keyword arguments)."""
        from modeltap.redact import access_log_config

        options: dict[str, Any] = {
            "graceful": self.budget.graceful,
            "workers": self.options.workers,
            "loop": self.loop,
        }
        if self.settings.redact.collections:  # request lines without their query strings
            options["log_config"] = access_log_config()
        return options


def collect_model_data(enabled: bool) -> None:
    """`--collect`: model_inputs and model_outputs on, whatever the deployment file says;
    read when the settings are loaded, so call it first."""
    os.environ[ENV_COLLECT_MODEL_DATA] = "1" if enabled else ""


def plan_serve(settings: DeploymentSettings, workspace: Path, options: ServeOptions) -> ServePlan:
    """What serve starts for these settings and options; nothing is started or exported.
    ConfigError when there is nothing to serve, or the MLflow model needs mlflow."""
    script = _script(settings)
    loop = options.loop
    if loop == "auto":  # uvicorn's auto is uvloop when installed
        loop = "asyncio" if script is None else "auto"
    # The SDK's collections go through the agent sidecar; an MLflow model collects itself.
    sdk = () if script is None else tuple(_sdk_collections(settings))
    # Payload records are made by the sidecar, off the scoring workers (serving/relay.py);
    # with durability spool each worker spools its own before the next request.
    relayed = settings.pipeline.durability == "memory" and any(
        c.is_payload for c in settings.collections.values()
    )
    sidecar = options.with_agent and bool(sdk or relayed)
    budget = Budget.of(options.shutdown_timeout, sidecar=sidecar)
    relay = sidecar and relayed
    return ServePlan(settings, workspace, options, script, loop, sdk, sidecar, relay, budget)


def _script(settings: DeploymentSettings) -> Path | None:
    """What the workers serve: the score.py, or the MLflow model when there is none (None)."""
    if settings.code_dir is not None and settings.scoring_script is not None:
        return settings.code_dir / settings.scoring_script
    if settings.model_type == "mlflow_model" and settings.model_path is not None:
        from modeltap.serving.mlflow_model import require_mlflow

        require_mlflow()
        return None
    raise ConfigError(
        "needs code and scoring_script to serve, or a local MLflow model "
        "(model: {path: ./model, type: mlflow_model})",
        field="code_configuration",
        source=str(settings.file),
    )


def _sdk_collections(settings: DeploymentSettings) -> list[str]:
    return sorted(n for n, c in settings.collections.items() if not c.is_payload)


@contextlib.contextmanager
def started(plan: ServePlan) -> Iterator[None]:
    """The workers' settings exported, their model folder and the sidecar ready, for
    the time the workers run; the sidecar stops after them (they hand it their last)."""
    with contextlib.ExitStack() as stack:
        _export_workers(plan, stack)
        sidecar = _start_sidecar(plan)
        os.environ[ENV_DRAIN_SECONDS] = str(plan.budget.drain)  # each worker's shutdown
        try:
            yield
        finally:
            if sidecar is not None:
                sidecar.stop(plan.budget.sidecar)


def _export_workers(plan: ServePlan, stack: contextlib.ExitStack) -> None:
    """What the workers read at start (app.py): their scorer, model folder, limits."""
    from modeltap.serving.app import ENV_MLFLOW_MODEL, ENV_MODEL_DIR, ENV_SCRIPT, ENV_THREADS
    from modeltap.serving.limits import ENV_MAX_BODY
    from modeltap.serving.model_dir import ModelFolder

    model_path = plan.settings.model_path
    if plan.script is not None:
        os.environ[ENV_SCRIPT] = str(plan.script)
    if model_path is not None:
        folder = ModelFolder(model_path)
        os.environ[ENV_MODEL_DIR] = str(folder.open())
        stack.callback(folder.close)  # the folder of links, if one was made
    os.environ[ENV_MLFLOW_MODEL] = str(model_path) if plan.script is None else ""
    os.environ[ENV_THREADS] = "1" if plan.options.threads else ""
    os.environ[ENV_MAX_BODY] = str(plan.options.max_body)


def _start_sidecar(plan: ServePlan) -> AgentSidecar | None:
    """The agent sidecar, answering, and the environment that leads the workers to it."""
    if not plan.sidecar:
        return None
    from modeltap.serving.relay import ENV_RELAY_SOCKET
    from modeltap.serving.sidecar import AgentSidecar

    sidecar = AgentSidecar(
        plan.settings.file,
        plan.workspace,
        list(plan.sdk_collections),
        plan.options.agent_port,
        relay=plan.relay,
    )
    sidecar.start(drain=plan.budget.sidecar)
    if plan.sdk_collections:
        os.environ.update(sidecar.sdk_environment())
    if sidecar.relay_socket is not None:
        os.environ[ENV_RELAY_SOCKET] = str(sidecar.relay_socket)
    return sidecar
