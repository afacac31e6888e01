"""`sessions watch` and `sessions list` as a person runs them: in a real terminal (tmux) against a real HTTP server
whose sessions run on real sandboxes with the scripted model, and against a data dir no HTTP server serves."""

from __future__ import annotations

import hashlib
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import anthropic
import docker
import pytest
from model_server import ModelServer, hang, reply, tool_use
from processes import http_server, python_path_env, run_command
from rest_driving import driven_server, make_environment, wait_idle

from server.core.config import ServerConfig

TOKEN = "test-token-terminal-" + "t" * 24
WAIT_S = 60.0
HOSTILE = "\x1b]0;pwned\x07\x1b[31mred"
"""A window-title change and a colour in the model's text: shown as text, never obeyed."""


def _message(text: str) -> anthropic.types.beta.sessions.BetaManagedAgentsUserMessageEventParams:
    return {"type": "user.message", "content": [{"type": "text", "text": text}]}


@contextmanager
def _tmux(tmp_path: Path) -> Iterator[Callable[..., str]]:
    """A private tmux server (its own socket), killed afterwards; yields a runner of tmux commands."""
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed")
    socket = tmp_path / "tmux.sock"

    def tmux(*args: str) -> str:
        done = subprocess.run(["tmux", "-S", str(socket), "-f", "/dev/null", *args], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        return done.stdout

    try:
        yield tmux
    finally:
        subprocess.run(["tmux", "-S", str(socket), "kill-server"], capture_output=True, check=False)


def _screen_until(tmux: Callable[..., str], wanted: str) -> str:
    """The pane's text once it shows `wanted` (polled: a terminal has no event to wait on)."""
    deadline = time.monotonic() + WAIT_S
    while True:
        screen = tmux("capture-pane", "-p", "-t", "watch")
        if wanted in screen:
            return screen
        if time.monotonic() > deadline:
            raise AssertionError(f"the pane never showed {wanted!r}; it shows:\n{screen}")
        time.sleep(0.05)


@pytest.mark.docker
def test_watch_in_a_terminal_shows_the_steps_live_and_exits_when_the_session_goes_idle(
    docker_client: docker.DockerClient, subprocess_env: dict[str, str], model: ModelServer, tmp_path: Path
) -> None:
    listing = hang(then=reply(tool_use("bash", {"command": "printf 'one\\ntwo\\n'"})))
    summing_up = hang("Both files are", then=reply(f"listed. {HOSTILE}"))
    model.enqueue(listing, summing_up)
    env = python_path_env(
        {
            **subprocess_env,
            "MANAGED_SESSIONS_TOKEN": TOKEN,
            "ANTHROPIC_BASE_URL": model.base_url,
            "ANTHROPIC_API_KEY": "test-key",
        }
    )
    with http_server(env, tmp_path / "server.log") as (port, _), _tmux(tmp_path) as tmux:
        client = anthropic.Anthropic(base_url=f"http://127.0.0.1:{port}", api_key=TOKEN, max_retries=0)
        agent = client.beta.agents.create(name="lister", model="claude-test")
        environment = client.beta.environments.create(name="terminal")
        session = client.beta.sessions.create(agent=agent.id, environment_id=environment.id, title="list the files")
        client.beta.sessions.events.send(session.id, events=[_message("what is here?")])
        listing.wait_started(timeout_s=WAIT_S)

        # No --url: the watch finds the server through the data dir.
        watch = [sys.executable, "-m", "server", "sessions", "watch", session.id]
        child_env = {**env, "TERM": "xterm-256color"}
        command = " ".join(["env", *(shlex.quote(f"{k}={v}") for k, v in child_env.items()), *map(shlex.quote, watch)])
        tmux("new-session", "-d", "-s", "watch", "-x", "150", "-y", "50", f'{command}; echo "[exit $?]"; sleep 300')
        _screen_until(tmux, "model answering")  # the spinner, while the first request is out
        listing.release()
        summing_up.wait_started(timeout_s=WAIT_S)
        _screen_until(tmux, "Both files are")  # the preview of the model's text, beside the spinner
        summing_up.release()
        screen = _screen_until(tmux, "[exit ")
        title = tmux("display-message", "-p", "-t", "watch", "#{pane_title}")
        listed = run_command(["sessions", "list"], env)

    assert not (Path(subprocess_env["MANAGED_SESSIONS_DATA_DIR"]) / "server.url").exists()  # gone with its server
    lines = [line.rstrip() for line in screen.splitlines() if line.strip()]
    assert lines[0].startswith(f"session {session.id}  list the files  (agent lister)")
    assert lines[1] == f"reading the server at http://127.0.0.1:{port}"
    steps = lines[2:]
    assert steps[:2] == ["▶ running", "> what is here?"] or steps[:2] == ["> what is here?", "▶ running"]
    assert "→ bash  printf 'one\\ntwo\\n'" in steps
    result = steps.index("← bash done")
    assert steps[result + 1 : result + 3] == ["  one", "  two"]
    assert steps[-4:] == [
        "● Both files are",
        "● listed. \\x1b]0;pwned\\x07\\x1b[31mred",
        "■ idle (end_turn)",
        "[exit 0]",
    ]
    assert "pwned" not in title  # the model's escape sequence never reached the terminal
    assert listed.stdout.splitlines()[1].startswith(f"{session.id}  idle ")  # listed by the server too
    assert model.violations == []


def _digest(path: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(path.iterdir()) if p.is_file()}


def _watch(session_id: str, env: dict[str, str], *flags: str, stderr: int) -> subprocess.Popen[str]:
    """`sessions watch` of the session as a child, its output read as text from a pipe."""
    return subprocess.Popen(
        [sys.executable, "-m", "server", "sessions", "watch", session_id, *flags],
        env=python_path_env(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
    )


def _interrupted_follow(session_id: str, env: dict[str, str]) -> int:
    """`watch --follow` of an idle session goes on past the idle; Ctrl-C ends it. Returns its exit status."""
    follow = _watch(session_id, env, "--follow", stderr=subprocess.DEVNULL)
    assert follow.stdout is not None
    while not follow.stdout.readline().startswith("■ idle"):
        assert follow.poll() is None, "the watch ended before showing the idle"
    assert follow.poll() is None  # still watching
    follow.send_signal(signal.SIGINT)
    return follow.wait(timeout=WAIT_S)


def test_watch_and_list_read_the_data_dir_read_only_when_no_http_server_runs(
    config: ServerConfig, monkeypatch: pytest.MonkeyPatch, subprocess_env: dict[str, str]
) -> None:
    with driven_server(config, monkeypatch) as driven:
        driven.sandboxes.outputs["ls"] = "\x1b[2J\x1b[31mREADME.md\n" + "a.txt\n" * 5_000
        driven.model.enqueue(reply(tool_use("bash", {"command": "ls"})), reply("Found them."))
        client = driven.server.client()
        agent = client.beta.agents.create(name="lister", model="claude-test")
        session = client.beta.sessions.create(
            agent=agent.id, environment_id=make_environment(config), title="list the files"
        )
        client.beta.sessions.events.send(session.id, events=[_message("what is here?")])
        wait_idle(client, session.id, 0)
    before = _digest(config.data_dir)

    watched = run_command(["sessions", "watch", session.id], subprocess_env)
    listed = run_command(["sessions", "list"], {**subprocess_env, "NO_COLOR": "1"})
    interrupted = _interrupted_follow(session.id, subprocess_env)

    assert watched.returncode == 0, watched.stderr
    lines = watched.stdout.splitlines()
    assert lines[1] == f"reading the data dir {config.data_dir} (read-only; no HTTP server runs on it)"
    assert "→ bash  ls" in lines
    result = lines.index("← bash done")
    assert lines[result + 1 : result + 4] == ["  \\x1b[2J\\x1b[31mREADME.md", "  a.txt", "  a.txt"]
    assert re.fullmatch(r"  … [0-9]+\+ more lines \(30 k chars\)", lines[result + 4]), lines[result + 4]
    assert lines[-2:] == ["● Found them.", "■ idle (end_turn)"]
    assert "\x1b" not in watched.stdout  # not a terminal: no colours, no spinner, nothing raw
    assert listed.returncode == 0, listed.stderr
    header, row = listed.stdout.splitlines()
    assert header.split() == ["ID", "STATUS", "TITLE", "AGENT", "AGE", "USAGE"]
    assert row.startswith(f"{session.id}  idle ")
    assert "list the files" in row
    assert "lister" in row
    assert interrupted == 130
    # Nothing was written: the store is byte for byte the same, and the lock was never taken.
    assert _digest(config.data_dir) == before
    assert not (config.data_dir / "server.lock").exists()


def test_watch_of_an_unknown_session_says_so(subprocess_env: dict[str, str], config: ServerConfig) -> None:
    from server.store.sqlite.store import Store

    Store.open(config.database_path).close()
    result = run_command(["sessions", "watch", "sesn_nosuchsession"], subprocess_env)
    assert result.returncode == 1
    assert "no session 'sesn_nosuchsession'" in result.stderr


def test_watch_follows_a_running_session_by_polling_the_store_beside_a_server_without_http(
    config: ServerConfig, monkeypatch: pytest.MonkeyPatch, subprocess_env: dict[str, str]
) -> None:
    """The server here records no URL (as a stdio server would not): the watch reads its store as it writes."""
    with driven_server(config, monkeypatch) as driven:
        held = hang(then=reply("Done at last."))
        driven.model.enqueue(held)
        client = driven.server.client()
        agent = client.beta.agents.create(name="slow", model="claude-test")
        session = client.beta.sessions.create(agent=agent.id, environment_id=make_environment(config))
        client.beta.sessions.events.send(session.id, events=[_message("take your time")])
        held.wait_started(timeout_s=WAIT_S)
        watch = _watch(session.id, subprocess_env, stderr=subprocess.PIPE)
        assert watch.stdout is not None
        seen = [watch.stdout.readline() for _ in range(4)]  # the header, then the log so far
        held.release()
        out, err = watch.communicate(timeout=WAIT_S)
    assert watch.returncode == 0, err
    assert seen[1].startswith("reading the data dir ")
    assert out.splitlines()[-2:] == ["● Done at last.", "■ idle (end_turn)"]


def test_the_http_feed_pages_through_a_long_log_then_streams_what_comes_next(
    config: ServerConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    from server.fronts.cli.feeds import CAUGHT_UP
    from server.fronts.cli.http_feed import HttpFeed

    with driven_server(config, monkeypatch) as driven:
        client = driven.server.client()
        agent = client.beta.agents.create(name="long", model="claude-test")
        session = client.beta.sessions.create(agent=agent.id, environment_id=make_environment(config))
        for n in range(105):  # more than one page of the event list
            client.beta.sessions.update(session.id, title=f"title {n}")
        logged = [event.id for event in client.beta.sessions.events.list(session.id, limit=100)]
        feed = HttpFeed(driven.server.base_url, driven.server.token)
        items = feed.events(session.id)
        history = list(iter(lambda: next(items), CAUGHT_UP))
        assert [item["id"] for item in history if isinstance(item, dict)] == logged

        driven.model.enqueue(reply("Hi there."))
        client.beta.sessions.events.send(session.id, events=[_message("hello")])
        live: list[dict[str, object]] = []
        for item in items:
            assert isinstance(item, dict)
            live.append(item)
            if item["type"] == "session.status_idle":
                break
        items.close()  # hangs up the stream, which would hold the server's shutdown
    stored = [item for item in live if "seq" in item]
    assert stored[0]["type"] == "user.message"
    assert stored[0]["seq"] == len(logged) + 1  # nothing between the history and the stream was lost
    assert [item["seq"] for item in stored] == list(range(len(logged) + 1, len(logged) + 1 + len(stored)))
    assert "agent.message" in [item["type"] for item in stored]
    assert len(logged) == 105
