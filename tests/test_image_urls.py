"""URL downloads refuse non-public addresses (request forgery), after every redirect too, and never quote the body.

A real HTTP server on loopback stands in for both an internal service and, with ``socket.getaddrinfo``
patched to resolve made-up host names, for a "public" site: no test needs the internet.
"""

from __future__ import annotations

import http.server
import io
import socket
import threading
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest
from PIL import Image

from sam3_agent.errors import ImageError
from sam3_agent.images import MAX_REDIRECTS, load_image
from sam3_agent.integrations.image_refs import ImageResolver

SECRET = b"internal-admin-token=hunter2; do not show me"


def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (12, 8), (10, 200, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


class Internal(http.server.BaseHTTPRequestHandler):
    """An "internal" service: images, a secret page, and redirects to wherever the query string says."""

    seen: ClassVar[list[tuple[str, str]]] = []  # (path, Host header) of every request that arrived

    def do_GET(self) -> None:
        Internal.seen.append((self.path, self.headers.get("Host", "")))
        if self.path == "/img.png":
            self.reply(200, png())
        elif self.path == "/secret":
            self.reply(200, SECRET)
        elif self.path.startswith("/to?"):
            self.send_response(302)
            self.send_header("Location", self.path.split("?", 1)[1])
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif self.path.startswith("/loop"):
            hops = int(self.path.removeprefix("/loop") or 0)
            self.send_response(302)
            self.send_header("Location", f"/loop{hops + 1}")
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            self.reply(404, SECRET)

    def reply(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Internal)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def seen() -> list[tuple[str, str]]:
    Internal.seen.clear()
    return Internal.seen


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """Made-up host names resolved to the addresses the test puts here; everything else resolves as usual."""
    table: dict[str, list[str]] = {}
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
        if host in table:
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port)) for address in table[host]]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return table


def refused(url: str, **kwargs: Any) -> str:
    with pytest.raises(ImageError) as raised:
        load_image(url, timeout=5, **kwargs)
    message = str(raised.value)
    assert "\n" not in message, "one line"
    return message


def test_loopback_is_refused_before_any_connection(port: int, seen: list[tuple[str, str]]) -> None:
    message = refused(f"http://127.0.0.1:{port}/img.png")
    assert message == (
        f"refused to fetch http://127.0.0.1:{port}/img.png: its host '127.0.0.1' resolves to 127.0.0.1, a loopback "
        "address; non-public addresses are refused unless allowed (allow_private_urls)"
    )
    assert refused(f"http://localhost:{port}/img.png").count("a loopback address") == 1
    assert seen == [], "the check comes before the request"


@pytest.mark.parametrize(
    ("host", "kind"),
    [
        ("10.1.2.3", "private"),
        ("192.168.0.10", "private"),
        ("169.254.169.254", "link-local"),  # the cloud metadata service
        ("0.0.0.0", "unspecified"),
        ("[::1]", "loopback"),
        ("[::ffff:127.0.0.1]", "loopback"),  # IPv4-mapped IPv6
        ("[fe80::1]", "link-local"),
        ("224.0.0.1", "multicast"),
        ("100.64.0.1", "non-public"),  # carrier-grade NAT
    ],
)
def test_every_kind_of_non_public_address_is_refused(host: str, kind: str) -> None:
    assert f", a {kind} address; non-public addresses are refused" in refused(f"http://{host}/img.png")


def test_a_public_looking_host_redirecting_to_loopback_is_refused(
    port: int, seen: list[tuple[str, str]], dns: dict[str, list[str]]
) -> None:
    dns["cdn.example.com"] = ["127.0.0.1"]  # stands in for a public address: the test allows exactly this one
    target = f"http://127.0.0.2:{port}/secret"  # loopback too, but not allowed
    message = refused(f"http://cdn.example.com:{port}/to?{target}", allow_private_urls=["127.0.0.1/32"])
    assert message == (
        f"refused to fetch http://cdn.example.com:{port}/to?{target} (redirected to {target}): its host "
        "'127.0.0.2' resolves to 127.0.0.2, a loopback address; non-public addresses are refused unless allowed "
        "(allow_private_urls)"
    )
    assert [path for path, _ in seen] == [f"/to?{target}"], "the redirect was never followed"


def test_a_redirect_to_a_private_network_or_another_scheme_is_refused(port: int, dns: dict[str, list[str]]) -> None:
    dns["cdn.example.com"] = ["127.0.0.1"]
    dns["db.internal"] = ["10.0.0.5"]
    allowed = ["127.0.0.1"]
    message = refused(f"http://cdn.example.com:{port}/to?http://db.internal/x.png", allow_private_urls=allowed)
    assert "(redirected to http://db.internal/x.png): its host 'db.internal' resolves to 10.0.0.5, a private" in message
    message = refused(f"http://cdn.example.com:{port}/to?file:///etc/passwd", allow_private_urls=allowed)
    assert "(redirected to file:/etc/passwd): only http(s) URLs with a host are fetched" in message


def test_a_host_with_any_non_public_address_is_refused(dns: dict[str, list[str]]) -> None:
    dns["mixed.example.com"] = ["93.184.216.34", "10.0.0.7"]  # a public answer does not excuse a private one
    assert "resolves to 10.0.0.7, a private address" in refused("http://mixed.example.com/img.png")


def test_the_connection_goes_to_the_checked_address_with_the_url_host(
    port: int, seen: list[tuple[str, str]], dns: dict[str, list[str]]
) -> None:
    dns["photos.example.com"] = ["127.0.0.1"]
    image = load_image(f"http://photos.example.com:{port}/to?/img.png", allow_private_urls=["127.0.0.0/8"])
    assert image.size == (12, 8)
    assert seen == [("/to?/img.png", f"photos.example.com:{port}"), ("/img.png", f"photos.example.com:{port}")]


def test_an_allow_list_allows_only_its_networks(port: int) -> None:
    url = f"http://127.0.0.1:{port}/img.png"
    assert load_image(url, allow_private_urls=["10.0.0.0/8", "127.0.0.0/8"]).size == (12, 8)
    assert load_image(url, allow_private_urls="127.0.0.1").size == (12, 8), "one network given bare"
    assert "a loopback address" in refused(url, allow_private_urls=["10.0.0.0/8", "::1"])


def test_true_allows_every_address(port: int) -> None:
    assert load_image(f"http://127.0.0.1:{port}/to?/img.png", allow_private_urls=True).size == (12, 8)
    assert load_image(f"http://localhost:{port}/img.png", allow_private_urls=True).size == (12, 8)


@pytest.mark.parametrize("networks", [["10.0.0.0/33"], ["not-a-network"], ["127.0.0.1", 5], 5])
def test_a_malformed_network_is_an_image_error_at_construction(networks: Any) -> None:
    with pytest.raises(ImageError, match=r"^allow_private_urls: .*expected networks such as '10\.0\.0\.0/8'"):
        ImageResolver(None, allow_urls=True, allow_private_urls=networks)
    with pytest.raises(ImageError, match=r"^allow_private_urls: "):
        load_image("http://127.0.0.1:1/x.png", allow_private_urls=networks)


def test_the_body_of_a_download_is_never_quoted(port: int) -> None:
    for path in ("/secret", "/missing"):  # a page that is not an image; an error status with a body
        message = refused(f"http://127.0.0.1:{port}{path}", allow_private_urls=True)
        assert "hunter2" not in message and "internal-admin" not in message
    assert refused(f"http://127.0.0.1:{port}/secret", allow_private_urls=True).endswith(
        "is not a recognised image format"
    )


def test_too_many_redirects(port: int) -> None:
    message = refused(f"http://127.0.0.1:{port}/loop", allow_private_urls=True)
    assert message == f"could not fetch http://127.0.0.1:{port}/loop: more than {MAX_REDIRECTS} redirects"


def test_the_resolver_refuses_private_urls_unless_allowed(port: int) -> None:
    url = f"http://127.0.0.1:{port}/img.png"
    with pytest.raises(ImageError, match="a loopback address; non-public addresses are refused"):
        ImageResolver(None, allow_urls=True).load(url)
    assert ImageResolver(None, allow_urls=True, allow_private_urls=["127.0.0.1"]).load(url).size == (12, 8)
    with pytest.raises(ImageError, match="image URLs are not accepted here"):
        ImageResolver(None, allow_private_urls=True).load(url)  # private addresses allowed, URLs not
