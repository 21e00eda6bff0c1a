"""Shared hypothesis strategies: small random policies and packet streams that hit the edges.

Everything is drawn from small pools so that the interesting coincidences happen often:
addresses (instances share the pools with outside hosts, and remote prefixes / address groups
are cut around the same addresses), ports next to rule boundaries, equal priorities, ICMP
types that are queries, errors or neither, fragments of the same datagram, and timestamp gaps
that land exactly on the connection timeouts.

Policies are valid by construction (what the loaders would produce): rule ids unique, ports
normalised as `classifier.policy` says, remote groups and address groups resolved, no two
instances sharing an IP.

Public strategies:
- `policies()`: a `Policy`;
- `packets(policy)`: one `Packet` (statuses, fragments and truncation included);
- `packet_sequences(policy)`: a capture-ordered list of packets with replies, repeats, ICMP
  errors quoting earlier packets, later fragments of earlier first fragments, and gaps near
  the timeouts (sometimes backwards);
- `policy_and_packets()` / `policy_and_sequences()`: both at once.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from typing import Any

from hypothesis import strategies as st

from classifier.codes import (
    FRAGMENT_FIRST,
    FRAGMENT_LATER,
    FRAGMENT_NONE,
    MALFORMED_BAD_IHL,
    STATUS_L4_TRUNCATED,
    STATUS_MALFORMED,
    STATUS_NOT_IP,
    STATUS_OK,
    TCP_ACK,
    TCP_FIN,
    TCP_PSH,
    TCP_RST,
    TCP_SYN,
)
from classifier.packets import Packet, QuotedHeader
from classifier.policy import (
    AddressGroup,
    AddressRange,
    Instance,
    IPAddress,
    Policy,
    Rule,
    SecurityGroup,
    merge_ranges,
)

V4_POOL = tuple(
    ipaddress.ip_address(a)
    for a in (
        "10.0.0.1",
        "10.0.0.2",
        "10.0.0.3",
        "10.0.0.130",
        "10.0.1.1",
        "192.168.0.1",
        "8.8.8.8",
    )
)
V6_POOL = tuple(
    ipaddress.ip_address(a)
    for a in ("2001:db8::1", "2001:db8::2", "2001:db8::ff", "2001:db8:1::1", "fd00::1", "2600::1")
)
POOLS: dict[int, tuple[IPAddress, ...]] = {4: V4_POOL, 6: V6_POOL}
PREFIX_LENGTHS = {4: (0, 8, 16, 24, 25, 30, 32), 6: (0, 32, 48, 64, 120, 128)}
BOUNDARY_PORTS = (1, 2, 21, 22, 23, 79, 80, 81, 443, 1023, 1024, 1025, 3389, 65534, 65535)
ICMP = {4: 1, 6: 58}
ICMP_TYPES = {
    4: (0, 8, 13, 14, 17, 3, 4, 5, 11, 12, 9, 30),  # queries, errors, others
    6: (128, 129, 1, 2, 3, 4, 133, 134, 135, 136),
}
ICMP_ERRORS = {4: (3, 4, 5, 11, 12), 6: (1, 2, 3, 4)}
ICMP_QUERIES = {4: (0, 8, 13, 14, 15, 16, 17, 18), 6: (128, 129)}
TCP_FLAG_SETS = (
    TCP_SYN,
    TCP_SYN | TCP_ACK,
    TCP_ACK,
    TCP_PSH | TCP_ACK,
    TCP_FIN | TCP_ACK,
    TCP_RST,
    TCP_RST | TCP_ACK,
    TCP_SYN | TCP_FIN,
)
SECOND = 1_000_000_000
# gaps between consecutive packets: zero, tiny, and right on / next to every timeout
TIME_GAPS = (
    0,
    0,
    0,
    1,
    1,
    1000,
    SECOND,
    SECOND,
    3 * SECOND,
    10 * SECOND,
    30 * SECOND - 1,
    30 * SECOND,
    30 * SECOND + 1,
    180 * SECOND,
    180 * SECOND + 1,
    600 * SECOND,
    600 * SECOND + 1,
    -5 * SECOND,  # the clock going back
)
FRAGMENT_GAPS = (0, 1, SECOND, 30 * SECOND, 30 * SECOND + 1)
T0 = 1_700_000_000 * SECOND


def normalise_ports(ranges: list[tuple[int, int]]) -> tuple[tuple[int, int], ...] | None:
    """Sorted, merged ranges; None when they cover every port (policy.py's normal form)."""
    merged = merge_ranges(ranges)
    return None if merged == [(1, 65535)] else tuple(merged)


@st.composite
def port_ranges(draw: st.DrawFn) -> tuple[tuple[int, int], ...] | None:
    port = st.one_of(st.sampled_from(BOUNDARY_PORTS), st.integers(1, 65535))
    ranges = []
    for _ in range(draw(st.integers(1, 3))):
        a, b = draw(port), draw(port)
        ranges.append((min(a, b), max(a, b)))
    return normalise_ports(ranges)


@st.composite
def prefixes(draw: st.DrawFn, version: int) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    address = draw(st.sampled_from(POOLS[version]))
    length = draw(st.sampled_from(PREFIX_LENGTHS[version]))
    return ipaddress.ip_network(f"{address}/{length}", strict=False)


@st.composite
def address_ranges(draw: st.DrawFn, version: int) -> AddressRange:
    kind = draw(st.sampled_from(("ip", "cidr", "range")))
    if kind == "ip":
        address = draw(st.sampled_from(POOLS[version]))
        return AddressRange(address, address)
    if kind == "cidr":
        network = draw(prefixes(version))
        return AddressRange(network.network_address, network.broadcast_address)
    a, b = draw(st.sampled_from(POOLS[version])), draw(st.sampled_from(POOLS[version]))
    a, b = min(a, b), max(a, b)
    # widen by one on either side sometimes, so range ends fall next to pool addresses too
    if draw(st.booleans()) and int(a) > 0:
        a = ipaddress.ip_address(int(a) - 1) if version == 4 else ipaddress.IPv6Address(int(a) - 1)
    return AddressRange(a, b)


@st.composite
def rules(
    draw: st.DrawFn,
    group_id: str,
    position: int,
    group_ids: list[str],
    address_groups: dict[str, AddressGroup],
) -> Rule:
    version = draw(st.sampled_from((4, 4, 6)))
    protocol = draw(st.sampled_from((None, None, 6, 6, 17, 17, ICMP[version], 47, 132, 50)))
    ports = icmp_type = icmp_code = None
    if protocol in (6, 17) and draw(st.integers(0, 3)):
        ports = draw(port_ranges())
    if protocol == ICMP[version] and draw(st.booleans()):
        icmp_type = draw(st.sampled_from(ICMP_TYPES[version]))
        if draw(st.booleans()):
            icmp_code = draw(st.integers(0, 4))
    remote_prefixes: tuple[Any, ...] = ()
    remote_group_id = remote_address_group_id = None
    remote_kind = draw(
        st.sampled_from(("any", "any", "prefix", "prefix", "group", "address-group"))
    )
    same_version = [ag.id for ag in address_groups.values() if ag.ip_version == version]
    if remote_kind == "prefix":
        remote_prefixes = tuple(draw(st.lists(prefixes(version), min_size=1, max_size=2)))
    elif remote_kind == "group":
        remote_group_id = draw(st.sampled_from(group_ids))
    elif remote_kind == "address-group" and same_version:
        remote_address_group_id = draw(st.sampled_from(same_version))
    return Rule(
        id=f"{group_id}/{position}",
        group_id=group_id,
        position=position,
        direction=draw(st.sampled_from(("ingress", "egress"))),
        priority=draw(st.sampled_from((1, 1, 2, 50, 100))),
        action=draw(st.sampled_from(("allow", "allow", "allow", "deny"))),
        ip_version=version,
        protocol=protocol,
        ports=ports,
        icmp_type=icmp_type,
        icmp_code=icmp_code,
        remote_prefixes=remote_prefixes,
        remote_group_id=remote_group_id,
        remote_address_group_id=remote_address_group_id,
        enabled=draw(st.integers(0, 9)) > 0,
    )


@st.composite
def policies(draw: st.DrawFn, max_groups: int = 4, max_rules: int = 6) -> Policy:
    address_groups: dict[str, AddressGroup] = {}
    for n in range(draw(st.integers(0, 3))):
        version = draw(st.sampled_from((4, 6)))
        entries = tuple(draw(st.lists(address_ranges(version), min_size=0, max_size=3)))
        address_groups[f"ag{n}"] = AddressGroup(f"ag{n}", version, entries)
    group_ids = [f"sg{n}" for n in range(draw(st.integers(1, max_groups)))]
    groups = {}
    for gid in group_ids:
        count = draw(st.integers(0, max_rules))
        group_rules = [
            draw(rules(gid, position, group_ids, address_groups))
            for position in range(1, count + 1)
        ]
        # often the default group's "allow everything out" (else nearly everything is denied)
        for version in (4, 6):
            if draw(st.integers(0, 2)):
                position = len(group_rules) + 1
                group_rules.append(
                    Rule(f"{gid}/{position}", gid, position, "egress", 100, ip_version=version)
                )
        groups[gid] = SecurityGroup(gid, tuple(group_rules))
    # instances take addresses from the shuffled pools; what is left stays outside
    v4 = list(draw(st.permutations(V4_POOL)))
    v6 = list(draw(st.permutations(V6_POOL)))
    instances = {}
    for n in range(draw(st.integers(1, 4))):
        ips: list[IPAddress] = []
        for pool, wanted in ((v4, draw(st.integers(0, 2))), (v6, draw(st.integers(0, 1)))):
            for _ in range(wanted):
                if len(pool) > 2:  # keep outside hosts in every pool
                    ips.append(pool.pop())
        if not ips:
            ips.append(v4.pop() if len(v4) > 2 else v6.pop())
        sequence = draw(
            st.lists(
                st.sampled_from(group_ids),
                unique=True,
                min_size=draw(st.sampled_from((0, 1, 1, 1))),
                max_size=len(group_ids),
            )
        )
        instances[f"vm{n}"] = Instance(f"vm{n}", tuple(ips), tuple(sequence))
    return Policy(groups=groups, address_groups=address_groups, instances=instances)


def addresses(policy: Policy | None, version: int) -> st.SearchStrategy[IPAddress]:
    """A pool address, two times in three an instance's when the policy has some."""
    owned = (
        []
        if policy is None
        else [
            address
            for instance in policy.instances.values()
            for address in instance.ips
            if address.version == version
        ]
    )
    pool = st.sampled_from(POOLS[version])
    return st.one_of(pool, st.sampled_from(owned), st.sampled_from(owned)) if owned else pool


def _port(draw: st.DrawFn) -> int:
    return draw(st.one_of(st.sampled_from(BOUNDARY_PORTS), st.integers(1, 65535)))


@st.composite
def packets(draw: st.DrawFn, policy: Policy | None = None, ts_ns: int = T0) -> Packet:
    """One record. Mostly IP packets between pool addresses; some not-ip / malformed."""
    status = draw(
        st.sampled_from((STATUS_OK,) * 12 + (STATUS_L4_TRUNCATED, STATUS_NOT_IP, STATUS_MALFORMED))
    )
    if status == STATUS_NOT_IP:
        return Packet(ts_ns=ts_ns, ip_version=0, status=STATUS_NOT_IP, wire_len=60, cap_len=60)
    if status == STATUS_MALFORMED:
        return Packet(
            ts_ns=ts_ns,
            ip_version=0,
            status=STATUS_MALFORMED,
            malformed_reason=MALFORMED_BAD_IHL,
            wire_len=60,
            cap_len=60,
        )
    version = draw(st.sampled_from((4, 4, 4, 6)))
    src = draw(addresses(policy, version))
    dst = draw(addresses(policy, version))
    protocol = draw(st.sampled_from((6, 6, 17, 17, ICMP[version], ICMP[version], 47, 132, 50)))
    fields: dict[str, Any] = {}
    fragment = draw(st.sampled_from((FRAGMENT_NONE,) * 6 + (FRAGMENT_FIRST, FRAGMENT_LATER)))
    if fragment == FRAGMENT_LATER:
        status = STATUS_OK  # a later fragment carries no transport header at all
    elif status == STATUS_L4_TRUNCATED:
        if protocol == ICMP[version] and draw(st.booleans()):
            # type and code captured, identifier cut off
            fields.update(icmp_type=draw(st.sampled_from(ICMP_TYPES[version])), icmp_code=0)
    elif protocol in (6, 17, 132):
        fields.update(sport=_port(draw), dport=_port(draw))
        if protocol == 6 and draw(st.integers(0, 9)):
            fields["tcp_flags"] = draw(st.sampled_from(TCP_FLAG_SETS))
    elif protocol == ICMP[version]:
        icmp_type = draw(st.sampled_from(ICMP_TYPES[version]))
        # None: the code unknown (`check --icmp-type` without --icmp-code)
        fields.update(icmp_type=icmp_type, icmp_code=draw(st.sampled_from((0, 0, 1, 3, None))))
        if icmp_type in ICMP_QUERIES[version]:
            fields["icmp_id"] = draw(st.sampled_from((1, 2, 0xFFFF)))
        elif icmp_type in ICMP_ERRORS[version] and draw(st.integers(0, 3)):
            fields["quoted"] = draw(quoted_headers(version))
    return Packet(
        ts_ns=ts_ns,
        ip_version=version,
        src=src,
        dst=dst,
        protocol=protocol,
        fragment=fragment,
        ip_id=draw(st.sampled_from((1, 2, 7))) if fragment else 0,
        frag_offset=draw(st.sampled_from((1, 185))) if fragment == FRAGMENT_LATER else 0,
        status=status,
        wire_len=draw(st.integers(40, 1500)),
        cap_len=64,
        **fields,
    )


@st.composite
def quoted_headers(draw: st.DrawFn, version: int, about: Packet | None = None) -> QuotedHeader:
    """The header an ICMP error quotes: of `about` (an earlier packet) or a random one."""
    if about is not None and about.src is not None and about.dst is not None:
        icmp_id = about.icmp_id if about.icmp_type is not None else None
        return QuotedHeader(
            protocol=about.protocol,
            src=about.src,
            dst=about.dst,
            sport=about.sport if about.dport is not None else None,
            dport=about.dport if about.sport is not None else None,
            icmp_type=about.icmp_type if icmp_id is not None else None,
            icmp_id=icmp_id,
        )
    protocol = draw(st.sampled_from((6, 17, ICMP[version], 47)))
    src = draw(st.sampled_from(POOLS[version]))
    dst = draw(st.sampled_from(POOLS[version]))
    if protocol in (6, 17) and draw(st.integers(0, 4)):
        return QuotedHeader(protocol, src, dst, _port(draw), _port(draw))
    if protocol == ICMP[version] and draw(st.booleans()):
        return QuotedHeader(protocol, src, dst, icmp_type=ICMP_QUERIES[version][1], icmp_id=1)
    return QuotedHeader(protocol, src, dst)


def _reply(packet: Packet) -> Packet:
    """The same flow the other way (echo request -> reply, SYN -> SYN/ACK)."""
    icmp_type = packet.icmp_type
    if icmp_type in (8, 13, 15, 17, 128):
        icmp_type += 1
    flags = packet.tcp_flags
    if flags == TCP_SYN:
        flags = TCP_SYN | TCP_ACK
    if packet.fragment == FRAGMENT_LATER:
        # the other way, still a later fragment: its protocol may be an IPv6 extension
        # header's number (the fragment header's Next Header), which no whole packet carries
        return dataclasses.replace(packet, src=packet.dst, dst=packet.src)
    return dataclasses.replace(
        packet,
        src=packet.dst,
        dst=packet.src,
        sport=packet.dport,
        dport=packet.sport,
        icmp_type=icmp_type,
        tcp_flags=flags,
        fragment=FRAGMENT_NONE,
        ip_id=0,
        frag_offset=0,
        frag_next_header=None,  # a whole packet: the fragment key's protocol is its own
    )


def _later_fragment(first: Packet) -> Packet:
    """As the reader shows it: its protocol is the fragment header's Next Header."""
    return Packet(
        ip_version=first.ip_version,
        src=first.src,
        dst=first.dst,
        protocol=first.frag_next_header or 0,
        fragment=FRAGMENT_LATER,
        ip_id=first.ip_id,
        frag_offset=185,
    )


@st.composite
def packet_sequences(
    draw: st.DrawFn, policy: Policy | None = None, min_size: int = 1, max_size: int = 30
) -> list[Packet]:
    """Capture-ordered packets with `index` 0.. and timestamps from `TIME_GAPS`."""
    result: list[Packet] = []
    pending: list[Packet] = []  # later fragments of recent first fragments
    ts = T0
    for index in range(draw(st.integers(min_size, max_size))):
        ip_packets = [p for p in result if p.src is not None]
        kind = draw(
            st.sampled_from(("new", "new", "reply", "reply", "repeat", "error", "fragment"))
        )
        if len(pending) > 0 and draw(st.booleans()):
            kind = "pending"
        # fragments of a datagram travel close together (but test the 30 s window's edge)
        ts += draw(st.sampled_from(FRAGMENT_GAPS if kind == "pending" else TIME_GAPS))
        packet: Packet | None = None
        if kind == "pending":
            packet = pending.pop()
        elif kind == "new" or not ip_packets:
            packet = draw(packets(policy, ts))
        elif kind == "reply":
            packet = _reply(draw(st.sampled_from(ip_packets)))
        elif kind == "repeat":
            earlier = draw(st.sampled_from(ip_packets))
            flags = earlier.tcp_flags
            if earlier.protocol == 6 and earlier.sport is not None:
                flags = draw(st.sampled_from((*TCP_FLAG_SETS, None)))
            packet = dataclasses.replace(
                earlier, tcp_flags=flags, fragment=FRAGMENT_NONE, ip_id=0, frag_next_header=None
            )
            if earlier.fragment == FRAGMENT_LATER:
                packet = earlier
        elif kind == "error":
            about = draw(st.sampled_from(ip_packets))
            version = about.ip_version
            assert about.src is not None and about.dst is not None
            sender = draw(st.sampled_from((about.dst, draw(st.sampled_from(POOLS[version])))))
            packet = Packet(
                ip_version=version,
                src=sender,
                dst=about.src,
                protocol=ICMP[version],
                icmp_type=draw(st.sampled_from(ICMP_ERRORS[version])),
                icmp_code=draw(st.sampled_from((0, 1, 3, 4))),
                quoted=draw(quoted_headers(version, about)),
            )
            if draw(st.integers(0, 3)) == 0:  # a fragmented error: its later part follows
                packet = dataclasses.replace(packet, fragment=FRAGMENT_FIRST, ip_id=7)
                pending.append(_later_fragment(packet))
        else:
            firsts = [p for p in ip_packets if p.fragment == FRAGMENT_FIRST]
            if not firsts or draw(st.booleans()):
                # a new datagram's first fragment (its later fragments may follow)
                fresh = draw(
                    packets(policy, ts).filter(
                        lambda p: p.src is not None and p.fragment != FRAGMENT_LATER
                    )
                )
                ip_id = draw(st.sampled_from((1, 2, 7)))
                # IPv6: a destination-options header may follow the fragment header, so the
                # fragment header's Next Header (60) is not the upper layer
                next_header = fresh.protocol
                if fresh.ip_version == 6 and draw(st.integers(0, 2)) == 0:
                    next_header = 60
                packet = dataclasses.replace(
                    fresh, fragment=FRAGMENT_FIRST, ip_id=ip_id, frag_next_header=next_header
                )
                result.append(dataclasses.replace(packet, ts_ns=ts, index=index))
                pending.append(_later_fragment(packet))
                continue
            first = (
                draw(st.sampled_from(firsts[-2:])) if firsts else draw(st.sampled_from(ip_packets))
            )
            packet = _later_fragment(first)
        result.append(dataclasses.replace(packet, ts_ns=ts, index=index))
    return result


@st.composite
def policy_and_packets(draw: st.DrawFn) -> tuple[Policy, Packet]:
    policy = draw(policies())
    return policy, draw(packets(policy))


@st.composite
def policy_and_sequences(draw: st.DrawFn, max_size: int = 30) -> tuple[Policy, list[Packet]]:
    policy = draw(policies())
    return policy, draw(packet_sequences(policy, max_size=max_size))


@st.composite
def changed_policies(draw: st.DrawFn, policy: Policy) -> Policy:
    """A change someone could make to `policy`: rules flipped between allow and deny,
    enabled or disabled, re-prioritised or removed, and an instance's group sequence
    reordered or shortened. The same groups, address groups and instance addresses."""
    groups = {}
    for gid, group in policy.groups.items():
        rules_after = []
        for rule in group.rules:
            change = draw(
                st.sampled_from(("keep", "keep", "keep", "flip", "toggle", "prio", "drop"))
            )
            if change == "flip":
                rule = dataclasses.replace(
                    rule, action="deny" if rule.action == "allow" else "allow"
                )
            elif change == "toggle":
                rule = dataclasses.replace(rule, enabled=not rule.enabled)
            elif change == "prio":
                rule = dataclasses.replace(rule, priority=draw(st.sampled_from((1, 2, 50, 100))))
            elif change == "drop":
                continue
            rules_after.append(rule)
        groups[gid] = dataclasses.replace(group, rules=tuple(rules_after))
    instances = {}
    for iid, instance in policy.instances.items():
        sequence = list(instance.security_groups)
        if sequence and draw(st.integers(0, 3)) == 0:
            sequence = list(draw(st.permutations(sequence)))[: draw(st.integers(0, len(sequence)))]
        instances[iid] = dataclasses.replace(instance, security_groups=tuple(sequence))
    return dataclasses.replace(policy, groups=groups, instances=instances)
