"""The HTML report of one run: one self-contained file that works offline.

Server-side HTML for the verdict and the results table (readable without JavaScript);
charts drawn by the vendored Chart.js, inlined: per-feature reference vs production
distributions, each metric against its threshold with breaches in red, and each metric's
history over the monitor's last runs.
"""

from __future__ import annotations

import html
import math
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any

import orjson

__all__ = ["HISTORY_RUNS", "render"]

HISTORY_RUNS = 30  # runs shown in the history charts


def _asset(*parts: str) -> str:
    """A file shipped in the package (the wheel includes them): Chart.js, the report's
    script and style."""
    return resources.files("modeltap").joinpath(*parts).read_text("utf-8")


def render(outcome: Any, details: dict[str, Any], workspace: Path) -> str:
    from modeltap.monitor import history

    hist = history.results(outcome.monitor, workspace, last=HISTORY_RUNS)
    past = [
        {
            "run_id": run_id,
            "run_time": t.isoformat().replace("+00:00", "Z"),
            "signal": s,
            "feature": f,
            "metric": m,
            "value": None if math.isnan(v) else v,
            "threshold": None if math.isnan(th) else th,
            "breached": bool(b),
        }
        for run_id, t, s, f, m, v, th, b in zip(
            hist["run_id"],
            hist["run_time"],
            hist["signal"],
            hist["feature"],
            hist["metric"],
            hist["value"],
            hist["threshold"],
            hist["breached"],
            strict=True,
        )
    ]
    data = {
        "results": outcome.result_dicts(),
        "features": details.get("features", []),
        "history": past,
    }
    payload = orjson.dumps(data).decode().replace("</", "<\\/")
    breached = [r for r in outcome.rows if r.breached]
    names = sorted({r.feature or r.metric for r in breached})
    verdict = (
        f'<div class="verdict bad" id="verdict">{len(breached)} breach(es): '
        + ", ".join(f'<span class="breached-feature">{html.escape(n)}</span>' for n in names)
        + "</div>"
        if breached
        else '<div class="verdict ok" id="verdict">No threshold breached</div>'
    )
    return _PAGE.format(
        title=html.escape(f"{outcome.monitor} · {outcome.run_id}"),
        monitor=html.escape(outcome.monitor),
        run_id=html.escape(outcome.run_id),
        run_time=_when(outcome.run_time),
        windows=_windows(details),
        verdict=verdict,
        table=_table(outcome),
        notes="".join(f"<li>{html.escape(n)}</li>" for n in details.get("notes", [])),
        data=payload,
        chartjs=_asset("_vendor", "chart.umd.min.js"),
        script=_asset("monitor", "report.js"),
        style=_asset("monitor", "report.css"),
    )


def _when(t: datetime) -> str:
    return html.escape(t.strftime("%Y-%m-%d %H:%M:%S UTC"))


def _windows(details: dict[str, Any]) -> str:
    parts = []
    for key, s in details.get("signals", {}).items():
        window = (
            f"{s['window_start']} → {s['window_end']}"
            if s.get("window_start") or s.get("window_end")
            else "all rows"
        )
        parts.append(
            f"<li><b>{html.escape(key)}</b> ({html.escape(s['type'])}): production {window}, "
            f"{s['production_rows']:,} rows; reference {s['reference_rows']:,} rows</li>"
        )
    return "".join(parts)


def _table(outcome: Any) -> str:
    rows = sorted(outcome.rows, key=lambda r: (not r.breached, r.signal, r.feature, r.metric))
    out = []
    for r in rows:
        cls = ' class="breached"' if r.breached else ""
        value = "n/a" if math.isnan(r.value) else f"{r.value:.4g}"
        threshold = "n/a" if math.isnan(r.threshold) else f"{r.threshold:.4g}"
        direction = "<" if r.metric in _LOWER else ">"
        status = "BREACH" if r.breached else "ok"
        out.append(
            f"<tr{cls}><td>{html.escape(r.signal)}</td><td>{html.escape(r.feature or '—')}</td>"
            f"<td>{html.escape(r.feature_type or '')}</td><td>{html.escape(r.metric)}</td>"
            f"<td class=num>{value}</td><td class=num>{direction} {threshold}</td>"
            f"<td class=status>{status}</td></tr>"
        )
    return "".join(out)


_LOWER = {
    "two_sample_kolmogorov_smirnov_test",
    "pearsons_chi_squared_test",
    "accuracy",
    "precision",
    "recall",
}


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title><style>{style}</style></head>
<body>
<header><h1>{monitor}</h1><div class="sub">run {run_id} · {run_time}</div></header>
<main>
{verdict}
<section><h2>Data</h2><ul>{windows}</ul></section>
<section><h2>Results</h2><table><thead><tr><th>signal</th><th>feature</th><th>type</th>
<th>metric</th><th class=num>value</th><th class=num>alert when</th><th>status</th></tr></thead>
<tbody>{table}</tbody></table></section>
<section><h2>Reference vs production</h2><div class="grid" id="distributions"></div></section>
<section><h2>Metrics vs thresholds</h2><div class="grid" id="thresholds"></div></section>
<section><h2>History</h2><div class="grid" id="history"></div></section>
<section><h2>Notes</h2><ul class="muted">{notes}<li>Generated by modeltap; charts by Chart.js
(MIT), inlined.</li></ul></section>
</main>
<script id="data" type="application/json">{data}</script>
<script>{chartjs}</script>
<script>{script}</script>
</body></html>
"""
