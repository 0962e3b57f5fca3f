"""Outbound HTTP for actions: public addresses only (unless allowed), no redirects, the peer checked.

Webhook URLs are chosen by engineers, so an unchecked POST reaches what only the server can: cloud
metadata (169.254.169.254), the database port, the internal API. Every connection is checked on the
address connected to (resolved once, checked, then connected to, so a name that re-resolves cannot
slip past), before any packet leaves: loopback,
private, link-local and other non-global addresses are refused unless ``WEBHOOK_ALLOWED_NETWORKS``
lists their network. Redirects are never followed (a 3xx is a failure), so headers and signatures
never travel to a second target; environment proxies are not used.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import urllib.error
import urllib.request
from typing import Any

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class BlockedTarget(ConnectionError):
    """The target address is not one actions may reach."""


def parse_networks(text: str | None) -> list[Network]:
    """The networks of a comma-separated list of CIDRs or addresses (``ValueError`` on a bad one)."""
    return [
        ipaddress.ip_network(part.strip(), strict=False) for part in (text or "").split(",") if part.strip()
    ]


def check_address(address: str, allowed: list[Network]) -> None:
    """Raise ``BlockedTarget`` unless ``address`` is global or inside an allowed network."""
    ip = ipaddress.ip_address(address.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if any(ip in network for network in allowed):
        return
    if not ip.is_global or ip.is_multicast:
        raise BlockedTarget(
            f"{ip} is a loopback, private or link-local address; "
            "WORKBENCH_WEBHOOK_ALLOWED_NETWORKS lists networks actions may reach"
        )


def _guarded_connect(allowed: list[Network]) -> Any:
    def create_connection(address: tuple[str, int], *args: Any) -> socket.socket:
        host, port = address
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        for info in infos:  # every address the name has must be permitted, before any packet leaves
            check_address(str(info[4][0]), allowed)
        # Connect to the checked address itself: the name is never resolved a second time.
        return socket.create_connection((str(infos[0][4][0]), port), *args)

    return create_connection


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> None:
        return None  # urllib then raises HTTPError with the 3xx


def opener(allowed: list[Network]) -> urllib.request.OpenerDirector:
    """A urllib opener that connects only to permitted addresses and never follows a redirect."""
    connect = _guarded_connect(allowed)

    class Http(http.client.HTTPConnection):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._create_connection = connect

    class Https(http.client.HTTPSConnection):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._create_connection = connect

    class HttpHandler(urllib.request.HTTPHandler):
        def http_open(self, req: Any) -> Any:
            return self.do_open(Http, req)

    class HttpsHandler(urllib.request.HTTPSHandler):
        def https_open(self, req: Any) -> Any:
            return self.do_open(Https, req)

    return urllib.request.build_opener(
        urllib.request.ProxyHandler({}), HttpHandler(), HttpsHandler(), _NoRedirects()
    )


def post(request: urllib.request.Request, timeout: float, allowed: list[Network]) -> int:
    """Send ``request``; its status. Raises ``ConnectionError`` on a refused target, 3xx, 4xx or 5xx."""
    try:
        with opener(allowed).open(request, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        if 300 <= error.code < 400:
            raise ConnectionError(
                f"HTTP {error.code} from {request.full_url}: redirects are not followed"
            ) from None
        raise ConnectionError(f"HTTP {error.code} from {request.full_url}") from None
    except urllib.error.URLError as error:
        if isinstance(error.reason, BlockedTarget):
            raise error.reason from None
        raise
