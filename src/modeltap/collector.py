"""The SDK face: Collector, as a score.py written for the source platform uses it (R1)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from modeltap import runtime, sampling, tabular
from modeltap.context import BasicCorrelationContext, CorrelationContext, current_request_id
from modeltap.errors import BufferFullError, CollectionDisabledError, CollectorLimitError
from modeltap.layout import validate_name
from modeltap.record import FRAME, Record

__all__ = ["MAX_COLLECTORS", "Collector"]

log = logging.getLogger(__name__)

MAX_COLLECTORS = 5  # the source platform's limit per process

_names: set[str] = set()
_names_lock = threading.Lock()


def _declare(name: str) -> None:
    with _names_lock:
        if name in _names:
            return
        if len(_names) >= MAX_COLLECTORS:
            raise CollectorLimitError(
                f"cannot declare collector {name!r}: a process may declare at most "
                f"{MAX_COLLECTORS} collectors (already: {', '.join(sorted(_names))})"
            )
        _names.add(name)


class Collector:
    """Collects tables into one named collection.

    >>> inputs = Collector(name="model_inputs")
    >>> ctx = inputs.collect(input_df)             # a new correlation id (or the request's)
    >>> Collector(name="model_outputs").collect(output_df, ctx)   # same correlation id

    With `on_error`, collect() never raises: every failure (collection disabled,
    wrong type, full buffer) is passed to on_error instead.
    """

    def __init__(
        self, *, name: str, on_error: Callable[[Exception], Any] | None = None, **_ignored: Any
    ):
        self.name = validate_name(name, "Collector name")
        self.on_error = on_error
        _declare(self.name)

    def collect(
        self,
        data: Any,
        context: CorrelationContext | None = None,
        *,
        correlation_context: CorrelationContext | None = None,
    ) -> CorrelationContext:
        """Log a table; return the correlation context to pass to the next collector.

        That is `context` when given, else a new BasicCorrelationContext (with the id of
        the request being served, if any). It is returned also when the record is sampled
        out, and when on_error took a failure.
        """
        ctx = context if context is not None else correlation_context
        if ctx is None:
            request_id = current_request_id.get()
            ctx = BasicCorrelationContext(id=request_id)
        try:
            rt = runtime.current()
            # Redaction first: nothing collect() keeps or hands on holds a raw value (R13.1).
            redactor = rt.redactors.get(self.name)
            redacted = redactor.table(data) if redactor is not None else None
            if redacted is not None:
                snap, data_type = redacted
            elif (encoded := tabular.encode_small(data)) is not None:
                snap, data_type = encoded, tabular.PANDAS_TYPE
            else:
                snap, data_type = tabular.snapshot(data)
            if not rt.collection_enabled(self.name):
                raise CollectionDisabledError(
                    f"collection {self.name!r} is not enabled in deployment "
                    f"{rt.deployment.endpoint}/{rt.deployment.deployment}; enabled: "
                    f"{', '.join(sorted(rt.deployment.collections)) or 'none'} "
                    f"(set data_collector.collections.{self.name}.enabled: true)"
                )
            cid = ctx.get_id()
            if not sampling.keep(cid, rt.deployment.sampling_rate):
                rt.pipeline.count_sampled_out()
                return ctx
            record = Record(
                self.name,
                snap,
                kind=FRAME,
                correlation_id=cid,
                collect_data_type=data_type,
                model_version=rt.deployment.model_version,
            )
            rt.pipeline.submit(record, _size(snap))
        except BufferFullError as exc:
            # Counted by the pipeline. Raised into run() only when the user chose "raise".
            if self.on_error is not None:
                self.on_error(exc)
            elif runtime.current().deployment.pipeline.overflow == "raise":
                raise
            else:
                _warn_drop(exc)
        except Exception as exc:
            if self.on_error is None:
                raise
            self.on_error(exc)
        return ctx

    def __repr__(self) -> str:
        return f"Collector(name={self.name!r})"


_last_drop_warning = 0.0


def _warn_drop(exc: Exception) -> None:
    global _last_drop_warning
    now = time.monotonic()
    if now - _last_drop_warning >= 10:  # at most one line per 10 s under overload
        _last_drop_warning = now
        log.warning("modeltap: %s (see modeltap.stats()['dropped'])", exc)


def _size(snap: Any) -> int:
    """Bytes the record is reckoned at in the buffer (its rows, estimated until encoded)."""
    if type(snap) is bytes:
        return 64 + len(snap)
    shape = getattr(snap, "shape", None)
    rows, cols = (int(shape[0]), int(shape[1])) if shape is not None and len(shape) == 2 else (1, 1)
    return 64 + rows * max(cols, 1) * 16


def _reset_for_tests() -> None:
    with _names_lock:
        _names.clear()
