"""Alerts on a breach: e-mail (SMTP), webhooks (a JSON POST) and a command (the results
JSON on its stdin). Each notifier is tried on its own; a failure is reported in its
Delivery and never stops the others (the results are already saved when alerts go out).

SMTP settings come from the environment, else from `smtp:` in the workspace's
workspace.yml; the password only ever from the environment:

    MODELTAP_SMTP_HOST, MODELTAP_SMTP_PORT (25), MODELTAP_SMTP_SENDER,
    MODELTAP_SMTP_USERNAME, MODELTAP_SMTP_PASSWORD, MODELTAP_SMTP_SECURITY (none|starttls|ssl)

    smtp: {host: mail.example.com, port: 587, sender: monitor@example.com,
           username: monitor, password_env: SMTP_PASSWORD, security: starttls}
"""

from __future__ import annotations

import logging
import os
import shlex
import smtplib
import subprocess
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import orjson

from modeltap.errors import ConfigError
from modeltap.monitor.spec import AlertSpec

__all__ = ["Delivery", "SmtpSettings", "payload", "send", "smtp_settings"]

log = logging.getLogger(__name__)

TIMEOUT = 10.0  # seconds for one SMTP session or webhook POST
COMMAND_TIMEOUT = 60.0
_SECURITY = ("none", "starttls", "ssl")
_SMTP_KEYS = {"host", "port", "sender", "username", "password_env", "security"}


@dataclass(frozen=True)
class Delivery:
    notifier: str  # "email", "webhook <url>" or "command"
    ok: bool
    error: str = ""


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int = 25
    sender: str = "modeltap@localhost"
    username: str | None = None
    password: str | None = None
    security: str = "none"


def smtp_settings(workspace: Path) -> SmtpSettings | None:
    """The environment's settings, else workspace.yml's `smtp:`; None when neither names
    a host."""
    env = os.environ
    file: dict[str, Any] = {}
    ws_file = Path(workspace) / "workspace.yml"
    if ws_file.exists():
        from modeltap.config import _read_yaml

        raw = _read_yaml(ws_file, "workspace file").get("smtp") or {}
        if not isinstance(raw, dict):
            raise ConfigError("must be a mapping", field="smtp", source=str(ws_file))
        unknown = set(raw) - _SMTP_KEYS
        if unknown:
            raise ConfigError(
                f"unknown key {sorted(unknown)[0]!r}; allowed: {', '.join(sorted(_SMTP_KEYS))}",
                field="smtp",
                source=str(ws_file),
            )
        file = raw
    host = env.get("MODELTAP_SMTP_HOST") or file.get("host")
    if not host:
        return None
    port_text = env.get("MODELTAP_SMTP_PORT") or file.get("port") or 25
    try:
        port = int(port_text)
    except (TypeError, ValueError):
        raise ConfigError(f"{port_text!r} is not a port number", field="smtp.port") from None
    security = str(env.get("MODELTAP_SMTP_SECURITY") or file.get("security") or "none").lower()
    if security not in _SECURITY:
        raise ConfigError(f"{security!r}; allowed: {', '.join(_SECURITY)}", field="smtp.security")
    password_env = file.get("password_env")
    password = env.get("MODELTAP_SMTP_PASSWORD") or (
        env.get(password_env) if password_env else None
    )
    return SmtpSettings(
        host=str(host),
        port=port,
        sender=str(env.get("MODELTAP_SMTP_SENDER") or file.get("sender") or "modeltap@localhost"),
        username=env.get("MODELTAP_SMTP_USERNAME") or file.get("username"),
        password=password,
        security=security,
    )


def payload(outcome: Any, breaches: list[Any]) -> dict[str, Any]:
    """The JSON body of a webhook and the stdin of a command."""
    rows = outcome.result_dicts()
    breached = [r for r in rows if r["breached"]]
    allowed = {(b.signal, b.feature, b.metric) for b in breaches}
    return {
        "monitor": outcome.monitor,
        "run_id": outcome.run_id,
        "run_time": rows[0]["run_time"] if rows else None,
        "breached": True,
        "breaches": [r for r in breached if (r["signal"], r["feature"], r["metric"]) in allowed],
        "results": rows,
        "report": str(outcome.report_path) if outcome.report_path else None,
    }


def send(alert: AlertSpec, outcome: Any, breaches: list[Any], workspace: Path) -> list[Delivery]:
    body = payload(outcome, breaches)
    deliveries: list[Delivery] = []
    if alert.emails:
        deliveries.append(_try("email", lambda: _email(alert.emails, body, workspace)))
    for url in alert.webhooks:
        deliveries.append(_try(f"webhook {url}", lambda url=url: _webhook(url, body)))
    if alert.command:
        deliveries.append(_try("command", lambda: _command(alert.command, body)))
    for d in deliveries:
        if d.ok:
            log.info("modeltap: alert sent by %s", d.notifier)
        else:
            log.info("modeltap: alert by %s failed: %s", d.notifier, d.error)
    return deliveries


def _try(name: str, action: Any) -> Delivery:
    try:
        action()
    except Exception as exc:  # any notifier failure is reported, never raised
        return Delivery(name, False, f"{type(exc).__name__}: {exc}")
    return Delivery(name, True)


def _summary(body: dict[str, Any]) -> str:
    lines = [f"Monitor {body['monitor']}, run {body['run_id']}: {len(body['breaches'])} breach(es)"]
    for b in body["breaches"]:
        feature = f" {b['feature']}" if b["feature"] else ""
        lines.append(
            f"- {b['signal']}{feature}: {b['metric']} = {b['value']} (threshold {b['threshold']})"
        )
    if body["report"]:
        lines.append(f"Report: {body['report']}")
    return "\n".join(lines) + "\n"


def _email(to: tuple[str, ...], body: dict[str, Any], workspace: Path) -> None:
    settings = smtp_settings(workspace)
    if settings is None:
        raise ConfigError(
            "no SMTP server: set MODELTAP_SMTP_HOST, or smtp.host in workspace.yml",
            field="alert_notification.emails",
        )
    msg = EmailMessage()
    msg["Subject"] = f"[modeltap] {body['monitor']}: {len(body['breaches'])} threshold breach(es)"
    msg["From"] = settings.sender
    msg["To"] = ", ".join(to)
    msg.set_content(_summary(body))
    if body["report"] and Path(body["report"]).exists():
        msg.add_attachment(
            Path(body["report"]).read_bytes(),
            maintype="text",
            subtype="html",
            filename=Path(body["report"]).name,
        )
    smtp_class = smtplib.SMTP_SSL if settings.security == "ssl" else smtplib.SMTP
    with smtp_class(settings.host, settings.port, timeout=TIMEOUT) as smtp:
        if settings.security == "starttls":
            smtp.starttls()
        if settings.username:
            smtp.login(settings.username, settings.password or "")
        smtp.send_message(msg)


def _webhook(url: str, body: dict[str, Any]) -> None:
    import httpx

    response = httpx.post(
        url,
        content=orjson.dumps(body),
        headers={"content-type": "application/json"},
        timeout=TIMEOUT,
    )
    response.raise_for_status()


def _command(command: str | tuple[str, ...], body: dict[str, Any]) -> None:
    args = shlex.split(command) if isinstance(command, str) else list(command)
    done = subprocess.run(
        args, input=orjson.dumps(body), capture_output=True, timeout=COMMAND_TIMEOUT, check=False
    )
    if done.returncode != 0:
        err = done.stderr.decode(errors="replace").strip().splitlines()
        raise RuntimeError(f"exit {done.returncode}" + (f": {err[-1]}" if err else ""))
