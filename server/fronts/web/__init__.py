"""The live session view at `/ui`: one HTML page, a stylesheet and two scripts, shipped in the package.

`view.js` is the session view itself, over a backend; `page.js` is the page around it (log in, the session list)
and the backend that reads the REST API. The MCP App (`server.fronts.mcp.app`) inlines the same page and view
with `bridge.js`, a backend that calls the MCP tools through the host.

Trust model. The page's files hold no data and no secret, so they are served without the token (the page must
load before anyone can log in); everything the page shows comes from `/v1`, which needs the token. The script
keeps the token in the tab's `sessionStorage` and sends it as `Authorization: Bearer` on every request, never
in a URL (URLs end up in history, logs and `Referer`s). The event stream is read with `fetch` for the same
reason: `EventSource` cannot send headers, and a stream ticket would be one more credential to mint and expire.

Every response carries a strict Content-Security-Policy: scripts only from this origin (no inline script, no
`eval`), images from this origin or the `blob:` URLs the script makes for file previews, requests only to this
origin, and no framing. The script renders every value with `textContent`, so a tool result holding HTML is
shown as text even where the policy would not stop it.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.resources import files

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

__all__ = ["PUBLIC_PATHS", "SECURITY_HEADERS", "app_document", "web_routes"]

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "cache-control": "no-cache",  # a new server version's script is picked up on the next load
}


@dataclass(frozen=True)
class _Asset:
    name: str
    media_type: str


ASSETS = {
    "/ui": _Asset("index.html", "text/html; charset=utf-8"),
    "/ui/view.js": _Asset("view.js", "text/javascript; charset=utf-8"),
    "/ui/page.js": _Asset("page.js", "text/javascript; charset=utf-8"),
    "/ui/app.css": _Asset("app.css", "text/css; charset=utf-8"),
}
PUBLIC_PATHS = frozenset({*ASSETS, "/ui/"})
"""The paths `BearerAuth` lets through without the token: the page's own files, which hold no data."""


def _asset_route(path: str, asset: _Asset) -> Route:
    body = (files(__name__) / "static" / asset.name).read_bytes()  # small; read once, at start-up

    async def serve(_request: Request) -> Response:
        return Response(body, media_type=asset.media_type, headers=SECURITY_HEADERS)

    return Route(path, serve, methods=["GET", "HEAD"])


async def _to_page(_request: Request) -> Response:
    return RedirectResponse("/ui", status_code=308)


def web_routes() -> list[BaseRoute]:
    """The page and its files, and `/ui/` sent to `/ui`."""
    return [*(_asset_route(path, asset) for path, asset in ASSETS.items()), Route("/ui/", _to_page)]


_STYLESHEET = '<link rel="stylesheet" href="/ui/app.css">'
_PAGE_SCRIPTS = '<script src="/ui/view.js" defer></script>\n<script src="/ui/page.js" defer></script>\n'


def _static(name: str) -> str:
    return (files(__name__) / "static" / name).read_text(encoding="utf-8")


def app_document() -> str:
    """The page as one self-contained document for an MCP App: the stylesheet and the view inlined, with
    `bridge.js` (tool calls through the host) in place of `page.js` (the REST API). An app's document is loaded
    from a string, so it has no server to fetch its files from."""
    page = _static("index.html")
    script = _static("view.js") + "\n" + _static("bridge.js")
    if _STYLESHEET not in page or _PAGE_SCRIPTS not in page or "</script" in script.lower():
        raise RuntimeError("index.html or the scripts changed shape; update app_document() with them")
    page = page.replace(_STYLESHEET, "<style>\n" + _static("app.css") + "</style>").replace(_PAGE_SCRIPTS, "")
    return page.replace("</body>", "<script>\n" + script + "</script>\n</body>")
