"""Fixtures for the server's in-process tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from model_server import ModelServer


@pytest.fixture
def model(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModelServer]:
    """The scripted Messages API, reached by the real `anthropic` client through ANTHROPIC_BASE_URL.

    Every request it saw must have been one the real API accepts."""
    with ModelServer() as server:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.base_url)
        monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")
        yield server
        assert server.violations == []
