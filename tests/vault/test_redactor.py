"""The redactor: every registered secret, in each shape it can leak in, becomes [REDACTED]."""

from __future__ import annotations

import base64
import io
import logging
import threading
from urllib.parse import quote

import pytest

from vault import REDACTED, RedactingFilter, Redactor, Secret, VaultError

TOKEN = "ghp_Ab+c/d=e f%g&h~"  # characters that base64 and percent-encoding both change; 19 bytes: padded base64


@pytest.fixture
def redactor() -> Redactor:
    r = Redactor()
    r.add(Secret("gh", TOKEN))
    return r


def test_an_empty_redactor_changes_nothing() -> None:
    r = Redactor()
    assert not r
    assert len(r) == 0
    assert r.redact("nothing ghp_x here") == "nothing ghp_x here"


def test_raw_base64_and_percent_encoded_forms_are_all_redacted(redactor: Redactor) -> None:
    raw = TOKEN.encode()
    forms = [
        TOKEN,
        base64.b64encode(raw).decode(),
        base64.urlsafe_b64encode(raw).decode(),
        base64.b64encode(raw).decode().rstrip("="),
        quote(TOKEN, safe=""),
        quote(TOKEN, safe="").replace("%20", "+"),
    ]
    for form in forms:
        redacted = redactor.redact(f"before {form} after")
        assert redacted == f"before {REDACTED} after", form
    assert len(redactor) == 1
    assert redactor


def test_the_longest_form_wins_so_nothing_of_it_is_left(redactor: Redactor) -> None:
    padded = base64.b64encode(TOKEN.encode()).decode()
    assert padded.endswith("=")
    assert redactor.redact(padded) == REDACTED


def test_several_secrets_and_repeats_are_all_redacted() -> None:
    r = Redactor()
    r.add(Secret("a", "first-secret-value"))
    r.add(Secret("b", "first-secret-value-longer"))
    r.add(Secret("a-again", "first-secret-value"))
    assert len(r) == 2
    assert r.redact("x first-secret-value-longer y first-secret-value z") == f"x {REDACTED} y {REDACTED} z"


def test_json_is_walked_and_every_string_redacted_keys_included(redactor: Redactor) -> None:
    value = {
        "headers": {"Authorization": f"Bearer {TOKEN}", TOKEN: "as a key"},
        "list": [1, 2.5, None, True, [f"deep {TOKEN}"]],
        "plain": "untouched",
    }
    assert redactor.redact_json(value) == {
        "headers": {"Authorization": f"Bearer {REDACTED}", REDACTED: "as a key"},
        "list": [1, 2.5, None, True, [f"deep {REDACTED}"]],
        "plain": "untouched",
    }


def test_secrets_shorter_than_eight_characters_are_refused() -> None:
    with pytest.raises(VaultError, match="shorter than 8"):
        Redactor().add(Secret("short", "abc1234"))


def test_the_redactor_does_not_print_its_secrets(redactor: Redactor) -> None:
    assert TOKEN not in repr(redactor)


def test_the_logging_filter_redacts_formatted_messages_and_tracebacks(redactor: Redactor) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter(redactor))
    logger = logging.getLogger("tests.vault.redactor")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("token is %s (%d)", TOKEN, 7)
        try:
            raise RuntimeError(f"failed with {TOKEN}")
        except RuntimeError:
            logger.exception("call failed")
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    out = stream.getvalue()
    assert TOKEN not in out
    assert f"token is {REDACTED} (7)" in out
    assert f"RuntimeError: failed with {REDACTED}" in out


def test_adding_from_many_threads_while_redacting_is_safe() -> None:
    r = Redactor()
    values = [f"secret-number-{i:04d}" for i in range(200)]

    def add(chunk: list[str]) -> None:
        for value in chunk:
            r.add(Secret("s", value))

    threads = [threading.Thread(target=add, args=(values[i::4],)) for i in range(4)]
    for thread in threads:
        thread.start()
    for _ in range(50):
        r.redact(" ".join(values))
    for thread in threads:
        thread.join()
    assert len(r) == 200
    assert r.redact(" ".join(values)) == " ".join([REDACTED] * 200)
