"""Binding a proxy's listen address the way Go's ``net.Listen("tcp", addr)`` does.

The API reports bind failures with Go's error text (clients match on it), so
address parsing and errors follow Go: ``listen tcp 127.0.0.1:22100: bind:
address already in use``, ``listen tcp: address tcp/notaport: unknown port``.
An empty or wildcard host listens on all interfaces, dual-stack, reported as
``[::]:port``; ``localhost`` resolves to 127.0.0.1.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket


class ListenError(Exception):
    """A listen failure; ``str`` is Go's message."""


def split_host_port(addr: str) -> tuple[str, str]:
    """Go's ``net.SplitHostPort``, raising ListenError with Go's wording."""

    def fail(reason: str) -> ListenError:
        return ListenError(f"listen tcp: address {addr}: {reason}")

    last_colon = addr.rfind(":")
    if last_colon < 0:
        raise fail("missing port in address")
    if addr.startswith("["):
        close = addr.find("]")
        if close < 0:
            raise fail("missing ']' in address")
        if close + 1 == len(addr):
            raise fail("missing port in address")
        if close + 1 != last_colon:
            raise fail("too many colons in address" if addr[close + 1] == ":" else "missing port in address")
        host = addr[1:close]
        if "[" in addr[1:] or "]" in addr[close + 1 :]:
            raise fail("unexpected '[' in address")
    else:
        host = addr[:last_colon]
        if ":" in host:
            raise fail("too many colons in address")
        if "[" in host:
            raise fail("unexpected '[' in address")
        if "]" in host:
            raise fail("unexpected ']' in address")
    return host, addr[last_colon + 1 :]


def resolve_port(service: str) -> int:
    if service == "":
        return 0
    if service.lstrip("+-").isdigit() and service[:1] not in "+":
        port = int(service)
        if not 0 <= port <= 65535:
            raise ListenError(f"listen tcp: address {service}: invalid port")
        return port
    try:
        return socket.getservbyname(service, "tcp")
    except (OSError, UnicodeError):
        raise ListenError(f"listen tcp: address tcp/{service}: unknown port") from None


def resolve_host(host: str) -> tuple[int, str]:
    """(family, address to bind) for ``host``; '' and wildcards mean dual-stack any."""
    if host in ("", "0.0.0.0", "::"):
        return (socket.AF_INET6, "::") if socket.has_ipv6 else (socket.AF_INET, "0.0.0.0")
    zone_free = host.split("%", 1)[0]
    try:
        ip = ipaddress.ip_address(zone_free)
    except ValueError:
        ip = None
    if ip is not None:
        return (socket.AF_INET6 if ip.version == 6 else socket.AF_INET), host
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise ListenError(f"listen tcp: lookup {host}: no such host") from None
    v4 = [info for info in infos if info[0] == socket.AF_INET]
    family, _, _, _, sockaddr = (v4 or infos)[0]
    return family, sockaddr[0]


def format_addr(sockaddr: tuple) -> str:
    host, port = sockaddr[0], sockaddr[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def bind(addr: str, backlog: int = 4096) -> socket.socket:
    """A listening, non-blocking socket for ``addr``, or ListenError with Go's text."""
    host, service = split_host_port(addr)
    port = resolve_port(service)
    family, bind_host = resolve_host(host)
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6 and bind_host == "::":
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind((bind_host, port))
        sock.listen(backlog)
        sock.setblocking(False)
    except OSError as err:
        sock.close()
        shown = format_addr((bind_host, port))
        reason = os.strerror(err.errno) if err.errno else str(err)
        reason = reason[:1].lower() + reason[1:]
        if err.errno == errno.EADDRINUSE:
            reason = "address already in use"
        raise ListenError(f"listen tcp {shown}: bind: {reason}") from None
    return sock
