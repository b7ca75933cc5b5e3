"""Drive the scoring app in-process: AppClient, and the `load` fixture for score.py sources."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any

import httpx
from starlette.types import ASGIApp


class AppClient:
    """Drive an ASGI app in-process as a server does: lifespan startup, requests through
    httpx.ASGITransport, lifespan shutdown on exit. A synchronous stand-in for starlette's
    TestClient, which warns (an error here) unless the httpx2 package is installed.
    """

    def __init__(self, app: ASGIApp, timeout: float = 30.0) -> None:
        self.app = app
        self.timeout = timeout
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.client: httpx.AsyncClient | None = None

    def _call(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(self.timeout)

    def __enter__(self) -> AppClient:
        self.thread.start()
        try:
            self._call(self._startup())
        except BaseException:
            self._stop_loop()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        try:
            self._call(self._shutdown())
        finally:
            self._stop_loop()

    async def _startup(self) -> None:
        self._to_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._from_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}}
        self._task = asyncio.ensure_future(self.app(scope, self._to_app.get, self._from_app.put))
        await self._phase("startup")
        self.client = httpx.AsyncClient(
            # As under a server: an exception escaping the app is the 500 it sent, not raised here.
            transport=httpx.ASGITransport(app=self.app, raise_app_exceptions=False),
            base_url="http://testserver",
        )

    async def _shutdown(self) -> None:
        if self.client is not None:
            await self.client.aclose()
        await self._phase("shutdown")
        await asyncio.wait_for(self._task, self.timeout)

    async def _phase(self, phase: str) -> None:
        await self._to_app.put({"type": f"lifespan.{phase}"})
        message = asyncio.ensure_future(self._from_app.get())
        await asyncio.wait({message, self._task}, return_when=asyncio.FIRST_COMPLETED)
        if message.done() and message.result()["type"] == f"lifespan.{phase}.complete":
            return
        message.cancel()
        await asyncio.wait_for(self._task, self.timeout)  # raises what the app raised
        raise AssertionError(f"lifespan {phase} failed: {message}")

    def _stop_loop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(self.timeout)
        self.loop.close()

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        assert self.client is not None, "use it in a `with` block"
        return self._call(self.client.request(method, url, **kwargs))  # type: ignore[no-any-return]

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)
