"""Triggers: when they fire; the schedule loop; `modeltap monitor schedule` stops cleanly."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from modeltap.errors import ConfigError
from modeltap.monitor.schedule import next_run, parse_trigger, run_schedule


def t(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("trigger", "after", "expected"),
    [
        (
            {
                "type": "recurrence",
                "frequency": "day",
                "interval": 1,
                "schedule": {"hours": 3, "minutes": 15},
            },
            "2026-11-25T01:00",
            "2026-11-25T03:15",
        ),
        (
            {
                "type": "recurrence",
                "frequency": "day",
                "interval": 1,
                "schedule": {"hours": 3, "minutes": 15},
            },
            "2026-11-25T03:15",
            "2026-11-26T03:15",
        ),
        (
            {
                "type": "recurrence",
                "frequency": "day",
                "schedule": {"hours": [6, 18], "minutes": 0},
            },
            "2026-11-25T07:00",
            "2026-11-25T18:00",
        ),
        (
            {
                "type": "recurrence",
                "frequency": "week",
                "schedule": {"week_days": ["monday", "thursday"], "hours": 9},
            },
            "2026-11-25T10:00",
            "2026-11-26T09:00",
        ),  # a Wednesday -> Thursday
        (
            {"type": "recurrence", "frequency": "month", "schedule": {"month_days": [1]}},
            "2026-11-25T10:00",
            "2026-12-01T00:00",
        ),
        (
            {"type": "recurrence", "frequency": "hour", "interval": 6, "schedule": {"minutes": 30}},
            "2026-11-25T07:00",
            "2026-11-25T12:30",
        ),
        (
            {"type": "recurrence", "frequency": "minute", "interval": 15},
            "2026-11-25T07:01:30",
            "2026-11-25T07:15",
        ),
        ({"type": "cron", "expression": "15 3 * * *"}, "2026-11-25T04:00", "2026-11-26T03:15"),
    ],
)
def test_next_run(trigger, after, expected):
    assert next_run(parse_trigger(trigger, []), t(after)) == t(expected)


@pytest.mark.parametrize(
    ("trigger", "field"),
    [
        ({"type": "cron", "expression": "every day"}, "trigger.expression"),
        ({"type": "weekly"}, "trigger.type"),
        ({"type": "recurrence", "frequency": "fortnight"}, "trigger.frequency"),
        ({"type": "recurrence", "interval": 0}, "trigger.interval"),
        ({"type": "recurrence", "schedule": {"hours": 25}}, "trigger.schedule.hours"),
        (
            {"type": "recurrence", "schedule": {"week_days": ["funday"]}},
            "trigger.schedule.week_days",
        ),
    ],
)
def test_bad_trigger_names_the_field(trigger, field):
    with pytest.raises(ConfigError) as err:
        parse_trigger(trigger, [])
    assert err.value.field == field


def test_loop_runs_at_each_fire_time_with_that_time_and_stops_between_runs():
    trigger = parse_trigger({"type": "recurrence", "frequency": "minute", "interval": 1}, [])
    clock = [t("2026-11-25T07:00:30")]
    stop = threading.Event()
    ran: list[datetime] = []

    def fake_now() -> datetime:
        return clock[0]

    def fake_wait(seconds: float) -> None:
        assert 0 < seconds <= 60
        clock[0] += timedelta(seconds=seconds)

    def once(at: datetime) -> int:
        ran.append(at)
        if len(ran) == 3:
            stop.set()  # as SIGTERM does: the loop ends after this run
        return 1

    runs = run_schedule(trigger, once, stop, now=fake_now, announce=lambda s: None, wait=fake_wait)
    assert runs == 3
    assert ran == [t("2026-11-25T07:01"), t("2026-11-25T07:02"), t("2026-11-25T07:03")]


def test_schedule_command_logs_next_run_and_ends_cleanly_on_sigterm(drifted):
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "modeltap.cli",
            "monitor",
            "schedule",
            "monitor.yml",
            "--workspace",
            "ws",
        ],
        cwd=drifted.root,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    deadline = time.monotonic() + 60
    assert proc.stderr is not None
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        lines.append(line)
        if "next run at" in line or not line:
            break
    assert "modeltap: monitor credit_default_monitor: next run at " in lines[-1], lines
    assert lines[-1].strip().endswith("T03:15:00Z")  # hours: 3, minutes: 15, UTC
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0
    rest = proc.stderr.read()
    proc.stderr.close()
    assert "stopped after 0 run(s)" in rest and "Traceback" not in rest


def test_schedule_needs_a_trigger(drifted):
    text = (drifted.root / "monitor.yml").read_text().split("\n", 2)
    drifted.write("\n".join([text[0], text[2]]), "no_trigger.yml")
    done = drifted.cli("schedule", "no_trigger.yml", "--workspace", "ws")
    assert done.returncode == 2
    assert done.stderr.strip().endswith("no_trigger.yml: trigger: required to schedule a monitor")
