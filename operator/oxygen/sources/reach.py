"""Where the operator fetches from on a tenant's behalf (`itemsFrom.url`).

The fetch runs in the operator's process, with its network position: it never reaches a link-local
address (a cloud's metadata service, 169.254.169.254 or AWS's fd00:ec2::254, hands out node
credentials), an unspecified or a multicast one, also when written as an IPv4-mapped or NAT64 IPv6
address. The address checked is the one connected to (the socket's peer), so a name that resolves to
something else the second time (DNS rebinding) is caught too. Loopback and private addresses stay
allowed: an in-cluster file server is the common case.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import urllib.request
from typing import Any

METADATA_V6 = ipaddress.ip_network("fd00:ec2::254/128")
NAT64 = ipaddress.ip_network("64:ff9b::/96")


class RefusedPeer(OSError):
    """The connection reached an address the operator does not fetch from (the request is not sent)."""


def refused(address: str) -> str | None:
    """Why the operator does not fetch from `address` (an IP literal), or None."""
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        if ip in METADATA_V6:
            return f"{address}, a cloud metadata address"
        if ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        elif ip in NAT64:
            ip = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.is_link_local or ip.is_multicast or ip.is_unspecified:
        return f"{address}, a link-local, multicast or unspecified address"
    return None


def refused_host(host: str) -> str | None:
    """Why the operator does not fetch from `host`, checked before connecting (any address it resolves
    to is refused); the peer is checked again once connected."""
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return None  # unresolvable: the fetch itself says so
    for *_, sockaddr in infos:
        reason = refused(str(sockaddr[0]))
        if reason:
            return f"{host} resolves to {reason}"
    return None


def _check_peer(conn: http.client.HTTPConnection) -> None:
    assert conn.sock is not None
    peer = str(conn.sock.getpeername()[0])
    reason = refused(peer)
    if reason:
        conn.close()
        raise RefusedPeer(f"refused: {conn.host} connected to {reason}")


class _CheckedHTTPConnection(http.client.HTTPConnection):
    def connect(self) -> None:
        super().connect()
        _check_peer(self)


class _CheckedHTTPSConnection(http.client.HTTPSConnection):
    def connect(self) -> None:
        super().connect()
        _check_peer(self)


class CheckedHTTPHandler(urllib.request.HTTPHandler):
    def http_open(self, req: urllib.request.Request) -> Any:
        return self.do_open(_CheckedHTTPConnection, req)


class CheckedHTTPSHandler(urllib.request.HTTPSHandler):
    def https_open(self, req: urllib.request.Request) -> Any:
        return self.do_open(_CheckedHTTPSConnection, req, context=getattr(self, "_context", None))
