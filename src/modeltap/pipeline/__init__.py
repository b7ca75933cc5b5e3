"""The one pipeline every record goes through: buffer -> batch -> encode -> commit.

collect() hands a Record to `Pipeline.submit`, which only appends to a bounded buffer
(intake.py). One background writer thread (writer.py) takes what is waiting (after a
short batching window), encodes it to JSON lines, groups lines by object (collection +
partition), and commits one new object per group (commits.py) every `flush_interval`
seconds, or sooner when a group grows past `object_bytes`, or on flush()/close().

With durability "spool" the caller appends the record's line to the local spool
instead (spooler.py over spool.py), and the writer seals and uploads its segments.

Nothing accepted is lost silently: when the buffer is full the overflow policy applies
and every drop is counted and reported. A failed commit, upload or payload put is
retried on one back-off (backoff.py), scheduled, never slept on: it waits in the spool
(memory stays bounded) or, without spool room, in memory while the writer takes no more.
At close(), what a writer stuck in a storage call still holds is put on the spool by
the closing thread, or counted dropped.

    collect() ─► Pipeline.submit ─┬─ memory ─► Buffer ─► Writer thread
                                  │                      │ encode
                                  │                      ▼
                                  │                   Commits ── failed ──┐
                                  └─ spool ───────────────────────────► Spooler ─► Spool
                                                         │ commit         │ upload
                                                         ▼                ▼
                                                       Storage (create-only puts)
"""

from modeltap.pipeline.core import Pipeline
from modeltap.pipeline.state import Counters, Route

__all__ = ["Counters", "Pipeline", "Route"]
