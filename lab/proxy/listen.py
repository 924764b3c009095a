"""Binding a proxy's listen address the way Go's ``net.Listen("tcp", addr)`` does.

The API reports bind failures with Go's error text (clients match on it), so
address parsing and errors follow Go: ``listen tcp 127.0.0.1:22100: bind:
address already in use``, ``listen tcp: address tcp/notaport: unknown port``.
An empty or wildcard host listens on all interfaces, dual-stack, reported as
``[::]:port``; ``localhost`` resolves to 127.0.0.1. An empty address (``""``, as
when a client leaves ``listen`` out) is Toxiproxy's ``:0``: a random free port on
all interfaces.

``bind_async`` is what a running server uses: a host name is looked up in a
worker thread, never on the event loop, and the lookup is bounded in time. With
``loopback_only`` an address off loopback is refused (``ListenRefused``) before
anything is bound, and an empty host (``":port"`` or ``""``) means 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import os
import socket


class ListenError(Exception):
    """A listen failure; ``str`` is Go's message."""


class ListenRefused(ListenError):
    """The address is off loopback and this server was told to listen only on loopback."""


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
    address = sockaddr[0]
    if not isinstance(address, str):  # only a non-IP family (AF_UNIX, ...) has another kind of address
        raise ListenError(f"listen tcp: lookup {host}: no such host")
    return family, address


def format_addr(sockaddr: tuple[str, int] | tuple[str, int, int, int]) -> str:
    host, port = sockaddr[0], sockaddr[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def bind(addr: str, backlog: int = 4096) -> socket.socket:
    """A listening, non-blocking socket for ``addr``, or ListenError with Go's text.

    Resolves in the calling thread: for start-up only; a running server uses bind_async.
    """
    host, service = split_host_port(addr or ":0")
    port = resolve_port(service)
    family, bind_host = resolve_host(host)
    return _bind(family, bind_host, port, backlog)


def _is_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host == ""
    return True


def _is_loopback(bind_host: str) -> bool:
    try:
        return ipaddress.ip_address(bind_host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


async def bind_async(addr: str, loopback_only: bool = False, resolve_timeout_s: float = 5.0,
                     backlog: int = 4096) -> socket.socket:
    """As ``bind``, with any name lookup off the event loop and over within ``resolve_timeout_s``.

    Raises ListenError (Go's text; ``lookup HOST: i/o timeout`` past the bound) or,
    with ``loopback_only``, ListenRefused for an address off loopback.
    """
    family, bind_host, port = await _resolve_async(addr, loopback_only, resolve_timeout_s)
    if loopback_only and not _is_loopback(bind_host):
        raise ListenRefused(
            f"listen address {addr} is off loopback ({format_addr((bind_host, port))}): this server "
            "listens only on loopback (-allow-remote-listen=false)"
        )
    return _bind(family, bind_host, port, backlog)


async def _resolve_async(addr: str, loopback_only: bool, resolve_timeout_s: float) -> tuple[int, str, int]:
    """(family, host to bind, port) for ``addr``; a name is looked up off the loop, bounded."""
    host, service = split_host_port(addr or ":0")  # issue 15: an empty listen is a random port
    if loopback_only and host == "":
        host = "127.0.0.1"
    needs_lookup = not _is_literal(host) or not (service == "" or service.isdigit())
    if not needs_lookup:
        family, bind_host = resolve_host(host)
        return family, bind_host, resolve_port(service)
    loop = asyncio.get_running_loop()
    lookup = loop.run_in_executor(None, lambda: (resolve_port(service), resolve_host(host)))
    try:
        port, (family, bind_host) = await asyncio.wait_for(lookup, resolve_timeout_s)
    except asyncio.TimeoutError:
        raise ListenError(f"listen tcp: lookup {host}: i/o timeout") from None
    return family, bind_host, port


async def resolved_async(addr: str, loopback_only: bool = False, resolve_timeout_s: float = 5.0) -> str | None:
    """The address ``addr`` would be bound at, written as an enabled proxy reports it
    (``localhost:7070`` -> ``127.0.0.1:7070``, ``:7070`` -> ``[::]:7070``); ``None`` when it
    cannot be resolved or names no fixed port (port 0: each bind gets another one).

    Populate compares these, as Toxiproxy does, so an entry written differently but
    naming the same address keeps the existing proxy and its toxics (issue 15).
    """
    try:
        _, bind_host, port = await _resolve_async(addr, loopback_only, resolve_timeout_s)
    except ListenError:
        return None
    if port == 0:
        return None
    if bind_host == "0.0.0.0" and socket.has_ipv6:
        bind_host = "::"
    return format_addr((bind_host, port))


def _bind(family: int, bind_host: str, port: int, backlog: int) -> socket.socket:
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
