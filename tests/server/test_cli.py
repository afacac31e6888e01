"""The command line, run as a real child process: doctor, bad configuration, python -m server."""

from __future__ import annotations

import pytest
from processes import run_command as run


def test_python_dash_m_server_is_the_managed_sessions_command(subprocess_env: dict[str, str]) -> None:
    result = run(["--version"], subprocess_env)
    assert result.returncode == 0
    assert result.stdout.startswith("managed-sessions ")


def test_doctor_says_what_is_missing_and_how_to_fix_it(subprocess_env: dict[str, str]) -> None:
    env = {
        **subprocess_env,
        "DOCKER_HOST": "unix:///nonexistent/docker.sock",
        "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring",
    }
    result = run(["doctor"], env)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert any(line.startswith("[FAIL] docker engine") for line in lines)
    assert any("fix: start Docker" in line for line in lines)
    assert any(line.startswith("[FAIL] model credentials") for line in lines)
    assert any("fix: export ANTHROPIC_API_KEY" in line for line in lines)
    assert any(line.startswith("[warn] keyring") for line in lines)
    assert any(line.startswith("[ok  ] data dir") for line in lines)
    assert "not ready: docker engine, sandbox image, model credentials" in result.stdout


def test_doctor_never_prints_the_model_key(subprocess_env: dict[str, str]) -> None:
    key = "sk-ant-test-SECRET-0123456789"
    env = {**subprocess_env, "ANTHROPIC_API_KEY": key, "ANTHROPIC_BASE_URL": "https://user:pw@models.internal:8443/x"}
    result = run(["doctor"], env)
    assert "[ok  ] model credentials" in result.stdout
    assert "https://models.internal:8443" in result.stdout
    assert key not in result.stdout + result.stderr
    assert "pw" not in result.stdout.split("model credentials")[1].splitlines()[0]


@pytest.mark.docker
def test_doctor_reports_the_engine_version_when_docker_answers(subprocess_env: dict[str, str]) -> None:
    import docker
    import docker.errors
    from conftest import missing_part

    try:
        docker.from_env().ping()
    except docker.errors.DockerException as exc:
        missing_part("docker", str(exc))
    result = run(["doctor"], {**subprocess_env, "ANTHROPIC_API_KEY": "k", "MANAGED_SESSIONS_IMAGE": "missing-img:0"})
    assert "[ok  ] docker engine" in result.stdout
    assert "API 1." in result.stdout
    assert "[FAIL] sandbox image" in result.stdout
    assert "managed-sessions image build" in result.stdout


def test_serve_refuses_an_unusable_configuration_with_the_variable_named(subprocess_env: dict[str, str]) -> None:
    result = run(["serve"], {**subprocess_env, "MANAGED_SESSIONS_IMAGE": "Not An Image"})
    assert result.returncode == 1
    assert "MANAGED_SESSIONS_IMAGE='Not An Image' is not valid" in result.stderr
    assert result.stdout == ""
