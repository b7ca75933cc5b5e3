"""`modeltap monitor run|show|schedule`: model monitoring on collected data."""

from __future__ import annotations

import json
import logging
import math
import signal
import sys
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from modeltap.cli._common import friendly_errors, workspace_option

__all__ = ["COMMANDS"]


@click.group("monitor")
def monitor_group() -> None:
    """Monitor a model: drift, data quality and performance of collected data."""


@monitor_group.command("run")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@workspace_option
@click.option("--at", "at", help="Run as of this time (ISO 8601, UTC) [default: now].")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per result on stdout.")
@click.option(
    "--engine",
    type=click.Choice(["local", "spark"]),
    default="local",
    show_default=True,
    help="local: this machine (pandas/numpy); spark: distributed aggregations on Spark "
    "(the active or a new SparkSession; see docs/scale.md).",
)
@friendly_errors
def run_command(
    file: Path, workspace: Path | None, at: str | None, as_json: bool, engine: str
) -> None:
    """Compute every signal of a monitor file once; exit 1 when a threshold is breached.

    Results are appended to WORKSPACE/monitoring/NAME/ and an HTML report is written.
    Exit codes: 0 no breach, 1 a breach, 2 bad input.

    \b
    Example:
      modeltap monitor run monitor.yml --workspace ./ws --at 2026-11-25T03:15
    """
    from modeltap.monitor.run import run_monitor
    from modeltap.monitor.spec import load_monitor

    spec = load_monitor(file)
    for note in spec.notes:
        click.echo(f"modeltap: note: {note}", err=True)
    if engine == "spark":
        from modeltap.monitor.engine_spark import SparkEngine

        outcome = run_monitor(spec, workspace, at, engine=SparkEngine())
    else:
        outcome = run_monitor(spec, workspace, at)
    if as_json:
        for row in outcome.result_dicts():
            click.echo(json.dumps(row))
    else:
        _print_results(outcome.result_dicts())
        click.echo(
            f"{outcome.monitor} run {outcome.run_id}: "
            + (
                f"{sum(r.breached for r in outcome.rows)} breach(es)"
                if outcome.breached
                else "no breach"
            ),
            err=True,
        )
    if outcome.report_path is not None:
        click.echo(f"modeltap: report: {outcome.report_path}", err=True)
    for delivery in outcome.alerts:
        if delivery.ok:
            click.echo(f"modeltap: alert sent by {delivery.notifier}", err=True)
    for problem in outcome.problems:
        click.echo(f"modeltap: warning: {problem}", err=True)
    sys.exit(outcome.exit_code)


@monitor_group.command("show")
@click.argument("name")
@workspace_option
@click.option(
    "--last",
    default=20,
    show_default=True,
    type=click.IntRange(1),
    help="Runs listed in the history.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object, for scripts.")
@friendly_errors
def show_command(name: str, workspace: Path | None, last: int, as_json: bool) -> None:
    """Print a monitor's latest run and its history of runs.

    \b
    Example:
      modeltap monitor show credit_default_monitor --workspace ./ws
    """
    from modeltap.errors import ModeltapError
    from modeltap.monitor import history

    runs = history.runs(name, workspace)
    if not runs:
        known = history.monitors(workspace)
        raise ModeltapError(
            f"monitor {name!r} has no runs"
            + (f"; monitors with runs: {', '.join(known)}" if known else "")
        )
    latest = runs[0]
    frame = history.results(name, workspace)
    latest_rows = frame[frame["run_id"] == latest.run_id].to_dict("records")
    rows = [_jsonable({str(k): v for k, v in r.items()}) for r in latest_rows]
    listed = [
        {
            "run_id": r.run_id,
            "run_time": _iso(r.run_time),
            "breached": r.breached,
            "breaches": int(frame[(frame["run_id"] == r.run_id) & frame["breached"]].shape[0]),
            "report": str(r.report_path) if r.report_path else None,
        }
        for r in runs[:last]
    ]
    if as_json:
        click.echo(
            json.dumps(
                {"monitor": name, "latest": {**listed[0], "results": rows}, "runs": listed},
                indent=2,
            )
        )
        return
    click.echo(
        f"{name}: latest run {latest.run_id}"
        + (f" (report: {latest.report_path})" if latest.report_path else "")
    )
    _print_results(rows)
    click.echo(f"\nhistory ({len(runs)} run(s), newest first):")
    for r in listed:
        status = f"{r['breaches']} breach(es)" if r["breached"] else "ok"
        click.echo(f"  {r['run_id']:<20} {status}")


@monitor_group.command("schedule")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@workspace_option
@friendly_errors
def schedule_command(file: Path, workspace: Path | None) -> None:
    """Run a monitor on its `trigger` until stopped (SIGTERM or Ctrl-C end it cleanly
    between runs; a run under way finishes first).

    \b
    Example:
      modeltap monitor schedule monitor.yml --workspace ./ws
    """
    from modeltap.errors import ConfigError, ModeltapError
    from modeltap.monitor.run import run_monitor
    from modeltap.monitor.schedule import run_schedule
    from modeltap.monitor.spec import load_monitor

    spec = load_monitor(file)
    if spec.trigger is None:
        raise ConfigError("required to schedule a monitor", field="trigger", source=str(file))
    for note in spec.notes:
        click.echo(f"modeltap: note: {note}", err=True)
    logging.basicConfig(level="WARNING", format="modeltap: %(levelname)s: %(message)s")
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())

    def once(at: datetime) -> int:
        try:
            outcome = run_monitor(load_monitor(file), workspace, at)
        except ModeltapError as exc:  # e.g. an empty window: reported, the schedule goes on
            click.echo(f"modeltap: error: {exc}", err=True)
            return 2
        for problem in outcome.problems:
            click.echo(f"modeltap: warning: {problem}", err=True)
        return outcome.exit_code

    def announce(text: str) -> None:
        click.echo(f"modeltap: monitor {spec.name}: {text}", err=True)

    runs = run_schedule(spec.trigger, once, stop, announce=announce)
    click.echo(f"modeltap: monitor {spec.name}: stopped after {runs} run(s)", err=True)


def _print_results(rows: list[dict[str, Any]]) -> None:
    header = ("signal", "feature", "metric", "value", "threshold", "")
    lines = [header]
    for r in rows:
        value = "n/a" if r["value"] is None else f"{r['value']:.4g}"
        threshold = "n/a" if r["threshold"] is None else f"{r['threshold']:.4g}"
        lines.append(
            (
                r["signal"],
                r["feature"] or "-",
                r["metric"],
                value,
                threshold,
                "BREACH" if r["breached"] else "",
            )
        )
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(header))]
    for line in lines:
        click.echo("  ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())


def _iso(t: Any) -> str | None:
    if t is None or t is getattr(__import__("pandas"), "NaT", None):
        return None
    return str(t.isoformat()).replace("+00:00", "Z")


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in row.items():
        if hasattr(v, "isoformat"):
            v = _iso(v)
        elif isinstance(v, float) and math.isnan(v):
            v = None
        elif hasattr(v, "item"):
            v = v.item()
        out[k] = v
    return out


COMMANDS = [monitor_group]
