"""What the privacy tests collect and look for: a person's data in every kind of field,
the rules that cover it, and a grep of everything a test left on disk."""

from __future__ import annotations

import urllib.parse
from pathlib import Path
from typing import Any

import orjson
import pandas as pd

KEY_ENV = "MODELTAP_TEST_HASH_KEY"
KEY = "0f3c9a7e5b1d24680f3c9a7e5b1d2468"

# Raw values that must never be stored, logged or shown once collected.
SSN = "078-05-1120"
EMAIL = "jane.doe@example.com"
CUSTOMER = "CUST-829301"
CARD = "4111111111111111"
NOTE_EMAIL = "john.roe@example.org"
NOTE_CARD = "5500 0000 0000 0004"
NOTE_PHONE = "(555) 867-5309"
ADDRESS = "742 Evergreen Terrace"
SECRET_VALUES = [SSN, EMAIL, CUSTOMER, CARD, NOTE_EMAIL, NOTE_CARD, NOTE_PHONE, ADDRESS]

RULES = {
    "drop": ["ssn"],
    "hash": ["email", "customer_id"],
    "mask": {"card_number": "last4"},
    "patterns": ["email", "credit_card", "phone"],
    "paths": ["$..profile.address", "$.customer.address"],
}

# The same rules as the deployment file's block (YAML, indented for data_collector.modeltap).
RULES_YAML = """\
    redact:
      hash_key_env: MODELTAP_TEST_HASH_KEY
      collections:
{collections}"""
ONE_COLLECTION_YAML = """\
        {name}:
          drop: [ssn]
          hash: [email, customer_id]
          mask: {{card_number: last4}}
          patterns: [email, credit_card, phone]
          paths: ["$..profile.address", "$.customer.address"]
          drop_bodies: ["image/*"]
"""


def rules_yaml(*names: str) -> str:
    return RULES_YAML.format(collections="".join(ONE_COLLECTION_YAML.format(name=n) for n in names))


def notes(i: int = 0) -> str:
    return f"case {i}: write to {NOTE_EMAIL}, card {NOTE_CARD}, call {NOTE_PHONE}"


def record(i: int = 0) -> dict[str, Any]:
    """One row with every kind of field."""
    return {
        "customer_id": CUSTOMER,
        "email": EMAIL,
        "ssn": SSN,
        "card_number": CARD,
        "notes": notes(i),
        "profile": {"address": ADDRESS, "tier": "gold"},
        "age": 41 + i,
        "score": 0.25,
    }


def frame(rows: int = 2) -> pd.DataFrame:
    df = pd.DataFrame([record(i) for i in range(rows)])
    df["when"] = pd.Timestamp("2026-01-02T03:04:05")
    return df


def _forms(value: str) -> set[bytes]:
    """The ways a value can be written down: raw, JSON-escaped, URL-encoded."""
    return {
        value.encode(),
        orjson.dumps(value)[1:-1],
        urllib.parse.quote(value).encode(),
        urllib.parse.quote_plus(value).encode(),
    }


def leaks(root: Path, values: list[str] = SECRET_VALUES) -> list[tuple[str, str]]:
    """(file, value) for every file under root that holds one of the raw values."""
    found = []
    forms = {value: _forms(value) for value in values}
    for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink()):
        data = path.read_bytes()
        for value, shapes in forms.items():
            if any(shape in data for shape in shapes):
                found.append((str(path.relative_to(root)), value))
    return found


def leaks_in_text(text: str, values: list[str] = SECRET_VALUES) -> list[str]:
    return [v for v in values if any(shape.decode() in text for shape in _forms(v))]
