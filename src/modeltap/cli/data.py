"""`modeltap read`, `assets list|show` and `data tail`: looking at collected data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from modeltap.cli._common import friendly_errors, human_size, plural, workspace_option

if TYPE_CHECKING:
    from modeltap import summary, tail


@click.command("read")
@click.argument("source")
@click.option("--start", help="Rows at or after this time (ISO 8601; UTC without an offset).")
@click.option("--end", help="Rows before this time (ISO 8601; UTC without an offset).")
@workspace_option
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
@friendly_errors
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


@click.group("assets")
def assets_group() -> None:
    """Data assets: the collections registered in a workspace, and what they hold."""


@assets_group.command("list")
@workspace_option
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list, for scripts.")
@friendly_errors
def assets_list(workspace: Path | None, as_json: bool) -> None:
    """List every data asset: its records, first and last record time, files and size.

    Counting reads every file (one line is one record); a progress bar shows on stderr
    when there are many.

    \b
    Example:
      modeltap assets list --workspace ./modeltap-workspace
      modeltap assets list --json | jq -r '.[] | "\\(.name) \\(.records)"'
    """
    from modeltap import summary

    summaries = summary.list_assets(workspace)
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
        elif s.skipped_lines or s.skipped_files:
            click.echo(
                f"modeltap: warning: {s.asset.name}:{s.asset.version}: {_skipped(s)}", err=True
            )


@assets_group.command("show")
@click.argument("name", metavar="NAME[:VERSION]")
@workspace_option
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object, for scripts.")
@friendly_errors
def assets_show(name: str, workspace: Path | None, as_json: bool) -> None:
    """Show one data asset (its highest version unless NAME:VERSION names one).

    \b
    Example:
      modeltap assets show my_endpoint-blue-model_inputs
      modeltap assets show my_endpoint-blue-model_inputs:1 --json
    """
    from modeltap import summary

    s = summary.show_asset(name, workspace)
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
        ("first record", summary.format_time(s.first) or "-"),
        ("last record", summary.format_time(s.last) or "-"),
        ("files", f"{plural(s.files, 'line file')}, {plural(s.blobs, 'payload object')}"),
        ("size", human_size(s.bytes)),
        ("partitions", f"{p.count:,}" + (f" ({p.rolling_rate}){span}" if p.count else "")),
        ("rolling rate", p.rolling_rate or "-"),
    ]
    if s.skipped_lines or s.skipped_files:
        fields.insert(4, ("skipped", _skipped(s)))
    click.echo(click.style(f"{a.name}:{a.version}", bold=True) + f"  ({a.type})")
    for key, value in fields:
        click.echo(f"  {key + ':':<15}{value}")


def _skipped(s: summary.AssetSummary) -> str:
    return (
        f"{plural(s.skipped_lines, 'line')} that are not JSON objects and "
        f"{plural(s.skipped_files, 'line file')} without any, not counted ("
        "`modeltap read` skips them too)"
    )


@click.group("data")
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
@workspace_option
@friendly_errors
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

    from modeltap import tail as tails
    from modeltap.errors import StorageError

    width = shutil.get_terminal_size().columns

    def show(lines: list[tails.Line]) -> None:
        for line in lines:
            if as_json:
                click.echo(line.raw.decode("utf-8", "replace"))
            else:
                click.echo(_tail_line(line, width))

    with tails.open_tail(collection, workspace) as tail:
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


def _tail_line(line: tail.Line, width: int) -> str:
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


def _print_assets(summaries: list[summary.AssetSummary]) -> None:
    """A rich table when the terminal is wide enough for it, else a block per asset."""
    from modeltap.summary import format_time

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
                "?" if unknown else human_size(s.bytes),
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

COMMANDS = [read_command, assets_group, data_group]
