"""Verdicts the contract settles explicitly (spec sections 1, 3, 4 and 6), one test each.

- a fragmented ICMP error: its later fragments are `related` too (they take the first
  fragment's quoted header);
- IPv6 fragments with an extension header after the fragment header: keyed by the fragment
  header's Next Header, so the later fragments join (and take the upper-layer protocol);
  an unjoined later fragment's protocol is that Next Header;
- `check --icmp-type` without `--icmp-code`: the code is unknown, in every engine;
- ids are used exactly as written;
- every record, not-ip and malformed included, moves the capture's clock;
- an IPv6 extension chain cut before the upper layer is malformed.

Captures are built with scapy, read and classified on both twins, and compared with the
reference fed the same records.
"""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import (
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    PadN,
)
from scapy.layers.l2 import ARP

from classifier import cli, pcap, reference
from classifier.codes import (
    MALFORMED_EXT_HEADERS,
    STATUS_L4_TRUNCATED,
    STATUS_MALFORMED,
)
from classifier.engine import ClassifyResult, Engine
from classifier.errors import PolicyError
from classifier.packets import (
    Packet,
    PacketBatch,
)
from classifier.policy import Policy, load_policy_data
from tests.test_pcap_tshark import TSHARK, compare
from tests.test_pcap_unit import eth, pcap_file

VM4, VM6 = "10.0.0.10", "2001:db8::10"
SERVER, ROUTER = "198.51.100.9", "192.0.2.1"
CLIENT6 = "2001:db8:ff::7"
T0 = 1_700_000_000


def _policy(*rules: dict[str, Any], ips: tuple[str, ...] = (VM4, VM6)) -> Policy:
    return load_policy_data(
        {
            "security_groups": [{"id": "sg", "rules": list(rules)}],
            "instances": [{"id": "vm", "ips": list(ips), "security_groups": ["sg"]}],
        }
    )


def _capture(tmp_path: Path, frames: list[tuple[int, bytes]], name: str = "c.pcap") -> Path:
    """frames: (seconds after T0, Ethernet frame)."""
    path = tmp_path / name
    path.write_bytes(pcap_file([(T0 + t, 0, frame) for t, frame in frames]))
    return path


def _verdicts(result: ClassifyResult) -> list[tuple[str, str]]:
    named = result.named()
    return list(zip(named["verdict"].tolist(), named["reason"].tolist(), strict=True))


def _classify(policy: Policy, path: Path, stateful: bool = True) -> list[tuple[str, str]]:
    """The pipeline's verdicts, checked against the reference fed the same records."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", pcap.CaptureWarning)
        got = _verdicts(Engine(policy).classify_pcap(str(path), stateful=stateful))
        records = [p for b in pcap.read_batches(path) for p in b]
    oracle = reference.StatefulReference(policy, stateless=not stateful)
    expected = [(v.verdict, v.reason) for v in oracle.run(records)]
    assert got == expected
    return got


# --- a fragmented ICMP error ---------------------------------------------------------------


def _fragmented_error(quoted_sport: int) -> list[bytes]:
    """Port unreachable from a router to the VM quoting the VM's UDP datagram, in two
    fragments: the quoted header in the first, the rest of the quote in the second."""
    quote = bytes(IP(src=VM4, dst=SERVER, id=1) / UDP(sport=quoted_sport, dport=53) / (b"q" * 40))
    icmp = bytes(ICMP(type=3, code=3) / quote)
    first = IP(src=ROUTER, dst=VM4, id=77, flags="MF", proto=1) / icmp[:48]
    later = IP(src=ROUTER, dst=VM4, id=77, frag=6, proto=1) / icmp[48:]
    return [bytes(eth() / first), bytes(eth() / later)]


def test_later_fragments_of_a_related_icmp_error_are_related(
    tmp_path: Path, twin_mode: str
) -> None:
    policy = _policy({"direction": "egress"})  # out: everything; in: nothing
    query = bytes(eth() / IP(src=VM4, dst=SERVER) / UDP(sport=40000, dport=53))
    path = _capture(
        tmp_path,
        [
            (0, query),
            *((1, f) for f in _fragmented_error(40000)),
            *((2, f) for f in _fragmented_error(40001)),
        ],
    )
    assert _classify(policy, path) == [
        ("allow", "rule"),
        ("allow", "related"),
        ("allow", "related"),  # the quoted datagram's connection lives
        ("deny", "implicit-deny"),
        ("deny", "implicit-deny"),  # it quotes no connection
    ]
    assert _classify(policy, path, stateful=False)[1:3] == [("deny", "implicit-deny")] * 2


# --- IPv6 fragments with an extension header after the fragment header -----------------------


def _v6_fragments(ident: int, dport: int) -> list[bytes]:
    """A TCP segment to the VM whose fragment header is followed by destination options."""
    inner = bytes(IPv6ExtHdrDestOpt(nh=6) / TCP(sport=50000, dport=dport, flags="S") / (b"d" * 64))
    head = IPv6(src=CLIENT6, dst=VM6, nh=44)
    first = head / IPv6ExtHdrFragment(nh=60, m=1, id=ident, offset=0) / inner[:40]
    later = head / IPv6ExtHdrFragment(nh=60, m=0, id=ident, offset=5) / inner[40:]
    return [bytes(eth() / first), bytes(eth() / later)]


def test_ipv6_fragments_are_keyed_by_the_fragment_headers_next_header(
    tmp_path: Path, twin_mode: str
) -> None:
    policy = _policy(
        {"direction": "ingress", "ethertype": "IPv6", "protocol": "tcp", "multiport": "443"}
    )
    frames = [(0, f) for f in _v6_fragments(5, 443)] + [(1, _v6_fragments(6, 443)[1])]
    path = _capture(tmp_path, frames)
    batch = pcap.read_all(path)
    assert batch.frag_next_header.tolist() == [60, 60, 60]
    assert batch.protocol.tolist() == [6, 60, 60]  # what each record shows by itself
    assert _classify(policy, path) == [
        ("allow", "rule"),
        ("allow", "established"),  # joined: TCP, port 443, the connection the first created
        ("deny", "implicit-deny"),  # no first fragment: protocol 60 (its Next Header)
    ]
    # stateless: no joining, so the later fragment is protocol 60 with no ports
    assert _classify(policy, path, stateful=False) == [
        ("allow", "rule"),
        ("deny", "implicit-deny"),
        ("deny", "implicit-deny"),
    ]
    # the joined fragment is judged as TCP by the rules as well (here: denied)
    closed = _policy(
        {
            "direction": "ingress",
            "ethertype": "IPv6",
            "protocol": "tcp",
            "multiport": "443",
            "action": "deny",
        },
        {"direction": "ingress", "ethertype": "IPv6", "priority": 2},
    )
    assert _classify(closed, path) == [("deny", "rule"), ("deny", "rule"), ("allow", "rule")]
    # a first fragment whose Next Header differs is another datagram
    other = tmp_path / "other.pcap"
    first = IPv6(src=CLIENT6, dst=VM6) / IPv6ExtHdrFragment(nh=6, m=1, id=5) / TCP(dport=443)
    other.write_bytes(pcap_file([(T0, 0, bytes(eth() / first)), (T0, 1, _v6_fragments(5, 443)[1])]))
    assert _classify(policy, other) == [("allow", "rule"), ("deny", "implicit-deny")]


@pytest.mark.skipif(TSHARK is None, reason="tshark is not installed")
def test_ipv6_fragments_with_destination_options_equal_wireshark(
    tmp_path: Path, twin_mode: str
) -> None:
    path = _capture(tmp_path, [(0, f) for f in _v6_fragments(5, 443) + _fragmented_error(1)])
    assert not compare(path, pcap.read_all(path))


def test_reference_joins_by_next_header_and_lends_protocol_and_quote() -> None:
    """The oracle itself, on hand-made records: what a joined later fragment becomes."""
    import ipaddress

    src, dst = ipaddress.ip_address(CLIENT6), ipaddress.ip_address(VM6)
    first = Packet(
        ip_version=6,
        src=src,
        dst=dst,
        protocol=6,
        frag_next_header=60,
        sport=1,
        dport=443,
        tcp_flags=2,
        fragment=1,
        ip_id=9,
    )
    later = Packet(ip_version=6, src=src, dst=dst, protocol=60, fragment=2, ip_id=9, frag_offset=5)
    oracle = reference.StatefulReference(_policy())
    oracle.join(first, 0)
    joined = oracle.join(later, 1)
    assert (joined.protocol, joined.dport, joined.tcp_flags, joined.frag_next_header) == (
        6,
        443,
        None,
        60,
    )


# --- check --icmp-type without --icmp-code ---------------------------------------------------


ICMP_RULES = (
    {
        "direction": "ingress",
        "protocol": "icmp",
        "icmp_type": 3,
        "icmp_code": 4,
        "action": "deny",
        "id": "deny-3-4",
    },
    {"direction": "ingress", "protocol": "icmp", "icmp_type": 3, "priority": 2, "id": "allow-3"},
    {
        "direction": "ingress",
        "protocol": "icmp",
        "icmp_type": 11,
        "icmp_code": 0,
        "id": "allow-11-0",
    },
)


@pytest.mark.parametrize(
    ("icmp_type", "icmp_code", "expected"),
    [
        (3, 4, ("deny", "deny-3-4")),
        (3, None, ("allow", "allow-3")),  # the code rule cannot match; the type-only one can
        (11, 0, ("allow", "allow-11-0")),
        (11, None, ("deny", None)),  # only a code rule for type 11: implicit deny
    ],
)
def test_unknown_icmp_code_matches_type_only_rules(
    twin_mode: str, icmp_type: int, icmp_code: int | None, expected: tuple[str, str | None]
) -> None:
    import ipaddress

    policy = _policy(*ICMP_RULES)
    packet = Packet(
        ip_version=4,
        src=ipaddress.ip_address(ROUTER),
        dst=ipaddress.ip_address(VM4),
        protocol=1,
        icmp_type=icmp_type,
        icmp_code=icmp_code,
    )
    verdict = reference.evaluate(policy, packet)
    assert (verdict.verdict, verdict.rule_id) == expected
    engine = Engine(policy)
    batch = PacketBatch.from_packets([packet])
    assert batch.packet(0) == packet  # the batch keeps "code unknown"
    result = engine.classify(batch)
    rule = int(result.rule[0])
    assert (
        ["allow", "deny"][int(result.verdict[0])],
        engine.rule_ids[rule] if rule >= 0 else None,
    ) == expected


def _check(policy_path: Path, *args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(
        [
            "check",
            "--policy",
            str(policy_path),
            "--src",
            ROUTER,
            "--dst",
            VM4,
            "--proto",
            "icmp",
            *args,
        ],
        out,
        err,
    )
    return code, out.getvalue(), err.getvalue()


def test_check_without_icmp_code_says_the_code_is_unknown(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text(
        json.dumps(
            {
                "security_groups": [{"id": "sg", "rules": list(ICMP_RULES)}],
                "instances": [{"id": "vm", "ips": [VM4], "security_groups": ["sg"]}],
            }
        )
    )
    code, out, _ = _check(path, "--icmp-type", "3")
    assert code == 0
    assert "note: no ICMP code given: evaluated as a packet whose ICMP code is unknown" in out
    assert "by rule allow-3 " in out and out.rstrip().endswith("verdict: allow")
    code, out, _ = _check(path, "--icmp-type", "3", "--icmp-code", "4")
    assert "note:" not in out and out.rstrip().endswith("verdict: deny")
    code, out, _ = _check(path, "--icmp-type", "11")
    assert "implicit deny" in out and out.rstrip().endswith("verdict: deny")
    code, out, err = _check(path, "--icmp-type", "3", "--json")
    assert json.loads(out)["verdict"] == "allow" and "ICMP code is unknown" in err


# --- ids as written -------------------------------------------------------------------------


def test_ids_are_used_exactly_as_written(tmp_path: Path) -> None:
    data: dict[str, Any] = {
        "address_groups": [{"id": " office ", "ip_version": 4, "ip_set": ["198.51.100.0/24"]}],
        "security_groups": [
            {
                "id": " padded ",
                "rules": [
                    {"id": " r 1 ", "direction": "ingress", "remote_address_group_id": " office "},
                    {"direction": "ingress", "remote_group_id": " padded "},
                ],
            },
        ],
        "instances": [{"id": " vm ", "ips": [VM4], "security_groups": [" padded "]}],
    }
    policy = load_policy_data(data)
    assert list(policy.groups) == [" padded "]
    assert [r.id for r in policy.groups[" padded "].rules] == [" r 1 ", " padded /2"]
    assert list(policy.instances) == [" vm "] and list(policy.address_groups) == [" office "]
    assert policy.groups[" padded "].rules[0].remote_address_group_id == " office "
    assert policy.groups[" padded "].rules[1].remote_group_id == " padded "
    # a reference without the spaces names another, unknown group
    data["instances"][0]["security_groups"] = ["padded"]
    with pytest.raises(PolicyError, match="unknown security group 'padded'"):
        load_policy_data(data)
    # the flat API shape: the rule's security_group_id is compared as written too
    flat = {
        "security_groups": [{"id": " padded "}],
        "security_group_rules": [{"security_group_id": " padded ", "direction": "egress"}],
        "instances": [{"id": "vm", "ips": [VM4], "security_groups": [" padded "]}],
    }
    assert [r.id for r in load_policy_data(flat).groups[" padded "].rules] == [" padded /1"]
    path = tmp_path / "p.json"
    path.write_text(
        json.dumps(
            {k: v for k, v in data.items() if k != "instances"}
            | {"instances": [{"id": " vm ", "ips": [VM4], "security_groups": [" padded "]}]}
        )
    )
    out, err = io.StringIO(), io.StringIO()
    assert (
        cli.main(
            [
                "check",
                "--policy",
                str(path),
                "--src",
                SERVER,
                "--dst",
                VM4,
                "--proto",
                "tcp",
                "--dport",
                "22",
                "--json",
            ],
            out,
            err,
        )
        == 0
    )
    side = json.loads(out.getvalue())["sides"][0]
    assert (side["instance"], side["group"], side["rule"]) == (" vm ", " padded ", " r 1 ")


# --- the clock --------------------------------------------------------------------------------


def test_not_ip_and_malformed_records_move_the_clock(tmp_path: Path, twin_mode: str) -> None:
    """A UDP flow lives 30 s one way. A not-ip (or malformed) record stamped at +100 s moves
    the clock, so the reply stamped +10 s counts as +100 s: the flow has expired."""
    policy = _policy({"direction": "egress"})
    out = bytes(eth() / IP(src=VM4, dst=SERVER) / UDP(sport=40000, dport=53))
    back = bytes(eth() / IP(src=SERVER, dst=VM4) / UDP(sport=53, dport=40000))
    arp = bytes(eth(type=0x0806) / ARP())
    bad = bytes(eth() / IP(src=SERVER, dst=VM4, ihl=4) / UDP())  # IHL < 5: malformed
    for other in (arp, bad):
        path = _capture(tmp_path, [(0, out), (100, other), (10, back)])
        verdicts = _classify(policy, path)
        assert verdicts[0] == ("allow", "rule") and verdicts[1][0] in ("not-ip", "malformed")
        assert verdicts[2] == ("deny", "implicit-deny")
    path = _capture(tmp_path, [(0, out), (10, back)])
    assert _classify(policy, path)[1] == ("allow", "established")  # without it: alive


# --- a cut IPv6 extension chain ---------------------------------------------------------------


def test_ipv6_extension_chain_cut_before_the_upper_layer_is_malformed(
    tmp_path: Path, twin_mode: str
) -> None:
    packet = bytes(
        eth()
        / IPv6(src=CLIENT6, dst=VM6)
        / IPv6ExtHdrHopByHop()
        / IPv6ExtHdrDestOpt(options=[PadN(optdata=b"\x00" * 12)])
        / TCP(dport=443)
    )
    chain_end = 14 + 40 + 8 + 16  # Ethernet, IPv6, hop-by-hop, destination options
    frames = [
        (T0, 0, packet[: chain_end - 1], len(packet)),  # cut inside the chain
        (T0, 1, packet[:chain_end], len(packet)),  # chain whole, TCP header cut
    ]
    path = tmp_path / "cut.pcap"
    path.write_bytes(pcap_file(frames))
    batch = pcap.read_all(path)
    assert int(batch.status[0]) == STATUS_MALFORMED
    assert int(batch.malformed_reason[0]) == MALFORMED_EXT_HEADERS
    assert int(batch.status[1]) == STATUS_L4_TRUNCATED and int(batch.protocol[1]) == 6
    policy = _policy({"direction": "ingress", "ethertype": "IPv6"})  # everything in
    assert _classify(policy, path) == [("malformed", ""), ("allow", "rule")]
    assert np.array_equal(batch.fragment, [0, 0])
