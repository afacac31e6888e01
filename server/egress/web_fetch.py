"""web_fetch: the model's URL fetch, run on the host on the model's behalf.

Trust model: the URL comes from the model, which may have read it on an attacker's page, and the request leaves
from the host, outside the sandbox, with the host's place in the network. So the host must not become the model's
way into that network (SSRF). Every hop, the first URL and each redirect, is checked before a byte is sent:

1. the scheme is http or https;
2. the host name is resolved once and every address it resolves to must be public: not loopback, private (RFC 1918,
   ULA), link-local (cloud metadata answers at 169.254.169.254), shared (CGNAT), multicast, reserved or unspecified,
   also when wrapped in IPv6 (IPv4-mapped, 6to4, NAT64); unless the policy allows private addresses, or the
   address lies in one of its `allowed_networks`;
3. the connection goes to a checked address, never to the name: the request is sent to the IP with the original
   `Host` header and TLS server name, so a DNS answer that changes between check and connect (rebinding) is never
   used.

Redirects are followed here, not by httpx, so the checks run on every hop. Requests go straight to an httpx2
transport: no client-side cookie jar carries cookies between sites sharing an address, and no proxy variable
sends the request elsewhere. TLS trusts what httpx2 trusts by default (SSL_CERT_FILE / SSL_CERT_DIR, else the
system store). One deadline bounds the whole fetch, DNS to last byte across redirects.

A failure reaches the model as `WebFetchError`; its `code` is one of the Messages API's web_fetch error codes.
"""

from __future__ import annotations

import codecs
import functools
import ipaddress
import re
import socket
import ssl
import zlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import anyio
import anyio.to_thread
import httpx2

from server.core.version import __version__
from server.egress.addresses import IPAddress, address_class, unwrapped
from server.egress.html_text import html_to_text

__all__ = ["FetchErrorCode", "FetchPolicy", "FetchResult", "Resolver", "WebFetchError", "resolve_host", "web_fetch"]

DEFAULT_MAX_BYTES = 5 * 1024 * 1024
"""Response bytes read, on the wire and again after decompression: a long article is well under 1 MiB."""

DEFAULT_TIMEOUT_S = 20.0
"""The whole fetch, redirects included: past this the model is better off trying another source."""

DEFAULT_MAX_TEXT_CHARS = 100_000
"""About 25k tokens, a large share of a context window for one page."""

DEFAULT_MAX_REDIRECTS = 5

MAX_URL_CHARS = 8192
"""Longer than most servers accept (8 KiB is the common ceiling): such a URL is a mistake."""

FetchErrorCode = Literal[
    "invalid_input", "url_too_long", "url_not_allowed", "url_not_accessible", "unsupported_content_type"
]
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]
"""Resolves (host, port) to IP address strings, most preferred first."""

_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_HEADERS = {
    "User-Agent": f"managed-sessions-web-fetch/{__version__}",
    "Accept": "text/html,application/xhtml+xml,text/plain;q=0.9,application/json;q=0.9,*/*;q=0.5",
    "Accept-Encoding": "gzip, deflate",
}
_TEXT_TYPES = frozenset(
    {"application/json", "application/xml", "application/javascript", "application/x-javascript",
     "application/ecmascript", "application/x-ndjson", "application/yaml", "application/x-yaml", "application/toml",
     "application/x-sh", "application/sql", "application/graphql"}
)  # fmt: skip
_UNTYPED = frozenset({"", "application/octet-stream", "binary/octet-stream"})
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.IGNORECASE)


class WebFetchError(Exception):
    """A fetch that failed. `str(error)` is the message for the model; `code` says which kind of failure."""

    def __init__(self, code: FetchErrorCode, detail: str) -> None:
        super().__init__(f"web_fetch: {code}: {detail}")
        self.code: FetchErrorCode = code


@dataclass(frozen=True)
class FetchPolicy:
    """What a fetch may reach and how much it may take.

    Attributes:
        max_bytes: response bytes read (on the wire, and after decompression); the rest is cut off.
        timeout_s: deadline for the whole fetch, redirects included.
        allow_private: reach any address, private ones included (a trusted, local setup only).
        allowed_networks: CIDR blocks exempt from the private-address refusal, e.g. an internal docs server.
        max_redirects: redirects followed before giving up.
        max_text_chars: characters of text returned; the rest is cut off with a marker.
    """

    max_bytes: int = DEFAULT_MAX_BYTES
    timeout_s: float = DEFAULT_TIMEOUT_S
    allow_private: bool = False
    allowed_networks: tuple[str, ...] = ()
    max_redirects: int = DEFAULT_MAX_REDIRECTS
    max_text_chars: int = DEFAULT_MAX_TEXT_CHARS

    def __post_init__(self) -> None:
        if self.max_bytes < 1 or self.max_text_chars < 1 or self.timeout_s <= 0 or self.max_redirects < 0:
            raise ValueError(f"limits must be positive: {self!r}")
        for network in self.allowed_networks:
            ipaddress.ip_network(network)  # a ValueError names the bad entry


@dataclass(frozen=True)
class FetchResult:
    """A fetched page as text.

    Attributes:
        text: the page as readable text (HTML converted), with a marker where it was cut off.
        url: the URL finally fetched, after redirects.
        status: the final HTTP status; error pages are returned too, so the model can read them.
        content_type: the media type, lower case, without parameters ("" when the server sent none).
        truncated: whether the body or the text was cut off.
    """

    text: str
    url: str
    status: int
    content_type: str
    truncated: bool


async def web_fetch(url: str, policy: FetchPolicy, *, resolve: Resolver | None = None) -> FetchResult:
    """Fetches `url` and returns it as text, checking every hop against `policy` (see the module docstring).

    Args:
        url: an http or https URL, as the model gave it.
        policy: the limits and the reachable addresses and domains.
        resolve: the name resolver; `resolve_host` (the system's) unless a test injects one.

    Raises:
        WebFetchError: the URL was refused or could not be fetched as text; the message is for the model.
    """
    if len(url) > MAX_URL_CHARS:
        raise WebFetchError("url_too_long", f"the URL is {len(url):,} characters; the limit is {MAX_URL_CHARS:,}")
    target = _parse_url(url)
    try:
        with anyio.fail_after(policy.timeout_s):
            return await _follow(target, policy, resolve or resolve_host)
    except TimeoutError:
        raise WebFetchError("url_not_accessible", f"{url!r}: timed out after {policy.timeout_s:g} s") from None


async def resolve_host(host: str, port: int) -> list[str]:
    """The addresses `host` resolves to, in the system's order of preference."""
    infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


async def _follow(url: httpx2.URL, policy: FetchPolicy, resolve: Resolver) -> FetchResult:
    context = await anyio.to_thread.run_sync(_ssl_context)
    # Pooled connections are keyed by address: a reused one would carry the next hop under the last hop's TLS name.
    limits = httpx2.Limits(max_keepalive_connections=0)
    async with httpx2.AsyncHTTPTransport(verify=context, limits=limits) as transport:
        for _ in range(policy.max_redirects + 1):
            try:
                response = await _open(transport, url, policy, resolve)
                try:
                    location = response.headers.get("location") if response.status_code in _REDIRECT_STATUSES else None
                    if location is None:
                        return await _read(response, url, policy)
                finally:
                    await response.aclose()
                next_url = url.join(location)
            except (httpx2.HTTPError, httpx2.InvalidURL) as exc:
                raise WebFetchError("url_not_accessible", f"{str(url)!r}: {str(exc) or type(exc).__name__}") from exc
            url = _parse_url(str(next_url))
    raise WebFetchError("url_not_accessible", f"{str(url)!r}: more than {policy.max_redirects} redirects")


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    return httpx2.create_ssl_context()  # reads CA files: built once, in a worker thread


def _parse_url(url: str) -> httpx2.URL:
    try:
        parsed = httpx2.URL(url.strip())
    except httpx2.InvalidURL as exc:
        raise WebFetchError("invalid_input", f"{url!r} is not a valid URL: {exc}") from exc
    if parsed.scheme not in ("http", "https"):
        raise WebFetchError("invalid_input", f"{url!r}: only http and https URLs can be fetched")
    if not parsed.raw_host:
        raise WebFetchError("invalid_input", f"{url!r} has no host")
    return parsed.copy_with(fragment=None)


def _hostname(url: httpx2.URL) -> str:
    return url.raw_host.decode("ascii").rstrip(".").lower()


async def _open(
    transport: httpx2.AsyncHTTPTransport, url: httpx2.URL, policy: FetchPolicy, resolve: Resolver
) -> httpx2.Response:
    """Sends the GET for one hop to the first checked address that accepts a connection."""
    port = url.port or (443 if url.scheme == "https" else 80)
    addresses = await _checked_addresses(_hostname(url), port, policy, resolve)
    failure: httpx2.ConnectError | None = None
    for address in addresses:
        try:
            return await transport.handle_async_request(_pinned_request(url, address))
        except httpx2.ConnectError as exc:
            failure = exc
    raise WebFetchError("url_not_accessible", f"{str(url)!r}: could not connect: {failure}")


def _pinned_request(url: httpx2.URL, address: str) -> httpx2.Request:
    """A request sent to `address` that the server sees as one for `url`'s host (Host header and TLS SNI)."""
    extensions = {"sni_hostname": _hostname(url)} if url.scheme == "https" else {}
    headers = {**_HEADERS, "Host": url.netloc.decode("ascii")}
    return httpx2.Request("GET", url.copy_with(host=address), headers=headers, extensions=extensions)


async def _checked_addresses(host: str, port: int, policy: FetchPolicy, resolve: Resolver) -> list[str]:
    """The addresses `host` resolves to, all of them reachable under `policy`, or a `WebFetchError`."""
    try:
        addresses = [str(ipaddress.ip_address(host))]
    except ValueError:
        try:
            addresses = list(await resolve(host, port))
        except OSError as exc:
            raise WebFetchError("url_not_accessible", f"{host!r}: could not resolve the name: {exc}") from exc
    if not addresses:
        raise WebFetchError("url_not_accessible", f"{host!r}: the name resolves to no address")
    for address in addresses:
        kind = _refusal(ipaddress.ip_address(address), policy)
        if kind is not None:
            shown = repr(host) if host == address else f"{host!r}, which resolves to {address},"
            raise WebFetchError("url_not_allowed", f"{shown} is a {kind} address; only public addresses can be fetched")
    return addresses


def _refusal(address: IPAddress, policy: FetchPolicy) -> str | None:
    """Why `address` may not be reached under `policy` (the kind of address), or None."""
    if policy.allow_private:
        return None
    actual = unwrapped(address)
    if any(actual in ipaddress.ip_network(network) for network in policy.allowed_networks):
        return None
    return address_class(actual)


async def _read(response: httpx2.Response, url: httpx2.URL, policy: FetchPolicy) -> FetchResult:
    """The final response's body as text, within the policy's limits."""
    media_type = response.headers.get("content-type", "").partition(";")[0].strip().lower()
    kind = _text_kind(media_type)
    if kind is None and media_type not in _UNTYPED:
        raise _not_text(url, media_type)
    body, truncated = await _read_body(response, policy.max_bytes)
    if kind is None:  # untyped: text unless it looks binary
        if b"\x00" in body[:8192]:
            raise _not_text(url, media_type or "content with no type that looks binary")
        kind = "html" if re.match(rb"\s*<(!doctype html|html)", body[:1024], re.IGNORECASE) else "text"
    charset = response.charset_encoding
    text = await anyio.to_thread.run_sync(_as_text, body, charset, kind, abandon_on_cancel=True)
    text, clipped = _clip(text, policy, body_truncated=truncated)
    return FetchResult(
        text=text, url=str(url), status=response.status_code, content_type=media_type, truncated=truncated or clipped
    )


def _text_kind(media_type: str) -> Literal["html", "text"] | None:
    if media_type in ("text/html", "application/xhtml+xml"):
        return "html"
    if media_type.startswith("text/") or media_type in _TEXT_TYPES or media_type.endswith(("+json", "+xml")):
        return "text"
    return None


def _not_text(url: httpx2.URL, what: str) -> WebFetchError:
    return WebFetchError(
        "unsupported_content_type", f"{str(url)!r} returned {what}, which is not text; web_fetch returns text only"
    )


async def _read_body(response: httpx2.Response, max_bytes: int) -> tuple[bytes, bool]:
    """Up to `max_bytes` of the body, decompressed, and whether there was more; stops reading at the limit."""
    inflater = _Inflater(response.headers.get("content-encoding", ""))
    body = bytearray()
    received = 0
    try:
        async for chunk in response.aiter_raw():
            received += len(chunk)
            if received > max_bytes:
                chunk = chunk[: len(chunk) - (received - max_bytes)]
            body += inflater.feed(chunk, max_bytes - len(body) + 1)  # one byte over the limit shows there is more
            if received > max_bytes or len(body) > max_bytes:
                return bytes(body[:max_bytes]), True
        body += inflater.finish()
    except zlib.error as exc:
        raise WebFetchError("url_not_accessible", f"the response body is not valid compressed data: {exc}") from exc
    return bytes(body[:max_bytes]), len(body) > max_bytes


class _Inflater:
    """Undoes a Content-Encoding without ever producing more than asked for (a small gzip can inflate 1000-fold)."""

    def __init__(self, encoding: str) -> None:
        encoding = encoding.strip().lower()
        if encoding not in ("", "identity", "gzip", "x-gzip", "deflate"):
            raise WebFetchError("url_not_accessible", f"the response uses an unsupported encoding {encoding!r}")
        # MAX_WBITS | 32 accepts both gzip and zlib framing, which servers mix up for "deflate".
        self._zlib = None if encoding in ("", "identity") else zlib.decompressobj(zlib.MAX_WBITS | 32)

    def feed(self, chunk: bytes, limit: int) -> bytes:
        return chunk if self._zlib is None else self._zlib.decompress(chunk, limit)

    def finish(self) -> bytes:
        return b"" if self._zlib is None else self._zlib.flush()


def _as_text(body: bytes, charset: str | None, kind: Literal["html", "text"]) -> str:
    """The body as text; run in a worker thread, as converting a 5 MiB page takes seconds."""
    text = _decode(body, charset, kind)
    return html_to_text(text) if kind == "html" else text


def _decode(body: bytes, charset: str | None, kind: Literal["html", "text"]) -> str:
    if body.startswith(codecs.BOM_UTF8):
        return body[len(codecs.BOM_UTF8) :].decode("utf-8", errors="replace")
    meta = _META_CHARSET.search(body[:4096]) if kind == "html" and not charset else None
    encoding = charset or (meta.group(1).decode("ascii") if meta else "utf-8")
    try:
        codecs.lookup(encoding)
    except LookupError:
        encoding = "utf-8"
    return body.decode(encoding, errors="replace")


def _clip(text: str, policy: FetchPolicy, *, body_truncated: bool) -> tuple[str, bool]:
    """The text cut to the policy's length, with a visible marker for each limit reached."""
    notes = []
    if len(text) > policy.max_text_chars:
        notes.append(f"[text truncated: showing the first {policy.max_text_chars:,} of {len(text):,} characters]")
        text = text[: policy.max_text_chars]
    if body_truncated:
        notes.append(f"[content truncated: only the first {policy.max_bytes:,} bytes of the response were read]")
    return (f"{text}\n\n" + "\n".join(notes), True) if notes else (text, False)
