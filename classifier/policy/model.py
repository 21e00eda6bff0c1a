"""The policy model: security groups, their rules, IP address groups, instances.

These are the *validated, normalised* objects (spec section 1): every enumerated word is
lower-case canonical, every default applied, every reference resolved. Parsing file
formats and reporting what is wrong with them is `classifier.policy.loader`'s job; nothing
here reads files. Objects are frozen: a loaded policy never changes.

Normal forms:
- `Rule.protocol`: None for "all protocols", else the IP protocol number 1..255
  (tcp 6, udp 17, icmp 1, icmpv6 58, gre 47).
- `Rule.ports`: None for "no port restriction" (also when the listed ranges cover
  1-65535), else sorted, merged, non-overlapping inclusive (lo, hi) ranges.
- `Rule.icmp_type` / `icmp_code`: None for "any".
- `Rule.remote_prefixes`: the remote CIDRs (a console-style comma list gives several; the
  rule matches any of them); empty with no remote group/address group = any address.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Direction = Literal["ingress", "egress"]
Action = Literal["allow", "deny"]

# the protocol words of policy files (codes.PROTOCOL_NAMES also names sctp, which rules write
# as a number)
PROTOCOL_NUMBERS = {"tcp": 6, "udp": 17, "icmp": 1, "icmpv6": 58, "gre": 47}
PROTOCOL_NAMES = {number: name for name, number in PROTOCOL_NUMBERS.items()}


def merge_ranges(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted, merged inclusive integer ranges (touching ones joined): the same set of values.
    The normal form of port sets and of address sets."""
    merged: list[tuple[int, int]] = []
    for lo, hi in sorted(ranges):
        if merged and lo <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return merged


@dataclass(frozen=True)
class Rule:
    id: str  # unique within the policy; default "<group id>/<n>"
    group_id: str  # the security group that holds the rule
    position: int  # 1-based position within its group's rule list
    direction: Direction
    priority: int = 1  # 1..100, 1 is the highest
    action: Action = "allow"
    ip_version: int = 4  # the rule's ethertype: 4 or 6
    protocol: int | None = None  # None = all protocols
    ports: tuple[tuple[int, int], ...] | None = None  # None = any destination port
    icmp_type: int | None = None
    icmp_code: int | None = None
    remote_prefixes: tuple[IPNetwork, ...] = ()
    remote_group_id: str | None = None
    remote_address_group_id: str | None = None
    description: str = ""
    enabled: bool = True

    @property
    def has_port_restriction(self) -> bool:
        """Restricts ports or ICMP type: cannot match a packet whose ports are unknown."""
        return self.ports is not None or self.icmp_type is not None

    @property
    def protocol_text(self) -> str:
        if self.protocol is None:
            return "all"
        return PROTOCOL_NAMES.get(self.protocol, str(self.protocol))

    @property
    def ports_text(self) -> str:
        if self.ports is None:
            return "all"
        return ",".join(str(lo) if lo == hi else f"{lo}-{hi}" for lo, hi in self.ports)


@dataclass(frozen=True)
class SecurityGroup:
    id: str
    rules: tuple[Rule, ...] = ()
    name: str = ""
    description: str = ""


@dataclass(frozen=True)
class AddressRange:
    """One entry of an IP address group: an IP, a CIDR or a range, as inclusive bounds."""

    first: IPAddress
    last: IPAddress

    def __contains__(self, address: object) -> bool:
        return (
            isinstance(address, ipaddress.IPv4Address | ipaddress.IPv6Address)
            and address.version == self.first.version
            and int(self.first) <= int(address) <= int(self.last)
        )


@dataclass(frozen=True)
class AddressGroup:
    id: str
    ip_version: int
    entries: tuple[AddressRange, ...] = ()
    name: str = ""

    def __contains__(self, address: object) -> bool:
        return any(address in entry for entry in self.entries)


@dataclass(frozen=True)
class Instance:
    """A NIC of a server: its addresses and its security-group sequence (first = highest)."""

    id: str
    ips: tuple[IPAddress, ...]
    security_groups: tuple[str, ...] = ()
    name: str = ""


@dataclass(frozen=True)
class Policy:
    groups: dict[str, SecurityGroup] = field(default_factory=dict)  # in file order
    address_groups: dict[str, AddressGroup] = field(default_factory=dict)
    instances: dict[str, Instance] = field(default_factory=dict)
    source: str = ""  # the file it was loaded from, for messages
    warnings: tuple[str, ...] = ()  # what loaded but deserves a look (duplicates, unknown fields)

    def rules(self) -> Iterator[Rule]:
        """Every rule, in policy order (group order, then position)."""
        for group in self.groups.values():
            yield from group.rules

    def instance_of(self, address: IPAddress) -> Instance | None:
        """The instance that owns `address`, or None (no two instances share an IP)."""
        for instance in self.instances.values():
            if address in instance.ips:
                return instance
        return None

    def group_members(self, group_id: str, ip_version: int) -> frozenset[IPAddress]:
        """Every IP of that family on every instance that has the group."""
        return frozenset(
            ip
            for instance in self.instances.values()
            if group_id in instance.security_groups
            for ip in instance.ips
            if ip.version == ip_version
        )

    @property
    def rule_count(self) -> int:
        return sum(len(group.rules) for group in self.groups.values())
