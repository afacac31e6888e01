"""web_fetch against a real HTTP server on 127.0.0.1, started per module in a thread.

Refused URLs (private addresses, blocked domains, bad schemes) are refused before any connection, so the tests
that name other addresses send no traffic; the ones that do reach the server check what it received.
"""

from __future__ import annotations

import contextlib
import datetime
import gzip
import json
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import cast
from urllib.parse import parse_qs

import anyio
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from server.egress.web_fetch import FetchPolicy, FetchResult, Resolver, WebFetchError, _refusal, _ssl_context, web_fetch

pytestmark = pytest.mark.anyio

PRIVATE_OK = FetchPolicy(allow_private=True, timeout_s=5)
"""The test server is on loopback, which the default policy refuses."""

ONLY_127_0_0_1 = FetchPolicy(allowed_networks=("127.0.0.1/32",), timeout_s=5)
"""Reaches the test server and nothing else private: for checks on later hops."""

PAGE = b"""<!doctype html><html><head><title>The   Title</title>
<style>body { color: red }</style><script>var x = "<p>hidden</p>";</script></head>
<body><noscript>enable javascript</noscript><template><p>template</p></template>
<h1>Main heading</h1>
<p>First   paragraph with a <a href="/x">link text</a> and <b>bold</b>.<br>Second line &amp; entity.</p>
<ul><li>one</li><li>two<ul><li>nested</li></ul></li></ul>
<h2>Sub</h2><pre>
  code
    indented</pre>
<table><tr><th>a</th><th>b</th></tr><tr><td>1</td><td>2</td></tr></table>
<div>caf\xc3\xa9</div>
</body></html>"""

PAGE_TEXT = """The Title

# Main heading

First paragraph with a link text and bold.
Second line & entity.

- one
- two
  - nested

## Sub

  code
    indented

a | b
1 | 2

café"""

BIG_TEXT = b"0123456789abcdef\n" * 12_000  # 204,000 bytes
GZIPPED = gzip.compress(b"compressible line of text\n" * 100_000)  # 2.6 MB inflated, a few KiB on the wire
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(4096)

_Reply = tuple[int, dict[str, str], bytes]


@dataclass
class Site:
    """The test server's state: what it was asked for, and a gate the slow page waits on."""

    port: int
    scheme: str = "http"
    requests: list[tuple[str, str]] = field(default_factory=list)  # (path, Host header)
    server_names: list[str | None] = field(default_factory=list)  # TLS SNI, on the https server
    release: threading.Event = field(default_factory=threading.Event)
    slow_answered: threading.Event = field(default_factory=threading.Event)
    """Set once the slow page has stopped waiting and sends its reply."""

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"{self.scheme}://{host}:{self.port}{path}"

    @property
    def paths(self) -> list[str]:
        return [path for path, _ in self.requests]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    site: Site


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        site = cast(_Server, self.server).site
        host = self.headers.get("Host", "")
        site.requests.append((self.path, host))
        path, _, query = self.path.partition("?")
        if path == "/endless":
            self._endless()
            return
        status, headers, body = _route(site, path, parse_qs(query), host)
        self.send_response(status)
        for name, value in {"Content-Length": str(len(body)), **headers}.items():
            self.send_header(name, value)
        self.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client stopped at its size limit
            self.wfile.write(body)

    def _endless(self) -> None:
        """A body with no length that goes on until the client hangs up (bounded at 1 GiB)."""
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            for _ in range(16_384):
                self.wfile.write(b"x" * 65_536)

    def log_message(self, format: str, *args: object) -> None:
        pass


def _route(site: Site, path: str, query: dict[str, list[str]], host: str) -> _Reply:
    html, text = {"Content-Type": "text/html; charset=utf-8"}, {"Content-Type": "text/plain"}
    if path.startswith("/redirect/"):
        left = int(path.rsplit("/", 1)[1])
        return (302, {"Location": f"/redirect/{left - 1}"}, b"") if left else (200, text, b"arrived")
    routes: dict[str, Callable[[], _Reply]] = {
        "/page": lambda: (200, html, PAGE),
        "/data.json": lambda: (200, {"Content-Type": "application/json"}, b'{"name": "ms", "items": [1, 2]}'),
        "/big": lambda: (200, text, BIG_TEXT),
        "/gzip": lambda: (200, {**text, "Content-Encoding": "gzip"}, GZIPPED),
        "/latin1": lambda: (200, {"Content-Type": "text/plain; charset=iso-8859-1"}, "café".encode("latin-1")),
        "/host": lambda: (200, text, host.encode()),
        "/missing": lambda: (404, html, b"<html><body><p>Not here</p></body></html>"),
        "/image.png": lambda: (200, {"Content-Type": "image/png"}, PNG),
        "/untyped-text": lambda: (200, {}, b"plain words"),
        "/untyped-binary": lambda: (200, {"Content-Type": "application/octet-stream"}, PNG),
        "/loop": lambda: (302, {"Location": "/loop"}, b""),
        "/to": lambda: (302, {"Location": query["location"][0]}, b""),
        "/slow": lambda: _slow(site, text),
    }
    return routes.get(path, lambda: (404, text, b"no such page"))()


def _slow(site: Site, headers: dict[str, str]) -> _Reply:
    """Answers only once the test releases it (or after 10 s, a bound for a test that forgets)."""
    released = site.release.wait(10)
    site.slow_answered.set()
    return 200, headers, b"late" if released else b"never released"


@contextlib.contextmanager
def serving(tls: ssl.SSLContext | None = None) -> Iterator[_Server]:
    """An HTTP server on 127.0.0.1 (HTTPS with `tls`) in a thread, for as long as the block runs."""
    httpd = _Server(("127.0.0.1", 0), _Handler)
    httpd.site = Site(port=httpd.socket.getsockname()[1], scheme="https" if tls else "http")
    if tls is not None:
        tls.sni_callback = lambda _socket, name, _context: httpd.site.server_names.append(name)
        httpd.socket = tls.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def fresh_site(server: _Server) -> Iterator[Site]:
    server.site = Site(port=server.site.port, scheme=server.site.scheme)
    yield server.site
    server.site.release.set()  # lets a handler still waiting on the slow page finish


@pytest.fixture(scope="module")
def server() -> Iterator[_Server]:
    with serving() as httpd:
        yield httpd


@pytest.fixture
def site(server: _Server) -> Iterator[Site]:
    yield from fresh_site(server)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for pinned.example: (certificate file, key file)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pinned.example")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("pinned.example")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    (folder / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return folder / "cert.pem", folder / "key.pem"


@pytest.fixture(scope="module")
def tls_server(certificate: tuple[Path, Path]) -> Iterator[_Server]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    with serving(context) as httpd:
        yield httpd


@pytest.fixture
def tls_site(tls_server: _Server) -> Iterator[Site]:
    yield from fresh_site(tls_server)


@pytest.fixture
def trusting_the_test_certificate(certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The trust store is the test certificate alone (httpx2 reads SSL_CERT_FILE; web_fetch caches the context)."""
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
    _ssl_context.cache_clear()
    yield
    _ssl_context.cache_clear()


def resolving(names: dict[str, list[str]]) -> Resolver:
    """A resolver that knows only `names`: any other name is a bug in the test."""

    async def resolve(host: str, port: int) -> list[str]:
        return names[host]

    return resolve


async def fetch(url: str, policy: FetchPolicy = PRIVATE_OK, resolve: Resolver | None = None) -> FetchResult:
    with anyio.fail_after(10):
        return await web_fetch(url, policy, resolve=resolve)


async def refusal(url: str, policy: FetchPolicy = PRIVATE_OK, resolve: Resolver | None = None) -> WebFetchError:
    with pytest.raises(WebFetchError) as caught:
        await fetch(url, policy, resolve)
    assert str(caught.value).startswith(f"web_fetch: {caught.value.code}: ")
    return caught.value


async def test_an_html_page_becomes_readable_text_with_its_title_first(site: Site) -> None:
    result = await fetch(site.url("/page"))

    assert result.text == PAGE_TEXT
    assert (result.status, result.content_type, result.truncated) == (200, "text/html", False)
    assert result.url == site.url("/page")


async def test_json_is_returned_as_it_came(site: Site) -> None:
    result = await fetch(site.url("/data.json"))

    assert json.loads(result.text) == {"name": "ms", "items": [1, 2]}
    assert result.content_type == "application/json"


async def test_text_is_decoded_with_the_charset_the_server_names(site: Site) -> None:
    assert (await fetch(site.url("/latin1"))).text == "café"


async def test_an_error_page_is_returned_with_its_status(site: Site) -> None:
    result = await fetch(site.url("/missing"))

    assert (result.status, result.text) == (404, "Not here")


async def test_a_body_over_the_size_limit_is_cut_off_and_marked(site: Site) -> None:
    result = await fetch(site.url("/big"), FetchPolicy(allow_private=True, max_bytes=1000))

    text, _, marker = result.text.partition("\n\n[")
    assert text.encode() == BIG_TEXT[:1000]
    assert marker == "content truncated: only the first 1,000 bytes of the response were read]"
    assert result.truncated


async def test_a_body_that_never_ends_is_read_only_up_to_the_limit(site: Site) -> None:
    result = await fetch(site.url("/endless"), FetchPolicy(allow_private=True, max_bytes=100_000))

    assert result.truncated
    assert result.text.startswith("x" * 100_000 + "\n\n[content truncated")


async def test_a_compressed_body_is_inflated_only_up_to_the_size_limit(site: Site) -> None:
    whole = await fetch(site.url("/gzip"), FetchPolicy(allow_private=True, max_text_chars=10**7))
    capped = await fetch(site.url("/gzip"), FetchPolicy(allow_private=True, max_bytes=10_000))

    assert (whole.text, whole.truncated) == (gzip.decompress(GZIPPED).decode(), False)
    assert capped.truncated
    assert capped.text.partition("\n\n[content truncated")[0] == whole.text[:10_000]


async def test_text_over_the_character_limit_is_cut_off_and_marked(site: Site) -> None:
    result = await fetch(site.url("/big"), FetchPolicy(allow_private=True, max_text_chars=50))

    assert result.text == BIG_TEXT[:50].decode() + "\n\n[text truncated: showing the first 50 of 204,000 characters]"
    assert result.truncated


async def test_a_server_slower_than_the_time_limit_times_out(site: Site) -> None:
    error = await refusal(site.url("/slow"), FetchPolicy(allow_private=True, timeout_s=0.2))

    assert error.code == "url_not_accessible"
    assert str(error) == f"web_fetch: url_not_accessible: {site.url('/slow')!r}: timed out after 0.2 s"
    assert not site.slow_answered.is_set()  # it gave up while the page was still holding back its reply


async def test_a_redirect_chain_is_followed_to_the_end(site: Site) -> None:
    result = await fetch(site.url("/redirect/3"), ONLY_127_0_0_1)

    assert (result.text, result.url) == ("arrived", site.url("/redirect/0"))
    assert site.paths == ["/redirect/3", "/redirect/2", "/redirect/1", "/redirect/0"]


async def test_redirects_beyond_the_limit_are_refused(site: Site) -> None:
    limited = FetchPolicy(allow_private=True, max_redirects=2)

    assert (await fetch(site.url("/redirect/2"), limited)).text == "arrived"
    assert (await refusal(site.url("/redirect/3"), limited)).code == "url_not_accessible"
    assert "more than 5 redirects" in str(await refusal(site.url("/loop")))


@pytest.mark.parametrize(
    ("target", "kind"),
    [
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://10.0.0.1/admin", "private"),
        ("http://[::ffff:127.0.0.2]/", "loopback"),
    ],
)
async def test_a_redirect_to_a_private_address_is_refused_before_it_is_followed(
    site: Site, target: str, kind: str
) -> None:
    error = await refusal(site.url(f"/to?location={target}"), ONLY_127_0_0_1)

    assert error.code == "url_not_allowed"
    assert f"is a {kind} address" in str(error)
    assert site.paths == [f"/to?location={target}"]


async def test_loopback_is_refused_by_default_before_any_request(site: Site) -> None:
    by_address = await refusal(site.url("/page"), FetchPolicy())
    by_name = await refusal(site.url("/page", host="localhost"), FetchPolicy())

    assert str(by_address) == (
        "web_fetch: url_not_allowed: '127.0.0.1' is a loopback address; only public addresses can be fetched"
    )
    assert by_name.code == "url_not_allowed"
    assert "'localhost', which resolves to" in str(by_name)
    assert site.requests == []


async def test_loopback_is_reached_when_private_addresses_are_allowed(site: Site) -> None:
    assert (await fetch(site.url("/redirect/0"), FetchPolicy(allow_private=True))).text == "arrived"
    assert (await fetch(site.url("/redirect/0", host="localhost"), FetchPolicy(allow_private=True))).text == "arrived"


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("http://10.1.2.3/", "private"),
        ("http://172.16.5.4/", "private"),
        ("http://192.168.1.1/", "private"),
        ("http://100.64.0.1/", "shared (CGNAT)"),
        ("http://169.254.169.254/", "link-local"),
        ("http://0.0.0.0/", "unspecified"),
        ("http://224.0.0.1/", "multicast"),
        ("http://240.0.0.1/", "private"),
        ("http://2130706433/", "loopback"),
        ("http://[::1]/", "loopback"),
        ("http://[::]/", "unspecified"),
        ("http://[fe80::1]/", "link-local"),
        ("http://[fd12:3456::1]/", "private"),
        ("http://[fec0::1]/", "site-local"),
        ("http://[ff02::1]/", "multicast"),
        ("http://[::ffff:10.0.0.1]/", "private"),
        ("http://[::ffff:169.254.169.254]/", "link-local"),
        ("http://[2002:a00:1::]/", "private"),  # 6to4 for 10.0.0.1
        ("https://[64:ff9b::a9fe:a9fe]/", "link-local"),  # NAT64 for 169.254.169.254
    ],
)
async def test_non_public_addresses_are_refused_in_every_form(url: str, kind: str) -> None:
    error = await refusal(url, FetchPolicy())

    assert error.code == "url_not_allowed"
    assert f"is a {kind} address" in str(error)


@pytest.mark.parametrize("address", ["8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8", "2002:808:808::"])
def test_public_addresses_pass_the_address_check_also_when_wrapped_in_ipv6(address: str) -> None:
    import ipaddress

    assert _refusal(ipaddress.ip_address(address), FetchPolicy()) is None


async def test_a_name_with_any_private_address_is_refused(site: Site) -> None:
    resolve = resolving({"mixed.example": ["127.0.0.1", "10.1.2.3"]})

    error = await refusal(site.url("/page", host="mixed.example"), ONLY_127_0_0_1, resolve)

    assert "'mixed.example', which resolves to 10.1.2.3, is a private address" in str(error)
    assert site.requests == []


async def test_the_connection_goes_to_the_checked_address_with_the_original_host(site: Site) -> None:
    resolve = resolving({"pinned.example": ["127.0.0.1"]})

    result = await fetch(site.url("/host", host="pinned.example"), ONLY_127_0_0_1, resolve)

    assert result.text == f"pinned.example:{site.port}"
    assert result.url == site.url("/host", host="pinned.example")


async def test_an_address_that_refuses_the_connection_falls_back_to_the_next(site: Site) -> None:
    resolve = resolving({"two.example": ["::1", "127.0.0.1"]})  # the server listens on 127.0.0.1 only

    assert (await fetch(site.url("/redirect/0", host="two.example"), resolve=resolve)).text == "arrived"


@pytest.mark.parametrize(
    "url", ["ftp://127.0.0.1/file", "file:///etc/passwd", "javascript:alert(1)", "not a url", "http://", "http://[zz]/"]
)
async def test_urls_that_are_not_http_or_https_are_refused(url: str) -> None:
    assert (await refusal(url)).code == "invalid_input"


async def test_a_redirect_to_another_scheme_is_refused(site: Site) -> None:
    assert (await refusal(site.url("/to?location=file:///etc/passwd"))).code == "invalid_input"


async def test_an_overlong_url_is_refused() -> None:
    assert (await refusal("http://127.0.0.1/" + "a" * 9000)).code == "url_too_long"


async def test_binary_content_is_refused_with_its_type(site: Site) -> None:
    error = await refusal(site.url("/image.png"))

    assert str(error) == (
        f"web_fetch: unsupported_content_type: {site.url('/image.png')!r} returned image/png, "
        "which is not text; web_fetch returns text only"
    )


async def test_untyped_content_is_text_unless_it_looks_binary(site: Site) -> None:
    assert (await fetch(site.url("/untyped-text"))).text == "plain words"
    assert (await refusal(site.url("/untyped-binary"))).code == "unsupported_content_type"


async def test_tls_goes_to_the_checked_address_under_the_original_server_name(
    tls_site: Site, trusting_the_test_certificate: None
) -> None:
    resolve = resolving({"pinned.example": ["127.0.0.1"]})

    result = await fetch(tls_site.url("/host", host="pinned.example"), ONLY_127_0_0_1, resolve)

    assert result.text == f"pinned.example:{tls_site.port}"
    assert tls_site.server_names == ["pinned.example"]


async def test_a_certificate_the_trust_store_does_not_vouch_for_is_refused(tls_site: Site) -> None:
    resolve = resolving({"pinned.example": ["127.0.0.1"]})

    error = await refusal(tls_site.url("/host", host="pinned.example"), ONLY_127_0_0_1, resolve)

    assert error.code == "url_not_accessible"
    assert "CERTIFICATE_VERIFY_FAILED" in str(error)
    assert (tls_site.server_names, tls_site.requests) == (["pinned.example"], [])


def test_a_policy_takes_valid_networks_only() -> None:
    with pytest.raises(ValueError, match="not-a-network"):
        FetchPolicy(allowed_networks=("not-a-network",))
