"""The objects a read takes and their lines: listed by time range, fetched and parsed in
parallel behind an optional progress bar, and what could not be read reported."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from modeltap.errors import ModeltapError
from modeltap.read._parse import Parser, Part
from modeltap.read._range import detect_depth, in_range, plan_prefixes
from modeltap.read._source import Source
from modeltap.storage.base import ObjectInfo, Storage

__all__ = ["PROGRESS_FILES", "THREADS", "list_objects", "parse_all", "progress_bar", "report"]

log = logging.getLogger(__name__)

PROGRESS_FILES = 20  # the automatic progress bar shows from this many files
THREADS = min(8, (os.cpu_count() or 1) * 2)  # objects fetched (and folders listed) at once


def list_objects(src: Source, start: datetime | None, end: datetime | None) -> list[ObjectInfo]:
    """The objects of the source's collection in [start, end): only the partition folders
    the range overlaps are listed (all of them without a start or partition folders)."""
    storage, prefix = src.storage, src.prefix
    if start is None and end is None:
        return in_range(storage.list(prefix), prefix, None, None)
    depth = detect_depth(storage, prefix)
    prefixes = plan_prefixes(start, end, depth) if depth is not None else None
    if depth is None:
        log.info("modeltap: %s has no yyyy/MM/... partition folders: listing all", src.label)
    if prefixes is None:
        return in_range(storage.list(prefix), prefix, start, end)
    folders = [f"{prefix}/{p}" if prefix else p for p in prefixes]
    if len(folders) <= 2:
        listed = [list(storage.list(f)) for f in folders]
    else:
        with ThreadPoolExecutor(THREADS) as pool:
            listed = list(pool.map(lambda f: list(storage.list(f)), folders))
    return in_range([info for found in listed for info in found], prefix, start, end)


def parse_all(
    storage: Storage, infos: list[ObjectInfo], parser: Parser, progress: bool | None, label: str
) -> list[Part]:
    """Every object fetched with Storage.get() and parsed, in order; one that cannot be
    read or parsed is a Part with its error (never fatal to the read)."""

    def one(info: ObjectInfo) -> Part:
        try:
            data = storage.get(info.path)
        except ModeltapError as exc:
            return Part(info.path, error=f"could not be read: {exc}")
        try:
            return parser.parse(info.path, data)
        except Exception as exc:  # never let one odd object break a whole read
            log.debug("parse of %s failed", info.path, exc_info=True)
            return Part(info.path, error=f"could not be parsed: {type(exc).__name__}: {exc}")

    if not infos:
        return []
    with progress_bar(len(infos), progress, label) as advance:
        if len(infos) == 1:
            parts = [one(infos[0])]
            advance()
            return parts
        parts = []
        with ThreadPoolExecutor(min(THREADS, len(infos))) as pool:
            for part in pool.map(one, infos):
                parts.append(part)
                advance()
    return parts


@contextmanager
def progress_bar(total: int, enabled: bool | None, label: str) -> Iterator[Callable[..., None]]:
    """A bar of `total` steps on stderr; `advance(n=1)` moves it on. enabled=None shows it
    for PROGRESS_FILES steps or more on a terminal."""
    show = enabled if enabled is not None else total >= PROGRESS_FILES and sys.stderr.isatty()
    if not show:
        yield _nothing
        return
    try:
        from rich.console import Console  # type: ignore[import-not-found, unused-ignore]
        from rich.progress import Progress  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        if enabled:
            log.warning("modeltap: progress=True needs rich: pip install rich")
        yield _nothing
        return
    with Progress(console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(f"reading {label}", total=total)
        yield lambda n=1: bar.advance(task, n)


def _nothing(n: int = 1) -> None:
    pass


def report(src: Source, parts: list[Part]) -> dict[str, Any]:
    """What was skipped (files that could not be read, lines that are not JSON objects),
    each logged at WARNING: the value of `attrs["modeltap_skipped"]`."""
    skipped: dict[str, Any] = {"lines": 0, "files": [], "partial_files": [], "blobs": []}
    for part in parts:
        if part.error is not None:
            skipped["files"].append(part.path)
            log.warning("modeltap: skipped %s: %s", src.storage.url(part.path), part.error)
        elif part.bad_lines:
            skipped["lines"] += part.bad_lines
            skipped["partial_files"].append(part.path)
            log.warning(
                "modeltap: skipped %d line(s) of %s that are not JSON objects",
                part.bad_lines,
                src.storage.url(part.path),
            )
    return skipped
