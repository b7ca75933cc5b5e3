"""Detectors that scrub free text (`patterns: [email, credit_card, phone]`).

One regular expression per chosen set of detectors, so a value is scanned once. Each
match becomes `[redacted:<detector>]`. What they find:

- email: name@domain.tld
- credit_card: 13-19 digits, optionally grouped by spaces or dashes, that pass the
  Luhn check (so order numbers and most ids are left alone)
- phone: international numbers written with a leading +, and North American ones
  written (555) 123-4567, 555-123-4567, 555.123.4567 or 555 123 4567. Bare digit runs
  are not phones: an id or an amount would be scrubbed too.
"""

from __future__ import annotations

import re
from collections.abc import Callable

__all__ = ["luhn", "scrubber"]

_PATTERNS = {
    "email": r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}",
    "credit_card": r"(?<!\w)(?:\d[ \-]?){12,18}\d(?!\w)",
    "phone": (
        r"(?<![\w+])(?:"
        r"\+\d{1,3}[ .\-]?(?:\(\d{1,4}\)[ .\-]?)?\d{1,4}(?:[ .\-]?\d{2,4}){2,4}"
        r"|\(\d{3}\)[ .\-]?\d{3}[ .\-]\d{4}"
        r"|\d{3}[ .\-]\d{3}[ .\-]\d{4}"
        r")(?!\w)"
    ),
}


def luhn(digits: str) -> bool:
    """The payment card check digit test."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        n = ord(ch) - 48
        if i % 2:
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    return total % 10 == 0


def _card(text: str) -> bool:
    digits = "".join(ch for ch in text if ch.isdigit())
    return 13 <= len(digits) <= 19 and luhn(digits)


def scrubber(detectors: tuple[str, ...]) -> Callable[[str], str]:
    """A function that returns its text with what the detectors find replaced."""
    # Order matters where two could match at one place: a card before a phone.
    chosen = [name for name in ("email", "credit_card", "phone") if name in detectors]
    regex = re.compile("|".join(f"(?P<{name}>{_PATTERNS[name]})" for name in chosen))

    def replace(match: re.Match[str]) -> str:
        name = match.lastgroup or ""
        if name == "credit_card" and not _card(match.group()):
            return match.group()
        return f"[redacted:{name}]"

    sub = regex.sub
    # Every detector needs an "@" or a digit: most text has neither and is passed at once.
    needed = "@" if chosen == ["email"] else "0-9" if "email" not in chosen else "@0-9"
    maybe = re.compile(f"[{needed}]").search

    def scrub(text: str) -> str:
        return sub(replace, text) if maybe(text) else text

    return scrub
