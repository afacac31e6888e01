"""HTML to readable text for `web_fetch`, with the standard library's parser.

The model wants the words, not the markup: scripts, styles and other invisible
parts are dropped, block elements become line breaks, headings and list items
keep a light Markdown shape, and whitespace is collapsed.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

from typing_extensions import override

__all__ = ["html_to_text"]

_SKIPPED_TAGS = frozenset({"script", "style", "noscript", "template", "svg"})
_HEADINGS = {f"h{level}": level for level in range(1, 7)}
_LIST_TAGS = frozenset({"ul", "ol"})  # spaced when outermost, so nested lists stay tight
_SPACED_TAGS = frozenset({"p", "pre", "blockquote", "table", "dl", "figure", "section", "article", *_HEADINGS})
_BLOCK_TAGS = _SPACED_TAGS | {
    "address", "aside", "br", "caption", "dd", "details", "div", "dt", "fieldset", "figcaption", "footer", "form",
    "header", "hr", "li", "main", "nav", "summary", "tr",
}  # fmt: skip


def html_to_text(html: str) -> str:
    """Readable text of an HTML page: the title first, then blocks on their own lines, headings as `#`, items as `-`."""
    parser = _TextExtractor()
    parser.feed(html)
    parser.close()
    body = "\n".join(parser.lines()).strip("\n")
    return "\n\n".join(part for part in (parser.title, body) if part)


class _TextExtractor(HTMLParser):
    """Collects text line by line; a block element ends the line, a paragraph-like one adds a blank line."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.title = ""
        self._lines: list[str] = []
        self._inline: list[str] = []
        self._prefix = ""
        self._skipping = 0
        self._in_title = False
        self._pre = 0
        self._lists = 0

    @override
    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIPPED_TAGS or self._skipping:
            self._skipping += tag in _SKIPPED_TAGS
            return
        if tag == "title":
            self._in_title = not self.title  # the first one is the page's title
        if tag in _BLOCK_TAGS or tag in _LIST_TAGS:
            self._break(spaced=tag in _SPACED_TAGS or (tag in _LIST_TAGS and self._lists == 0))
        if tag in _HEADINGS:
            self._prefix = "#" * _HEADINGS[tag] + " "
        elif tag == "li":
            self._prefix = "  " * max(self._lists - 1, 0) + "- "
        elif tag in ("td", "th") and "".join(self._inline).strip():
            self._inline.append(" | ")
        self._lists += tag in _LIST_TAGS
        self._pre += tag == "pre"

    @override
    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED_TAGS or self._skipping:
            self._skipping = max(self._skipping - (tag in _SKIPPED_TAGS), 0)
            return
        if tag == "title":
            self._in_title = False
        if tag in _BLOCK_TAGS or tag in _LIST_TAGS:
            self._break(spaced=tag in _SPACED_TAGS or (tag in _LIST_TAGS and self._lists == 1))
        if tag == "li" or tag in _HEADINGS:
            self._prefix = ""
        self._lists = max(self._lists - (tag in _LIST_TAGS), 0)
        self._pre = max(self._pre - (tag == "pre"), 0)

    @override
    def handle_data(self, data: str) -> None:
        if self._skipping:
            return
        if self._in_title:
            self.title = " ".join(f"{self.title} {data}".split())
        else:
            self._inline.append(data if self._pre else re.sub(r"\s+", " ", data))

    def lines(self) -> list[str]:
        """The text's lines, with runs of blank lines squeezed to one."""
        self._break(spaced=False)
        squeezed: list[str] = []
        for line in self._lines:
            if line or (squeezed and squeezed[-1]):
                squeezed.append(line)
        return squeezed

    def _break(self, *, spaced: bool) -> None:
        text = "".join(self._inline)
        self._inline = []
        if self._pre:
            self._lines.extend(line.rstrip() for line in text.strip("\n").split("\n"))
        elif text := " ".join(text.split()):
            self._lines.append(self._prefix + text)
            self._prefix = ""
        if spaced:
            self._lines.append("")
