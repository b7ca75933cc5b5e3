"""Alerts against real local servers: an SMTP server (aiosmtpd) and an HTTP receiver on
127.0.0.1, and a real command. A failing notifier is reported and loses no results."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterator
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from aiosmtpd.controller import Controller

from modeltap.monitor import history
from modeltap.monitor.run import run_monitor
from modeltap.serving.sidecar import free_port
from tests.monitor.conftest import ISSUE_MONITOR


class Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((envelope.mail_from, envelope.rcpt_tos, envelope.content))
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox, port = Inbox(), free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


@pytest.fixture
def receiver() -> Iterator[tuple[list[dict], str]]:
    bodies: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            length = int(self.headers["content-length"])
            bodies.append(json.loads(self.rfile.read(length)))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield bodies, f"http://127.0.0.1:{server.server_address[1]}/hook"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def with_alerts(alert: str) -> str:
    return ISSUE_MONITOR.replace("  alert_notification: {emails: [ops@example.com]}\n", alert)


def test_email_webhook_and_command_on_a_breach(drifted, smtp, receiver, monkeypatch, tmp_path):
    inbox, port = smtp
    bodies, url = receiver
    monkeypatch.setenv("MODELTAP_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("MODELTAP_SMTP_PORT", str(port))
    monkeypatch.setenv("MODELTAP_SMTP_SENDER", "monitor@example.com")
    stdin_copy = tmp_path / "stdin.json"
    command = [
        sys.executable,
        "-c",
        f"import sys; open({str(stdin_copy)!r}, 'wb').write(sys.stdin.buffer.read())",
    ]
    spec = with_alerts(
        "  alert_notification:\n    emails: [ops@example.com, ml@example.com]\n"
        f"    webhooks: [{url}]\n    command: {json.dumps(command)}\n"
    )
    outcome = run_monitor(drifted.write(spec), drifted.ws, drifted.at)
    assert outcome.exit_code == 1 and outcome.problems == []
    assert [d.notifier for d in outcome.alerts] == ["email", f"webhook {url}", "command"]

    [(sender, to, raw)] = inbox.messages
    assert sender == "monitor@example.com" and to == ["ops@example.com", "ml@example.com"]
    mail = message_from_bytes(raw)
    assert "credit_default_monitor: 2 threshold breach(es)" in mail["Subject"]
    text = next(p for p in mail.walk() if p.get_content_type() == "text/plain").get_payload()
    assert "LIMIT_BAL: normalized_wasserstein_distance" in text and "AGE" not in text
    [report] = [p for p in mail.walk() if p.get_filename()]
    assert report.get_filename() == f"{outcome.run_id}.html"

    [body] = bodies
    assert {b["feature"] for b in body["breaches"]} == {"LIMIT_BAL", "SEX"}
    assert body["monitor"] == "credit_default_monitor" and len(body["results"]) == 3
    assert json.loads(stdin_copy.read_bytes()) == body


def test_smtp_settings_from_workspace_file(drifted, smtp, monkeypatch):
    inbox, port = smtp
    monkeypatch.delenv("MODELTAP_SMTP_HOST", raising=False)
    (drifted.ws / "workspace.yml").write_text(
        f"smtp: {{host: 127.0.0.1, port: {port}, sender: ws@example.com}}\n"
    )
    outcome = run_monitor(drifted.root / "monitor.yml", drifted.ws, drifted.at)
    assert [d.ok for d in outcome.alerts] == [True]
    assert inbox.messages[0][0] == "ws@example.com"


def test_no_alert_without_a_breach(steady, smtp, monkeypatch):
    inbox, port = smtp
    monkeypatch.setenv("MODELTAP_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("MODELTAP_SMTP_PORT", str(port))
    assert run_monitor(steady.root / "monitor.yml", steady.ws, steady.at).alerts == []
    assert inbox.messages == []


def test_no_alert_when_the_signal_disables_it(drifted, smtp, monkeypatch):
    inbox, port = smtp
    monkeypatch.setenv("MODELTAP_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("MODELTAP_SMTP_PORT", str(port))
    spec = ISSUE_MONITOR.replace("alert_enabled: true", "alert_enabled: false")
    outcome = run_monitor(drifted.write(spec), drifted.ws, drifted.at)
    assert outcome.exit_code == 1 and outcome.alerts == []
    assert inbox.messages == []


def test_failing_notifiers_are_reported_and_lose_no_results(drifted, receiver, monkeypatch):
    bodies, url = receiver
    monkeypatch.setenv("MODELTAP_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("MODELTAP_SMTP_PORT", str(free_port()))  # nobody listens there
    dead = f"http://127.0.0.1:{free_port()}/hook"
    spec = with_alerts(
        f"  alert_notification:\n    emails: [ops@example.com]\n    webhooks: [{dead}, {url}]\n"
        f"    command: [{json.dumps(sys.executable)}, -c, 'import sys; sys.exit(3)']\n"
    )
    drifted.write(spec)
    done = drifted.cli("run", "monitor.yml", "--workspace", "ws", "--at", drifted.at)
    assert done.returncode == 1  # the breach, not the notifiers, decides the exit code
    warnings = [line for line in done.stderr.splitlines() if "warning: alert by" in line]
    assert len(warnings) == 3, done.stderr
    assert any("email failed: ConnectionRefusedError" in w for w in warnings)
    assert any(f"webhook {dead} failed" in w for w in warnings)
    assert any("command failed: RuntimeError: exit 3" in w for w in warnings)
    assert f"alert sent by webhook {url}" in done.stderr  # the others still went out
    assert len(bodies) == 1
    [run] = history.runs("credit_default_monitor", drifted.ws)
    assert run.breached and len(history.results("credit_default_monitor", drifted.ws)) == 3


def test_bad_smtp_settings_name_the_field(drifted, monkeypatch):
    from modeltap.errors import ConfigError
    from modeltap.monitor.alerts import smtp_settings

    monkeypatch.setenv("MODELTAP_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("MODELTAP_SMTP_SECURITY", "tls13")
    with pytest.raises(ConfigError, match=r"smtp\.security: 'tls13'; allowed: none, starttls"):
        smtp_settings(drifted.ws)
