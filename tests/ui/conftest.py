"""The web page's tests: `modeltap ui` as a real process on 127.0.0.1, headless Chromium.

Chromium is Debian's (/usr/bin/chromium, installed by scripts/test.sh), driven by
Playwright's Python package. Seeded workspaces (tests/ui/seed.py) are made once per module:
one on the local datastore, one on Azurite.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.emulators import unique_name
from tests.servers import Process, free_port
from tests.ui.seed import Seeded, seed

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
AZURE_ENV = "MODELTAP_TEST_UI_AZURE"
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "docs" / "screenshots"


class UI:
    """A running `modeltap ui`."""

    def __init__(self, process: Process, base: str, workspace: Path):
        self.process = process
        self.base = base
        self.workspace = workspace

    def url(self, path: str = "/") -> str:
        return self.base + path


@pytest.fixture
def start_ui(tmp_path: Path) -> Iterator[Callable[..., UI]]:
    """start_ui(workspace, *extra, env={}, host="127.0.0.1") -> a running `modeltap ui`;
    each is stopped at teardown."""
    started: list[Process] = []

    def start(
        workspace: Path, *extra: str, env: dict[str, str] | None = None, host: str = "127.0.0.1"
    ) -> UI:
        port = free_port()
        base = f"http://{host}:{port}"
        args = ["-m", "modeltap.cli", "ui", "--workspace", str(workspace), "--port", str(port)]
        environment = {**os.environ, **(env or {})}
        log = tmp_path / f"ui-{port}.log"
        process = Process(
            [*args, "--host", host, *extra], log, base + "/static/app.css", env=environment
        )
        started.append(process)
        return UI(process, base, workspace)

    yield start
    for process in started:
        process.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    # Per module: Playwright's sync API keeps an event loop running in this thread while
    # it is open, and tests elsewhere call asyncio.run().
    if not Path(CHROMIUM).exists():
        raise AssertionError(
            f"{CHROMIUM} is missing: bash scripts/test.sh installs Debian's chromium"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    """A fresh page; fails the test on any script error or console error it saw (but those
    containing a text the test put in `page.allowed`), and on any dialog (an alert() from
    injected markup)."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"script error: {exc}"))
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("dialog", lambda d: (problems.append(f"dialog: {d.message}"), d.dismiss()))
    page.allowed = []
    yield page
    context.close()
    problems = [p for p in problems if not any(a in p for a in page.allowed)]
    assert not problems, problems


@pytest.fixture(scope="module")
def seeded_local(tmp_path_factory: pytest.TempPathFactory) -> Seeded:
    return _seed(tmp_path_factory.mktemp("local") / "ws", None)


@pytest.fixture(scope="module")
def seeded_azure(tmp_path_factory: pytest.TempPathFactory, azurite) -> Iterator[Seeded]:
    workspace = tmp_path_factory.mktemp("azure") / "ws"
    workspace.mkdir()
    container = azurite.create_container(unique_name("ui"))
    (workspace / "workspace.yml").write_text(
        f"datastores:\n  lake:\n    type: azure_blob\n    container: {container}\n"
        f"    connection_string_env: {AZURE_ENV}\n"
    )
    with pytest.MonkeyPatch.context() as env:
        env.setenv(AZURE_ENV, azurite.connection_string)  # for the seeding and for the UI
        yield _seed(workspace, "lake")


@pytest.fixture(scope="module")
def seeded_s3(tmp_path_factory: pytest.TempPathFactory, moto_s3) -> Iterator[Seeded]:
    workspace = tmp_path_factory.mktemp("s3") / "ws"
    workspace.mkdir()
    bucket = moto_s3.create_bucket(unique_name("ui"))
    (workspace / "workspace.yml").write_text(
        f"datastores:\n  lake:\n    type: s3\n    bucket: {bucket}\n"
        f"    region: {moto_s3.region}\n    endpoint_url: {moto_s3.endpoint}\n"
    )
    with pytest.MonkeyPatch.context() as env:
        for key, value in moto_s3.env.items():
            env.setenv(key, value)  # for the seeding and for the UI
        yield _seed(workspace, "lake")


def _seed(workspace: Path, datastore: str | None) -> Seeded:
    import modeltap
    from modeltap import collector

    try:
        return seed(workspace, datastore)
    finally:
        modeltap.shutdown()
        collector._reset_for_tests()


@pytest.fixture
def shot(tmp_path: Path) -> Callable[[object, str], None]:
    """shot(page, name): a full-page screenshot, under docs/screenshots/ when
    MODELTAP_SCREENSHOTS=1 (to refresh the docs' pictures), else in the test's folder."""
    folder = SCREENSHOTS if os.environ.get("MODELTAP_SCREENSHOTS") == "1" else tmp_path
    folder.mkdir(parents=True, exist_ok=True)

    def take(page: object, name: str) -> None:
        page.screenshot(path=str(folder / f"{name}.png"), full_page=True)  # type: ignore[attr-defined]
        assert (folder / f"{name}.png").stat().st_size > 1000

    return take
