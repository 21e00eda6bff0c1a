"""The whole path, capture file to per-packet CSV, equals the reference matcher.

Hypothesis draws a policy and a packet sequence (tests/strategies.py); scapy builds each
packet's frame (Ethernet, IPv4/IPv6 with fragments, TCP/UDP/SCTP, ICMP queries and errors
with quoted headers, truncation by the snap length); the frames go into a nanosecond pcap;
`sgclassify classify --packets` classifies it; every row must equal what
`reference.StatefulReference` (or `reference.evaluate`, stateless) says of the drawn packet.
"""

from __future__ import annotations

import csv
import io
import struct
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, assume, given, settings
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6, IPv6ExtHdrFragment
from scapy.layers.l2 import ARP, Ether
from scapy.layers.sctp import SCTP
from scapy.packet import Raw

from classifier import reference
from classifier.cli import main
from classifier.codes import (
    FRAGMENT_FIRST,
    FRAGMENT_LATER,
    STATUS_MALFORMED,
    STATUS_NOT_IP,
)
from classifier.packets import Packet, QuotedHeader
from classifier.policy import Policy
from tests import strategies

PCAP_NS_HEADER = struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 262144, 1)
ICMP_NUMBER = {4: 1, 6: 58}


def _icmp(packet_type: int, code: int, rest: bytes, body: bytes = b"") -> bytes:
    return struct.pack("!BBH", packet_type, code, 0) + rest + body


def _quoted(version: int, quoted: QuotedHeader) -> bytes:
    """The IP header (and start of transport header) an ICMP error carries."""
    if quoted.sport is not None and quoted.dport is not None:
        inner = (TCP if quoted.protocol == 6 else UDP)(sport=quoted.sport, dport=quoted.dport)
        l4 = bytes(inner)[:8]
    elif quoted.icmp_id is not None:
        l4 = _icmp(quoted.icmp_type or 0, 0, struct.pack("!HH", quoted.icmp_id, 1))
    else:
        l4 = b""
    ip = IP if version == 4 else IPv6
    layer = ip(
        src=str(quoted.src),
        dst=str(quoted.dst),
        **({"proto": quoted.protocol} if version == 4 else {"nh": quoted.protocol}),
    )
    return bytes(layer / Raw(l4)) if l4 else bytes(layer)


def _transport(packet: Packet) -> tuple[bytes, int | None]:
    """(transport bytes, bytes of them to keep in the capture or None for all)."""
    version, protocol = packet.ip_version, packet.protocol
    if packet.fragment == FRAGMENT_LATER:
        return b"\x00" * 16, None
    if protocol in (6, 17, 132):
        sport = packet.sport if packet.sport is not None else 1234
        dport = packet.dport if packet.dport is not None else 80
        if protocol == 6:
            data = bytes(TCP(sport=sport, dport=dport, flags=packet.tcp_flags or 0))
            keep = None if packet.tcp_flags is not None else 8  # ports yes, flags no
        elif protocol == 17:
            data, keep = bytes(UDP(sport=sport, dport=dport)), None
        else:
            data, keep = bytes(SCTP(sport=sport, dport=dport)), None
        if packet.dport is None:
            keep = 2  # the snap length cut the ports off
        return data, keep
    if protocol == ICMP_NUMBER[version]:
        if packet.icmp_type is None:
            return _icmp(8 if version == 4 else 128, 0, b"\x00" * 4), 1
        if packet.quoted is not None:
            return _icmp(
                packet.icmp_type,
                packet.icmp_code or 0,
                b"\x00" * 4,
                _quoted(version, packet.quoted),
            ), None
        identifier = packet.icmp_id if packet.icmp_id is not None else 0
        data = _icmp(packet.icmp_type, packet.icmp_code or 0, struct.pack("!HH", identifier, 1))
        return data, (None if packet.icmp_id is not None or packet.status == 0 else 2)
    return b"\x00" * 8, None


def frame(packet: Packet) -> tuple[bytes, int]:
    """(captured bytes, wire length) of one drawn packet."""
    ether = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
    if packet.status == STATUS_NOT_IP:
        data = bytes(ether / ARP())
        return data, len(data)
    if packet.status == STATUS_MALFORMED:
        data = bytes(ether / IP(ihl=4, src="10.9.9.9", dst="10.9.9.8"))
        return data, len(data)
    assert packet.src is not None and packet.dst is not None
    l4, keep = _transport(packet)
    more = packet.fragment == FRAGMENT_FIRST
    offset = packet.frag_offset if packet.fragment == FRAGMENT_LATER else 0
    if packet.ip_version == 4:
        ip = IP(
            src=str(packet.src),
            dst=str(packet.dst),
            proto=packet.protocol,
            id=packet.ip_id,
            flags="MF" if more else 0,
            frag=offset,
        )
        header = bytes(ether / ip)[: 14 + 20]
    else:
        ip6 = IPv6(src=str(packet.src), dst=str(packet.dst))
        if packet.fragment in (FRAGMENT_FIRST, FRAGMENT_LATER):
            ip6 = ip6 / IPv6ExtHdrFragment(
                nh=packet.protocol, id=packet.ip_id, offset=offset, m=int(more)
            )
            header = bytes(ether / ip6)[: 14 + 40 + 8]
        else:
            ip6.nh = packet.protocol
            header = bytes(ether / ip6)[: 14 + 40]
    frame = bytearray(header + l4)
    # fix the IP lengths for the transport bytes appended by hand
    if packet.ip_version == 4:
        struct.pack_into("!H", frame, 14 + 2, len(frame) - 14)
    else:
        struct.pack_into("!H", frame, 14 + 4, len(frame) - 14 - 40)
    wire = len(frame)
    if keep is not None:
        del frame[len(header) + keep :]
    return bytes(frame), wire


def write_capture(path: Path, packets: list[Packet]) -> None:
    with path.open("wb") as stream:
        stream.write(PCAP_NS_HEADER)
        for packet in packets:
            data, wire = frame(packet)
            seconds, nanoseconds = divmod(packet.ts_ns, 1_000_000_000)
            stream.write(struct.pack("<IIII", seconds, nanoseconds, len(data), wire) + data)


def write_policy(path: Path, policy: Policy) -> None:
    """The drawn policy as a YAML file the loaders read (so the CLI path is the user's)."""
    import yaml

    groups = []
    for group in policy.groups.values():
        rules = []
        for rule in group.rules:
            entry: dict[str, object] = {
                "id": rule.id,
                "direction": rule.direction,
                "priority": rule.priority,
                "action": rule.action,
                "ethertype": f"IPv{rule.ip_version}",
                "protocol": "all" if rule.protocol is None else rule.protocol,
                "enabled": rule.enabled,
            }
            if rule.ports is not None:
                entry["multiport"] = rule.ports_text
            if rule.icmp_type is not None:
                entry["icmp_type"] = rule.icmp_type
                if rule.icmp_code is not None:
                    entry["icmp_code"] = rule.icmp_code
            if rule.remote_prefixes:
                entry["remote_ip_prefix"] = ", ".join(str(p) for p in rule.remote_prefixes)
            if rule.remote_group_id is not None:
                entry["remote_group_id"] = rule.remote_group_id
            if rule.remote_address_group_id is not None:
                entry["remote_address_group_id"] = rule.remote_address_group_id
            rules.append(entry)
        groups.append({"id": group.id, "rules": rules})
    document = {
        "security_groups": groups,
        "address_groups": [
            {
                "id": ag.id,
                "ip_version": ag.ip_version,
                "ip_set": [
                    f"{e.first}-{e.last}" if e.first != e.last else str(e.first) for e in ag.entries
                ],
            }
            for ag in policy.address_groups.values()
        ],
        "instances": [
            {
                "id": i.id,
                "ips": [str(ip) for ip in i.ips],
                "security_groups": list(i.security_groups),
            }
            for i in policy.instances.values()
        ],
    }
    path.write_text(yaml.safe_dump(document, sort_keys=False))


def classify_rows(
    policy_path: Path, capture: Path, stateless: bool
) -> list[tuple[str, str, str, str, str]]:
    out_csv = capture.with_suffix(".csv")
    err = io.StringIO()
    argv = ["classify", "--policy", str(policy_path), "--packets", str(out_csv), "-q", str(capture)]
    code = main(argv + (["--stateless"] if stateless else []), io.StringIO(), err)
    assert code == 0, err.getvalue()
    with out_csv.open() as stream:
        return [
            (r["verdict"], r["reason"], r["instance"], r["direction"], r["rule"])
            for r in csv.DictReader(stream)
        ]


def expected_rows(
    policy: Policy, packets: list[Packet], stateless: bool
) -> list[tuple[str, str, str, str, str]]:
    oracle = reference.StatefulReference(policy, stateless=stateless)
    rows: list[tuple[str, str, str, str, str]] = []
    for packet in packets:
        v = oracle.process(packet)
        rows.append((v.verdict, v.reason, v.instance_id or "", v.direction or "", v.rule_id or ""))
    return rows


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario=strategies.policy_and_sequences(max_size=25))
def test_capture_file_verdicts_equal_the_reference(scenario: tuple[Policy, list[Packet]]) -> None:
    policy, packets = scenario
    # the frame writer puts the upper layer right after an IPv6 fragment header: it cannot
    # write a datagram whose fragment header names an extension header (frag_next_header)
    assume(all(p.frag_next_header == p.protocol for p in packets if p.fragment))
    with tempfile.TemporaryDirectory() as tmp:
        policy_path = Path(tmp) / "policy.yaml"
        capture = Path(tmp) / "capture.pcap"
        write_policy(policy_path, policy)
        write_capture(capture, packets)
        for stateless in (False, True):
            assert classify_rows(policy_path, capture, stateless) == expected_rows(
                policy, packets, stateless
            )
