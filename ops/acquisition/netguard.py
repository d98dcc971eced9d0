"""The address guard of the downloader: never fetch from this machine or a private network.

A URL found on the web may name (or redirect to, or resolve by DNS to) ``127.0.0.1``, ``10.0.0.5``,
``169.254.169.254`` (a cloud metadata service) or ``[::ffff:192.168.1.1]``. Fetching it would be a
server-side request forgery. The downloader therefore resolves every host itself, before any
connection, and refuses the whole host if ANY resolved address is not a global unicast address
(:func:`address_block_reason`). It then connects to one of the addresses it checked (see
``ops.acquisition.download``, the pinning adapter), so a DNS answer that changes between the check and the
connection (DNS rebinding) cannot move the connection to a blocked address.

``allow_hosts`` (``acquisition.download.allow_hosts``) exempts hosts from the guard: entries are
host names (``localhost``, exact match, case-insensitive), IP addresses (``127.0.0.1``, ``::1``) or
networks in CIDR notation (``127.0.0.0/8``). An address is exempt if it lies in an allowed network;
a host name is exempt if it is listed, whatever it resolves to.

Plain Python: no network access happens here except ``socket.getaddrinfo`` (which, for an IP
literal, does not touch the network either).
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from typing import Iterable

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class BlockedAddressError(Exception):
    """The host resolves to an address the guard refuses (loopback, private, ...)."""


class ResolutionError(OSError):
    """The host name could not be resolved (DNS failure): a connection error, not a block."""


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for, if any (IPv4-mapped, 6to4, Teredo client)."""
    if ip.ipv4_mapped is not None:        # ::ffff:a.b.c.d
        return ip.ipv4_mapped
    if ip.sixtofour is not None:          # 2002:AABB:CCDD::/48 -> a.b.c.d
        return ip.sixtofour
    if ip.teredo is not None:             # 2001:0::/32 -> (server, client)
        return ip.teredo[1]
    return None


def address_block_reason(ip: IPAddress | str) -> str | None:
    """Why ``ip`` must not be fetched from, or ``None`` if it is a global unicast address.

    Refused: loopback, private (RFC 1918, ULA fc00::/7...), link-local (169.254/16, fe80::/10),
    multicast, reserved, unspecified (0.0.0.0, ::), shared address space (100.64/10) and anything
    else the ``ipaddress`` module does not call global. IPv4-mapped / 6to4 / Teredo IPv6 addresses
    are judged by the IPv4 address they embed as well.
    """
    if isinstance(ip, str):
        ip = ipaddress.ip_address(ip.strip("[]").split("%", 1)[0])
    candidates: list[IPAddress] = [ip]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            # ::ffff:a.b.c.d is how a dual-stack socket sees a.b.c.d: judge the IPv4 address
            # (the ::ffff:0:0/96 block itself counts as "reserved" in some Python versions)
            candidates = [ip.ipv4_mapped]
        else:
            v4 = _embedded_ipv4(ip)
            if v4 is not None:
                candidates.append(v4)
    for a in candidates:
        for attr in ("is_loopback", "is_private", "is_link_local", "is_multicast", "is_reserved",
                     "is_unspecified"):
            if getattr(a, attr):
                return f"{a} is {attr[3:].replace('_', '-')}"
        if not a.is_global:
            return f"{a} is not a global address"
    return None


@dataclass(frozen=True)
class AllowList:
    """``allow_hosts`` parsed: exact host names and IP networks exempt from the guard."""

    names: frozenset[str]
    networks: tuple[IPNetwork, ...]

    @classmethod
    def parse(cls, entries: Iterable[str]) -> "AllowList":
        names: set[str] = set()
        nets: list[IPNetwork] = []
        for raw in entries:
            e = raw.strip().strip("[]").lower().rstrip(".")
            if not e:
                continue
            try:
                nets.append(ipaddress.ip_network(e, strict=False))  # an IP is a /32 or /128
            except ValueError:
                names.add(e)
        return cls(frozenset(names), tuple(nets))

    def allows_name(self, host: str) -> bool:
        return host.strip("[]").lower().rstrip(".") in self.names

    def allows_address(self, ip: IPAddress) -> bool:
        for net in self.networks:
            if ip.version == net.version and ip in net:
                return True
            # ::ffff:127.0.0.1 is allowed by 127.0.0.0/8
            if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None \
                    and net.version == 4 and ip.ipv4_mapped in net:
                return True
        return False


def check_address(ip: IPAddress | str, allow: AllowList) -> None:
    """Raise :class:`BlockedAddressError` unless ``ip`` is global or allow-listed."""
    if isinstance(ip, str):
        ip = ipaddress.ip_address(ip.strip("[]").split("%", 1)[0])
    if allow.allows_address(ip):
        return
    reason = address_block_reason(ip)
    if reason is not None:
        raise BlockedAddressError(reason)


def resolve(host: str, port: int) -> list[IPAddress]:
    """All addresses ``host`` resolves to (TCP), in resolver order, without duplicates."""
    h = host.strip("[]")
    try:
        infos = socket.getaddrinfo(h, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as e:
        raise ResolutionError(f"cannot resolve {host!r}: {e}") from None
    out: list[IPAddress] = []
    for family, _t, _p, _c, sockaddr in infos:
        if family not in (socket.AF_INET, socket.AF_INET6):
            continue
        ip = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if ip not in out:
            out.append(ip)
    if not out:
        raise ResolutionError(f"{host!r} resolves to no IPv4/IPv6 address")
    return out


def guard_host(host: str, port: int, allow: AllowList) -> list[IPAddress]:
    """Resolve ``host`` and check every address; return the addresses a connection may use.

    Refuses (``BlockedAddressError``) if ANY address is blocked, not only the first: a name with
    one public and one private address is refused, since the connection could go to either.
    An allow-listed host name skips the check.
    """
    addrs = resolve(host, port)
    if not allow.allows_name(host):
        for ip in addrs:
            check_address(ip, allow)
    return addrs
