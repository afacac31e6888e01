"""The limited network's MTU note: a network made by an earlier version keeps its smaller MTU, and the log says so."""

from __future__ import annotations

import logging

import pytest

from server.hands.docker.networks import LIMITED_MTU, _note_small_mtu


def test_a_limited_network_with_a_smaller_mtu_is_named_in_the_log(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="server.hands.docker.networks"):
        _note_small_mtu({"Name": "ms-old-limited", "Options": {}}, internal=True)
        _note_small_mtu({"Name": "ms-new-limited", "Options": {"com.docker.network.driver.mtu": str(LIMITED_MTU)}},
                        internal=True)  # fmt: skip
        _note_small_mtu({"Name": "ms-x-open", "Options": {}}, internal=False)
    notes = [record.getMessage() for record in caplog.records]
    assert len(notes) == 1, notes
    assert "ms-old-limited" in notes[0]
    assert "docker network rm" in notes[0]
