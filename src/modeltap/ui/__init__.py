"""The web page (`modeltap ui`): collected data and monitoring results, read-only.

    from modeltap.ui import create_app

    app = create_app("ws")      # an ASGI app; `modeltap ui --workspace ws` serves it

Server-rendered pages over `summary`, `tail`, `assets`, `status` and `monitor.history`
(its own reads: only payload objects, for download); a little JavaScript draws charts
with the vendored Chart.js.
See docs/ui.md.
"""

from modeltap.ui.app import create_app

__all__ = ["create_app"]
