"""How a server spends its shutdown time, and the worker's part of it.

SIGTERM to `modeltap serve` must not lose what was accepted. In order:

1. uvicorn stops taking requests and lets those in flight finish (`graceful` seconds);
2. each worker drains: first the source platform's SDK (`azureml.ai.monitoring` keeps
   every collect() in an in-memory queue that a thread of its own posts to the sidecar),
   then modeltap's own pipeline (`drain` seconds, shared by the two);
3. only after every worker has exited does serve stop the sidecar (`sidecar` seconds),
   which writes what the workers handed it.

All of it within `total` seconds (30 by default, `--shutdown-timeout`). What cannot be
delivered in time is counted (`stats()["dropped"]`) and logged, never lost silently.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

__all__ = [
    "DEFAULT_SHUTDOWN_TIMEOUT",
    "ENV_DRAIN_SECONDS",
    "Budget",
    "drain_platform_sdk",
    "drain_seconds",
    "finish_worker",
    "watch_platform_sdk",
]

log = logging.getLogger(__name__)

DEFAULT_SHUTDOWN_TIMEOUT = 30.0
# Seconds this process's lifespan shutdown may take to drain collection (set by the CLI).
ENV_DRAIN_SECONDS = "MODELTAP_DRAIN_SECONDS"
_SDK = "azureml.ai.monitoring"


@dataclass(frozen=True)
class Budget:
    """A server's shutdown time, split into its phases (seconds)."""

    total: float
    graceful: float  # requests in flight finish
    drain: float  # each worker drains the SDK's queue and its pipeline
    sidecar: float  # the sidecar writes what it received

    @classmethod
    def of(cls, total: float = DEFAULT_SHUTDOWN_TIMEOUT, *, sidecar: bool = True) -> Budget:
        graceful = min(10.0, total / 3)
        rest = total - graceful
        drain = rest * 0.6 if sidecar else rest
        return cls(total, graceful, drain, rest - drain if sidecar else 0.0)


def drain_seconds() -> float:
    """This process's drain time: $MODELTAP_DRAIN_SECONDS, else the default budget's."""
    try:
        seconds = float(os.environ.get(ENV_DRAIN_SECONDS) or "nan")
    except ValueError:
        seconds = float("nan")
    return seconds if 0 < seconds < 86400 else Budget.of(sidecar=False).drain


def finish_worker(timeout: float | None = None) -> bool:
    """A scoring worker's lifespan shutdown: drain the platform SDK into the (still
    running) sidecar, then flush and stop modeltap's pipeline. True when nothing was lost."""
    import modeltap

    timeout = drain_seconds() if timeout is None else timeout
    deadline = time.monotonic() + timeout
    lost = drain_platform_sdk(timeout / 2)
    done = modeltap.shutdown(max(0.5, deadline - time.monotonic()))
    return done and not lost


def watch_platform_sdk() -> None:
    """Count every post of the `azureml.ai.monitoring` SDK that fails (the SDK only logs
    it, and never retries) in this process's `dropped`; call it once the SDK is set up
    (serve does after init()). Nothing happens when the SDK is not in use."""
    init = sys.modules.get(f"{_SDK}.init")
    if init is None or not init.is_sdk_ready():
        return
    worker = importlib.import_module(f"{_SDK}.worker").get_worker()
    sender = getattr(worker, "_sender", None)
    send = getattr(sender, "send", None)
    if send is None or getattr(send, "_modeltap_counts", False):
        return

    def counting_send(payload: Any) -> Any:
        try:
            result = send(payload)
        except Exception as exc:
            _lost(1, f"a post failed: {type(exc).__name__}: {exc}")
            raise
        if isinstance(result, tuple) and result and result[0] is False:
            _lost(1, f"a post failed: {result[1] if len(result) > 1 else 'refused'}")
        return result

    counting_send._modeltap_counts = True  # type: ignore[attr-defined]
    sender.send = counting_send  # type: ignore[union-attr]


def drain_platform_sdk(timeout: float) -> int:
    """Let the `azureml.ai.monitoring` SDK of this process post everything it holds: its own
    teardown with wait_for_flush (its queue closes, its threads send what is left and
    exit), bounded by timeout. Returns how many of its records were lost meanwhile: posts
    that failed, and what was still queued or being sent when the time was up (all
    counted in `dropped`). 0 when the SDK is not in use here."""
    init = sys.modules.get(f"{_SDK}.init")
    if init is None or not init.is_sdk_ready():
        return 0
    watch_platform_sdk()
    queue = importlib.import_module(f"{_SDK}.queue").get_queue()
    worker = importlib.import_module(f"{_SDK}.worker").get_worker()
    threads = list(getattr(worker, "_threads", []))
    failed_before = _failed[0]
    started = time.monotonic()
    teardown = threading.Thread(
        target=init.teardown, kwargs={"wait_for_flush": True}, name="modeltap-sdk-drain"
    )
    teardown.daemon = True
    teardown.start()
    teardown.join(timeout)
    took = time.monotonic() - started
    unsent = 0
    if teardown.is_alive():  # each live sender thread may hold one record in flight
        unsent = (queue.length() if queue is not None else 0) + sum(t.is_alive() for t in threads)
    if unsent:
        _lost(unsent, f"still queued or in flight after {took:.1f} s of shutdown")
    failed = _failed[0] - failed_before
    if unsent or failed:
        log.error(
            "modeltap: %d records of the %s SDK were not delivered to the agent during "
            "shutdown (%d posts failed, %d still queued or in flight after %.1f s); counted "
            "in stats()['dropped']",
            unsent + failed,
            _SDK,
            failed,
            unsent,
            took,
        )
    else:
        log.info("modeltap: the %s SDK delivered everything it held (%.2f s)", _SDK, took)
    return unsent + failed


_failed = [0]  # posts of the SDK that failed in this process


def _lost(count: int, why: str) -> None:
    """Count SDK records that did not reach the agent in this process's `dropped`."""
    from modeltap import runtime
    from modeltap.errors import ModeltapError

    _failed[0] += count if why.startswith("a post failed") else 0
    error = ModeltapError(f"{count} records of the {_SDK} SDK not delivered: {why}")
    active = runtime.active()
    if active is not None:
        active.pipeline.count_dropped(count, error)
    else:
        log.warning("modeltap: %s", error)
