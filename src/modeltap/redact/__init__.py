"""Sensitive data: fields dropped, hashed or masked, and free text scrubbed, before a
record is accepted (SPEC R13.1). See docs/privacy.md.

    from modeltap import redact

    rules = redact.parse_redact({"hash_key_env": "MODELTAP_HASH_KEY",
                                 "collections": {"model_inputs": {"hash": ["email"]}}},
                                declared=["model_inputs"])
    redactors = redact.compile_rules(rules)       # reads the key from the environment
    redactors["model_inputs"].value([{"email": "a@b.example"}])

The deployment file's `data_collector.modeltap.redact` block is parsed by config, and
each runtime compiles it once (`Runtime.redactors`).
"""

from modeltap.redact._apply import (
    MIN_KEY_LENGTH,
    Redactor,
    compile_rules,
    hash_value,
    load_key,
    value_text,
)
from modeltap.redact._logging import QueryStringFilter, access_log_config
from modeltap.redact._settings import DETECTORS, CollectionRules, RedactSettings, parse_redact

__all__ = [
    "DETECTORS",
    "MIN_KEY_LENGTH",
    "CollectionRules",
    "QueryStringFilter",
    "RedactSettings",
    "Redactor",
    "access_log_config",
    "compile_rules",
    "hash_value",
    "load_key",
    "parse_redact",
    "value_text",
]
