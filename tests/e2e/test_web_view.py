"""The live view at `/ui` in a real browser (Debian's chromium, driven by Playwright) against a real server and the
scripted model.

With real Docker sandboxes: log in, open a running session, watch a tool call arrive, allow it from the page, see
the output image, reload mid-turn and find everything still there; a screenshot of the session view is kept as an
artifact. With fake sandboxes (the page is under test, not the tools): send a message, get a 10 MB tool result
shown cut short and downloadable whole, answer a custom tool from the result box, interrupt a turn."""

from __future__ import annotations

import base64
import os
import re
import struct
import tempfile
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fake_sandboxes import FakeSandboxes
from mcp_app_host import host_page
from model_server import ModelServer, hang, reply, tool_use
from playwright.sync_api import Page, expect, sync_playwright
from rest_serving import RestServer, rest_server

from server.core.config import DEFAULT_IMAGE, ServerConfig
from vault.memory_store import MemoryStore

pytestmark = [pytest.mark.browser]

HOSTILE = '<script>window.pwned = 1</script><img src=x onerror="window.pwned = 2">'
SLOW_S = 60_000  # ms: a first tool call starts the session's container


def png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A one-colour PNG, made here so the test carries no binary file."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


SQUARE = png(24, 24, (47, 95, 208))
PAINT = (
    f"printf %s {base64.b64encode(SQUARE).decode()} | base64 -d > /mnt/session/outputs/square.png"
    f" && printf '%s\\n' '{HOSTILE}'"
)


@pytest.fixture
def served(docker_loop_config: ServerConfig, model: ModelServer) -> Iterator[RestServer]:
    with rest_server(docker_loop_config, secrets=MemoryStore()) as server:
        yield server


@pytest.fixture
def fakes() -> FakeSandboxes:
    return FakeSandboxes()


@pytest.fixture
def served_on_fakes(data_dir: Path, model: ModelServer, fakes: FakeSandboxes) -> Iterator[RestServer]:
    config = ServerConfig(data_dir=data_dir, image=DEFAULT_IMAGE, model="claude-test", model_key_present=True)
    with rest_server(config, sandboxes=lambda _tg: fakes, secrets=MemoryStore()) as server:
        yield server


@pytest.fixture
def artifacts() -> Path:
    """Where screenshots go: `MANAGED_SESSIONS_ARTIFACTS`, else a folder in the system's temp dir."""
    path = Path(
        os.environ.get("MANAGED_SESSIONS_ARTIFACTS") or Path(tempfile.gettempdir()) / "managed-sessions-artifacts"
    )
    path.mkdir(parents=True, exist_ok=True)
    return path


def start_session(server: RestServer) -> str:
    """A session whose agent asks before every tool call, sent its first message (it is running when this returns)."""
    ask = [{"type": "agent_toolset_20260401", "default_config": {"permission_policy": {"type": "always_ask"}}}]
    with server.client() as client:
        agent = client.beta.agents.create(name="painter", model="claude-test", tools=ask)  # type: ignore[list-item]
        environment = client.beta.environments.create(name="studio")
        session = client.beta.sessions.create(agent=agent.id, environment_id=environment.id, title="Paint a square")
        message = {"type": "user.message", "content": [{"type": "text", "text": "Paint a blue square."}]}
        client.beta.sessions.events.send(session.id, events=[message])  # type: ignore[list-item]
        return session.id


@contextmanager
def browser_page(chromium: str, **options: Any) -> Iterator[tuple[Page, list[str]]]:
    """A page in a fresh headless chromium (`options` go to `new_page`), and the console and page errors it logs."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, headless=True)
        try:
            page = browser.new_page(**options)
            problems: list[str] = []
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            yield page, problems
        finally:
            browser.close()


def log_in(page: Page, server: RestServer) -> None:
    page.goto(f"{server.base_url}/ui")
    page.fill("#token", server.token)
    page.click("#login-form button[type=submit]")


def entry_ids(page: Page) -> list[str]:
    ids: list[str] = page.locator("#log [data-event-id]").evaluate_all("nodes => nodes.map(n => n.dataset.eventId)")
    return ids


@pytest.mark.docker
def test_the_page_follows_a_running_session_live(
    served: RestServer, model: ModelServer, chromium: str, artifacts: Path
) -> None:
    first, second = threading.Event(), threading.Event()
    model.enqueue(
        hang(then=reply(tool_use("bash", {"command": PAINT})), release=first),
        hang("Looking at the square", then=reply("Painted square.png."), release=second),
    )
    session_id = start_session(served)
    with browser_page(chromium, viewport={"width": 1200, "height": 900}) as (page, problems):
        log_in(page, served)
        row = page.locator(f'tr[data-session-id="{session_id}"]')
        expect(row).to_contain_text("running")
        expect(row).to_contain_text("Paint a square")
        row.click()

        expect(page.locator("#session-status")).to_have_text("running")
        expect(page.locator("#log .entry.user")).to_contain_text("Paint a blue square.")
        tool = page.locator("#log .entry.tool")
        expect(tool).to_have_count(0)
        expect(page.locator("#connection")).to_have_text("live")

        first.set()  # the model answers with the tool call: the page gets it over the stream
        expect(tool).to_contain_text("bash")
        expect(tool.locator(".state")).to_have_text("waiting for your confirmation")
        expect(page.locator("#pending")).to_be_visible()
        tool.locator("button.allow").click()
        expect(tool.locator(".state")).to_have_text("done", timeout=SLOW_S)
        expect(page.locator("#pending")).to_be_hidden()

        preview = page.locator("#log .entry.preview")
        expect(preview).to_contain_text("Looking at the square")  # the model's second turn, as it streams
        before = entry_ids(page)
        page.reload()
        expect(page.locator("#connection")).to_have_text("live")
        expect(tool.locator(".state")).to_have_text("done")
        assert entry_ids(page) == before

        second.set()
        agent = page.locator("#log .entry.agent")
        expect(agent).to_have_count(2)
        expect(agent.first).to_have_text("AgentLooking at the square")
        expect(agent.last).to_have_text("AgentPainted square.png.")
        expect(page.locator("#session-status")).to_have_text("idle")

        result = tool.locator("details.result")
        result.locator("summary").click()
        expect(result.locator("pre")).to_contain_text(HOSTILE)
        assert result.locator("img").count() == 0
        assert page.evaluate("window.pwned") is None

        square = page.locator("#files li", has_text="square.png")
        square.locator("button.preview").click()
        image = page.locator("#file-preview img")
        expect(image).to_be_visible()
        page.wait_for_function("document.querySelector('#file-preview img').naturalWidth === 24")

        shot = artifacts / f"session-view-{session_id}.png"
        page.screenshot(path=str(shot), full_page=True)
        print(f"screenshot of the session view: {shot}")
        assert problems == []


BIG = "".join(f"line {n:07d} of a long build log\n" for n in range(10 * 1024 * 1024 // 32))
LOOKUP = {"type": "custom", "name": "lookup", "description": "Look a word up.", "input_schema": {"type": "object"}}


def test_a_huge_result_a_custom_tool_and_an_interrupt_from_the_page(
    served_on_fakes: RestServer, model: ModelServer, fakes: FakeSandboxes, chromium: str
) -> None:
    fakes.outputs["make"] = BIG
    stalled = threading.Event()
    model.enqueue(
        reply(tool_use("bash", {"command": "make"})),
        reply(tool_use("lookup", {"word": "cat"})),
        hang("Now I will", then=reply("never said"), release=stalled),
    )
    with served_on_fakes.client() as client:
        agent = client.beta.agents.create(
            name="builder",
            model="claude-test",
            tools=[{"type": "agent_toolset_20260401"}, LOOKUP],  # type: ignore[list-item]
        )
        environment = client.beta.environments.create(name="shop")
        session_id = client.beta.sessions.create(agent=agent.id, environment_id=environment.id).id
    with browser_page(chromium) as (page, _problems):
        log_in(page, served_on_fakes)
        page.locator(f'tr[data-session-id="{session_id}"]').click()
        expect(page.locator("#connection")).to_have_text("live")

        page.fill("#message", "Build it.")
        page.click("#send")
        expect(page.locator("#message")).to_have_value("")
        expect(page.locator("#log .entry.user")).to_have_text("YouBuild it.")

        build = page.locator("#log .entry.tool", has_text="bash")
        expect(build.locator(".state")).to_have_text("done")
        expect(build.locator("details.result summary")).to_contain_text(f"{len(BIG)} characters")
        expect(build.locator("details.result .truncated")).to_contain_text(f"of {len(BIG)} characters")
        build.locator("details.result summary").click()
        assert len(build.locator("details.result pre").inner_text()) <= 4000
        with page.expect_download() as download:
            build.locator("details.result button", has_text="Download all").click()
        assert Path(download.value.path()).read_text(encoding="utf-8") == BIG

        lookup = page.locator("#log .entry.tool", has_text="lookup")
        expect(lookup.locator(".state")).to_have_text("waiting for your result")
        lookup.locator(".answer textarea").fill("a small feline")
        lookup.locator("button.send-result").click()
        expect(lookup.locator(".state")).to_have_text("answered")
        expect(lookup.locator("details.result")).to_contain_text("result: 14 characters")

        expect(page.locator("#log .entry.preview")).to_contain_text("Now I will")
        page.click("#interrupt")
        expect(page.locator("#log .mark", has_text="interrupted")).to_be_visible()
        expect(page.locator("#session-status")).to_have_text("idle")
        expect(page.locator("#log .entry.preview")).to_have_count(0)

        before = entry_ids(page)
        page.reload()
        expect(page.locator("#connection")).to_have_text("live")
        expect(page.locator("#log .mark", has_text="interrupted")).to_be_visible()
        assert entry_ids(page) == before

        long_message = "word " * 20_000  # a message is bounded on the page like a result
        model.enqueue(reply("Read it."))
        page.fill("#message", long_message)
        page.click("#send")
        sent = page.locator("#log .entry.user").last
        expect(sent.locator(".truncated")).to_contain_text(f"of {len(long_message)} characters")
        assert len(sent.locator("pre").inner_text()) <= 4000
        expect(page.locator("#log .entry.agent").last).to_have_text("AgentRead it.")


def test_the_mcp_app_follows_a_session_through_a_hosts_bridge(
    served_on_fakes: RestServer, model: ModelServer, fakes: FakeSandboxes, chromium: str
) -> None:
    """The view as an MCP App in a minimal host (`tests/mcp_app_host.py`): every call it makes is a tool call
    through the host's postMessage bridge, under the CSP its metadata asks for (no network at all)."""
    fakes.outputs["make"] = HOSTILE
    model.enqueue(reply(tool_use("bash", {"command": "make"})), reply("Built."), reply("Built again."))
    session_id = start_session(served_on_fakes)
    fakes.files[session_id] = {"square.png": SQUARE}
    fakes.mime_types["square.png"] = "image/png"
    with browser_page(chromium, viewport={"width": 1100, "height": 900}) as (page, problems):
        page.route(
            f"{served_on_fakes.base_url}/host",
            lambda route: route.fulfill(body=host_page(served_on_fakes.token), content_type="text/html"),
        )
        page.goto(f"{served_on_fakes.base_url}/host")
        page.evaluate("id => window.openView(id)", session_id)
        view = page.frame_locator("iframe")

        expect(view.locator("#session-title")).to_have_text("Paint a square")
        tool = view.locator("#log .entry.tool")
        expect(tool.locator(".state")).to_have_text("waiting for your confirmation")
        tool.locator("button.allow").click()
        expect(tool.locator(".state")).to_have_text("done")
        expect(view.locator("#log .entry.agent")).to_have_text("AgentBuilt.")
        expect(view.locator("#session-status")).to_have_text("idle")

        result = tool.locator("details.result")
        result.locator("summary").click()
        expect(result.locator("pre")).to_have_text(HOSTILE)
        assert result.locator("img").count() == 0
        app = next(frame for frame in page.frames if frame != page.main_frame)
        assert app.evaluate("window.pwned") is None

        view.locator("#message").fill("Once more.")
        view.locator("#send").click()
        expect(view.locator("#log .entry.user").last).to_have_text("YouOnce more.")
        expect(view.locator("#log .entry.agent").last).to_have_text("AgentBuilt again.")

        square = view.locator("#files li", has_text="square.png")
        square.locator("button.preview").click()
        expect(view.locator("#file-preview img")).to_have_attribute("src", re.compile(r"^data:image/png;base64,"))
        app.wait_for_function("document.querySelector('#file-preview img').naturalWidth === 24")

        log = page.evaluate("window.hostLog")
        assert log[0] == "ui/initialize"
        assert log.index("ui/notifications/initialized") < log.index("tools/call")
        assert {"ui/notifications/size-changed"} <= set(log)
        assert problems == []
