"""`modeltap compact`: a collection's closed partitions into a Delta Lake table."""

from __future__ import annotations

import json
import logging
import threading
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from modeltap.cli._common import friendly_errors, plural, stop_on_signals, workspace_option

if TYPE_CHECKING:
    from modeltap.compact import Report


@click.command("compact")
@click.argument("source")
@click.option(
    "--to",
    "to",
    help="Table location: azureml://datastores/<ds>/paths/<p> or a local folder "
    "[default: the collection's folder + '-delta', same datastore].",
)
@click.option("--until", help="Only partitions that end at or before this time (ISO 8601, UTC).")
@workspace_option
@click.option(
    "--grace",
    default=600,
    show_default=True,
    type=click.FloatRange(0),
    help="Seconds after a partition ends before it is closed (late objects land first).",
)
@click.option(
    "--schedule",
    is_flag=True,
    help="Keep the table current: run again as each partition "
    "closes (every rolling unit), until SIGTERM or Ctrl-C.",
)
@click.option(
    "--lookback",
    default=7.0,
    show_default=True,
    type=click.FloatRange(0),
    help="Days before the newest compacted partition to list again for objects that landed late.",
)
@click.option("--full", is_flag=True, help="List the whole collection (any object, however late).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--batch-bytes", type=click.IntRange(1), hidden=True, help="JSON read per commit.")
@friendly_errors
def compact_command(
    source: str,
    to: str | None,
    until: str | None,
    workspace: Path | None,
    grace: float,
    schedule: bool,
    lookback: float,
    full: bool,
    as_json: bool,
    batch_bytes: int | None,
) -> None:
    """Compact a collection (asset name, name:version, azureml:// URI or folder) into a
    Delta Lake table, exactly once; registers it as the asset NAME-delta.

    Only closed partitions are read: those that ended more than --grace seconds ago. Run it
    again (or with --schedule) to add the partitions that closed since; `modeltap read` and
    modeltap.read.load read the table where it has the rows. See docs/scale.md.

    \b
    Example:
      modeltap compact my_endpoint-blue-model_inputs
      modeltap compact my_endpoint-blue-model_inputs --schedule
      modeltap compact azureml://datastores/lake/paths/inputs --to azureml://datastores/lake/paths/tables/inputs
    """
    from modeltap import compact
    from modeltap.compact import BATCH_BYTES
    from modeltap.read.shared import to_utc

    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(name)s: %(message)s")
    stop = threading.Event()
    stop_on_signals(stop, "modeltap: stopping after the commit in progress")
    back = None if full else timedelta(days=lookback)
    try:
        end = to_utc(until, "--until")
    except (ValueError, TypeError) as exc:
        raise click.UsageError(str(exc)) from None
    if schedule:
        if until is not None:
            raise click.UsageError("--until and --schedule do not go together")
        runs = compact.schedule(
            source,
            to,
            workspace=workspace,
            grace=timedelta(seconds=grace),
            stop=stop,
            on_report=lambda report: _show(report, as_json),
            batch_bytes=batch_bytes or BATCH_BYTES,
            lookback=back,
        )
        click.echo(f"modeltap: compact stopped after {plural(runs, 'run')}", err=True)
        return
    report = compact.compact(
        source,
        to,
        end,
        workspace=workspace,
        grace=timedelta(seconds=grace),
        stop=stop,
        batch_bytes=batch_bytes or BATCH_BYTES,
        lookback=back,
    )
    _show(report, as_json)


def _show(report: Report, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(report.as_dict()))
        return
    lines: list[Any] = [
        f"{report.table}: version {report.version if report.version is not None else '-'}",
        f"  compacted {plural(report.objects, 'object')} of "
        f"{plural(report.partitions, 'partition')} ({plural(report.rows, 'row')}) in "
        f"{plural(report.commits, 'commit')}",
    ]
    if report.waiting:
        lines.append(f"  {plural(report.waiting, 'object')} in partitions not closed yet")
    if report.conflicts:
        lines.append(f"  {plural(report.conflicts, 'commit')} lost to another run, re-planned")
    for problem in report.problems:
        lines.append(f"  left out: {problem}")
    if report.stopped:
        lines.append("  stopped before the end (run again to go on)")
    click.echo("\n".join(lines))


COMMANDS = [compact_command]
