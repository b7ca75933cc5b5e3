"""The page's security rules, over real sockets: loopback by default, the token rule,
read-only methods, the Host check, headers, and downloads that stay inside a collection."""

from __future__ import annotations

import html
import subprocess
import sys

import httpx
import pytest

from modeltap.ui.guard import COOKIE, is_loopback
from tests.ui.seed import MONITOR

pytestmark = pytest.mark.slow

TOKEN = "s3cret-token-for-tests-0123456789"


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [sys.executable, "-m", "modeltap.cli", "ui", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


@pytest.mark.parametrize(
    ("args", "env", "says"),
    [
        (["--host", "0.0.0.0"], {}, "'0.0.0.0' is not a loopback address"),
        (["--host", "0.0.0.0", "--allow-remote"], {}, "set MODELTAP_UI_TOKEN"),
        (["--host", "10.1.2.3"], {"MODELTAP_UI_TOKEN": TOKEN}, "Give --allow-remote"),
        (["--host", "0.0.0.0", "--allow-remote"], {"MODELTAP_UI_TOKEN": "short"}, "16 or more"),
    ],
)
def test_other_addresses_are_refused_without_allow_remote_and_a_token(tmp_path, args, env, says):
    done = cli(
        "--workspace", str(tmp_path), "--port", "0", *args, env={"MODELTAP_UI_TOKEN": "", **env}
    )
    assert done.returncode == 2
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("modeltap: error: ") and says in line


def test_loopback_names():
    assert all(map(is_loopback, ["127.0.0.1", "127.8.0.1", "localhost", "::1", "[::1]"]))
    assert not any(map(is_loopback, ["0.0.0.0", "10.0.0.1", "127.0.0.1.example", "::", "host"]))


def test_with_allow_remote_every_request_needs_the_token(seeded_local, start_ui, browser):
    ui = start_ui(
        seeded_local.workspace, "--allow-remote", env={"MODELTAP_UI_TOKEN": TOKEN}, host="0.0.0.0"
    )
    base = ui.base.replace("0.0.0.0", "127.0.0.1")
    paths = [
        "/",
        "/assets",
        "/static/app.css",
        "/static/chart.umd.min.js",
        "/c/shop/blue/request",
        f"/monitoring/{MONITOR}",
        "/download/shop/blue/request?path=x",
    ]
    with httpx.Client(base_url=base, timeout=10) as client:
        for path in paths:
            answer = client.get(path)
            assert answer.status_code == 401, path
            assert "needs its token" in answer.text
            assert (
                client.get(
                    path, headers={"authorization": "Bearer wrong-token-0123456789"}
                ).status_code
                == 401
            )
            assert client.get(path, headers={"cookie": f"{COOKIE}=wrong"}).status_code == 401
        assert client.get("/", headers={"authorization": f"Bearer {TOKEN}"}).status_code == 200
        assert (
            client.get(
                "/assets", headers={"host": "lan-name:1234", "authorization": f"Bearer {TOKEN}"}
            ).status_code
            == 200
        )
        entry = client.get("/c/shop/blue/model_inputs", params={"token": TOKEN, "n": 20})
        assert entry.status_code == 303
        assert entry.headers["location"] == "/c/shop/blue/model_inputs?n=20"  # the token is gone
        cookie = entry.headers["set-cookie"]
        assert (
            f"{COOKIE}={TOKEN}" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
        )
        assert client.get("/", headers={"cookie": f"{COOKIE}={TOKEN}"}).status_code == 200

    context = browser.new_context()  # a person opening the link with the token once
    page = context.new_page()
    page.goto(f"{base}/?token={TOKEN}")
    assert page.url == f"{base}/" and page.locator('[data-deployment="shop/blue"]').count() == 1
    page.locator('[data-deployment="shop/blue"] tr[data-collection="model_inputs"] a.coll').click()
    assert page.locator("#records tbody tr").count() > 0
    context.close()


def test_a_token_set_on_loopback_is_required_too(seeded_local, start_ui):
    ui = start_ui(seeded_local.workspace, env={"MODELTAP_UI_TOKEN": TOKEN})
    assert httpx.get(ui.url("/")).status_code == 401
    assert httpx.get(ui.url("/"), headers={"authorization": f"Bearer {TOKEN}"}).status_code == 200


def test_read_only_host_check_and_headers(seeded_local, start_ui):
    ui = start_ui(seeded_local.workspace, env={"MODELTAP_UI_TOKEN": ""})
    with httpx.Client(base_url=ui.base, timeout=10) as client:
        for method in ("POST", "PUT", "PATCH", "DELETE"):
            answer = client.request(method, "/c/shop/blue/model_inputs")
            assert answer.status_code == 405 and answer.headers["allow"] == "GET, HEAD"
        assert client.get("/", headers={"host": "evil.example"}).status_code == 400
        assert (
            client.get(
                "/", headers={"host": f"evil.example:{ui.base.rsplit(':', 1)[1]}"}
            ).status_code
            == 400
        )
        for host in ("localhost", "127.0.0.1:1", "[::1]:8765"):
            assert client.get("/", headers={"host": host}).status_code == 200, host
        page = client.get("/")
        csp = page.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert "frame-ancestors 'none'" in csp
        assert page.headers["x-content-type-options"] == "nosniff"
        assert page.headers["x-frame-options"] == "DENY"
        assert page.headers["referrer-policy"] == "no-referrer"
        assert client.head("/").status_code == 200
        chart = client.get("/static/chart.umd.min.js")
        assert chart.status_code == 200 and "Chart.js v4" in chart.text[:300]


def test_downloads_stay_inside_the_collection(seeded_local, start_ui):
    ui = start_ui(seeded_local.workspace)
    with httpx.Client(base_url=ui.base, timeout=10) as client:
        page = client.get("/c/shop/blue/request")
        link = page.text.split('href="/download/shop/blue/request?path=', 1)[1].split('"', 1)[0]
        path = httpx.QueryParams(f"path={link.replace('&amp;', '&')}")["path"]
        got = client.get("/download/shop/blue/request", params={"path": path})
        # the newest: a body sent as markup (its content type too): an attachment, never a page
        assert got.status_code == 200 and got.content == b"<b>hi</b>"
        assert got.headers["content-type"] == "application/octet-stream"
        assert got.headers["content-disposition"].startswith("attachment;")
        assert got.headers["x-content-type-options"] == "nosniff"
        folder = path.rsplit("/", 1)[0]
        line_file = next(
            p.name
            for p in (seeded_local.workspace / "datastores/workspaceblobstore" / folder).iterdir()
            if p.name.endswith(".jsonl")
        )
        for bad in (
            f"{folder}/{line_file}",  # a line file, not a payload
            path.replace("/request/", "/response/"),  # another collection's folder
            f"{folder}/../../../../../../../catalog.sqlite",
            "/etc/passwd",
            f"{folder}/missing",
        ):
            answer = client.get("/download/shop/blue/request", params={"path": bad})
            assert answer.status_code == 404, (bad, answer.status_code)
            assert f"no payload object {bad!r}" in html.unescape(answer.text), answer.text


def test_reports_are_sandboxed_and_unknown_names_are_404(seeded_local, start_ui):
    ui = start_ui(seeded_local.workspace)
    with httpx.Client(base_url=ui.base, timeout=10) as client:
        report = client.get(f"/monitoring/{MONITOR}/report/20260302T080000Z")
        assert report.status_code == 200 and "report 20260302T080000Z" in report.text
        assert report.headers["content-security-policy"].startswith("sandbox allow-scripts;")
        for path, message in {  # each a 404 that says what is missing
            f"/monitoring/{MONITOR}/report/20990101T000000Z": "has no report for run",
            "/monitoring/nobody": "no monitor 'nobody' has run",
            f"/monitoring/{MONITOR}?run=nope": f"monitor '{MONITOR}' has no run 'nope'",
            "/monitoring/%2E%2E": "no monitor '..' has run",
            "/c/shop/blue/nope": "no collection 'shop/blue/nope'",
            "/c/shop/../model_inputs": "Not Found",  # /c/model_inputs: no such route
        }.items():
            answer = client.get(path)
            assert answer.status_code == 404, path
            assert message in html.unescape(answer.text), path
        missing = client.get("/c/shop/blue/requests").text  # escaped, as every value
        assert "did you mean &#39;shop/blue/request&#39;" in missing


def test_the_error_docs_ui_shows_is_the_cli_error(tmp_path):
    from tests.test_docs import ROOT, blocks

    [shown] = [b for b in blocks(ROOT / "docs" / "ui.md", "text") if "$ modeltap ui" in b]
    command, message = shown.strip().splitlines()
    args = command.removeprefix("$ modeltap ui ").split()
    done = cli(*args, "--workspace", str(tmp_path), env={"MODELTAP_UI_TOKEN": ""})
    assert done.returncode == 2 and done.stderr.strip() == message.strip()
