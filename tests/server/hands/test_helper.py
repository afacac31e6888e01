"""The sandbox helper, run as the real child process it is in a container, with temp dirs for its roots.

Each test talks JSON lines to its own `python helper.py`, exactly as the host
does over `docker exec -i`, so these cover the protocol, the shell's framing and
the path policy without Docker.
"""

from __future__ import annotations

import ast
import base64
import hashlib
import itertools
import json
import os
import platform
import shutil
import signal
import struct
import sys
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from processes import LineChild

HELPER = Path(__file__).resolve().parents[3] / "server" / "hands" / "helper" / "helper.py"
OUTPUT_LIMIT = 100 * 1024
POLL_BOUND_S = 5.0
"""How long a poll for a real state may go on before the test fails: a bound, never a measurement."""


@dataclass
class Sandbox:
    workdir: Path
    outputs: Path
    uploads: Path


class HelperClient:
    """Requests by id; answers that arrive for other ids are kept until asked for."""

    def __init__(self, child: LineChild) -> None:
        self.child = child
        self._ids = itertools.count(1)
        self._answers: dict[int | None, dict[str, Any]] = {}

    def send(self, op: str, **args: Any) -> int:
        request_id = next(self._ids)
        self.child.say(json.dumps({"id": request_id, "op": op, "args": args}))
        return request_id

    def answer(self, request_id: int | None, timeout_s: float = 15.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while request_id not in self._answers:
            response = json.loads(self.child.next_line(max(0.01, deadline - time.monotonic())))
            self._answers[response["id"]] = response
        return self._answers.pop(request_id)

    def answered(self, request_id: int) -> bool:
        return request_id in self._answers

    def ok(self, op: str, **args: Any) -> dict[str, Any]:
        response = self.answer(self.send(op, **args))
        assert response["ok"], response
        result: dict[str, Any] = response["result"]
        return result

    def error(self, op: str, **args: Any) -> str:
        response = self.answer(self.send(op, **args))
        assert not response["ok"], response
        return str(response["error"])

    def bash(self, command: str, **args: Any) -> dict[str, Any]:
        return self.ok("bash", command=command, **args)


@pytest.fixture
def sandbox(tmp_path: Path) -> Sandbox:
    dirs = Sandbox(tmp_path / "workspace", tmp_path / "outputs", tmp_path / "uploads")
    for path in (dirs.workdir, dirs.outputs, dirs.uploads):
        path.mkdir()
    return dirs


def start_helper(sandbox: Sandbox, tmp_path: Path, **env: str) -> LineChild:
    roots = {"MS_WORKDIR": str(sandbox.workdir), "MS_OUTPUTS": str(sandbox.outputs), "MS_UPLOADS": str(sandbox.uploads)}
    return LineChild([sys.executable, str(HELPER)], tmp_path / "helper.stderr", env={**os.environ, **roots, **env})


@pytest.fixture
def helper(sandbox: Sandbox, tmp_path: Path) -> Iterator[HelperClient]:
    child = start_helper(sandbox, tmp_path)
    yield HelperClient(child)
    child.stop()


@pytest.fixture
def helper_without_rg(sandbox: Sandbox, tmp_path: Path) -> Iterator[HelperClient]:
    """A PATH with nothing on it: no `rg`, so grep takes the Python fallback."""
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    child = start_helper(sandbox, tmp_path, PATH=str(empty))
    yield HelperClient(child)
    child.stop()


def tiny_png() -> bytes:
    """A valid 1x1 RGB PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xff\x00\x00")
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


def process_gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[0]
    except OSError:
        return True
    return state in (b"Z", b"X")


def children_of(pid: int) -> list[int]:
    """Live processes whose parent is `pid`, from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_bytes().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] not in (b"Z", b"X"):
            found.append(int(entry.name))
    return found


def shell_pid(helper: HelperClient) -> int:
    return int(helper.bash("echo $$")["output"])


def wait_until(condition: Any, timeout_s: float = POLL_BOUND_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"


# --- the protocol ---------------------------------------------------------------------------------------------------


def test_ping_reports_the_helper_python_and_rg(helper: HelperClient) -> None:
    result = helper.ok("ping")
    assert result == {"version": "1", "python": platform.python_version(), "rg": bool(shutil.which("rg"))}


def test_a_malformed_line_is_answered_with_a_null_id_and_serving_goes_on(helper: HelperClient) -> None:
    helper.child.say("{not json")
    response = helper.answer(None)
    assert response["ok"] is False
    assert response["error"].startswith("malformed request")
    assert helper.ok("ping")["version"] == "1"


def test_an_unknown_op_and_bad_args_are_errors(helper: HelperClient) -> None:
    assert helper.error("launch_missiles") == "unknown op: 'launch_missiles'"
    helper.child.say(json.dumps({"id": 99, "op": "read", "args": [1]}))
    assert helper.answer(99)["error"] == "read: args must be a JSON object"
    assert helper.error("read", file_path=7) == "read: file_path must be a string"


def test_eof_kills_the_shell_and_what_it_started_and_exits_zero(helper: HelperClient) -> None:
    pid = int(helper.bash("sleep 1000 & echo $!")["output"])
    assert not process_gone(pid)
    assert helper.child.proc.stdin is not None
    helper.child.proc.stdin.close()
    assert helper.child.wait() == 0
    wait_until(lambda: process_gone(pid))


# --- bash -----------------------------------------------------------------------------------------------------------


def test_bash_merges_stderr_into_the_output_and_reports_the_exit_code(helper: HelperClient) -> None:
    result = helper.bash("echo out; echo err >&2; exit_with() { return $1; }; exit_with 4")
    assert result == {"output": "out\nerr", "exit_code": 4, "timed_out": False, "truncated": False, "restarted": False}


def test_cd_and_export_persist_between_calls(helper: HelperClient, sandbox: Sandbox) -> None:
    (sandbox.workdir / "sub").mkdir()
    helper.bash("cd sub && export GREETING=hello")
    assert helper.bash('pwd; echo "$GREETING"')["output"] == f"{sandbox.workdir / 'sub'}\nhello"


def test_commands_get_no_stdin_and_no_anthropic_variables(sandbox: Sandbox, tmp_path: Path) -> None:
    child = start_helper(sandbox, tmp_path, ANTHROPIC_API_KEY="sk-secret", OTHER="kept")
    try:
        result = HelperClient(child).bash('cat; echo "${ANTHROPIC_API_KEY:-none} $OTHER $TERM [$PS1]"')
    finally:
        child.stop()
    assert result["output"] == "none kept dumb []"


def test_ansi_escapes_are_stripped(helper: HelperClient) -> None:
    assert helper.bash(r"printf '\033[31mred\033[0m \033]0;title\007plain\n'")["output"] == "red plain"


def test_a_timeout_kills_the_command_and_keeps_the_shell(helper: HelperClient, sandbox: Sandbox) -> None:
    (sandbox.workdir / "sub").mkdir()
    shell = shell_pid(helper)
    # The command notes its own pid, then becomes the 30 s sleep in the foreground.
    result = helper.bash("cd sub; echo before; sh -c 'echo $$ > ../command.pid; exec sleep 30'", timeout_ms=2000)
    assert result["timed_out"] is True
    assert result["restarted"] is False
    assert result["exit_code"] is None
    assert result["output"].startswith("before\n")  # bash then reports what it killed, by pid
    assert result["output"].endswith("\n[the command timed out after 2 s and was killed]")
    command = int((sandbox.workdir / "command.pid").read_text())
    assert process_gone(command)  # killed and reaped before the call answered, not left running
    assert children_of(shell) == []
    assert shell_pid(helper) == shell  # the same shell lives on, with its cwd
    assert helper.bash("pwd")["output"] == str(sandbox.workdir / "sub")


def test_a_stuck_builtin_loop_restarts_the_shell(helper: HelperClient, sandbox: Sandbox) -> None:
    (sandbox.workdir / "sub").mkdir()
    stuck = shell_pid(helper)
    result = helper.bash("cd sub; while true; do :; done", timeout_ms=300)
    assert process_gone(stuck)  # the loop ran in the shell itself, so the shell went with it
    assert result["timed_out"] is True
    assert result["restarted"] is True
    assert "cwd and variables were reset" in result["output"]
    after = helper.bash("pwd")
    assert after["output"] == str(sandbox.workdir)
    assert after["restarted"] is False
    assert shell_pid(helper) != stuck


def test_huge_output_keeps_the_tail_within_the_cap(helper: HelperClient) -> None:
    result = helper.bash("head -c 1000000 /dev/zero | tr '\\0' x; echo; echo THE-END")
    output: str = result["output"]
    assert result["truncated"] is True
    assert output.startswith("[output truncated]\nxxx")
    assert output.endswith("x\nTHE-END")
    assert len(output.encode()) <= OUTPUT_LIMIT + len("[output truncated]\n")


def test_a_background_process_does_not_hold_the_call(helper: HelperClient) -> None:
    result = helper.bash("sleep 100 & echo started $!")
    word, pid = result["output"].split()
    try:
        assert not process_gone(int(pid))  # the call has answered while its background process still runs
        assert (word, result["exit_code"], result["timed_out"]) == ("started", 0, False)
    finally:
        os.kill(int(pid), signal.SIGKILL)


def test_exit_ends_the_shell_and_the_next_call_gets_a_fresh_one(helper: HelperClient, sandbox: Sandbox) -> None:
    (sandbox.workdir / "sub").mkdir()
    result = helper.bash("cd sub; echo bye; exit 3")
    assert result["exit_code"] == 3
    assert result["output"].startswith("bye\n[the shell exited with code 3")
    after = helper.bash("pwd")
    assert after["restarted"] is True
    assert after["exit_code"] == 0
    assert after["output"].endswith(f"cwd and variables were reset]\n{sandbox.workdir}")


def test_restart_gives_a_fresh_shell(helper: HelperClient) -> None:
    helper.bash("export KEPT=1")
    assert helper.ok("bash", restart=True) == {
        "output": "bash session restarted",
        "exit_code": 0,
        "timed_out": False,
        "truncated": False,
        "restarted": True,
    }
    assert helper.bash("echo ${KEPT:-gone}")["output"] == "gone"


def test_a_command_that_does_not_parse_fails_at_once_and_the_shell_lives_on(helper: HelperClient) -> None:
    helper.bash("export KEPT=1")
    shell = shell_pid(helper)
    # Sent to the shell, it would swallow the framing and hang until this timeout, then the shell would be reset.
    result = helper.bash('echo "unterminated', timeout_ms=600_000)
    assert result["exit_code"] == 2
    assert "unexpected EOF" in result["output"]
    assert (result["timed_out"], result["restarted"]) == (False, False)  # refused before it ran: nothing waited
    assert shell_pid(helper) == shell
    assert helper.bash("echo $KEPT")["output"] == "1"


def test_nothing_of_a_command_that_does_not_parse_runs(helper: HelperClient, sandbox: Sandbox) -> None:
    result = helper.bash("touch ran\nif true; then\n  echo inside")
    assert result["exit_code"] == 2
    assert "syntax error near unexpected token" in result["output"]
    assert not (sandbox.workdir / "ran").exists()


def test_a_syntax_error_names_the_line_of_the_command_it_is_on(helper: HelperClient) -> None:
    helper.bash("echo one; echo two")  # lines the shell has read before do not count
    assert helper.bash("echo ok\nfi")["output"] == "/bin/bash: line 2: syntax error near unexpected token `fi'\n" + (
        "/bin/bash: line 2: `fi'"
    )


def test_a_large_command_that_does_not_parse_is_refused_too(helper: HelperClient) -> None:
    helper.bash("export KEPT=1")
    result = helper.bash("echo " + "x" * 5000 + ' "unterminated')
    assert (result["exit_code"], result["timed_out"], result["restarted"]) == (2, False, False)
    assert "unexpected EOF" in result["output"]
    assert helper.bash("echo $KEPT")["output"] == "1"


def test_checking_a_command_shows_no_trace_and_leaves_xtrace_as_it_was(helper: HelperClient) -> None:
    assert helper.bash("set -x; true")["output"] == "+ true"
    refused = helper.bash('echo "unterminated')
    assert refused["output"] == "/bin/bash: line 1: unexpected EOF while looking for matching `\"'"
    assert helper.bash("true")["output"] == "+ true"
    assert helper.bash("set +x; declare -p __ms_s __ms_x 2>/dev/null; declare -F")["output"] == "+ set +x"


def test_the_exit_code_framing_cannot_be_spoofed_or_seen(helper: HelperClient) -> None:
    """The sentinel's nonce is new per call and split in two printf arguments, so neither echo nor xtrace shows it."""
    assert helper.bash("echo __ms_done_0123__0; echo real")["output"] == "__ms_done_0123__0\nreal"
    assert helper.bash("set -x; true")["output"] == "+ true"
    assert helper.bash("set +x; echo quiet")["output"] == "+ set +x\nquiet"


def test_a_comment_alone_is_a_successful_no_op(helper: HelperClient) -> None:
    assert helper.bash("# just a note\n")["exit_code"] == 0


def test_bash_needs_a_command(helper: HelperClient) -> None:
    assert helper.error("bash") == "bash: command is required"
    assert helper.error("bash", command="  ") == "bash: command is required"
    assert helper.error("bash", command="true", timeout_ms="soon") == "bash: timeout_ms must be an integer"


def test_list_outputs_answers_while_a_bash_call_runs(helper: HelperClient, sandbox: Sandbox) -> None:
    running = helper.send("bash", command="while [ ! -e go ]; do sleep 0.02; done; echo went", timeout_ms=20_000)
    listing = helper.send("list_outputs")
    assert helper.answer(listing)["result"] == {"files": []}
    assert not helper.answered(running)
    (sandbox.workdir / "go").touch()
    assert helper.answer(running)["result"]["output"] == "went"


def test_bash_calls_run_one_at_a_time_in_arrival_order(helper: HelperClient) -> None:
    sent = [helper.send("bash", command=f"echo {n} >> order") for n in range(8)]
    for request_id in sent:
        assert helper.answer(request_id)["ok"]
    assert helper.bash("cat order")["output"] == "\n".join(str(n) for n in range(8))


# --- read -----------------------------------------------------------------------------------------------------------


def test_read_returns_the_text_exactly(helper: HelperClient, sandbox: Sandbox) -> None:
    (sandbox.workdir / "crlf.txt").write_bytes("one\r\ntwo é\n".encode())
    assert helper.ok("read", file_path="crlf.txt") == {"type": "text", "text": "one\r\ntwo é\n"}


@pytest.mark.parametrize(
    ("view_range", "text"),
    [([2, 3], "b\nc"), ([2, -1], "b\nc\nd\n"), ([3, 0], "c\nd\n"), ([4, 4], "d"), ([0, 1], "a"), ([3, 2], "")],
)
def test_view_range_selects_lines(helper: HelperClient, sandbox: Sandbox, view_range: list[int], text: str) -> None:
    (sandbox.workdir / "f.txt").write_text("a\nb\nc\nd\n")
    assert helper.ok("read", file_path="f.txt", view_range=view_range)["text"] == text


def test_a_large_file_needs_a_view_range(helper: HelperClient, sandbox: Sandbox) -> None:
    (sandbox.workdir / "big.txt").write_text("line\n" * 60_000)
    assert helper.error("read", file_path="big.txt") == (
        "read: big.txt is 300000 bytes, exceeds 262144-byte limit. "
        "Use the view_range parameter to read specific line ranges, e.g. view_range: [1, 500]."
    )
    assert helper.ok("read", file_path="big.txt", view_range=[59_999, -1])["text"] == "line\nline\n"
    assert "view_range [1, -1] of big.txt exceeds" in helper.error("read", file_path="big.txt", view_range=[1, -1])


def test_a_binary_file_is_not_read_as_text(helper: HelperClient, sandbox: Sandbox) -> None:
    (sandbox.workdir / "blob.bin").write_bytes(b"\xff\xfe\x00\x01")
    error = helper.error("read", file_path="blob.bin")
    assert error.startswith("read: blob.bin: not valid UTF-8 text")
    assert "xxd" in error


def test_an_image_is_read_as_base64(helper: HelperClient, sandbox: Sandbox) -> None:
    (sandbox.workdir / "dot.png").write_bytes(tiny_png())
    result = helper.ok("read", file_path="dot.png")
    assert result["type"] == "image"
    assert result["media_type"] == "image/png"
    assert base64.b64decode(result["data"]) == tiny_png()
    assert helper.error("read", file_path="dot.png", view_range=[1, 2]) == (
        "read: view_range is not supported for image/PDF files"
    )


def test_images_and_pdfs_are_checked_by_content(helper: HelperClient, sandbox: Sandbox) -> None:
    (sandbox.workdir / "png-named.jpg").write_bytes(tiny_png())
    (sandbox.workdir / "fake.png").write_text("not an image")
    (sandbox.workdir / "doc.pdf").write_bytes(b"%PDF-1.4\n%%EOF\n")
    assert helper.ok("read", file_path="png-named.jpg")["media_type"] == "image/png"
    assert helper.error("read", file_path="fake.png").startswith("read: fake.png: not a valid image")
    document = helper.ok("read", file_path="doc.pdf")
    assert document["type"] == "document"
    assert document["media_type"] == "application/pdf"
    assert base64.b64decode(document["data"]) == b"%PDF-1.4\n%%EOF\n"


def test_read_names_the_path_as_given_in_errors(helper: HelperClient, sandbox: Sandbox) -> None:
    (sandbox.workdir / "dir").mkdir()
    os.mkfifo(sandbox.workdir / "pipe")
    assert helper.error("read", file_path="src/x.py") == "read: src/x.py: no such file or directory"
    assert helper.error("read", file_path="dir") == "read: dir: not a regular file"
    assert helper.error("read", file_path="pipe") == "read: pipe: not a regular file"
    assert helper.error("read", file_path="f", view_range=[1]) == "read: view_range must be [start_line, end_line]"


# --- write and edit -------------------------------------------------------------------------------------------------


def test_write_creates_parents_and_keeps_the_exact_bytes(helper: HelperClient, sandbox: Sandbox) -> None:
    content = "a\r\nb é\n"
    assert helper.ok("write", file_path="new/dir/f.txt", content=content) == {
        "text": f"wrote {len(content.encode())} bytes to new/dir/f.txt"
    }
    assert (sandbox.workdir / "new/dir/f.txt").read_bytes() == content.encode()
    helper.ok("write", file_path="new/dir/f.txt", content="short")
    assert (sandbox.workdir / "new/dir/f.txt").read_bytes() == b"short"


def test_files_in_outputs_and_uploads_are_reachable_but_uploads_are_read_only(
    helper: HelperClient, sandbox: Sandbox
) -> None:
    (sandbox.uploads / "in.txt").write_text("uploaded")
    upload = str(sandbox.uploads / "in.txt")
    assert helper.ok("read", file_path=upload)["text"] == "uploaded"
    assert (
        helper.error("write", file_path=upload, content="x") == f"write: {upload}: the uploads directory is read-only"
    )
    error = helper.error("edit", file_path=upload, old_string="up", new_string="down")
    assert error == f"edit: {upload}: the uploads directory is read-only"
    assert (sandbox.uploads / "in.txt").read_text() == "uploaded"
    helper.ok("write", file_path=str(sandbox.outputs / "report.md"), content="# done")
    assert (sandbox.outputs / "report.md").read_text() == "# done"


def test_edit_replaces_a_unique_match_or_all_of_them(helper: HelperClient, sandbox: Sandbox) -> None:
    (sandbox.workdir / "f.py").write_text("x = 1\ny = 1\n")
    assert helper.error("edit", file_path="f.py", old_string="z", new_string="w") == (
        "edit: old_string not found in f.py"
    )
    assert helper.error("edit", file_path="f.py", old_string="1", new_string="2") == (
        "edit: old_string appears 2 times in f.py (must be unique)"
    )
    assert helper.ok("edit", file_path="f.py", old_string="x = 1", new_string="x = 0") == {
        "text": "edited f.py (1 replacement(s))"
    }
    assert helper.ok("edit", file_path="f.py", old_string="= ", new_string=":= ", replace_all=True) == {
        "text": "edited f.py (2 replacement(s))"
    }
    assert (sandbox.workdir / "f.py").read_text() == "x := 0\ny := 1\n"


def test_edit_refuses_large_binary_and_empty_matches(helper: HelperClient, sandbox: Sandbox) -> None:
    (sandbox.workdir / "big.txt").write_text("a" * 300_000)
    (sandbox.workdir / "blob.bin").write_bytes(b"\xff\x00")
    assert helper.error("edit", file_path="big.txt", old_string="a", new_string="b").startswith(
        "edit: big.txt is 300000 bytes, exceeds 262144-byte limit."
    )
    assert helper.error("edit", file_path="blob.bin", old_string="a", new_string="b") == (
        "edit: blob.bin: not valid UTF-8 text (cannot edit binary files)"
    )
    assert helper.error("edit", file_path="big.txt", old_string="", new_string="b") == (
        "edit: old_string must not be empty"
    )


# --- the path policy ------------------------------------------------------------------------------------------------

ESCAPES = ["../escape.txt", "/etc/passwd", "etc-link/passwd", "etc-link", "sub/../../escape.txt"]


@pytest.mark.parametrize("path", ESCAPES)
@pytest.mark.parametrize(
    ("op", "args"),
    [("read", {}), ("write", {"content": "x"}), ("edit", {"old_string": "root", "new_string": "toor"})],
)
def test_file_tools_refuse_paths_outside_the_sandboxs_files(
    helper: HelperClient, sandbox: Sandbox, op: str, args: dict[str, str], path: str
) -> None:
    (sandbox.workdir / "etc-link").symlink_to("/etc")
    (sandbox.workdir / "sub").mkdir()
    assert helper.error(op, file_path=path, **args) == f"{op}: {path}: outside the sandbox's files"
    assert not (sandbox.workdir.parent / "escape.txt").exists()


def test_a_dangling_link_out_of_the_sandbox_cannot_be_written_through(helper: HelperClient, sandbox: Sandbox) -> None:
    outside = sandbox.workdir.parent / "planted.txt"
    (sandbox.workdir / "link").symlink_to(outside)
    assert helper.error("write", file_path="link", content="x") == "write: link: outside the sandbox's files"
    assert not outside.exists()


@pytest.mark.parametrize(
    ("path", "error"),
    [
        ("../escape.txt", "read_output: ../escape.txt: '..' is not allowed"),
        ("/etc/passwd", "read_output: /etc/passwd: give a path relative to the outputs directory"),
        ("etc-link/passwd", "read_output: etc-link/passwd: outside the outputs directory"),
        ("file-link", "read_output: file-link: outside the outputs directory"),
        ("dir", "read_output: dir: not a regular file"),
        ("missing.txt", "read_output: missing.txt: no such file or directory"),
    ],
)
def test_read_output_refuses_anything_but_files_in_the_outputs_dir(
    helper: HelperClient, sandbox: Sandbox, path: str, error: str
) -> None:
    (sandbox.outputs / "etc-link").symlink_to("/etc")
    (sandbox.outputs / "file-link").symlink_to(sandbox.workdir.parent / "secret")
    (sandbox.workdir.parent / "secret").write_text("secret")
    (sandbox.outputs / "dir").mkdir()
    assert helper.error("read_output", path=path) == error


# --- glob -----------------------------------------------------------------------------------------------------------


def make_files(root: Path, names: list[str]) -> None:
    """Files named from newest to oldest, a second apart."""
    for age, name in enumerate(names):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(name)
        os.utime(path, (1_700_000_000 - age, 1_700_000_000 - age))


def test_glob_lists_matches_newest_first_relative_to_the_search_root(helper: HelperClient, sandbox: Sandbox) -> None:
    make_files(sandbox.workdir, ["src/new.py", "top.py", "src/deep/old.py", "notes.txt", ".hidden.py"])
    result = helper.ok("glob", pattern="**/*.py")["text"]
    assert result.split("\n") == ["src/new.py", "top.py", "src/deep/old.py", ".hidden.py"]
    assert helper.ok("glob", pattern="*.py", path="src")["text"] == "src/new.py"
    assert set(helper.ok("glob", pattern="src/*")["text"].split("\n")) == {"src/new.py", "src/deep"}  # dirs too
    assert helper.ok("glob", pattern="**/*.rs")["text"] == "no matches"
    assert set(helper.ok("glob", pattern="src/**")["text"].split("\n")) == {"src/new.py", "src/deep", "src/deep/old.py"}
    assert helper.ok("glob", pattern="*/")["text"] == "src"


def test_glob_returns_the_200_newest(helper: HelperClient, sandbox: Sandbox) -> None:
    make_files(sandbox.workdir, [f"f{n:03d}.txt" for n in range(250)])
    lines = helper.ok("glob", pattern="*.txt")["text"].split("\n")
    assert lines == [f"f{n:03d}.txt" for n in range(200)]


def test_glob_refuses_absolute_patterns_and_dotdot(helper: HelperClient) -> None:
    assert helper.error("glob", pattern="/etc/*") == (
        "glob: absolute pattern not permitted; pass a relative pattern (and optionally path)"
    )
    assert helper.error("glob", pattern="../*") == "glob: '..' is not permitted in the pattern"
    assert helper.error("glob", pattern="*", path="/etc") == "glob: /etc: outside the sandbox's files"


def test_glob_does_not_follow_links_out_of_the_root(helper: HelperClient, sandbox: Sandbox) -> None:
    (sandbox.workdir / "etc-link").symlink_to("/etc")
    (sandbox.workdir / "passwd-link").symlink_to("/etc/passwd")
    make_files(sandbox.workdir, ["kept.txt"])
    assert helper.ok("glob", pattern="**/*")["text"] == "kept.txt"
    assert helper.ok("glob", pattern="etc-link/*")["text"] == "no matches"


# --- grep -----------------------------------------------------------------------------------------------------------


@pytest.fixture(params=["rg", "python"])
def grepper(request: pytest.FixtureRequest, helper: HelperClient, helper_without_rg: HelperClient) -> HelperClient:
    if request.param == "rg":
        if not shutil.which("rg"):
            pytest.skip("rg is not installed here")
        return helper
    return helper_without_rg


def test_grep_prints_file_line_text_relative_to_the_search_root(grepper: HelperClient, sandbox: Sandbox) -> None:
    make_files(sandbox.workdir, ["src/a.py", "src/b.py"])
    (sandbox.workdir / "src/a.py").write_text("import os\nneedle = 1\n")
    (sandbox.workdir / "src/b.py").write_text("needle()\n")
    assert sorted(grepper.ok("grep", pattern="need+le")["text"].split("\n")) == [
        "src/a.py:2:needle = 1",
        "src/b.py:1:needle()",
    ]
    assert sorted(grepper.ok("grep", pattern="needle", path="src")["text"].split("\n")) == [
        "src/a.py:2:needle = 1",
        "src/b.py:1:needle()",
    ]
    assert grepper.ok("grep", pattern="needle", path="src/b.py")["text"] == "src/b.py:1:needle()"
    assert grepper.ok("grep", pattern="haystack")["text"] == "no matches"
    assert grepper.error("grep", pattern="x", path="/etc") == "grep: /etc: outside the sandbox's files"


def test_grep_without_rg_skips_git_binary_links_and_long_lines(
    helper_without_rg: HelperClient, sandbox: Sandbox
) -> None:
    assert helper_without_rg.ok("ping")["rg"] is False
    (sandbox.workdir / ".git").mkdir()
    (sandbox.workdir / ".git/config").write_text("needle\n")
    (sandbox.workdir / "bin.dat").write_bytes(b"needle\x00")
    (sandbox.workdir / "long.txt").write_text("needle" * 400 + "\nneedle short\n")
    (sandbox.workdir / "link.txt").symlink_to(sandbox.workdir / "long.txt")
    assert helper_without_rg.ok("grep", pattern="needle")["text"] == "long.txt:2:needle short"
    assert helper_without_rg.error("grep", pattern="(") == (
        "grep: invalid regex: missing ), unterminated subpattern at position 0"
    )


# --- outputs --------------------------------------------------------------------------------------------------------


def test_list_outputs_describes_every_regular_file(helper: HelperClient, sandbox: Sandbox) -> None:
    (sandbox.outputs / "charts").mkdir()
    (sandbox.outputs / "report.txt").write_text("the report")
    (sandbox.outputs / "charts/data.bin").write_bytes(b"\x00\x01" * 1000)
    (sandbox.outputs / "run.log").write_text("log")
    os.utime(sandbox.outputs / "report.txt", ns=(0, 1_795_000_000_123_456_789))
    (sandbox.outputs / "inside-link").symlink_to(sandbox.outputs / "run.log")
    (sandbox.outputs / "outside-link").symlink_to("/etc/passwd")
    (sandbox.outputs / "etc-dir").symlink_to("/etc")
    os.mkfifo(sandbox.outputs / "fifo")
    files = helper.ok("list_outputs")["files"]
    # The README: "Symlinks are not outputs", wherever they point.
    assert [f["path"] for f in files] == ["charts/data.bin", "report.txt", "run.log"]
    by_path = {f["path"]: f for f in files}
    assert by_path["charts/data.bin"]["sha256"] == hashlib.sha256(b"\x00\x01" * 1000).hexdigest()
    assert by_path["charts/data.bin"]["size_bytes"] == 2000
    assert by_path["charts/data.bin"]["mime_type"] == "application/octet-stream"
    assert by_path["report.txt"]["mime_type"] == "text/plain"
    assert by_path["run.log"]["mime_type"] == "text/plain"
    second = datetime.fromtimestamp(1_795_000_000, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    assert by_path["report.txt"]["modified_at"] == second + ".123Z"


def test_read_output_reads_a_file_in_pages(helper: HelperClient, sandbox: Sandbox) -> None:
    (sandbox.outputs / "sub").mkdir()
    (sandbox.outputs / "sub/data.csv").write_bytes(b"0123456789")
    first = helper.ok("read_output", path="sub/data.csv", max_bytes=4)
    assert first == {
        "data": base64.b64encode(b"0123").decode(),
        "size_bytes": 10,
        "mime_type": "text/csv",
        "eof": False,
    }
    last = helper.ok("read_output", path="sub/data.csv", offset=8, max_bytes=4)
    assert (base64.b64decode(last["data"]), last["eof"]) == (b"89", True)
    assert helper.ok("read_output", path="sub/data.csv")["eof"] is True
    assert helper.error("read_output", path="sub/data.csv", offset=-1) == (
        "read_output: offset must be >= 0 and max_bytes > 0"
    )


def test_the_helper_parses_as_python_3_8() -> None:
    """Python 3.8 is the oldest a sandbox image may have: no `match`, no parenthesised context managers."""
    ast.parse(HELPER.read_text(), feature_version=(3, 8))


SKILL_ID = "skill_01JD7Y3Q4K2W8T6X0V5N9R1M3P"


def test_link_skills_links_each_version_and_the_file_tools_read_but_never_write_there(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    skills, store = tmp_path / "skills", tmp_path / "skill-store"
    skills.mkdir()
    for version in (1, 2):
        (store / SKILL_ID / str(version)).mkdir(parents=True)
        (store / SKILL_ID / str(version) / "SKILL.md").write_text(f"version {version}\n", encoding="utf-8")
    (skills / "stale").symlink_to(store)
    child = start_helper(sandbox, tmp_path, MS_SKILLS=str(skills), MS_SKILL_STORE=str(store))
    helper = HelperClient(child)
    try:
        assert helper.ok("link_skills", links={"pdf-forms": f"{SKILL_ID}/1"}) == {"linked": 1}
        assert sorted(p.name for p in skills.iterdir()) == ["pdf-forms"]  # the stale link went
        assert helper.ok("read", file_path=str(skills / "pdf-forms" / "SKILL.md"))["text"].startswith("version 1")
        helper.ok("link_skills", links={"pdf-forms": f"{SKILL_ID}/2"})
        assert "version 2" in helper.ok("read", file_path=str(skills / "pdf-forms" / "SKILL.md"))["text"]
        refused = helper.error("write", file_path=str(skills / "pdf-forms" / "x.md"), content="x")
        assert "skills are read-only" in refused
        assert "not a skill name" in helper.error("link_skills", links={"../x": f"{SKILL_ID}/1"})
        assert "not a skill name" in helper.error("link_skills", links={"x": "../../etc"})
    finally:
        child.stop()
