"""The vault's rules for what a caller hands it: display names, metadata (the hosted API's limits), secrets
long enough to redact. Each check raises a `VaultError` that says what is wrong without echoing a secret."""

from __future__ import annotations

from collections.abc import Mapping

from vault.errors import VaultError
from vault.redactor import MIN_SECRET_LENGTH

__all__ = [
    "MAX_METADATA_KEYS",
    "MAX_METADATA_KEY_CHARS",
    "MAX_METADATA_VALUE_CHARS",
    "check_display_name",
    "check_length",
    "check_metadata",
    "is_control",
    "patch_metadata",
]

MAX_METADATA_KEYS, MAX_METADATA_KEY_CHARS, MAX_METADATA_VALUE_CHARS = 16, 64, 512


def check_length(value: str) -> None:
    if len(value) < MIN_SECRET_LENGTH:
        raise VaultError(
            f"the secret is shorter than {MIN_SECRET_LENGTH} characters; a real token is longer, "
            "and a short value could not be redacted reliably"
        )


def is_control(ch: str) -> bool:
    """C0 and C1 control characters, DEL, and lone surrogates: nothing a terminal or a log should be handed."""
    code = ord(ch)
    return code < 32 or 0x7F <= code <= 0x9F or 0xD800 <= code <= 0xDFFF


def check_display_name(name: str, *, what: str) -> str:
    if not 1 <= len(name) <= 255 or not name.strip() or any(is_control(ch) for ch in name):
        raise VaultError(f"{what} must be 1-255 printable characters, got {name!r}")
    return name


def check_metadata(metadata: Mapping[str, str]) -> dict[str, str]:
    if len(metadata) > MAX_METADATA_KEYS:
        raise VaultError(f"metadata holds at most {MAX_METADATA_KEYS} keys, got {len(metadata)}")
    for key, value in metadata.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise VaultError("metadata keys and values must be strings")
        if not 1 <= len(key) <= MAX_METADATA_KEY_CHARS or len(value) > MAX_METADATA_VALUE_CHARS:
            raise VaultError(
                f"metadata key {key!r}: keys are 1-{MAX_METADATA_KEY_CHARS} characters, "
                f"values at most {MAX_METADATA_VALUE_CHARS}"
            )
        if any(is_control(ch) and ch not in "\t\n" for ch in key + value):
            raise VaultError(f"metadata key {key!r}: keys and values must not hold control characters")
    return dict(metadata)


def patch_metadata(current: Mapping[str, str], patch: Mapping[str, str | None]) -> dict[str, str]:
    """A metadata patch applied: a string sets a key, None removes it, an omitted key is kept."""
    merged = dict(current)
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged
