"""Redaction rules (SPEC R13.1): the deployment file's block, one ConfigError per bad rule,
and what each rule does to tables, JSON bodies, text and query strings."""

from __future__ import annotations

import hashlib
import hmac
import subprocess
import sys
import textwrap

import orjson
import pandas as pd
import pytest

from modeltap.config import load_deployment
from modeltap.errors import ConfigError
from modeltap.redact import (
    CollectionRules,
    Redactor,
    RedactSettings,
    compile_rules,
    hash_value,
    parse_redact,
)
from modeltap.redact._detect import luhn

KEY_ENV = "MODELTAP_TEST_HASH_KEY"
KEY = "k3y-for-tests-0123456789"
W = "data_collector.modeltap.redact"


@pytest.fixture(autouse=True)
def key(monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)


def rules(**rule) -> Redactor:
    settings = parse_redact({"hash_key_env": KEY_ENV, "collections": {"c": rule}}, ["c"])
    return compile_rules(settings)["c"]


def h(value) -> str:
    return hash_value(value, KEY.encode())


# --- the deployment file -------------------------------------------------------------

DEPLOYMENT = """\
name: blue
endpoint_name: my_endpoint
data_collector:
  collections:
    model_inputs: {enabled: 'True'}
    request: {enabled: 'True'}
    model_outputs: {enabled: 'False'}
  modeltap:
    retention: P90D
    redact:
      hash_key_env: MODELTAP_TEST_HASH_KEY
      collections:
        model_inputs:
          drop: [ssn]
          hash: [email, customer_id]
          mask: {card_number: last4}
          patterns: [email, credit_card, phone]
        request:
          paths: ["$.customer.address"]
          drop_bodies: ["image/*"]
"""


def load(tmp_path, text=DEPLOYMENT):
    (tmp_path / "deployment.yml").write_text(text)
    return load_deployment(tmp_path / "deployment.yml")


def test_the_issue_example_is_read(tmp_path):
    settings = load(tmp_path)
    assert settings.retention is not None and settings.retention.days == 90
    inputs = settings.redact.collections["model_inputs"]
    assert inputs == CollectionRules(
        drop=("ssn",),
        hash=("email", "customer_id"),
        mask=(("card_number", "last4"),),
        patterns=("email", "credit_card", "phone"),
    )
    request = settings.redact.collections["request"]
    assert request.paths == (("$.customer.address", "drop"),)
    assert request.drop_bodies == ("image/*",)
    assert settings.redact.hash_key_env == KEY_ENV
    assert settings.pipeline.flush_interval == 5.0  # the other modeltap keys are untouched


BAD = [
    ("redact: [a]", W, "mapping"),
    ("redact: {hash_key: abc}", f"{W}.hash_key", "did you mean 'hash_key_env'"),
    ("redact: {hash_key_env: 's3cr3t-k3y!'}", f"{W}.hash_key_env", "never the key"),
    (
        "redact: {collections: {model_input: {drop: [a]}}}",
        f"{W}.collections.model_input",
        "did you mean 'model_inputs'",
    ),
    (
        "redact: {collections: {model_inputs: {dorp: [a]}}}",
        f"{W}.collections.model_inputs.dorp",
        "did you mean 'drop'",
    ),
    (
        "redact: {collections: {model_inputs: {drop: ssn}}}",
        f"{W}.collections.model_inputs.drop",
        "list of names",
    ),
    (
        "redact: {collections: {model_inputs: {drop: [a, '']}}}",
        f"{W}.collections.model_inputs.drop",
        "list of names",
    ),
    (
        "redact: {hash_key_env: K, collections: {model_inputs: {drop: [a], hash: [A]}}}",
        f"{W}.collections.model_inputs.hash",
        "already in the drop rule",
    ),
    (
        "redact: {collections: {model_inputs: {mask: {card: last}}}}",
        f"{W}.collections.model_inputs.mask.card",
        "last<N>",
    ),
    (
        "redact: {collections: {model_inputs: {mask: [card]}}}",
        f"{W}.collections.model_inputs.mask",
        "mapping",
    ),
    (
        "redact: {collections: {model_inputs: {patterns: [emial]}}}",
        f"{W}.collections.model_inputs.patterns",
        "did you mean 'email'",
    ),
    (
        "redact: {collections: {model_inputs: {paths: ['customer.address']}}}",
        f"{W}.collections.model_inputs.paths",
        "from the root",
    ),
    (
        "redact: {collections: {model_inputs: {paths: ['$.a[']}}}",
        f"{W}.collections.model_inputs.paths",
        "not a JSON path",
    ),
    (
        "redact: {collections: {model_inputs: {paths: {'$.a': shred}}}}",
        f"{W}.collections.model_inputs.paths['$.a']",
        "not a mask",
    ),
    (
        "redact: {collections: {model_inputs: {drop_bodies: [images]}}}",
        f"{W}.collections.model_inputs.drop_bodies",
        "content types",
    ),
    (
        "redact: {collections: {model_inputs: {hash: [email]}}}",
        f"{W}.hash_key_env",
        "required by the hash rules of model_inputs",
    ),
    (
        "redact: {collections: {model_inputs: {paths: {'$.a': hash}}}}",
        f"{W}.hash_key_env",
        "required",
    ),
    ("retention: 90 days", "data_collector.modeltap.retention", "ISO 8601"),
    ("retention: P0D", "data_collector.modeltap.retention", "positive"),
    ("retention: -P1D", "data_collector.modeltap.retention", "positive"),
]


@pytest.mark.parametrize(("block", "field", "message"), BAD, ids=[b[0] for b in BAD])
def test_each_bad_rule_is_one_error_naming_its_field(tmp_path, block, field, message):
    text = "name: blue\nendpoint_name: ep\ndata_collector:\n  collections:\n"
    text += "    model_inputs: {enabled: true}\n  modeltap:\n    " + block + "\n"
    with pytest.raises(ConfigError) as err:
        load(tmp_path, text)
    assert err.value.field == field
    assert message in err.value.message
    assert "s3cr3t" not in str(err.value)


def test_rules_for_a_disabled_collection_are_accepted(tmp_path):
    text = DEPLOYMENT.replace("request:\n          paths", "model_outputs:\n          paths")
    assert "model_outputs" in load(tmp_path, text).redact.collections


@pytest.mark.parametrize(
    ("value", "message"),
    [(None, "is not set"), ("", "is not set"), ("short", "5 characters")],
)
def test_the_key_comes_from_the_environment_or_an_error(monkeypatch, value, message):
    if value is None:
        monkeypatch.delenv(KEY_ENV)
    else:
        monkeypatch.setenv(KEY_ENV, value)
    settings = RedactSettings(KEY_ENV, {"c": CollectionRules(hash=("email",))})
    with pytest.raises(ConfigError, match=message) as err:
        compile_rules(settings)
    assert err.value.field == f"{W}.hash_key_env"
    assert KEY_ENV in str(err.value)
    # rules without hashing need no key
    monkeypatch.delenv(KEY_ENV, raising=False)
    assert compile_rules(RedactSettings(None, {"c": CollectionRules(drop=("a",))}))


def test_hashes_are_keyed_and_stable_across_processes():
    code = textwrap.dedent(f"""
        from modeltap.redact import hash_value
        print(hash_value("a@b.example", {KEY!r}.encode()), hash_value(42, {KEY!r}.encode()))
    """)
    other = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert other == [h("a@b.example"), h(42)]
    # what docs/privacy.md promises: HMAC-SHA256 of the value's text, as hex
    assert h("a@b.example") == hmac.new(KEY.encode(), b"a@b.example", hashlib.sha256).hexdigest()
    assert h("a@b.example") == "78dc1ad635474122ec0c9a05abc902bf10d88e089a4b5c6c8828ced790fd5b1c"
    assert len(h("x")) == 64 and h("x") != hash_value("x", b"another-key-0123456789")
    # one id, whatever type a table gave it, hashes alike: joins still work
    assert h(42) == h(42.0) == h("42") == h(pd.Series([42]).to_numpy()[0])
    assert h(None) is None and h(float("nan")) is None


# --- what the rules do ---------------------------------------------------------------


def test_names_match_columns_and_fields_at_any_depth_in_any_case():
    r = rules(drop=["ssn"], hash=["email"], mask={"card": "last4"})
    body = {
        "customer": {"Email": "a@b.example", "SSN": "1", "card": "4111111111111111"},
        "items": [{"email": "c@d.example", "n": 1}],
        "other": "kept",
    }
    out = r.value(body)
    assert out == {
        "customer": {"Email": h("a@b.example"), "card": "************1111"},
        "items": [{"email": h("c@d.example"), "n": 1}],
        "other": "kept",
    }
    assert body["customer"]["SSN"] == "1"  # the caller's value is not changed


def test_masks():
    r = rules(mask={"a": "last4", "b": "first2", "c": "all", "d": "last4"})
    assert r.value({"a": 4111111111111111, "b": "secret", "c": "xyz", "d": "123", "e": None}) == {
        "a": "************1111",
        "b": "se****",
        "c": "***",
        "d": "***",
        "e": None,
    }


def test_patterns_scrub_free_text_only_where_they_match():
    r = rules(patterns=["email", "credit_card", "phone"])
    text = (
        "Mail jane.doe+x@mail.example.org, card 4111 1111 1111 1111 or 4012-8888-8888-1881, "
        "call +44 20 7946 0958 or (555) 123-4567 or 555.123.4567. Order 1234567890123 "
        "(not a card), on 2024-01-15 at 10:30, id 42, amount 1,234.50"
    )
    assert r.scrub(text) == (
        "Mail [redacted:email], card [redacted:credit_card] or [redacted:credit_card], "
        "call [redacted:phone] or [redacted:phone] or [redacted:phone]. Order 1234567890123 "
        "(not a card), on 2024-01-15 at 10:30, id 42, amount 1,234.50"
    )
    assert luhn("4111111111111111") and not luhn("4111111111111112")
    only_email = rules(patterns=["email"])
    assert only_email.scrub("a@b.example 555-123-4567") == "[redacted:email] 555-123-4567"


def test_split_tables_have_their_columns_matched():
    r = rules(drop=["ssn"], hash=["email"])
    body = {
        "input_data": {
            "columns": ["email", "ssn", "x"],
            "index": [0, 1],
            "data": [["a@b.example", "1", 1], ["c@d.example", "2", 2]],
        }
    }
    assert r.value(body) == {
        "input_data": {
            "columns": ["email", "x"],
            "index": [0, 1],
            "data": [[h("a@b.example"), 1], [h("c@d.example"), 2]],
        }
    }


def test_json_paths_drop_hash_or_mask():
    r = rules(
        paths={
            "$.customer.address": "drop",
            "$.customer.id": "hash",
            "$.items[*].card": "last4",
            "$..secret": "drop",
        }
    )
    body = {
        "customer": {"address": "1 Main St", "id": 7, "name": "x"},
        "items": [{"card": "4111111111111111", "secret": 1}, {"card": "55"}],
    }
    assert r.value(body) == {
        "customer": {"id": h(7), "name": "x"},
        "items": [{"card": "************1111"}, {"card": "**"}],
    }
    assert body["customer"]["address"] == "1 Main St"  # the caller's value is not changed
    root = rules(paths=["$"])
    assert root.body(b'{"a":1}', "application/json") == b"null"
    # a text body has nothing inside to select (and is not parsed as JSON text)
    assert r.body(b'"{\\"customer\\": 1}"', "text/plain") == b'"{\\"customer\\": 1}"'
    assert root.body(b'"text"', "text/plain") == b"null"


def test_bodies_and_query_strings():
    r = rules(hash=["email"], patterns=["phone"], drop_bodies=["image/*", "text/csv"])
    assert orjson.loads(r.body(b'[{"email":"a@b.example"}]', "application/json")) == [
        {"email": h("a@b.example")}
    ]
    assert orjson.loads(r.body(orjson.dumps("call 555-123-4567"), "text/plain")) == (
        "call [redacted:phone]"
    )
    assert r.body(b'"a,b"', "text/csv; charset=utf-8") == b"null"
    query = r.query("/score?email=a%40b.example&q=555-123-4567&x=1")
    assert query == f"/score?email={h('a@b.example')}&q=%5Bredacted%3Aphone%5D&x=1"
    assert r.query("/score?x=1&y=2") == "/score?x=1&y=2"
    data, kind, extra = r.payload(b"\x89PNG", "blob", "image/png", {"path": "/score"})
    assert (data, kind, extra["redacted"]) == (b"null", "json", "body")
    data, kind, extra = r.payload(b"\x00\x01", "blob", "application/octet-stream", {})
    assert (data, kind, extra) == (b"\x00\x01", "blob", {})


def test_a_large_text_body_on_disk_is_not_kept_when_it_cannot_be_read(tmp_path):
    r = rules(hash=["email"])
    with (tmp_path / "body").open("w+b") as file:
        file.write(b'{"email": "a@b.example"}')
        data, kind, extra = r.payload(file, "blob", "application/json", {"error": "x"})
        assert file.closed
    assert (data, kind) == (b"null", "json")
    assert extra["redacted"] == "body over blob_threshold, not inspected"


def test_tables_are_redacted_as_the_writer_would_encode_them():
    r = rules(drop=["ssn"], hash=["customer_id"], patterns=["email"])
    frame = pd.DataFrame(
        {
            "customer_id": [1, 2],
            "ssn": ["1", "2"],
            "note": ["to a@b.example", None],
            "when": pd.to_datetime(["2026-01-01", "2026-01-02"]),
            "x": [0.5, float("nan")],
        }
    )
    data, kind = r.table(frame)
    assert kind == "pandas.core.frame.DataFrame"
    assert orjson.loads(data) == [
        {
            "customer_id": h(1),
            "note": "to [redacted:email]",
            "when": "2026-01-01T00:00:00",
            "x": 0.5,
        },
        {"customer_id": h(2), "note": None, "when": "2026-01-02T00:00:00", "x": None},
    ]
    # nothing named and no text: collect() takes the table as usual
    assert r.table(pd.DataFrame({"a": [1], "b": [2.0]})) is None
    with pytest.raises(TypeError, match=r"got builtins\.dict"):
        r.table({"a": [1]})
    with pytest.raises(ValueError, match="repeated"):
        r.table(pd.DataFrame([[1, 2]], columns=["a", "a"]))


def test_a_frame_nothing_matches_is_encoded_byte_for_byte_as_the_writer_does():
    from modeltap import tabular

    frame = pd.DataFrame(
        {
            "f": [0.5, float("nan"), 1e300],
            "i": [1, 2, 3],
            "b": [True, False, True],
            "o": ["a", None, "c"],
            "s": pd.array(["x", None, "z"], dtype="str"),
            "cat": pd.Categorical(["u", "v", "u"]),
            "I": pd.array([1, None, 3], dtype="Int64"),
            "dt": pd.to_datetime(
                ["2026-01-01", None, "2026-01-03 04:05:06.123456789"], format="ISO8601"
            ),
            "tz": pd.to_datetime(["2026-01-01"] * 3).tz_localize("Europe/Paris"),
            "td": pd.to_timedelta([1, 2, 3], unit="s"),
            "nested": [{"k": "v"}, [1, 2], None],
            "B": pd.array([True, None, False], dtype="boolean"),
            "u8": [1, 2, 3],
        }
    ).astype({"u8": "uint8"})
    data, _ = rules(patterns=["email"], hash=["absent"]).table(frame)
    assert data == tabular.encode_frames([frame])[0]
