"""Scrubbing secret values out of text before it is stored, logged or returned.

A secret can leak in more shapes than its own: an echoed `Authorization: Basic ...` header
carries it base64-encoded, a logged URL carries it percent-encoded. So each registered value
is matched in its raw, base64 (standard and URL-safe, padded or not) and percent-encoded
forms, longest first, so that a longer form is never half-replaced by a shorter one.

Values shorter than `MIN_SECRET_LENGTH` are refused: redacting "abc" everywhere would mangle
ordinary text and still say too much about the secret.
"""

from __future__ import annotations

import base64
import logging
import re
import threading
from typing import TypeAlias
from urllib.parse import quote, quote_plus

from vault.errors import VaultError
from vault.secret import Secret

__all__ = ["MIN_SECRET_LENGTH", "REDACTED", "JsonLike", "RedactingFilter", "Redactor"]

REDACTED = "[REDACTED]"
MIN_SECRET_LENGTH = 8

JsonLike: TypeAlias = "bool | int | float | str | list[JsonLike] | dict[str, JsonLike] | None"


class Redactor:
    """Replaces every registered secret value, in each of its encoded forms, with `[REDACTED]`. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: set[str] = set()
        self._forms: set[str] = set()
        self._pattern: re.Pattern[str] | None = None

    def add(self, secret: Secret) -> None:
        """Registers a secret's value (idempotent).

        Raises:
            VaultError: the value is shorter than `MIN_SECRET_LENGTH` characters.
        """
        value = secret.reveal()
        if len(value) < MIN_SECRET_LENGTH:
            raise VaultError(
                f"secret {secret.name!r} is shorter than {MIN_SECRET_LENGTH} characters; "
                "too short to be redacted reliably (use a real token)"
            )
        with self._lock:
            if value in self._values:
                return
            self._values.add(value)
            self._forms.update(_forms_of(value))
            ordered = sorted(self._forms, key=lambda form: (-len(form), form))
            self._pattern = re.compile("|".join(re.escape(form) for form in ordered))

    def redact(self, text: str) -> str:
        pattern = self._pattern  # replaced whole under the lock, read without it
        if pattern is None:
            return text
        return pattern.sub(REDACTED, text)

    def redact_json(self, value: JsonLike) -> JsonLike:
        """The same structure with every string, dict keys included, redacted."""
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, list):
            return [self.redact_json(item) for item in value]
        if isinstance(value, dict):
            return {self.redact(key): self.redact_json(item) for key, item in value.items()}
        return value

    def __len__(self) -> int:
        """How many distinct secret values are registered."""
        return len(self._values)

    def __bool__(self) -> bool:
        return bool(self._values)

    def __repr__(self) -> str:
        return f"Redactor({len(self)} secret(s))"


class RedactingFilter(logging.Filter):
    """A logging filter that redacts each record's formatted message (and its traceback text).

    Attach it to handlers (not loggers) so records propagated from any logger pass through it.
    """

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self._redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self._redactor.redact(record.getMessage())
        record.args = ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self._redactor.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self._redactor.redact(record.stack_info)
        return True


def _forms_of(value: str) -> set[str]:
    raw = value.encode()
    encoded = {base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode()}
    forms = {value, quote(value, safe=""), quote_plus(value, safe="")}
    forms |= encoded | {form.rstrip("=") for form in encoded}
    return {form for form in forms if form}
