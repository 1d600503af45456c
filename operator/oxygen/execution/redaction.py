"""Secret values never reach a RunShard's status: a provider that echoes the request's headers back
(in a 200 body or a 400 error) must not put the tenant's credentials where the tenant can read them.

`Redactor` knows the secret values a worker holds (the header values from the pod's Secrets) and
replaces them by `[redacted]` in error text and, recursively, in JSON outputs (keys, strings and the
text of numbers). Values of at least `MIN_SUBSTRING` characters are found anywhere inside a string;
shorter ones only when they are the whole string, so a secret `"1"` does not blank every digit.
A header value such as `Bearer sk-…` is also looked for without its scheme, since that is how a
provider usually quotes a rejected credential.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, Final

REDACTED: Final = "[redacted]"
MIN_SUBSTRING: Final = 4
# The credential part of "<scheme> <credential>" is searched for on its own when at least this long
# (long enough that scheme words such as "Bearer" or "Basic" are never redacted by themselves).
MIN_CREDENTIAL_PART: Final = 8


def _needles(values: Iterable[str]) -> tuple[list[str], set[str]]:
    long: set[str] = set()
    short: set[str] = set()
    for raw in values:
        value = raw.strip()
        if not value:
            continue
        (long if len(value) >= MIN_SUBSTRING else short).add(value)
        parts = value.split()
        if len(parts) > 1:
            long.update(part for part in parts if len(part) >= MIN_CREDENTIAL_PART)
    # Longest first: a secret that contains another is replaced whole, not around the shorter one.
    return sorted(long, key=len, reverse=True), short


class Redactor:
    """Replaces known secret values in text and JSON; a Redactor with no secrets changes nothing."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._long, self._short = _needles(secrets)
        self._pattern = re.compile("|".join(re.escape(s) for s in self._long)) if self._long else None

    def __bool__(self) -> bool:
        return bool(self._long or self._short)

    def text(self, value: str) -> str:
        if value in self._short:
            return REDACTED
        if self._pattern is None:
            return value
        return self._pattern.sub(REDACTED, value)

    def json(self, value: Any) -> Any:
        """A copy of a JSON value with every secret replaced (strings, object keys, numbers)."""
        if not self:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.text(str(k)): self.json(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.json(v) for v in value]
        if isinstance(value, int | float) and not isinstance(value, bool):
            # A numeric secret (a PIN, an account number) echoed as a JSON number.
            return REDACTED if self.text(str(value)) != str(value) else value
        return value

    def clip(self, text: str, limit: int, *, keep: str = "head") -> str:
        """Redact, then cut to `limit` characters: a cut never leaves part of a secret behind."""
        text = self.text(text).strip()
        if len(text) <= limit:
            return text
        return text[: limit - 1] + "…" if keep == "head" else "…" + text[-(limit - 1) :]
