"""The web page's ASGI app: routes, templates, static files and the guard around them.

    from modeltap.ui import create_app
    app = create_app("ws")                      # read-only, for 127.0.0.1
    app = create_app("ws", token="...", loopback_only=False)

`modeltap ui` serves it with uvicorn (through `app_from_env`, the factory it names).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import jinja2
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from modeltap.config import default_workspace
from modeltap.errors import ConfigError, ModeltapError, NotFoundError, StorageError
from modeltap.ui import data, present, views
from modeltap.ui.guard import Guard

__all__ = ["ENV_HOSTS", "ENV_TOKEN", "ENV_WORKSPACE", "app_from_env", "create_app"]

ENV_TOKEN = "MODELTAP_UI_TOKEN"
ENV_WORKSPACE = "MODELTAP_UI_WORKSPACE"  # set by `modeltap ui` for its server process
ENV_HOSTS = "MODELTAP_UI_LOOPBACK_ONLY"  # "1": answer loopback host names only
HERE = Path(__file__).resolve().parent
CHART_JS = HERE.parent / "_vendor" / "chart.umd.min.js"


def create_app(
    workspace: str | os.PathLike[str] | None = None,
    *,
    token: str | None = None,
    loopback_only: bool = True,
) -> Starlette:
    """The page for one workspace. token: every request must carry it (see guard.py)."""
    root = Path(workspace).resolve() if workspace is not None else default_workspace()
    env = _environment()
    for name in env.list_templates():  # compiled now, not by the first request of each page
        env.get_template(name)
    templates = Jinja2Templates(env=env)
    app = Starlette(
        routes=[
            Route("/", views.overview_page),
            Route("/assets", views.assets_page),
            Route("/c/{endpoint}/{deployment}/{collection}", views.collection_view),
            Route("/r/{endpoint}/{deployment}", views.request_page),
            Route("/download/{endpoint}/{deployment}/{collection}", views.download),
            Route("/monitoring", views.monitoring_page),
            Route("/monitoring/{name}", views.monitor_page),
            Route("/monitoring/{name}/report/{run_id}", views.report),
            Route("/static/chart.umd.min.js", _chart_js),
            Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
        ],
        middleware=[Middleware(Guard, token=token, loopback_only=loopback_only)],
        exception_handlers={ModeltapError: _error, ValueError: _error},
    )
    app.state.workspace = root
    app.state.templates = templates
    return app


def app_from_env() -> Starlette:
    """The app `modeltap ui` runs (a uvicorn factory): settings from the environment."""
    return create_app(
        os.environ.get(ENV_WORKSPACE) or None,
        token=os.environ.get(ENV_TOKEN) or None,
        loopback_only=os.environ.get(ENV_HOSTS, "1") == "1",
    )


async def _chart_js(request: Request) -> Response:
    # The vendored Chart.js (src/modeltap/_vendor): served here, so the page works offline.
    return FileResponse(CHART_JS, media_type="text/javascript")


_STATUS = ((NotFoundError, 404), (ConfigError, 400), (ValueError, 400), (StorageError, 502))


async def _error(request: Request, exc: Exception) -> Response:
    code = next((c for kind, c in _STATUS if isinstance(exc, kind)), 500)
    templates: Jinja2Templates = request.app.state.templates
    return templates.TemplateResponse(
        request,
        "error.html",
        {"message": str(exc), "code": code, "workspace": request.app.state.workspace, "active": ""},
        status_code=code,
    )


# -- templates ------------------------------------------------------------------------------


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,  # every value: collected data is user-controlled
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        when=present.when,
        ago=_ago,
        num=lambda n: f"{n:,}",
        size=present.human_size,
        text=present.text,
        pretty=present.pretty,
    )
    env.globals.update(
        search_mb=data.SEARCH_BYTES // 2**20,
        summary_mb=data.SUMMARY_BYTES // 2**20,
        collection_url=collection_url,
        request_url=request_url,
        download_url=download_url,
        monitor_url=monitor_url,
        url=url,
    )
    return env


def url(base: str, /, **query: Any) -> str:
    """path + its query, leaving out empty values."""
    pairs = {k: str(v) for k, v in query.items() if v is not None and v != ""}
    return base + (f"?{urlencode(pairs)}" if pairs else "")


def _seg(value: str) -> str:
    return quote(value, safe="")


def collection_url(endpoint: str, deployment: str, collection: str, **query: Any) -> str:
    return url(f"/c/{_seg(endpoint)}/{_seg(deployment)}/{_seg(collection)}", **query)


def request_url(endpoint: str, deployment: str, correlation_id: str, at: datetime | None) -> str:
    return url(f"/r/{_seg(endpoint)}/{_seg(deployment)}", id=correlation_id, t=present.when(at))


def download_url(endpoint: str, deployment: str, collection: str, path: str) -> str:
    return url(f"/download/{_seg(endpoint)}/{_seg(deployment)}/{_seg(collection)}", path=path)


def monitor_url(name: str, **query: Any) -> str:
    return url(f"/monitoring/{_seg(name)}", **query)


def _ago(t: datetime | None) -> str:
    if t is None:
        return ""
    seconds = int((datetime.now(UTC) - t).total_seconds())
    if seconds < 0:
        return "in the future"
    for size, unit in ((86400, "day"), (3600, "hour"), (60, "minute")):
        if seconds >= size:
            n = seconds // size
            return f"{n} {unit}{'' if n == 1 else 's'} ago"
    return f"{seconds} seconds ago"
