"""`MANAGED_SESSIONS_IDLE_STOP_S` and `MANAGED_SESSIONS_WARM_POOL`: defaults, and the start-up problem of bad values."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.core.config import DEFAULT_IDLE_STOP_S, ServerConfig


def config_with(tmp_path: Path, value: str | None) -> ServerConfig:
    env = {"MANAGED_SESSIONS_DATA_DIR": str(tmp_path)}
    if value is not None:
        env["MANAGED_SESSIONS_IDLE_STOP_S"] = value
    return ServerConfig.from_env(env)


@pytest.mark.parametrize(("value", "seconds"), [(None, DEFAULT_IDLE_STOP_S), ("", DEFAULT_IDLE_STOP_S), ("30", 30.0)])
def test_idle_stop_defaults_to_fifteen_minutes_and_takes_seconds(
    tmp_path: Path, value: str | None, seconds: float
) -> None:
    config = config_with(tmp_path, value)
    assert config.idle_stop_s == seconds
    assert config.problems() == []
    assert DEFAULT_IDLE_STOP_S == 900


@pytest.mark.parametrize("value", ["soon", "0", "-5", "inf", "nan"])
def test_an_idle_stop_that_is_not_a_positive_number_is_a_start_up_problem(tmp_path: Path, value: str) -> None:
    [problem] = config_with(tmp_path, value).problems()
    assert problem.startswith("MANAGED_SESSIONS_IDLE_STOP_S must be a number of seconds greater than 0")


def warm_pool_with(tmp_path: Path, value: str | None) -> ServerConfig:
    env = {"MANAGED_SESSIONS_DATA_DIR": str(tmp_path)}
    if value is not None:
        env["MANAGED_SESSIONS_WARM_POOL"] = value
    return ServerConfig.from_env(env)


@pytest.mark.parametrize(("value", "size"), [(None, 1), ("", 1), ("0", 0), ("8", 8)])
def test_the_warm_pool_defaults_to_one_container_and_zero_disables_it(
    tmp_path: Path, value: str | None, size: int
) -> None:
    config = warm_pool_with(tmp_path, value)
    assert config.warm_pool == size
    assert config.problems() == []


@pytest.mark.parametrize("value", ["some", "-1", "9", "1.5"])
def test_a_warm_pool_that_is_not_a_count_from_0_to_8_is_a_start_up_problem(tmp_path: Path, value: str) -> None:
    [problem] = warm_pool_with(tmp_path, value).problems()
    assert problem.startswith("MANAGED_SESSIONS_WARM_POOL must be a whole number from 0 (no pool) to 8")
