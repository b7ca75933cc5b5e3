"""Where records go (SPEC R4.1, R4.6): partitions, writer ids, safe names."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from modeltap.errors import ConfigError
from modeltap.layout import (
    DEFAULT_ROOT,
    RollingRate,
    WriterId,
    collection_prefix,
    partition,
    validate_name,
)

EPOCH = datetime(2024, 3, 5, 18, 16, 25, tzinfo=UTC).timestamp()

EXPECTED = {
    RollingRate.YEAR: "2024",
    RollingRate.MONTH: "2024/03",
    RollingRate.DAY: "2024/03/05",
    RollingRate.HOUR: "2024/03/05/18",
    RollingRate.MINUTE: "2024/03/05/18/16",
}


@pytest.mark.parametrize("rate", list(RollingRate))
def test_partition_for_every_rate(rate):
    assert partition(rate, EPOCH) == EXPECTED[rate]


def test_every_rate_has_an_expected_partition():
    assert set(EXPECTED) == set(RollingRate)


def test_partition_pads_and_keeps_fractional_seconds_in_their_minute():
    t = datetime(2023, 1, 2, 3, 4, 59, tzinfo=UTC).timestamp() + 0.999
    assert partition(RollingRate.MINUTE, t) == "2023/01/02/03/04"
    assert partition(RollingRate.HOUR, t) == "2023/01/02/03"


@pytest.mark.parametrize("tz", ["XYZ-14", "ABC+11", "Asia/Kolkata"])
def test_partition_is_utc_whatever_the_local_timezone(monkeypatch, tz):
    try:
        monkeypatch.setenv("TZ", tz)
        time.tzset()
        if tz == "XYZ-14":  # UTC+14: local date is already the next day
            assert time.localtime(EPOCH).tm_mday == 6
        for rate, expected in EXPECTED.items():
            assert partition(rate, EPOCH) == expected
    finally:
        monkeypatch.undo()
        time.tzset()


def test_rolling_rate_parse_is_case_insensitive():
    assert RollingRate.parse("minute") is RollingRate.MINUTE
    assert RollingRate.parse("HOUR") is RollingRate.HOUR
    assert RollingRate.parse("Month") is RollingRate.MONTH
    with pytest.raises(ConfigError) as info:
        RollingRate.parse("Week")
    assert info.value.field == "data_collector.rolling_rate"
    assert "Minute, Hour, Day, Month, Year" in str(info.value)


def test_collection_prefix():
    assert collection_prefix(DEFAULT_ROOT, "ep", "blue", "model_inputs") == (
        "modelDataCollector/ep/blue/model_inputs"
    )
    assert collection_prefix("/a//b/", "ep", "d", "c") == "a/b/ep/d/c"
    assert collection_prefix("", "ep", "d", "c") == "ep/d/c"


def test_writer_ids_are_unique_across_writers():
    a, b = WriterId(), WriterId()
    assert a.writer != b.writer
    ids_a = {a.next() for _ in range(50)}
    ids_b = {b.next() for _ in range(50)}
    assert len(ids_a) == len(ids_b) == 50
    assert not ids_a & ids_b


def test_writer_ids_increase_within_one_writer():
    w = WriterId()
    ids = [w.next() for _ in range(120)]
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)  # ids sort in flush order (string order, as files list)
    assert all(i.startswith(w.writer + "-") for i in ids)
    for i in ids:  # usable as a file name
        assert validate_name(i, "instance_id") == i


@pytest.mark.parametrize(
    "bad",
    ["", "../x", "a/b", ".hidden", "a\x00b", "a\nb", "..", ".", "a..b", "a b", "a\\b", "x" * 256],
)
def test_validate_name_rejects(bad):
    with pytest.raises(ConfigError) as info:
        validate_name(bad, "the_field")
    assert info.value.field == "the_field"
    assert "not a valid name" in str(info.value)


@pytest.mark.parametrize("bad", ["model_inputs\n", "ep\n"])
def test_validate_name_rejects_trailing_newline(bad):
    # `$` in a Python regex also matches just before a final "\n".
    with pytest.raises(ConfigError):
        validate_name(bad, "the_field")


@pytest.mark.parametrize("bad", [None, 5, b"abc"])
def test_validate_name_rejects_non_strings(bad):
    with pytest.raises(ConfigError):
        validate_name(bad, "f")  # type: ignore[arg-type]


@pytest.mark.parametrize("good", ["model_inputs", "my-endpoint.v2", "a", "_x", "1", "x" * 255])
def test_validate_name_accepts(good):
    assert validate_name(good, "f") == good
