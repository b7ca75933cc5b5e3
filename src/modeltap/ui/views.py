"""The page's routes: parse the request, gather through `data`, render a template.

Every handler is a plain function (Starlette runs it in a thread), reads only, and answers
GET. Errors (an unknown collection, a bad time) are ModeltapError or ValueError, rendered
by the app's error page with the right status.
"""

from __future__ import annotations

import posixpath
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.templating import Jinja2Templates

from modeltap.errors import NotFoundError
from modeltap.layout import validate_name
from modeltap.ui import data, monitoring, present

__all__ = [
    "assets_page",
    "collection_view",
    "download",
    "monitor_page",
    "monitoring_page",
    "overview_page",
    "report",
    "request_page",
]


def _render(request: Request, name: str, context: dict[str, Any], status: int = 200) -> Response:
    templates: Jinja2Templates = request.app.state.templates
    context = {"workspace": request.app.state.workspace, "active": "", **context}
    return templates.TemplateResponse(request, name, context, status_code=status)


def _workspace(request: Request) -> Path:
    workspace: Path = request.app.state.workspace
    return workspace


def _names(request: Request, *keys: str) -> list[str]:
    return [validate_name(request.path_params[k], k) for k in keys]


def overview_page(request: Request) -> Response:
    found = data.overview(_workspace(request))
    return _render(request, "overview.html", {"overview": found, "active": "overview"})


def assets_page(request: Request) -> Response:
    summaries = data.assets(_workspace(request))
    return _render(request, "assets.html", {"summaries": summaries, "active": "assets"})


def collection_view(request: Request) -> Response:
    endpoint, deployment, collection = _names(request, "endpoint", "deployment", "collection")
    q = request.query_params
    start = data.parse_time(q.get("start"), "start")
    end = data.parse_time(q.get("end"), "end")
    size = _int(q.get("n"), "n", 50)
    if size not in data.PAGE_SIZES:
        raise ValueError(f"n={size} is not a page size; use one of {data.PAGE_SIZES}")
    page = _int(q.get("page"), "page", 1)
    if page < 1:
        raise ValueError(f"page={page} is not a page number (1, 2, ...)")
    found = data.collection_page(
        _workspace(request),
        endpoint,
        deployment,
        collection,
        start=start,
        end=end,
        offset=(page - 1) * size,
        limit=size,
        correlation_id=(q.get("id") or "").strip() or None,
    )
    filters = {
        "start": q.get("start", ""),
        "end": q.get("end", ""),
        "id": q.get("id", ""),
        "n": size,
    }
    context = {"page": found, "number": page, "filters": filters, "sizes": data.PAGE_SIZES}
    return _render(request, "collection.html", context)


def request_page(request: Request) -> Response:
    endpoint, deployment = _names(request, "endpoint", "deployment")
    correlation_id = request.query_params.get("id", "")
    if not correlation_id:
        raise ValueError("id: give the correlation id of the request (?id=...)")
    around = data.parse_time(request.query_params.get("t"), "t")
    view = data.request_view(_workspace(request), endpoint, deployment, correlation_id, around)
    context = {"view": view, "window": data.REQUEST_WINDOW, "present": present}
    return _render(request, "request.html", context)


def download(request: Request) -> Response:
    """One payload stored as its own object, as an attachment (never shown inline)."""
    endpoint, deployment, collection = _names(request, "endpoint", "deployment", "collection")
    path = request.query_params.get("path", "")
    body = data.payload_object(_workspace(request), endpoint, deployment, collection, path)
    name = posixpath.basename(path) or "payload"
    return Response(
        body,
        media_type="application/octet-stream",
        headers={"content-disposition": f'attachment; filename="{_safe_filename(name)}"'},
    )


def monitoring_page(request: Request) -> Response:
    found = monitoring.monitors(_workspace(request))
    return _render(request, "monitoring.html", {"monitors": found, "active": "monitoring"})


def monitor_page(request: Request) -> Response:
    name = request.path_params["name"]
    run_id = request.query_params.get("run") or None
    found = monitoring.monitor(_workspace(request), name, run_id)
    return _render(request, "monitor.html", {"monitor": found, "active": "monitoring"})


def report(request: Request) -> Response:
    """A run's own HTML report, sandboxed: its scripts run, but not as this page's origin."""
    name, run_id = request.path_params["name"], request.path_params["run_id"]
    path = monitoring.report_path(_workspace(request), name, run_id)
    if path is None:
        raise NotFoundError(f"monitor {name!r} has no report for run {run_id!r}")
    csp = "sandbox allow-scripts; default-src 'none'; script-src 'unsafe-inline'; "
    csp += "style-src 'unsafe-inline'; img-src data:"
    return FileResponse(path, media_type="text/html", headers={"content-security-policy": csp})


def _int(value: str | None, name: str, default: int) -> int:
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"{name}={value!r} is not a whole number") from None


def _safe_filename(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:100] or "payload"
