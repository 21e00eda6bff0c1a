"""`exposure` (exposure.md): sockets mode on real listings, its semantics against the reference on
random policies, capture mode on the bundled samples and on written captures (both twins), and
the command's outputs and errors.
"""

from __future__ import annotations

import io
import ipaddress
import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from classifier import reference
from classifier.analysis.exposure import capture_exposure, idle_ports, reach, sockets_exposure
from classifier.analysis.keyspace import KeySpace
from classifier.analysis.sockets import ListeningSocket, SocketListing, parse_sockets
from classifier.cli import main
from classifier.codes import (
    L4_PORTS,
    L4_TCP_FLAGS,
    STATUS_OK,
    TCP_ACK,
    TCP_RST,
    TCP_SYN,
)
from classifier.engine import Engine
from classifier.packets import (
    Packet,
)
from classifier.pcap import read_all, read_batches
from classifier.policy import load_policy
from tests.brute import address, remote_points
from tests.conftest import EXAMPLES, ROOT, SAMPLE_PCAPS
from tests.strategies import BOUNDARY_PORTS, policies

DATA = Path(__file__).parent / "data" / "sockets"
HOST = str(DATA / "host.yaml")
WEB_DB = str(EXAMPLES / "web-db.yaml")
SAMPLES = sorted(str(p) for p in SAMPLE_PCAPS.glob("*.pcap"))


def run(*argv: str, stdin: bytes | None = None) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    saved = sys.stdin
    if stdin is not None:
        sys.stdin = io.TextIOWrapper(io.BytesIO(stdin))
    try:
        code = main(list(argv), out, err)
    finally:
        sys.stdin = saved
    return code, out.getvalue(), err.getvalue()


# --- sockets mode on the real listings ----------------------------------------------------


def entry(
    line: int,
    protocol: str,
    addr: str,
    port: int,
    family: int,
    verdict: str,
    allowed: list[str],
    allow: list[str],
    deny: list[str],
    notes: list[str] | None = None,
    dual: bool = False,
    process: str | None = None,
) -> dict[str, Any]:
    return {
        "line": line,
        "protocol": protocol,
        "address": addr,
        "port": port,
        "family": family,
        "dual_stack": dual,
        "interface": None,
        "process": process,
        "verdict": verdict,
        "allowed_from": allowed,
        "allow_rules": allow,
        "deny_rules": deny,
        "notes": notes or [],
    }


OFFICE = ["192.0.2.10-192.0.2.20", "198.51.100.0/24"]
IMPLICIT = ["implicit-deny"]
HOST_ENTRIES = [  # ss-tulnp.txt on instance host, in file order
    entry(2, "udp", "127.0.0.53", 18053, 4, "local only", [], [], []),
    entry(3, "udp", "0.0.0.0", 18068, 4, "open to some", ["10.0.0.0/8"], ["dns-inside"], IMPLICIT),
    entry(
        4,
        "udp",
        "::",
        18546,
        4,
        "open to some",
        ["10.0.0.0/8"],
        ["dns-inside"],
        IMPLICIT,
        dual=True,
    ),
    entry(4, "udp", "::", 18546, 6, "blocked", [], [], IMPLICIT, dual=True),
    entry(5, "udp", "::", 18901, 4, "blocked", [], [], IMPLICIT, dual=True),
    entry(5, "udp", "::", 18901, 6, "blocked", [], [], IMPLICIT, dual=True),
    entry(6, "tcp", "127.0.0.1", 18631, 4, "local only", [], [], []),
    entry(7, "tcp", "192.0.2.2", 18432, 4, "blocked", [], [], ["block-db"]),
    entry(8, "tcp", "0.0.0.0", 18900, 4, "blocked", [], [], IMPLICIT),
    entry(9, "tcp", "0.0.0.0", 18022, 4, "open to some", OFFICE, ["ssh-office"], IMPLICIT),
    entry(10, "tcp", "fd00::2", 18432, 6, "blocked", [], [], IMPLICIT),
    entry(11, "tcp", "::", 18022, 6, "blocked", [], [], IMPLICIT),
    entry(12, "tcp", "::", 18080, 4, "open to any", ["0.0.0.0/0"], ["web-any"], [], dual=True),
    entry(12, "tcp", "::", 18080, 6, "open to any", ["::/0"], ["web-any6"], [], dual=True),
    entry(13, "tcp", "::1", 18631, 6, "local only", [], [], []),
]
HOST_IDLE = [
    {
        "rule": "range-office",
        "group": "sg-host",
        "protocol": "tcp",
        "family": 4,
        "ports": ["18000-18021", "18023-18079", "18081-18100"],
    }
]


def test_sockets_mode_json_on_a_real_ss_listing() -> None:
    code, out, err = run(
        "exposure",
        "--policy",
        HOST,
        "--instance",
        "host",
        str(DATA / "ss-tulnp.txt"),
        "--json",
        "-",
    )
    assert code == 0 and err == ""
    document = json.loads(out)
    assert list(document) == ["mode", "instance", "format", "sockets", "idle"]
    assert (document["mode"], document["instance"], document["format"]) == ("sockets", "host", "ss")
    processes = [s.pop("process") for s in document["sockets"]]
    assert processes[0] == 'users:(("python3",pid=13414,fd=13))'
    assert document["sockets"] == [
        {k: v for k, v in e.items() if k != "process"} for e in HOST_ENTRIES
    ]
    assert document["idle"] == HOST_IDLE


@pytest.mark.parametrize(
    "name",
    [
        "ss-tuln.txt",
        "netstat-tulnpW.txt",
        "netstat-tuln.txt",
        "netstat-anW.txt",
        "netstat-tulnp-as-nobody.txt",
    ],
)
def test_every_real_listing_gives_the_same_answers(name: str) -> None:
    policy = load_policy(HOST)
    result = sockets_exposure(
        policy, "host", parse_sockets((DATA / name).read_bytes(), name)
    ).to_json()

    def comparable(e: dict[str, Any]) -> tuple[Any, ...]:
        return tuple(v for k, v in e.items() if k not in ("line", "process"))

    assert sorted(map(comparable, result["sockets"])) == sorted(map(comparable, HOST_ENTRIES))
    assert result["idle"] == HOST_IDLE


def test_notes_on_an_instance_without_these_addresses() -> None:
    code, out, _ = run(
        "exposure",
        "--policy",
        HOST,
        "--instance",
        "other",
        str(DATA / "ss-tuln.txt"),
        "--json",
        "-",
    )
    notes = {(s["address"], s["port"], s["family"]): s["notes"] for s in json.loads(out)["sockets"]}
    assert notes[("192.0.2.2", 18432, 4)] == ["not an instance address"]
    assert notes[("::", 18022, 6)] == ["no IPv6 address on the instance"]
    assert notes[("::", 18080, 6)] == ["no IPv6 address on the instance"]
    assert notes[("0.0.0.0", 18900, 4)] == [] and notes[("127.0.0.1", 18631, 4)] == []


def test_loopback_by_interface_and_mapped_addresses() -> None:
    listing = parse_sockets((DATA / "linklocal" / "ss-tulnap.txt").read_bytes(), "x")
    result = sockets_exposure(load_policy(HOST), "host", listing).to_json()
    by_port = {(s["port"], s["family"]): s for s in result["sockets"]}
    assert (
        by_port[(18084, 4)]["verdict"] == "local only" and by_port[(18084, 4)]["interface"] == "lo"
    )
    assert (
        by_port[(18083, 4)]["address"] == "127.0.0.1"
        and by_port[(18083, 4)]["verdict"] == "local only"
    )
    assert by_port[(18087, 6)]["interface"] == "eth0"
    assert by_port[(18087, 6)]["notes"] == ["not an instance address"]


def test_windows_listing_against_web_db() -> None:
    code, out, _ = run(
        "exposure",
        "--policy",
        WEB_DB,
        "--instance",
        "web-1",
        str(DATA / "windows-ano-utf16.txt"),
        "--json",
        "-",
    )
    document = json.loads(out)
    assert document["format"] == "windows-netstat"
    first = document["sockets"][0]
    assert (
        first["port"],
        first["verdict"],
        first["allowed_from"],
        first["allow_rules"],
        first["process"],
    ) == (22, "open to some", ["192.0.2.10-192.0.2.20", "198.51.100.0/24"], ["web-ssh"], "4120")
    https6 = next(s for s in document["sockets"] if s["port"] == 443)
    assert (https6["family"], https6["verdict"], https6["allow_rules"]) == (
        6,
        "open to any",
        ["web-v6"],
    )
    assert document["idle"] == [
        {"rule": "web-http", "group": "sg-web", "protocol": "tcp", "family": 4, "ports": ["443"]},
    ]  # web-v6's 80 and 443 are taken: [::]:80 and [2001:db8:1::10]:443 listen


# --- semantics against the reference -------------------------------------------------------


@st.composite
def exposure_cases(draw: st.DrawFn) -> tuple[Any, str, list[ListeningSocket]]:
    policy = draw(policies(max_groups=3, max_rules=8))
    instance = draw(st.sampled_from(sorted(policy.instances)))
    sockets = []
    for line in range(1, draw(st.integers(0, 5)) + 1):
        protocol = draw(st.sampled_from(("tcp", "udp")))
        port = draw(st.one_of(st.sampled_from(BOUNDARY_PORTS), st.integers(0, 65535)))
        kind = draw(st.sampled_from(("v4", "v6", "dual", "loopback")))
        addr: Any = {
            "v4": ipaddress.IPv4Address(0),
            "v6": ipaddress.IPv6Address(0),
            "dual": ipaddress.IPv6Address(0),
            "loopback": ipaddress.IPv4Address("127.0.0.1"),
        }[kind]
        families = {"v4": (4,), "v6": (6,), "dual": (4, 6), "loopback": (4,)}[kind]
        sockets.append(ListeningSocket(line, protocol, addr, port, families))  # type: ignore[arg-type]
    return policy, instance, sockets


def deciding(policy: Any, instance: Any, family: int, protocol: int, port: int, remote: Any) -> Any:
    packet = Packet(
        ip_version=family,
        src=remote,
        dst=address(family, 1),
        protocol=protocol,
        sport=40000,
        dport=port,
    )
    return reference.evaluate_side(policy, instance, "ingress", packet).rule


def boundaries_ok(ranges: list[tuple[int, int]], cuts: set[int], end: int) -> bool:
    return all(lo in cuts and (hi + 1 in cuts or hi + 1 == end) for lo, hi in ranges)


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(exposure_cases())
def test_reach_and_idle_ports_against_the_reference(case: Any) -> None:
    policy, instance_id, listed = case
    instance = policy.instances[instance_id]
    space = KeySpace(policy)
    result = sockets_exposure(policy, instance_id, SocketListing("ss", tuple(listed)), space)
    order = {}
    for family in (4, 6):
        for n, rule in enumerate(reference.candidates(policy, instance, "ingress", family)):
            order[(family, rule.id)] = n
    for e in result.entries:
        if e.socket.loopback:
            assert e.verdict == "local only" and not (
                e.allowed_from or e.allow_rules or e.deny_rules
            )
            continue
        family, protocol, port = e.family, {"tcp": 6, "udp": 17}[e.socket.protocol], e.socket.port
        found = reach(space, instance, family, protocol, port)
        remotes = remote_points(policy, family)
        rules = [deciding(policy, instance, family, protocol, port, r) for r in remotes]
        allowed = [
            r
            for r, rule in zip(remotes, rules, strict=True)
            if rule is not None and rule.action == "allow"
        ]
        assert [
            r for r in remotes if any(lo <= int(r) <= hi for lo, hi in found.allowed)
        ] == allowed
        cuts = {int(r) for r in remotes}
        assert boundaries_ok(list(found.allowed), cuts, 1 << (32 if family == 4 else 128))
        allow_ids = sorted(
            {rule.id for rule in rules if rule is not None and rule.action == "allow"},
            key=lambda rid: order[(family, rid)],
        )
        deny_ids = sorted(
            {rule.id for rule in rules if rule is not None and rule.action == "deny"},
            key=lambda rid: order[(family, rid)],
        )
        assert e.allow_rules == tuple(allow_ids)
        assert e.deny_rules == tuple(deny_ids + (["implicit-deny"] if None in rules else []))
        verdict = (
            "blocked"
            if not allowed
            else "open to any"
            if len(allowed) == len(remotes)
            and found.allowed == ((0, (1 << (32 if family == 4 else 128)) - 1),)
            else "open to some"
        )
        assert e.verdict == verdict
    used: dict[tuple[int, int], set[int]] = {}
    for e in result.entries:
        if not e.socket.loopback:
            used.setdefault((e.family, {"tcp": 6, "udp": 17}[e.socket.protocol]), set()).add(
                e.socket.port
            )
    expected_idle = []
    for family in (4, 6):
        remotes = remote_points(policy, family)
        for rule in reference.candidates(policy, instance, "ingress", family):
            if rule.action != "allow":
                continue
            for protocol in (6, 17):
                if rule.protocol not in (None, protocol):
                    continue
                ports = {1, 65535}
                for other in policy.rules():
                    for lo, hi in other.ports or ():
                        ports |= {lo, hi + 1}
                for q in used.get((family, protocol), set()):
                    ports |= {q, q + 1}
                ports = {q for q in ports if 1 <= q <= 65535}
                idle = {
                    q
                    for q in ports
                    if q not in used.get((family, protocol), set())
                    and any(
                        deciding(policy, instance, family, protocol, q, r) is rule for r in remotes
                    )
                }
                if idle:
                    expected_idle.append((rule.id, protocol, family, idle, ports))
    got = [i for i in result.idle]
    assert [(i.rule, {"tcp": 6, "udp": 17}[i.protocol], i.family) for i in got] == [
        (rule_id, protocol, family) for rule_id, protocol, family, _, _ in expected_idle
    ]
    for item, (_, _, _, idle, ports) in zip(got, expected_idle, strict=True):
        ranges = [
            tuple(map(int, p.split("-"))) if "-" in p else (int(p), int(p)) for p in item.ports
        ]
        assert {q for q in ports if any(lo <= q <= hi for lo, hi in ranges)} == idle
        assert boundaries_ok(ranges, ports, 65536)  # type: ignore[arg-type]
    assert idle_ports(space, instance, used) == result.idle


# --- capture mode ----------------------------------------------------------------------------


def text(address: Any) -> str:
    """exposure.md section 5: an IPv4-mapped IPv6 address is written as IPv4."""
    mapped = getattr(address, "ipv4_mapped", None)
    return str(mapped if mapped is not None else address)


def slow_capture_exposure(policy: Any, paths: list[str]) -> dict[str, Any]:
    """exposure.md section 4, one record at a time with `Packet`s and the reference."""
    batch = read_all(paths)
    first_sender: dict[frozenset[Any], Any] = {}
    answers: dict[tuple[str, int, int, int], list[tuple[Any, Any]]] = {}
    for i in range(len(batch)):
        p = batch.packet(i)
        if not (batch.status[i] == STATUS_OK and batch.l4[i] & L4_PORTS and p.protocol in (6, 17)):
            continue
        owner = policy.instance_of(p.src)
        if p.protocol == 6:
            is_answer = (
                bool(batch.l4[i] & L4_TCP_FLAGS)
                and (p.tcp_flags or 0) & (TCP_SYN | TCP_ACK | TCP_RST) == TCP_SYN | TCP_ACK
            )
        else:
            a, b = (p.ip_version, p.src, p.sport), (p.ip_version, p.dst, p.dport)
            if a == b:
                continue
            pair = frozenset((a, b))
            first = first_sender.setdefault(pair, a)
            is_answer = first == b
        if is_answer and owner is not None and p.sport is not None:
            answers.setdefault((owner.id, p.protocol, p.ip_version, p.sport), []).append(
                (p.src, p.dst)
            )
    instances = []
    for instance in policy.instances.values():
        services = []
        for (iid, protocol, family, port), pairs in sorted(
            answers.items(), key=lambda kv: (kv[0][1] != 6, kv[0][2], kv[0][3])
        ):
            if iid != instance.id:
                continue
            remotes = sorted({r for _, r in pairs}, key=int)
            rules = {r: deciding(policy, instance, family, protocol, port, r) for r in remotes}
            order = {
                rule.id: n
                for n, rule in enumerate(reference.candidates(policy, instance, "ingress", family))
            }
            blocked = [r for r in remotes if rules[r] is None or rules[r].action == "deny"]
            allow = sorted(
                {rules[r].id for r in remotes if r not in blocked}, key=order.__getitem__
            )
            deny = sorted(
                {rules[r].id for r in blocked if rules[r] is not None}, key=order.__getitem__
            )
            services.append(
                {
                    "protocol": "tcp" if protocol == 6 else "udp",
                    "family": family,
                    "port": port,
                    "addresses": [text(a) for a in sorted({a for a, _ in pairs}, key=int)],
                    "answers": len(pairs),
                    "verdict": "answering but blocked" if blocked else "answering and allowed",
                    "remotes": [text(r) for r in remotes],
                    "blocked_remotes": [text(r) for r in blocked],
                    "allow_rules": allow,
                    "deny_rules": deny
                    + (["implicit-deny"] if any(rules[r] is None for r in blocked) else []),
                }
            )
        instances.append({"instance": instance.id, "services": services})
    return {"mode": "capture", "packets": len(batch), "instances": instances}


def without_idle(document: dict[str, Any]) -> dict[str, Any]:
    return {
        **document,
        "instances": [{k: v for k, v in i.items() if k != "idle"} for i in document["instances"]],
    }


def exposure_of(policy: Any, paths: list[str]) -> dict[str, Any]:
    batches = (batch for path in paths for batch in read_batches(path))
    return capture_exposure(policy, batches, Engine(policy).instance_of).to_json()


def test_capture_mode_on_the_samples(twin_mode: str) -> None:
    policy = load_policy(WEB_DB)
    document = exposure_of(policy, SAMPLES)
    assert without_idle(document) == slow_capture_exposure(policy, SAMPLES)
    web1 = document["instances"][0]
    assert [
        (s["protocol"], s["family"], s["port"], s["answers"], s["allow_rules"])
        for s in web1["services"]
    ] == [
        ("tcp", 4, 22, 2, ["web-ssh"]),
        ("tcp", 4, 443, 3, ["web-http"]),
        ("tcp", 6, 80, 1, ["web-v6"]),
        ("tcp", 6, 443, 1, ["web-v6"]),
    ]
    assert web1["idle"] == [
        {"rule": "web-http", "group": "sg-web", "protocol": "tcp", "family": 4, "ports": ["80"]}
    ]
    assert document["packets"] == 495


def write_capture(path: Path) -> None:
    from scapy.layers.inet import IP, TCP, UDP
    from scapy.layers.inet6 import IPv6
    from scapy.layers.l2 import Ether
    from scapy.utils import wrpcap

    def e() -> Any:
        return Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")

    frames = [
        # a SNMP query from outside to db-1 and its answer: db-1 allows no UDP (implicit deny)
        e() / IP(src="203.0.113.9", dst="10.0.2.20") / UDP(sport=5353, dport=161),
        e() / IP(src="10.0.2.20", dst="203.0.113.9") / UDP(sport=161, dport=5353),
        e() / IP(src="10.0.2.20", dst="203.0.113.9") / UDP(sport=161, dport=5353),
        # web-1 asks first: its replies' source is outside, and web-1's next packet is no answer
        e() / IP(src="10.0.1.10", dst="203.0.113.53") / UDP(sport=40001, dport=53),
        e() / IP(src="203.0.113.53", dst="10.0.1.10") / UDP(sport=53, dport=40001),
        e() / IP(src="10.0.1.10", dst="203.0.113.53") / UDP(sport=40001, dport=53),
        # web-2 to db-1 port 53: db-1 answers an instance (blocked by db-1's ingress)
        e() / IP(src="10.0.1.11", dst="10.0.2.20") / UDP(sport=40002, dport=53),
        e() / IP(src="10.0.2.20", dst="10.0.1.11") / UDP(sport=53, dport=40002),
        # an endpoint to itself is never an answer
        e() / IP(src="10.0.2.20", dst="10.0.2.20") / UDP(sport=7, dport=7),
        e() / IP(src="10.0.2.20", dst="10.0.2.20") / UDP(sport=7, dport=7),
        # SYN-ACKs from web-1: 8080 (nobody may connect), 22 to the office and to a stranger
        e() / IP(src="10.0.1.10", dst="203.0.113.5") / TCP(sport=8080, dport=50000, flags="SA"),
        e() / IP(src="10.0.1.10", dst="198.51.100.7") / TCP(sport=22, dport=50001, flags="SA"),
        e() / IP(src="10.0.1.10", dst="203.0.113.99") / TCP(sport=22, dport=50002, flags="SA"),
        e()
        / IP(src="10.0.1.10", dst="203.0.113.98")
        / TCP(sport=22, dport=50003, flags="SAR"),  # RST: no
        e()
        / IP(src="10.0.1.10", dst="203.0.113.97")
        / TCP(sport=23, dport=50004, flags="A"),  # no SYN
        # web-1 over IPv6 to a stranger on 443: allowed by web-v6
        e()
        / IPv6(src="2001:db8:1::10", dst="2001:db8:ff::5")
        / TCP(sport=443, dport=50005, flags="SA"),
        # web-1 answers an IPv4-mapped IPv6 peer: written as IPv4, family 6
        e()
        / IPv6(src="2001:db8:1::10", dst="::ffff:203.0.113.7")
        / TCP(sport=80, dport=50007, flags="SA"),
        # a first fragment carries ports and counts; a later fragment never does
        e()
        / IP(src="10.0.1.11", dst="203.0.113.5", flags="MF", id=9)
        / TCP(sport=80, dport=50006, flags="SA"),
        e() / IP(src="10.0.1.11", dst="203.0.113.6", frag=10, id=9) / (b"x" * 16),
    ]
    wrpcap(str(path), frames)


def test_capture_mode_blocked_answers_and_udp_rules(tmp_path: Path, twin_mode: str) -> None:
    path = tmp_path / "answers.pcap"
    write_capture(path)
    policy = load_policy(WEB_DB)
    document = exposure_of(policy, [str(path)])
    assert without_idle(document) == slow_capture_exposure(policy, [str(path)])
    services = {
        (i["instance"], s["protocol"], s["family"], s["port"]): s
        for i in document["instances"]
        for s in i["services"]
    }
    assert sorted(services) == [
        ("db-1", "udp", 4, 53),
        ("db-1", "udp", 4, 161),
        ("web-1", "tcp", 4, 22),
        ("web-1", "tcp", 4, 8080),
        ("web-1", "tcp", 6, 80),
        ("web-1", "tcp", 6, 443),
        ("web-2", "tcp", 4, 80),
    ]
    assert services[("web-1", "tcp", 6, 80)]["remotes"] == ["203.0.113.7"]
    snmp = services[("db-1", "udp", 4, 161)]
    assert (snmp["answers"], snmp["verdict"], snmp["blocked_remotes"], snmp["deny_rules"]) == (
        2,
        "answering but blocked",
        ["203.0.113.9"],
        ["implicit-deny"],
    )
    ssh = services[("web-1", "tcp", 4, 22)]
    assert (ssh["remotes"], ssh["blocked_remotes"], ssh["allow_rules"], ssh["deny_rules"]) == (
        ["198.51.100.7", "203.0.113.99"],
        ["203.0.113.99"],
        ["web-ssh"],
        ["implicit-deny"],
    )
    assert services[("db-1", "udp", 4, 53)]["remotes"] == ["10.0.1.11"]
    assert document["packets"] == 19


def test_capture_cli_table_and_json_file(tmp_path: Path) -> None:
    path = tmp_path / "answers.pcap"
    write_capture(path)
    target = tmp_path / "exposure.json"
    code, out, err = run("exposure", "--policy", WEB_DB, str(path), "--json", str(target))
    assert code == 0 and err == ""
    assert out.splitlines()[0] == "19 records read"
    assert "answering but blocked" in out and "allowed but never answered:" in out
    assert json.loads(target.read_text())["mode"] == "capture"


def test_several_captures_are_one_capture(tmp_path: Path) -> None:
    """The UDP query in one file makes the reply in the next an answer."""
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether
    from scapy.utils import wrpcap

    first, second = tmp_path / "a.pcap", tmp_path / "b.pcap"
    wrpcap(str(first), [Ether() / IP(src="203.0.113.9", dst="10.0.2.20") / UDP(sport=1, dport=2)])
    wrpcap(str(second), [Ether() / IP(src="10.0.2.20", dst="203.0.113.9") / UDP(sport=2, dport=1)])
    code, out, _ = run("exposure", "--policy", WEB_DB, str(first), str(second), "--json", "-")
    document = json.loads(out)
    assert document["packets"] == 2
    assert [s["port"] for s in document["instances"][2]["services"]] == [2]
    code, out, _ = run("exposure", "--policy", WEB_DB, str(second), "--json", "-")
    assert json.loads(out)["instances"][2]["services"] == []


# --- the command ---------------------------------------------------------------------------


def test_sockets_file_from_standard_input() -> None:
    data = (DATA / "ss-tulnp.txt").read_bytes()
    code, out, _ = run(
        "exposure", "--policy", HOST, "--instance", "host", "-", "--json", "-", stdin=data
    )
    assert code == 0 and json.loads(out)["sockets"][1]["port"] == 18068
    code, out, _ = run("exposure", "--policy", HOST, "--instance", "host", "-", stdin=data)
    assert code == 0 and out.startswith("instance host: 15 listening socket entries (ss)")
    assert "range-office  sg-host  tcp       IPv4    18000-18021, 18023-18079, 18081-18100" in out
    assert "*:18080" in out


def test_damaged_sockets_file_is_file_colon_line(tmp_path: Path) -> None:
    bad = tmp_path / "ss.txt"
    bad.write_bytes((DATA / "ss-tuln.txt").read_bytes().replace(b"0.0.0.0:18068", b"0.0.0.0:dns"))
    code, out, err = run("exposure", "--policy", HOST, "--instance", "host", str(bad))
    assert code == 2 and out == ""
    assert (
        err == f"error: {bad}:3: port 'dns' of '0.0.0.0:dns' is not a number 0..65535 "
        "(a service name: save the output of the -n option)\n"
    )
    code, out, err = run(
        "exposure", "--policy", HOST, "--instance", "host", "-", stdin=b"garbage\n"
    )
    assert code == 2 and err == "error: -:1: not the output of netstat or ss\n"
    code, _, err = run(
        "exposure",
        "--policy",
        HOST,
        "--instance",
        "host",
        str(DATA / "linklocal" / "netstat-tuln.txt"),
    )
    assert code == 2 and err.startswith(f"error: {DATA / 'linklocal' / 'netstat-tuln.txt'}:13: ")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--instance", "nobody", str(DATA / "ss-tuln.txt")], "no such instance"),
        (["--instance", "host", str(DATA / "missing.txt")], "no such sockets file"),
        (["--instance", "host", str(DATA)], "a directory"),
        (
            ["--instance", "host", str(DATA / "ss-tuln.txt"), str(DATA / "ss-tulnp.txt")],
            "takes one sockets file",
        ),
        ([str(DATA / "missing.pcap")], "no such capture file"),
        ([str(DATA / "ss-tuln.txt")], "ss-tuln.txt"),  # not a capture
        (
            ["--instance", "host", str(DATA / "ss-tuln.txt"), "--json", str(DATA / "ss-tuln.txt")],
            "also",
        ),
        (
            ["--instance", "host", str(DATA / "ss-tuln.txt"), "--json", "/no/such/dir/x.json"],
            "cannot write",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv: list[str], message: str) -> None:
    policy = "--policy", HOST
    code, out, err = run("exposure", *policy, *argv)
    assert code == 2, err
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and message in err
    assert "Traceback" not in err
    assert (DATA / "ss-tuln.txt").read_bytes().startswith(b"Netid")  # never overwritten


def test_bad_policy_exit_2() -> None:
    code, _, err = run(
        "exposure",
        "--policy",
        str(DATA / "ss-tuln.txt"),
        "--instance",
        "host",
        str(DATA / "ss-tuln.txt"),
    )
    assert code == 2 and err.startswith("error: ")


def test_docs_show_the_real_output_of_the_example() -> None:
    docs = (ROOT / "docs" / "exposure.md").read_text()
    block = re.search(r"<!-- exposure sockets output.*?-->\n```\n(.*?)```", docs, re.S)
    assert block is not None
    code, out, err = run(
        "exposure",
        "--policy",
        HOST,
        "--instance",
        "host",
        str(DATA / "ss-tulnp.txt"),
    )
    assert code == 0 and out == block.group(1)


def dev_policy(batch: Any) -> Any:
    """Instances on the six busiest source addresses of a capture, one group of rules."""
    from collections import Counter

    from classifier.policy import load_policy_data

    counts = Counter(p.src for p in batch if p.src is not None)
    rules = [
        {"direction": "ingress", "protocol": "tcp", "multiport": "80,443"},
        {
            "direction": "ingress",
            "protocol": "udp",
            "multiport": "53",
            "remote_ip_prefix": "10.0.0.0/8",
        },
        {"direction": "ingress", "action": "deny", "protocol": "tcp", "multiport": "22"},
        {"direction": "ingress", "ethertype": "IPv6", "protocol": "tcp"},
    ]
    instances = [
        {"id": f"i{n}", "ips": [str(ip)], "security_groups": ["g"]}
        for n, (ip, _) in enumerate(counts.most_common(6))
    ]
    return load_policy_data(
        {"security_groups": [{"id": "g", "rules": rules}], "instances": instances}, "dev"
    )


def test_capture_mode_on_the_dev_captures(twin_mode: str) -> None:
    """Every real capture of ../shared/pcaps/dev (up to 3,000 records) against the oracle."""
    import warnings

    from classifier.errors import ClassifierError
    from tests.conftest import PCAPS_DEV, require

    services = 0
    for path in sorted(require(PCAPS_DEV).iterdir()):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                batch = read_all([path])
            except ClassifierError:
                continue
            if len(batch) > 3000:
                continue
            policy = dev_policy(batch)
            document = exposure_of(policy, [str(path)])
            assert without_idle(document) == slow_capture_exposure(policy, [str(path)]), path.name
        services += sum(len(i["services"]) for i in document["instances"])
    assert services > 10
