"""`import modeltap` stays light; `modeltap.load` / `modeltap.join` import the reader on use."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

HEAVY = ["pandas", "pyarrow", "duckdb", "scipy", "mlflow", "werkzeug", "inference_schema"]


def run_python(code: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout.splitlines()[-1])
    return result


def test_import_modeltap_loads_no_heavy_module():
    result = run_python(
        f"""
        import json, sys
        import modeltap
        from modeltap import Collector, BasicCorrelationContext
        print(json.dumps({{"loaded": [m for m in {HEAVY!r} if m in sys.modules]}}))
        """
    )
    assert result["loaded"] == []


def test_load_and_join_are_the_readers_functions_imported_on_use():
    result = run_python(
        """
        import json, sys
        import modeltap
        before = "pyarrow" in sys.modules
        from modeltap import load
        from modeltap.read import join, load as read_load
        print(json.dumps({
            "before": before,
            "after": "pyarrow" in sys.modules,
            "same": load is read_load and modeltap.join is join,
            "listed": {"load", "join"} <= set(modeltap.__all__) and "load" in dir(modeltap),
        }))
        """
    )
    assert result == {"before": False, "after": True, "same": True, "listed": True}


def test_unknown_attribute_is_an_attribute_error():
    import modeltap

    try:
        modeltap.no_such_name  # type: ignore[attr-defined]  # noqa: B018
    except AttributeError as exc:
        assert "no_such_name" in str(exc)
    else:
        raise AssertionError("modeltap.no_such_name did not raise")
