"""Request bodies for the scoring app: a size limit, and clients that leave mid-body.

`BodyLimit` is a pure ASGI middleware. A body over `max_body` bytes gets 413 with a JSON
`error`: at once when its content-length says so, else as soon as the streamed body
passes the limit (the app never sees more; memory stays bounded). The payload logger,
outside it, still records the attempt (without the body) and the 413.

A client that disconnects before its body is complete ends the call with one log line
(the app's read of the body raises starlette's ClientDisconnect), not a traceback and a
500 that was never sent.
"""

from __future__ import annotations

import logging
import os

from starlette.requests import ClientDisconnect
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from modeltap.serving.payload import SCOPE_REFUSED

__all__ = ["DEFAULT_MAX_BODY", "ENV_MAX_BODY", "BodyLimit"]

log = logging.getLogger(__name__)

DEFAULT_MAX_BODY = 64 * 1024 * 1024
ENV_MAX_BODY = "MODELTAP_MAX_BODY"  # set by `modeltap serve --max-body`


class _TooLarge(Exception):
    pass


class BodyLimit:
    def __init__(self, app: ASGIApp, max_body: int | None = None) -> None:
        """max_body: bytes; None: $MODELTAP_MAX_BODY, else 64 MiB."""
        self.app = app
        self.max_body = max_body or int(os.environ.get(ENV_MAX_BODY) or DEFAULT_MAX_BODY)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None:
            if declared > self.max_body:
                await self._refuse(scope, receive, send, f"body of {declared} bytes")
                return
            # The server frames the body by its content-length: it cannot grow past it.
            try:
                await self.app(scope, receive, send)
            except ClientDisconnect:
                self._left(scope, "before its body was complete")
            return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    raise _TooLarge
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, watched_send)
        except _TooLarge:
            if started:  # the app answered before reading the body: nothing left to say
                return
            await self._refuse(scope, receive, send, f"body of more than {self.max_body} bytes")
        except ClientDisconnect:
            if started:
                raise
            self._left(scope, f"after {received} bytes of its body")

    def _left(self, scope: Scope, when: str) -> None:
        log.info(
            "modeltap: %s %s: the client disconnected %s; no answer",
            scope["method"],
            scope["path"],
            when,
        )

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, what: str) -> None:
        reason = f"{what} is over the limit of {self.max_body} bytes"
        scope[SCOPE_REFUSED] = reason
        # connection: close, as the rest of the body is not read
        response = JSONResponse({"error": reason}, 413, headers={"connection": "close"})
        await response(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for key, value in scope["headers"]:
        if key.lower() == b"content-length":
            text = bytes(value).strip()
            return int(text) if text.isdigit() else None
    return None
