"""The command line, run as a real child process: doctor, bad configuration, python -m server."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from model_server import ModelServer
from processes import python_path_env
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


def test_doctor_never_prints_the_model_key(subprocess_env: dict[str, str], model: ModelServer) -> None:
    key = "sk-ant-test-SECRET-0123456789"
    with_userinfo = model.base_url.replace("http://", "http://user:pw@")
    env = {**subprocess_env, "ANTHROPIC_API_KEY": key, "ANTHROPIC_BASE_URL": with_userinfo}
    result = run(["doctor"], env)
    [line] = [line for line in result.stdout.splitlines() if "model credentials" in line]
    assert line.startswith("[ok  ] model credentials")
    assert "reachable, 1 model(s) listed" in line
    assert model.base_url in line
    assert key not in result.stdout + result.stderr
    assert "pw" not in line
    assert [r.path for r in model.requests] == ["/v1/models"]
    assert model.requests[0].has_credentials


def test_doctor_checks_each_provider_and_says_what_to_fix(
    subprocess_env: dict[str, str], model: ModelServer, tmp_path: Path
) -> None:
    providers = tmp_path / "providers.toml"
    providers.write_text(
        '[endpoints.gone]\nbase_url = "http://127.0.0.1:9/v1"\n\n'
        '[endpoints.keyed]\nbase_url = "http://127.0.0.1:9/v1"\napi_key_env = "KEYED_API_KEY"\n'
    )
    env = {
        **subprocess_env,
        "ANTHROPIC_API_KEY": "sk-ant-test",
        "ANTHROPIC_BASE_URL": model.base_url,
        "OPENAI_API_KEY": "sk-openai-SECRET-42",
        "OPENAI_BASE_URL": "http://127.0.0.1:9/v1",
        "MANAGED_SESSIONS_PROVIDERS": str(providers),
        "MANAGED_SESSIONS_MODEL": "keyed/some-model",
    }
    result = run(["doctor"], env)
    lines = result.stdout.splitlines()
    by_name = {
        name: next((line for line in lines if line.startswith("[") and name in line), "")
        for name in ("model credentials", "openai", "gone", "keyed")
    }
    assert by_name["model credentials"].startswith("[ok  ]")
    assert by_name["openai"].startswith("[warn] model provider openai")  # not the default model's provider
    assert by_name["gone"].startswith("[warn] model provider gone")
    assert "failed: Connection error" in by_name["gone"]
    assert "check that it is running" in by_name["gone"]
    assert by_name["keyed"].startswith("[FAIL] model provider keyed")  # the default model's: required
    assert "no KEYED_API_KEY" in by_name["keyed"]
    assert any("fix: export KEYED_API_KEY" in line for line in lines)
    assert result.returncode == 1
    assert "sk-openai-SECRET-42" not in result.stdout + result.stderr


def test_doctor_names_each_mistake_in_the_providers_file(subprocess_env: dict[str, str], tmp_path: Path) -> None:
    providers = tmp_path / "providers.toml"
    providers.write_text('[endpoints.openai]\nbase_url = "http://x/v1"\n')
    result = run(["doctor"], {**subprocess_env, "MANAGED_SESSIONS_PROVIDERS": str(providers)})
    assert result.returncode == 1
    [line] = [line for line in result.stdout.splitlines() if line.startswith("[FAIL] providers file")]
    assert "'openai' is built in" in line


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
    assert "docker pull missing-img:0" in result.stdout


@pytest.mark.docker
def test_doctor_warns_that_a_missing_sandbox_image_is_built_by_the_first_session(
    subprocess_env: dict[str, str],
) -> None:
    import docker
    import docker.errors
    from conftest import missing_part

    try:
        docker.from_env().ping()
    except docker.errors.DockerException as exc:
        missing_part("docker", str(exc))
    env = {**subprocess_env, "ANTHROPIC_API_KEY": "k", "MANAGED_SESSIONS_IMAGE": "managed-sessions-sandbox:never-built"}
    result = run(["doctor"], env)
    assert "[warn] sandbox image" in result.stdout
    assert "the first session that needs a sandbox builds it" in result.stdout
    not_ready = [line for line in result.stdout.splitlines() if line.startswith("not ready:")]
    assert all("sandbox image" not in line for line in not_ready)  # a warning, not a reason to stop


def test_serve_refuses_an_unusable_configuration_with_the_variable_named(subprocess_env: dict[str, str]) -> None:
    result = run(["serve"], {**subprocess_env, "MANAGED_SESSIONS_IMAGE": "Not An Image"})
    assert result.returncode == 1
    assert "MANAGED_SESSIONS_IMAGE='Not An Image' is not valid" in result.stderr
    assert result.stdout == ""


def test_serve_refuses_a_broken_providers_file_and_says_what_to_fix(
    subprocess_env: dict[str, str], tmp_path: Path
) -> None:
    providers = tmp_path / "providers.toml"
    providers.write_text('[endpoints.local]\nbase_url = "localhost:11434"\n')
    result = run(["serve"], {**subprocess_env, "MANAGED_SESSIONS_PROVIDERS": str(providers)})
    assert result.returncode == 1
    assert f"{providers}: [endpoints.local]: base_url must be an http(s) URL" in result.stderr
    assert result.stdout == ""


HEAVY_MODULES = ("mcp", "anthropic", "openai", "docker", "requests", "uvicorn", "starlette")
LOADED = """
import json, sys
from server.fronts.cli.main import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})))
"""


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["vault", "--help"],
        ["vault", "list"],
        ["skill", "list"],
        ["serve", "--help"],
        ["sessions", "--help"],
        ["sessions", "watch", "--help"],
        ["sessions", "list"],
    ],
)
def test_commands_that_serve_nothing_import_neither_mcp_nor_a_model_sdk(
    subprocess_env: dict[str, str], argv: list[str]
) -> None:
    """Help, the vault and skill commands and the terminal view of sessions answer at once: the MCP SDK and the
    model SDKs are the slow imports."""
    env = python_path_env({**subprocess_env, "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"})
    result = subprocess.run(
        [sys.executable, "-c", LOADED, *argv], env=env, capture_output=True, text=True, timeout=60, check=True
    )
    loaded = set(json.loads(result.stdout.splitlines()[-1]))
    assert {"server", "vault"} <= loaded  # the command ran
    assert loaded.isdisjoint(HEAVY_MODULES), sorted(loaded.intersection(HEAVY_MODULES))
    if argv[-1] == "--help":
        assert "keyring" not in loaded  # only a command that reads or writes a secret needs it
