"""The HTML report, rendered by headless Chromium: offline, and showing what breached."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, sync_playwright

from modeltap.monitor import history
from modeltap.monitor.run import run_monitor

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


def test_report_shows_breached_features_offline(drifted, browser):
    run_monitor(drifted.root / "monitor.yml", drifted.ws, drifted.at, notify=False)
    outcome = run_monitor(drifted.root / "monitor.yml", drifted.ws, drifted.at, notify=False)
    assert outcome.report_path == history.runs("credit_default_monitor", drifted.ws)[0].report_path
    html = outcome.report_path.read_text()
    assert "<script src" not in html and "<link" not in html  # one file, nothing to fetch

    page = browser.new_page(viewport={"width": 1280, "height": 900})
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(outcome.report_path.as_uri())
    page.wait_for_selector("body[data-ready=true]", timeout=20_000)
    assert errors == [] and requests == [outcome.report_path.as_uri()]  # nothing fetched

    assert page.locator("#verdict").inner_text().startswith("2 breach(es)")
    flagged = page.locator(".breached-feature").all_inner_texts()
    assert sorted(flagged) == ["LIMIT_BAL", "SEX"]
    rows = page.locator("tr.breached td:nth-child(2)").all_inner_texts()
    assert sorted(rows) == ["LIMIT_BAL", "SEX"]
    # distribution cards: the breached features are marked and come first
    cards = page.locator("#distributions .card")
    names = [cards.nth(i).get_attribute("data-feature") for i in range(cards.count())]
    assert sorted(names[:2]) == ["LIMIT_BAL", "SEX"] and names[2] == "AGE"
    marked = page.locator("#distributions .card.breached").evaluate_all(
        "cs => cs.map(c => c.dataset.feature)"
    )
    assert sorted(marked) == ["LIMIT_BAL", "SEX"]
    # every chart was drawn: 3 distributions + 2 metric/threshold + 2 history charts
    assert page.evaluate("Object.keys(Chart.instances).length") == 7
    drawn = page.evaluate(
        """() => [...document.querySelectorAll('canvas')].map(c => {
            const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            let ink = 0; for (let i = 3; i < d.length; i += 4) if (d[i]) ink++;
            return ink; })"""
    )
    assert len(drawn) == 7 and min(drawn) > 500
    # the history chart has both runs
    labels = page.evaluate(
        "Object.values(Chart.instances).filter(c => c.config.type === 'line')"
        ".map(c => c.data.datasets[0].data.length)"
    )
    assert labels == [2, 2]
    page.close()
