"""The long-lived heap is frozen out of full collections: once per moment, and only what exists at that moment."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import weakref
from pathlib import Path

import pytest

from server.core.heap import settle_heap

REPO_ROOT = Path(__file__).resolve().parents[2]


class Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the cyclic collector frees it


def test_a_moment_freezes_the_heap_once_and_what_comes_after_stays_collectable() -> None:
    gc.unfreeze()
    try:
        assert settle_heap("test: a moment")
        frozen = gc.get_freeze_count()
        assert frozen > 0
        node = Node()
        gone = weakref.ref(node)
        assert not settle_heap("test: a moment")  # the same moment again: nothing more is frozen
        assert gc.get_freeze_count() == frozen
        del node
        gc.collect()
        assert gone() is None
    finally:
        gc.unfreeze()


PROVIDERS = {
    "anthropic": "from server.brain.providers.anthropic import AnthropicModel as M; model = M(api_key_present=True)",
    "openai": "from server.core.models import Endpoint; from server.brain.providers.openai_compat import "
    "OpenAICompatModel as M; model = M(Endpoint('openai', key_present=True))",
}


CHECK = """
import gc, sys
{make}
before = (gc.get_freeze_count(), sum(m.startswith("{provider}") for m in sys.modules))
model._sdk()
after = (gc.get_freeze_count(), sum(m.startswith("{provider}") for m in sys.modules))
print(*before, *after)
"""


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
def test_a_providers_first_client_settles_the_heap_its_sdk_made(provider: str) -> None:
    # A child process: this one's heap may be settled already by other tests.
    code = CHECK.format(make=PROVIDERS[provider], provider=provider)
    env = {**os.environ, "ANTHROPIC_API_KEY": "test-key", "OPENAI_API_KEY": "test-key"}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=True, timeout=60
    )
    frozen_before, sdk_before, frozen_after, sdk_after = (int(part) for part in done.stdout.split())
    assert (frozen_before, sdk_before) == (0, 0)
    assert sdk_after > 100  # its first client imported the SDK...
    assert frozen_after > 0  # ...and froze the heap it made
