"""`trigger:` of a monitor file, and running a monitor on it until stopped.

Two trigger shapes, the platform's:
    {type: recurrence, frequency: day, interval: 1, schedule: {hours: 3, minutes: 15}}
    {type: cron, expression: "15 3 * * *"}
Times are UTC. A recurrence counts its intervals from the Unix epoch (weeks from Monday
1970-01-05), so `interval: 2` picks the same days on every machine.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from modeltap.errors import ConfigError

if TYPE_CHECKING:
    from modeltap.monitor.spec import Trigger

__all__ = ["next_run", "parse_trigger", "run_schedule"]

log = logging.getLogger(__name__)

FREQUENCIES = ("minute", "hour", "day", "week", "month")
_WEEK_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_EPOCH_MONDAY = datetime(1970, 1, 5, tzinfo=UTC)


def parse_trigger(raw: dict[str, Any], notes: list[str]) -> Any:
    from modeltap.monitor.spec import Trigger

    kind = raw.get("type")
    for key in ("start_time", "end_time"):
        if key in raw:
            notes.append(f"trigger.{key}: not used; the schedule runs while the command runs")
    zone = raw.get("time_zone")
    if zone is not None and str(zone).upper() not in ("UTC", "Z"):
        notes.append(f"trigger.time_zone: {zone!r} ignored; times are UTC")
    if kind == "cron":
        expression = raw.get("expression")
        from croniter import croniter

        if not isinstance(expression, str) or not croniter.is_valid(expression):
            raise ConfigError(
                f"{expression!r} is not a cron expression", field="trigger.expression"
            )
        return Trigger("cron", expression=expression)
    if kind != "recurrence":
        raise ConfigError(f"{kind!r}; allowed: recurrence, cron", field="trigger.type")
    frequency = str(raw.get("frequency", "day")).lower()
    if frequency not in FREQUENCIES:
        raise ConfigError(
            f"{frequency!r}; allowed: {', '.join(FREQUENCIES)}", field="trigger.frequency"
        )
    interval = raw.get("interval", 1)
    if isinstance(interval, bool) or not isinstance(interval, int) or interval < 1:
        raise ConfigError(f"{interval!r}; allowed: a whole number >= 1", field="trigger.interval")
    sched = raw.get("schedule") or {}
    if not isinstance(sched, dict):
        raise ConfigError("must be a mapping", field="trigger.schedule")
    unknown = set(sched) - {"hours", "minutes", "week_days", "month_days"}
    if unknown:
        raise ConfigError(
            f"unknown key {sorted(unknown)[0]!r}; allowed: hours, minutes, week_days, month_days",
            field="trigger.schedule",
        )
    return Trigger(
        "recurrence",
        frequency=frequency,
        interval=interval,
        hours=_ints(sched.get("hours", 0), 0, 23, "trigger.schedule.hours"),
        minutes=_ints(sched.get("minutes", 0), 0, 59, "trigger.schedule.minutes"),
        week_days=_week_days(sched.get("week_days")),
        month_days=_ints(sched.get("month_days", []), 1, 31, "trigger.schedule.month_days"),
    )


def _ints(value: Any, lo: int, hi: int, where: str) -> tuple[int, ...]:
    values = value if isinstance(value, list) else [value]
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            raise ConfigError(f"{v!r}; allowed: whole numbers from {lo} to {hi}", field=where)
    return tuple(sorted(set(values)))


def _week_days(value: Any) -> tuple[int, ...]:
    if value is None:
        return ()
    values = value if isinstance(value, list) else [value]
    out = []
    for v in values:
        name = str(v).lower()
        if name not in _WEEK_DAYS:
            raise ConfigError(
                f"{v!r}; allowed: {', '.join(_WEEK_DAYS)}", field="trigger.schedule.week_days"
            )
        out.append(_WEEK_DAYS.index(name))
    return tuple(sorted(set(out)))


def next_run(trigger: Any, after: datetime) -> datetime:
    """The first time strictly after `after` (UTC) that the trigger fires."""
    after = after.astimezone(UTC)
    if trigger.type == "cron":
        from croniter import croniter

        nxt = croniter(trigger.expression, after).get_next(datetime)
        assert isinstance(nxt, datetime)
        return nxt.astimezone(UTC)
    base = after.replace(second=0, microsecond=0)
    if trigger.frequency == "minute":
        minutes = int(base.timestamp() // 60) + 1
        minutes += -minutes % trigger.interval
        return datetime.fromtimestamp(minutes * 60, UTC)
    if trigger.frequency == "hour":
        hour = base.replace(minute=0)
        for step in range(0, 2 + trigger.interval * 2):
            candidate_hour = hour + timedelta(hours=step)
            if int(candidate_hour.timestamp() // 3600) % trigger.interval:
                continue
            for minute in trigger.minutes:
                t = candidate_hour.replace(minute=minute)
                if t > after:
                    return t
        raise AssertionError("unreachable")
    day = base.replace(hour=0, minute=0)
    for step in range(0, 366 * 4 * trigger.interval + 2):
        d = day + timedelta(days=step)
        if not _day_fires(trigger, d):
            continue
        for hour in trigger.hours:
            for minute in trigger.minutes:
                t = d.replace(hour=hour, minute=minute)
                if t > after:
                    return t
    raise ConfigError("the trigger never fires", field="trigger.schedule")


def _day_fires(trigger: Trigger, d: datetime) -> bool:
    if trigger.frequency == "day":
        return (d - datetime(1970, 1, 1, tzinfo=UTC)).days % trigger.interval == 0
    if trigger.frequency == "week":
        week = (d - _EPOCH_MONDAY).days // 7
        days = trigger.week_days or (0,)
        return week % trigger.interval == 0 and d.weekday() in days
    months = (d.year - 1970) * 12 + d.month - 1
    return months % trigger.interval == 0 and d.day in (trigger.month_days or (1,))


def run_schedule(
    trigger: Any,
    run_once: Callable[[datetime], int],
    stop: threading.Event,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    announce: Callable[[str], None] = log.info,
    wait: Callable[[float], object] | None = None,
) -> int:
    """Call run_once(at) at each time the trigger fires, until `stop` is set (a SIGTERM
    handler sets it: a run under way finishes first). Returns the number of runs.
    now/wait: the clock and the sleep (default: real time, waking early on stop)."""
    wait = wait or stop.wait
    runs = 0
    while not stop.is_set():
        at = next_run(trigger, now())
        announce(f"next run at {at.isoformat().replace('+00:00', 'Z')}")
        while not stop.is_set():
            left = (at - now()).total_seconds()
            if left <= 0:
                break
            wait(min(left, 60.0))
        if stop.is_set():
            break
        code = run_once(at)
        runs += 1
        announce(f"run at {at.isoformat().replace('+00:00', 'Z')} finished: exit {code}")
    return runs
