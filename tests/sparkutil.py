"""A local Spark session for the tests (`local[2]`, loopback only, no web UI), started once
per test session by the `spark` fixture. Needs Java 17+ (scripts/test.sh installs it)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

__all__ = ["spark_session"]


@pytest.fixture(scope="session", name="spark")
def spark_session() -> Iterator[Any]:
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master("local[2]")
        .appName("modeltap-tests")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.ui.showConsoleProgress", "false")
        # toPandas without Arrow: pyspark 4.3 passes pandas 3 a deprecated keyword
        .config("spark.sql.execution.arrow.pyspark.enabled", "false")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    # py4j's finalizer thread polls with time.sleep() for the whole session; a later test
    # that makes time.sleep raise (tests/test_cli_data.py) would kill it mid-poll. Tests
    # need no release of JVM objects: stop that thread now.
    client = session.sparkContext._gateway._gateway_client
    if getattr(client, "finalizer_deque", None) is not None:
        client.finalizer_deque.appendleft("__shutdown__")
    yield session
    session.stop()
