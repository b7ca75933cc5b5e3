"""The server's access log without query strings: a request line like
`POST /score?email=jane@example.com` would put what the rules keep out of the data into
the log. `modeltap serve` uses this config when the deployment has redaction rules."""

from __future__ import annotations

import copy
import logging
from typing import Any

__all__ = ["QueryStringFilter", "access_log_config"]


class QueryStringFilter(logging.Filter):
    """Replace the query string of uvicorn's access records (their third argument)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            path, mark, _ = args[2].partition("?")
            if mark:
                record.args = (*args[:2], f"{path}?[redacted]", *args[3:])
        return True


def access_log_config() -> dict[str, Any]:
    """uvicorn's logging config with the access handler filtered (applied in every worker)."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["no_query"] = {"()": QueryStringFilter}
    config["handlers"]["access"]["filters"] = ["no_query"]
    return config
