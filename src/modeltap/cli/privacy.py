"""`modeltap retention apply|show` and `modeltap erase`: sensitive data kept no longer than
it may be (SPEC R13.2, docs/privacy.md)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import click

from modeltap.cli._common import friendly_errors, human_size, plural, workspace_option

if TYPE_CHECKING:
    from modeltap.config import WorkspaceSettings
    from modeltap.retention import Policy


@click.group("retention")
def retention_group() -> None:
    """Delete partitions older than the retention of their deployment."""


_FILES = click.option(
    "-f",
    "--file",
    "files",
    multiple=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Apply this deployment file's retention (repeatable) instead of the policies "
    "recorded in the workspace.",
)


def _chosen(
    workspace: Path | None, files: tuple[Path, ...]
) -> tuple[WorkspaceSettings, list[Policy]]:
    from modeltap import retention
    from modeltap.config import load_deployment, load_workspace

    ws = load_workspace(workspace)
    if files:
        chosen = [p for f in files for p in retention.of_deployment(load_deployment(f, ws))]
    else:
        chosen = list(retention.policies(ws.root))
    return ws, chosen


@retention_group.command("apply")
@click.option("--dry-run", is_flag=True, help="Only print what would be removed.")
@workspace_option
@_FILES
@friendly_errors
def retention_apply(dry_run: bool, workspace: Path | None, files: tuple[Path, ...]) -> None:
    """Delete every partition older than its deployment's retention, printing each one.

    Deployments record their retention (data_collector.modeltap.retention: P90D) in the
    workspace when they start; this applies all of them, on every datastore type. The
    current partition is never removed.

    \b
    Example:
      modeltap retention apply --dry-run --workspace ./modeltap-workspace
      modeltap retention apply --workspace ./modeltap-workspace
    """
    from modeltap import retention

    ws, chosen = _chosen(workspace, files)
    if not chosen:
        click.echo(
            "modeltap: no retention is set for any collection of this workspace (set "
            "data_collector.modeltap.retention in a deployment file and start it, or give -f)",
            err=True,
        )
        return
    verb = "would remove" if dry_run else "removed"
    count = objects = nbytes = 0
    for policy, part in retention.sweep(ws, chosen, dry_run=dry_run):
        count += 1
        objects += len(part.objects)
        nbytes += part.nbytes
        click.echo(
            f"{verb} {policy.datastore}:{part.folder} "
            f"({plural(len(part.objects), 'object')}, {human_size(part.nbytes)}; "
            f"ended {part.end:%Y-%m-%dT%H:%MZ}, retention {_days(policy.age)})"
        )
    for policy, change in retention.trim_tables(ws, chosen, dry_run=dry_run):
        if change.rows:
            gone = "" if dry_run else f" ({plural(len(change.files), 'data file')} deleted)"
            click.echo(
                f"{verb} {plural(change.rows, 'row')} of {policy.label} from the compacted "
                f"table {change.table}{gone}"
            )
    click.echo(
        f"modeltap: {verb} {plural(count, 'partition')} ({plural(objects, 'object')}, "
        f"{human_size(nbytes)}) of {plural(len(chosen), 'collection')}",
        err=True,
    )


@retention_group.command("show")
@workspace_option
@_FILES
@friendly_errors
def retention_show(workspace: Path | None, files: tuple[Path, ...]) -> None:
    """List the collections with a retention, and how long each is kept.

    \b
    Example:
      modeltap retention show --workspace ./modeltap-workspace
    """
    _, chosen = _chosen(workspace, files)
    for policy in chosen:
        click.echo(f"{policy.label}  {_days(policy.age)}  {policy.datastore}:{policy.path}")
    if not chosen:
        click.echo("modeltap: no retention is set for any collection", err=True)


def _days(age: timedelta) -> str:
    seconds = int(age.total_seconds())
    if seconds % 86400 == 0:
        return f"P{seconds // 86400}D"
    return f"PT{seconds // 3600}H" if seconds % 3600 == 0 else f"PT{seconds}S"


@click.command("erase")
@click.argument("sources", metavar="SOURCE...", nargs=-1, required=True)
@click.option(
    "--correlation-id",
    "correlation_ids",
    multiple=True,
    metavar="ID",
    help="Erase the lines of this correlation id (repeatable).",
)
@click.option("--id-column", metavar="COLUMN", help="Erase rows whose COLUMN holds --value.")
@click.option(
    "--value",
    "values",
    multiple=True,
    metavar="V",
    help="The value of --id-column to erase (repeatable).",
)
@click.option(
    "--hash-key-env",
    metavar="NAME",
    help="Also erase rows holding V as the hash rule stored it (HMAC keyed from the "
    "environment variable NAME, as hash_key_env in the deployment file).",
)
@click.option("--dry-run", is_flag=True, help="Only print what would change.")
@workspace_option
@friendly_errors
def erase_command(
    sources: tuple[str, ...],
    correlation_ids: tuple[str, ...],
    id_column: str | None,
    values: tuple[str, ...],
    hash_key_env: str | None,
    dry_run: bool,
    workspace: Path | None,
) -> None:
    """Rewrite a collection's objects without one correlation id's lines, or without the
    rows of one id column value. SOURCE: asset name, name:version, datastore URI or folder.

    Each affected object is written anew without them, then the old one is deleted: a
    crash leaves the old or the new object, and running the command again finishes.

    \b
    Example:
      modeltap erase --correlation-id 6f1c... my_endpoint-blue-model_inputs \\
          my_endpoint-blue-model_outputs my_endpoint-blue-request my_endpoint-blue-response
      modeltap erase --id-column customer_id --value 1234 --hash-key-env MODELTAP_HASH_KEY \\
          my_endpoint-blue-model_inputs
    """
    from modeltap import erase, redact

    if bool(id_column) != bool(values):
        raise click.UsageError("--id-column and --value go together")
    if not correlation_ids and not id_column:
        raise click.UsageError("give --correlation-id, or --id-column with --value")
    if hash_key_env and not id_column:
        raise click.UsageError("--hash-key-env goes with --id-column and --value")
    texts = set(values)
    if hash_key_env:
        key = redact.load_key(hash_key_env)
        texts |= {str(redact.hash_value(v, key)) for v in values}
    target = erase.Target(frozenset(correlation_ids), id_column, frozenset(texts))
    rewrite, delete = ("would rewrite", "would delete") if dry_run else ("rewrote", "deleted")
    for report in erase.erase_sources(sources, target, workspace=workspace, dry_run=dry_run):
        for path in report.cleaned:
            click.echo(f"{report.label}: {delete} {path} (an earlier erase replaced it)")
        for c in report.changes:
            what = f"{plural(c.lines, 'line')}" + (f", {plural(c.rows, 'row')}" if c.rows else "")
            if c.payloads:
                what += f", {plural(len(c.payloads), 'payload object')}"
            if c.replacement:
                click.echo(f"{report.label}: {rewrite} {c.path} -> {c.replacement} (-{what})")
            else:
                click.echo(f"{report.label}: {delete} {c.path} (-{what}: nothing left)")
        if report.table is not None:
            t = report.table
            files = f", {plural(len(t.files), 'data file')} deleted" if t.files else ""
            click.echo(
                f"{report.label}: {'would delete' if dry_run else 'deleted'} "
                f"{plural(t.rows, 'row')} from the compacted table {t.table} "
                f"(version {t.version}{files})"
            )
            for problem in t.problems:
                click.echo(f"modeltap: warning: {t.table}: {problem}", err=True)
        click.echo(
            f"modeltap: {report.label}: {'would erase' if dry_run else 'erased'} "
            f"{plural(report.lines, 'line')} and "
            f"{plural(report.rows, 'row')} in {plural(len(report.changes), 'object')} "
            f"(of {plural(report.scanned, 'line file')} read)",
            err=True,
        )


COMMANDS = [retention_group, erase_command]
