"""The live view's files at `/ui`: served without the token (they hold no data) under a strict
Content-Security-Policy, while every other path still needs the token; and the page's own rules, checked on its
source: no inline script or handler, and no API that parses a string as HTML or code."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from importlib.resources import files

import httpx2 as httpx
import pytest
from rest_serving import RestServer

STATIC = files("server.fronts.web") / "static"


def test_the_page_and_its_files_load_without_the_token_under_a_strict_policy(rest: RestServer) -> None:
    assets = [("/ui", "text/html"), ("/ui/view.js", "text/javascript"), ("/ui/page.js", "text/javascript")]
    for path, media_type in [*assets, ("/ui/app.css", "text/css")]:
        response = httpx.get(rest.base_url + path)
        assert response.status_code == 200, path
        assert response.headers["content-type"].startswith(media_type)
        policy = response.headers["content-security-policy"]
        assert "default-src 'none'" in policy
        assert "script-src 'self';" in policy
        assert "connect-src 'self'" in policy
        assert "frame-ancestors 'none'" in policy
        assert "unsafe" not in policy
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"
    assert httpx.get(rest.base_url + "/ui/").headers["location"] == "/ui"


@pytest.mark.parametrize("path", ["/v1/sessions", "/ui/secrets", "/uix", "/ui/view.js.map", "/UI", "/mcp"])
def test_every_other_path_still_needs_the_token(rest: RestServer, path: str) -> None:
    assert httpx.get(rest.base_url + path).status_code == 401


def test_the_api_answers_the_page_with_its_token(rest: RestServer) -> None:
    response = httpx.get(rest.base_url + "/v1/sessions", headers={"authorization": f"Bearer {rest.token}"})
    assert response.status_code == 200


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[dict[str, str | None]] = []
        self.handlers: list[str] = []
        self.script_text = ""
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handlers += [name for name, _ in attrs if name.startswith("on")]
        if tag == "script":
            self.scripts.append(dict(attrs))
            self._in_script = True

    def handle_endtag(self, tag: str) -> None:
        self._in_script = self._in_script and tag != "script"

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.script_text += data


def test_the_page_has_no_inline_script_or_handler() -> None:
    tags = _Tags()
    tags.feed((STATIC / "index.html").read_text(encoding="utf-8"))
    assert [s.get("src") for s in tags.scripts] == ["/ui/view.js", "/ui/page.js"]
    assert tags.script_text.strip() == ""
    assert tags.handlers == []


@pytest.mark.parametrize("script", ["view.js", "page.js", "bridge.js"])
def test_the_scripts_never_parse_a_string_as_html_or_code(script: str) -> None:
    source = (STATIC / script).read_text(encoding="utf-8")
    code = "\n".join(line for line in source.splitlines() if not line.lstrip().startswith("//"))
    for sink in ["innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function", "srcdoc"]:
        assert sink not in code, sink
    assert not re.search(r"setTimeout\(\s*['\"`]", code)  # a string timer is an eval
    assert "localStorage" not in code  # the token lives for the tab only
