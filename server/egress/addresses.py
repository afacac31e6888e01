"""Which IP addresses are not the public internet, shared by web_fetch and the egress proxy.

Both reach addresses on someone else's behalf (the model's, a sandbox's) from the host's place in the network, so
both refuse loopback, private, link-local (cloud metadata), shared (CGNAT), multicast, reserved and unspecified
addresses, also when an IPv6 address stands for an IPv4 one (IPv4-mapped, 6to4, NAT64): a network that routes
those forms would deliver the packet to the IPv4 address inside.
"""

from __future__ import annotations

import ipaddress

__all__ = ["CLOUD_METADATA", "IPAddress", "address_class", "embedded_ipv4", "non_public_kind", "unwrapped"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

CLOUD_METADATA = frozenset({ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")})
"""Where cloud VMs answer with their own credentials (AWS, GCP, Azure, ...; fd00:ec2::254 is AWS's IPv6 one)."""

_SHARED = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def non_public_kind(address: IPAddress) -> str | None:
    """Why `address` is not a public one ("loopback", "private", "cloud metadata", ...), or None if it is.

    An IPv6 address standing for an IPv4 one is judged as that IPv4 address.
    """
    actual = unwrapped(address)
    return "cloud metadata" if actual in CLOUD_METADATA else address_class(actual)


def unwrapped(address: IPAddress) -> IPAddress:
    """The IPv4 address inside `address` if it stands for one, else `address` itself."""
    inner = embedded_ipv4(address) if isinstance(address, ipaddress.IPv6Address) else None
    return inner or address


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one stands for (IPv4-mapped, 6to4, NAT64), where the network routes it there."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def address_class(address: IPAddress) -> str | None:
    """The non-public class `address` itself is in (no unwrapping, metadata is "link-local"), or None."""
    kinds = (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("private", address.is_private),
        ("shared (CGNAT)", address in _SHARED),
        ("site-local", isinstance(address, ipaddress.IPv6Address) and address.is_site_local),
        ("reserved", address.is_reserved),
    )
    kind = next((name for name, matches in kinds if matches), None)
    return kind or (None if address.is_global else "non-public")
