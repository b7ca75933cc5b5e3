"""The web page in headless Chromium: a seeded workspace (local and Azurite), clicked through
overview -> collection -> request view, its values checked, and nothing in the data runs."""

from __future__ import annotations

import re

import pytest

from tests.ui.seed import MONITOR, XSS, XSS_COLUMN, XSS_ID, Seeded

pytestmark = pytest.mark.slow


def no_injected_markup(page) -> None:
    """Nothing from the data ran or became an element."""
    assert page.evaluate("window.__xss") is None
    assert page.locator("img, svg, iframe, object, embed").count() == 0
    inline = "[...document.scripts].filter(s => !s.src && s.type !== 'application/json').length"
    assert page.evaluate(inline) == 0


def cids(page) -> list[str]:
    return page.locator("#records td.cid a").all_inner_texts()


@pytest.fixture(params=["local", "azurite"])
def seeded(request) -> Seeded:
    return request.getfixturevalue(f"seeded_{'local' if request.param == 'local' else 'azure'}")


def test_overview_collection_record_and_request(seeded, start_ui, page, shot):
    ui = start_ui(seeded.workspace)
    page.goto(ui.url("/"))
    blue = page.locator('[data-deployment="shop/blue"]')
    expected = {"model_inputs": "30", "model_outputs": "30", "request": "34", "response": "34"}
    for name, records in expected.items():
        row = blue.locator(f'tr[data-collection="{name}"]')
        assert row.locator("td.records").inner_text() == records
    inputs = blue.locator('tr[data-collection="model_inputs"]')
    assert inputs.locator("td.last").inner_text().startswith("2026-03-01T13:48:00Z")
    green = page.locator('[data-deployment="shop/green"] tr[data-collection="model_inputs"]')
    assert green.locator("td.records").inner_text() == "1"
    # every collection's chart was drawn, from the records per hour (6 hours of 5)
    drawn = "[...document.querySelectorAll('canvas[data-chart]')].map(c => !!Chart.getChart(c))"
    assert page.evaluate(drawn) == [True] * 5
    bars = page.evaluate("Chart.getChart(document.querySelector('canvas')).data.datasets[0].data")
    assert bars[-6:] == [5, 5, 5, 5, 5, 5] and sum(bars) == 30
    no_injected_markup(page)
    if seeded.workspace.parent.name.startswith("local"):
        shot(page, "overview")

    inputs.locator("a.coll").click()
    page.wait_for_url(re.compile(r"/c/shop/blue/model_inputs$"))
    headers = page.locator("#records thead th").all_inner_texts()
    assert headers == ["time", "correlation id", "age", "income", "city", "comment", XSS_COLUMN]
    assert cids(page)[:3] == ["order-029", XSS_ID, "order-027"]  # newest first
    first = page.locator("#records tbody tr").first
    assert first.locator("td").all_inner_texts() == [
        "2026-03-01T13:48:00Z",
        "order-029",
        "59",
        "52000.5",
        "Lyon",
        XSS[29 % 3],
        "x",
    ]
    assert set(page.locator("#records td.str").all_inner_texts()) >= set(XSS)
    no_injected_markup(page)

    page.locator("#records td.cid a", has_text=XSS_ID).click()
    page.wait_for_url(re.compile(r"/r/shop/blue\?id="))
    assert page.locator("#correlation-id").inner_text() == XSS_ID
    parts = page.locator("section.part")
    assert parts.evaluate_all("p => p.map(e => e.dataset.collection)") == [
        "model_inputs",
        "model_outputs",
        "request",
        "response",
    ]
    model_inputs = page.locator('section[data-collection="model_inputs"]')
    assert model_inputs.locator("table.records tbody tr").first.locator("td").all_inner_texts()[
        :3
    ] == [
        "58",
        "52000.5",
        "Lyon",
    ]
    response = page.locator('section[data-collection="response"]')
    assert response.locator("[data-status]").inner_text() == "status 200"
    assert response.locator("[data-latency]").inner_text() == "12.5 ms"
    request = page.locator('section[data-collection="request"]')
    fields = dict(
        zip(
            *[request.locator(f"table.fields {c}").all_inner_texts() for c in ("th", "td")],
            strict=True,
        )
    )
    assert fields["method"] == "POST" and fields["path"] == "/score?debug=" + XSS[0]
    assert fields["xrequestid"] == XSS_ID
    assert '"comment"' in request.locator("pre.body").inner_text()
    no_injected_markup(page)
    if seeded.workspace.parent.name.startswith("local"):
        shot(page, "request")


def test_payloads_stored_as_objects_download_whole(seeded, start_ui, page):
    ui = start_ui(seeded.workspace)
    page.goto(ui.url("/c/shop/blue/request"))
    row = page.locator("#records tbody tr", has_text=seeded.binary_id)
    assert row.locator("a.download").inner_text().startswith("stored as its own object")
    with page.expect_download() as download:
        row.locator("a.download").click()
    assert download.value.path().read_bytes() == seeded.binary
    typed = page.locator("#records tbody tr", has_text="typed-call")
    assert XSS[1] in typed.locator("td").all_inner_texts()  # the content-type header, as text
    no_injected_markup(page)

    page.locator("#records td.cid a", has_text=seeded.spilled_id).click()
    request = page.locator('section[data-collection="request"]')
    assert request.locator("[data-size]").inner_text() == "5.0 kB"
    with page.expect_download() as download:
        request.locator("a.download").click()
    assert download.value.path().read_bytes() == seeded.spilled
    page.goto(ui.url(f"/r/shop/blue?id={seeded.failed_id}"))
    response = page.locator('section[data-collection="response"]')
    assert response.locator("[data-status]").inner_text() == "status 500"
    assert "ValueError: " + XSS[1] in response.locator("table.fields").inner_text()
    no_injected_markup(page)


def test_paging_time_range_and_search(seeded_local, start_ui, page, shot):
    ui = start_ui(seeded_local.workspace)
    orders = seeded_local.orders
    page.goto(ui.url("/c/shop/blue/model_inputs?n=20"))
    assert cids(page) == orders[::-1][:20]
    page.locator("a[rel=next]").click()
    assert cids(page) == orders[::-1][20:] and page.locator("a[rel=next]").count() == 0
    page.locator("a[rel=prev]").click()
    assert cids(page) == orders[::-1][:20]

    page.fill("input[name=start]", "2026-03-01T09:00:00")
    page.fill("input[name=end]", "2026-03-01T10:00:00")
    page.click("form.filters button")
    assert cids(page) == ["order-009", "order-008", "order-007", "order-006", "order-005"]
    assert page.locator("a[rel=next]").count() == 0

    page.goto(ui.url("/c/shop/blue/model_inputs"))
    page.fill("input[name=id]", XSS_ID)
    page.click("form.filters button")
    assert cids(page) == [XSS_ID]
    assert "1 found" in page.locator("#search-note").inner_text()
    no_injected_markup(page)
    page.fill("input[name=id]", "nobody")
    page.click("form.filters button")
    assert page.locator("#no-records").is_visible() and cids(page) == []
    answer = page.goto(ui.url("/c/shop/blue/model_inputs?start=yesterday"))
    assert answer is not None and answer.status == 400
    message = page.locator("#error-message").inner_text()
    assert "start='yesterday' is not an ISO 8601 time" in message
    page.allowed.append("status of 400 (Bad Request)")  # the console notes it, as it should
    page.goto(ui.url("/c/shop/blue/model_inputs"))
    shot(page, "collection")


def test_assets_page(seeded, start_ui, page, shot):
    ui = start_ui(seeded.workspace)
    page.goto(ui.url("/assets"))
    row = page.locator('tr[data-asset="shop-blue-request:1"]')
    cells = row.locator("td").all_inner_texts()
    assert cells[1] == "shop/blue/request" and cells[2] == "34"
    assert cells[3:5] == ["2026-03-01T08:00:01Z", "2026-03-01T14:00:03Z"]
    want = "azureml://datastores/{}/paths/".format(
        "lake" if "azure" in str(seeded.workspace) else "workspaceblobstore"
    )
    assert cells[-1].startswith(want)
    assert page.locator("#assets tbody tr").count() == 5
    if seeded.workspace.parent.name.startswith("local"):
        shot(page, "assets")


def test_monitoring_pages(seeded_local, start_ui, page, shot):
    ui = start_ui(seeded_local.workspace)
    page.goto(ui.url("/monitoring"))
    card = page.locator(f'[data-monitor="{MONITOR}"]')
    assert card.locator("[data-breaches]").inner_text() == "1 breach"
    assert "20260304T080000Z" in card.inner_text()
    assert card.locator("tr[data-breached] td").first.inner_text().startswith("drift_inputs")
    no_injected_markup(page)
    shot(page, "monitoring")

    card.locator("h2 a").click()
    page.wait_for_url(re.compile(f"/monitoring/{MONITOR}$"))
    breached = page.locator("tr.breached")
    assert (
        breached.count() == 1 and "age" in breached.inner_text() and "0.31" in breached.inner_text()
    )
    charts = "[...document.querySelectorAll('canvas[data-chart]')]"
    charts += ".map(c => Chart.getChart(c).config.type)"
    assert page.evaluate(charts) == ["bar", "bar", "line", "line", "line"]
    history = page.evaluate(
        "Chart.getChart(document.querySelector('[data-chart^=hist]')).data.datasets[0].data"
    )
    assert history == [0.02, 0.03, 0.31]  # age's drift over the three runs
    assert XSS[2] in page.locator("figure figcaption").all_inner_texts()[1]
    no_injected_markup(page)
    shot(page, "monitor")

    page.select_option("select[name=run]", "20260302T080000Z")
    page.click("form.filters button")
    assert page.locator("#run-id").inner_text() == "20260302T080000Z"
    assert page.locator("tr.breached").count() == 0
    with page.expect_popup() as popup:
        page.click("#report-link")
    report = popup.value
    report.wait_for_load_state()
    assert report.locator("h1").inner_text() == "report 20260302T080000Z"
    assert report.title() == "ran"  # its own script runs, sandboxed (see test_security.py)


def test_an_empty_workspace_says_how_to_start(tmp_path, start_ui, page, shot):
    workspace = tmp_path / "not-yet"
    ui = start_ui(workspace)
    page.goto(ui.url("/"))
    assert "modeltap serve -f deployment.yml" in page.locator("#get-started").inner_text()
    page.goto(ui.url("/assets"))
    assert page.locator("#get-started").is_visible()
    page.goto(ui.url("/monitoring"))
    assert "modeltap monitor run monitor.yml" in page.locator("#no-monitors").inner_text()
    shot(page, "empty")
    assert not workspace.exists()  # looking wrote nothing


def test_looking_writes_nothing(seeded_local, start_ui, page):
    def files() -> dict[str, tuple[int, int]]:
        found = {}
        for path in seeded_local.workspace.rglob("*"):
            if path.is_file():
                stat = path.stat()
                found[str(path)] = (stat.st_size, stat.st_mtime_ns)
        return found

    before = files()
    ui = start_ui(seeded_local.workspace)
    for path in (
        "/",
        "/assets",
        "/c/shop/blue/response",
        f"/r/shop/blue?id={seeded_local.orders[3]}",
        "/monitoring",
        f"/monitoring/{MONITOR}",
    ):
        page.goto(ui.url(path))
    assert files() == before


def test_pipeline_counters_of_running_servers(tmp_path, start_ui, page, monkeypatch):
    import pandas as pd

    import modeltap
    from modeltap import BasicCorrelationContext, Collector, status

    monkeypatch.setattr(status, "_publisher", None)  # a publisher of this test's own
    workspace = tmp_path / "ws"
    rt = modeltap.configure(
        workspace=workspace,
        endpoint="shop",
        deployment="blue",
        collections=["model_inputs"],
        sampling_rate=0.5,
    )
    status.publish(rt)  # as every server process does
    try:
        inputs = Collector(name="model_inputs")
        for k in range(40):
            inputs.collect(pd.DataFrame({"x": [k]}), BasicCorrelationContext(id=f"r{k}"))
        assert modeltap.flush(10)
        status._publisher.tick()
        counts = modeltap.stats()
        assert 0 < counts["sampled_out"] < 40
        ui = start_ui(workspace)
        page.goto(ui.url("/"))
        counters = page.locator('[data-deployment="shop/blue"] [data-counters]')
        assert "running: 1 process" in counters.inner_text()
        shown = {
            key: counters.locator(f'[data-counter="{key}"]').inner_text()
            for key in ("dropped", "sampled_out", "spooled")
        }
        assert shown == {k: f"{counts[k]:,}" for k in ("dropped", "sampled_out", "spooled")}
    finally:
        modeltap.shutdown()
        status._publisher.close()
    page.reload()  # stopped: its counters are gone
    assert page.locator("[data-counters]").count() == 0
