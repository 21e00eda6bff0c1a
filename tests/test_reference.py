"""The oracle against the spec's own sentences: sections 2, 3, 4 and 6, one clause per test."""

from __future__ import annotations

import ipaddress
from typing import Any

from hypothesis import HealthCheck, given, settings

from classifier.codes import (
    FRAGMENT_FIRST,
    FRAGMENT_LATER,
    STATUS_L4_TRUNCATED,
    STATUS_MALFORMED,
    STATUS_NOT_IP,
    TCP_ACK,
    TCP_FIN,
    TCP_RST,
    TCP_SYN,
)
from classifier.packets import Packet, QuotedHeader
from classifier.policy import AddressGroup, AddressRange, Instance, Policy, Rule, SecurityGroup
from classifier.reference import (
    StatefulReference,
    candidates,
    connection_key,
    evaluate,
    evaluate_side,
    rule_matches,
)
from tests.strategies import policy_and_packets, policy_and_sequences

S = 1_000_000_000
VM1, VM2, OUT = "10.0.0.1", "10.0.0.2", "8.8.8.8"


def ip(text: str) -> Any:
    return ipaddress.ip_address(text)


def rule(group: str, position: int, direction: str = "ingress", **fields: Any) -> Rule:
    prefixes = fields.pop("remote", ())
    return Rule(
        id=f"{group}/{position}",
        group_id=group,
        position=position,
        direction=direction,  # type: ignore[arg-type]
        remote_prefixes=tuple(ipaddress.ip_network(p) for p in prefixes),
        **fields,
    )


def make_policy(
    groups: dict[str, list[Rule]],
    instances: dict[str, tuple[list[str], list[str]]],
    address_groups: tuple[AddressGroup, ...] = (),
) -> Policy:
    return Policy(
        groups={gid: SecurityGroup(gid, tuple(rules)) for gid, rules in groups.items()},
        address_groups={ag.id: ag for ag in address_groups},
        instances={
            iid: Instance(iid, tuple(ip(a) for a in ips), tuple(seq))
            for iid, (ips, seq) in instances.items()
        },
    )


def pkt(src: str, dst: str, protocol: int = 6, t: float = 0, **fields: Any) -> Packet:
    if (
        protocol in (6, 17, 132)
        and "dport" not in fields
        and fields.get("fragment") != FRAGMENT_LATER
    ):
        fields.setdefault("sport", 40000)
        fields["dport"] = 80
    if protocol == 6 and "sport" in fields and "tcp_flags" not in fields:
        fields["tcp_flags"] = TCP_ACK
    version = ip(src).version
    return Packet(
        ts_ns=round(t * S),
        ip_version=version,
        src=ip(src),
        dst=ip(dst),
        protocol=protocol,
        **fields,
    )


def reply(p: Packet, t: float, **fields: Any) -> Packet:
    return Packet(
        ts_ns=round(t * S),
        ip_version=p.ip_version,
        src=p.dst,
        dst=p.src,
        protocol=p.protocol,
        sport=p.dport,
        dport=p.sport,
        icmp_type=fields.pop("icmp_type", p.icmp_type),
        icmp_code=p.icmp_code,
        icmp_id=fields.pop("icmp_id", p.icmp_id),
        tcp_flags=fields.pop("tcp_flags", TCP_ACK if p.protocol == 6 else None),
        **fields,
    )


def one_side(rules: list[Rule], packet: Packet, **policy_fields: Any) -> tuple[str, str | None]:
    """Verdict and matched rule id of vm1's ingress for a packet to vm1."""
    policy = make_policy({"g": rules}, {"vm1": ([VM1, "2001:db8::1"], ["g"])}, **policy_fields)
    side = evaluate_side(policy, policy.instances["vm1"], "ingress", packet)
    return side.verdict, side.rule.id if side.rule else None


# --- section 2: matching clauses ------------------------------------------------------------


def test_protocol_all_matches_every_protocol_and_a_number_only_itself() -> None:
    assert one_side([rule("g", 1)], pkt(OUT, VM1, 47))[0] == "allow"
    assert one_side([rule("g", 1, protocol=6)], pkt(OUT, VM1, 17)) == ("deny", None)
    assert one_side([rule("g", 1, protocol=17)], pkt(OUT, VM1, 17)) == ("allow", "g/1")


def test_ports_match_the_destination_port_at_range_boundaries_only() -> None:
    r = rule("g", 1, protocol=6, ports=((22, 22), (80, 90)))
    for dport, expected in [
        (21, "deny"),
        (22, "allow"),
        (23, "deny"),
        (79, "deny"),
        (80, "allow"),
        (90, "allow"),
        (91, "deny"),
    ]:
        assert one_side([r], pkt(OUT, VM1, dport=dport, sport=22))[0] == expected, dport
    # the source port is never looked at
    assert one_side([r], pkt(OUT, VM1, dport=1000, sport=22))[0] == "deny"
    edge = rule("g", 1, protocol=17, ports=((1, 1), (65535, 65535)))
    assert one_side([edge], pkt(OUT, VM1, 17, dport=65535))[0] == "allow"
    assert one_side([edge], pkt(OUT, VM1, 17, dport=1))[0] == "allow"
    assert one_side([edge], pkt(OUT, VM1, 17, dport=2))[0] == "deny"


def test_unknown_ports_miss_port_rules_but_match_portless_ones() -> None:
    truncated = pkt(OUT, VM1, 6, sport=None, dport=None, status=STATUS_L4_TRUNCATED)
    later = pkt(OUT, VM1, 6, fragment=FRAGMENT_LATER, ip_id=5, frag_offset=100)
    ports_rule = rule("g", 1, protocol=6, ports=((1, 65534),))
    for packet in (truncated, later):
        assert packet.dport is None
        assert one_side([ports_rule], packet) == ("deny", None)
        assert one_side([ports_rule, rule("g", 2, protocol=6)], packet) == ("allow", "g/2")
    icmp_rule = rule("g", 1, protocol=1, icmp_type=8)
    assert one_side([icmp_rule], pkt(OUT, VM1, 1, status=STATUS_L4_TRUNCATED))[0] == "deny"
    assert (
        one_side([rule("g", 1, protocol=1)], pkt(OUT, VM1, 1, status=STATUS_L4_TRUNCATED))[0]
        == "allow"
    )


def test_icmp_type_and_code() -> None:
    echo = pkt(OUT, VM1, 1, icmp_type=8, icmp_code=0, icmp_id=1)
    unreachable = pkt(OUT, VM1, 1, icmp_type=3, icmp_code=3)
    assert one_side([rule("g", 1, protocol=1, icmp_type=8)], echo)[0] == "allow"
    assert one_side([rule("g", 1, protocol=1, icmp_type=8, icmp_code=1)], echo)[0] == "deny"
    assert one_side([rule("g", 1, protocol=1, icmp_type=3)], unreachable)[0] == "allow"
    assert one_side([rule("g", 1, protocol=1, icmp_type=3, icmp_code=3)], unreachable)[0] == "allow"
    assert one_side([rule("g", 1, protocol=1, icmp_type=3, icmp_code=4)], unreachable)[0] == "deny"
    v6 = pkt("2001:db8::9", "2001:db8::1", 58, icmp_type=128, icmp_code=0, icmp_id=1)
    assert one_side([rule("g", 1, ip_version=6, protocol=58, icmp_type=128)], v6)[0] == "allow"


def test_remote_prefix_is_the_source_on_ingress_and_destination_on_egress() -> None:
    policy = make_policy(
        {"g": [rule("g", 1, remote=["8.8.8.0/24"]), rule("g", 2, "egress", remote=["1.1.1.1/32"])]},
        {"vm1": ([VM1], ["g"])},
    )
    vm1 = policy.instances["vm1"]
    assert evaluate_side(policy, vm1, "ingress", pkt(OUT, VM1)).verdict == "allow"
    assert evaluate_side(policy, vm1, "ingress", pkt("8.8.9.8", VM1)).verdict == "deny"
    assert evaluate_side(policy, vm1, "egress", pkt(VM1, "1.1.1.1")).verdict == "allow"
    assert evaluate_side(policy, vm1, "egress", pkt(VM1, "1.1.1.2")).verdict == "deny"
    many = rule("g", 1, remote=["1.0.0.0/8", "8.8.8.8/32"])
    assert one_side([many], pkt(OUT, VM1))[0] == "allow"
    assert one_side([many], pkt("1.2.3.4", VM1))[0] == "allow"
    assert one_side([many], pkt("8.8.8.9", VM1))[0] == "deny"
    assert one_side([rule("g", 1, remote=["0.0.0.0/0"])], pkt("1.2.3.4", VM1))[0] == "allow"


def test_remote_group_members_are_the_ips_of_that_family_of_instances_with_the_group() -> None:
    policy = make_policy(
        {"web": [rule("web", 1, remote_group_id="db")], "db": []},
        {
            "vm1": ([VM1], ["web"]),
            "vm2": ([VM2, "2001:db8::2"], ["db"]),
            "vm3": (["10.0.0.3"], ["web"]),
        },
    )
    vm1 = policy.instances["vm1"]
    assert evaluate_side(policy, vm1, "ingress", pkt(VM2, VM1)).verdict == "allow"
    assert evaluate_side(policy, vm1, "ingress", pkt("10.0.0.3", VM1)).verdict == "deny"
    assert evaluate_side(policy, vm1, "ingress", pkt(OUT, VM1)).verdict == "deny"
    v6 = make_policy(
        {"web": [rule("web", 1, ip_version=6, remote_group_id="db")], "db": []},
        {"vm1": (["2001:db8::1"], ["web"]), "vm2": ([VM2], ["db"])},
    )
    # vm2 has no IPv6 address: the group has no IPv6 members
    assert (
        evaluate_side(
            v6, v6.instances["vm1"], "ingress", pkt("::ffff:10.0.0.2", "2001:db8::1")
        ).verdict
        == "deny"
    )


def test_address_group_entries_are_inclusive_ranges() -> None:
    office = AddressGroup(
        "office",
        4,
        (AddressRange(ip("192.168.0.10"), ip("192.168.0.20")), AddressRange(ip(OUT), ip(OUT))),
    )
    r = rule("g", 1, remote_address_group_id="office")
    for src, expected in [
        ("192.168.0.9", "deny"),
        ("192.168.0.10", "allow"),
        ("192.168.0.20", "allow"),
        ("192.168.0.21", "deny"),
        (OUT, "allow"),
        ("8.8.8.7", "deny"),
    ]:
        assert one_side([r], pkt(src, VM1), address_groups=(office,))[0] == expected, src


def test_disabled_rules_and_other_ethertypes_are_not_candidates() -> None:
    assert one_side([rule("g", 1, enabled=False)], pkt(OUT, VM1)) == ("deny", None)
    assert one_side([rule("g", 1, ip_version=6)], pkt(OUT, VM1)) == ("deny", None)
    assert one_side([rule("g", 1, "egress")], pkt(OUT, VM1)) == ("deny", None)
    assert one_side([rule("g", 1, ip_version=6)], pkt("2001:db8::9", "2001:db8::1")) == (
        "allow",
        "g/1",
    )


# --- section 2: order -----------------------------------------------------------------------


def test_order_group_sequence_then_priority_then_deny_then_position() -> None:
    policy = make_policy(
        {
            "first": [
                rule("first", 1, priority=5, protocol=6),
                rule("first", 2, priority=5, action="deny"),
                rule("first", 3, priority=2),
                rule("first", 4, priority=5, protocol=6),
            ],
            "second": [rule("second", 1, priority=1, action="deny")],
        },
        {"vm1": ([VM1], ["first", "second"])},
    )
    order = [r.id for r in candidates(policy, policy.instances["vm1"], "ingress", 4)]
    assert order == ["first/3", "first/2", "first/1", "first/4", "second/1"]


def test_earlier_group_wins_over_a_higher_priority_in_a_later_group() -> None:
    groups = {"a": [rule("a", 1, priority=100)], "b": [rule("b", 1, priority=1, action="deny")]}
    ab = make_policy(groups, {"vm1": ([VM1], ["a", "b"])})
    ba = make_policy(groups, {"vm1": ([VM1], ["b", "a"])})
    assert evaluate(ab, pkt(OUT, VM1)).rule_id == "a/1"
    assert evaluate(ab, pkt(OUT, VM1)).verdict == "allow"
    assert evaluate(ba, pkt(OUT, VM1)).rule_id == "b/1"
    assert evaluate(ba, pkt(OUT, VM1)).verdict == "deny"


def test_priority_then_deny_before_allow_then_position() -> None:
    assert one_side(
        [rule("g", 1, priority=2), rule("g", 2, priority=1, action="deny")], pkt(OUT, VM1)
    ) == (
        "deny",
        "g/2",
    )
    assert one_side(
        [rule("g", 1, priority=1), rule("g", 2, priority=2, action="deny")], pkt(OUT, VM1)
    ) == (
        "allow",
        "g/1",
    )
    assert one_side([rule("g", 1), rule("g", 2, action="deny")], pkt(OUT, VM1)) == ("deny", "g/2")
    assert one_side([rule("g", 1), rule("g", 2)], pkt(OUT, VM1)) == ("allow", "g/1")


def test_rule_matches_takes_the_remote_given() -> None:
    policy = make_policy({"g": []}, {"vm1": ([VM1], ["g"])})
    r = rule("g", 1, remote=["1.1.1.1/32"])
    assert rule_matches(policy, r, pkt(OUT, VM1), ip("1.1.1.1"))
    assert not rule_matches(policy, r, pkt(OUT, VM1), ip(OUT))


# --- section 3 --------------------------------------------------------------------------------


def two_vms(egress: list[Rule], ingress: list[Rule]) -> Policy:
    return make_policy({"e": egress, "i": ingress}, {"vm1": ([VM1], ["e"]), "vm2": ([VM2], ["i"])})


def test_both_sides_reported_decision() -> None:
    allow_out, deny_out = [rule("e", 1, "egress")], [rule("e", 1, "egress", action="deny")]
    allow_in = [rule("i", 1)]
    v = evaluate(two_vms(deny_out, allow_in), pkt(VM1, VM2))
    assert (v.verdict, v.instance_id, v.direction, v.rule_id, v.reason) == (
        "deny",
        "vm1",
        "egress",
        "e/1",
        "rule",
    )
    v = evaluate(two_vms(deny_out, []), pkt(VM1, VM2))
    assert (v.verdict, v.instance_id, v.direction) == ("deny", "vm1", "egress")
    v = evaluate(two_vms(allow_out, []), pkt(VM1, VM2))
    assert (v.verdict, v.instance_id, v.direction, v.reason, v.rule) == (
        "deny",
        "vm2",
        "ingress",
        "implicit-deny",
        None,
    )
    v = evaluate(two_vms(allow_out, allow_in), pkt(VM1, VM2))
    assert (v.verdict, v.instance_id, v.direction, v.rule_id, v.group_id) == (
        "allow",
        "vm2",
        "ingress",
        "i/1",
        "i",
    )
    assert [(s.instance_id, s.direction) for s in v.sides] == [
        ("vm1", "egress"),
        ("vm2", "ingress"),
    ]


def test_one_managed_side_and_unmanaged_and_statuses() -> None:
    policy = two_vms([rule("e", 1, "egress")], [rule("i", 1, action="deny")])
    v = evaluate(policy, pkt(VM1, OUT))
    assert (v.verdict, v.instance_id, v.direction, len(v.sides)) == ("allow", "vm1", "egress", 1)
    v = evaluate(policy, pkt(OUT, VM2))
    assert (v.verdict, v.instance_id, v.direction) == ("deny", "vm2", "ingress")
    assert evaluate(policy, pkt(OUT, "1.1.1.1")).verdict == "unmanaged"
    assert evaluate(policy, Packet(status=STATUS_NOT_IP, ip_version=0)).verdict == "not-ip"
    assert evaluate(policy, Packet(status=STATUS_MALFORMED, ip_version=0)).verdict == "malformed"


def test_instance_with_no_groups_denies_everything_both_ways() -> None:
    policy = make_policy(
        {"g": [rule("g", 1), rule("g", 2, "egress")]}, {"vm1": ([VM1], []), "vm2": ([VM2], ["g"])}
    )
    for p in (pkt(VM1, OUT), pkt(OUT, VM1), pkt(VM1, VM2), pkt(VM2, VM1)):
        v = evaluate(policy, p)
        assert v.verdict == "deny" and v.reason == "implicit-deny" and v.instance_id == "vm1"


def test_a_packet_to_itself_is_judged_on_both_sides_of_the_same_instance() -> None:
    policy = make_policy({"g": [rule("g", 1, "egress")]}, {"vm1": ([VM1], ["g"])})
    v = evaluate(policy, pkt(VM1, VM1))
    assert (v.verdict, v.direction) == ("deny", "ingress")
    assert [s.direction for s in v.sides] == ["egress", "ingress"]


@settings(max_examples=200, suppress_health_check=list(HealthCheck))
@given(policy_and_packets())
def test_evaluate_invariants(case: tuple[Policy, Packet]) -> None:
    policy, packet = case
    v = evaluate(policy, packet)
    if v.verdict in ("allow", "deny"):
        assert v.sides and (v.verdict == "allow") == all(s.verdict == "allow" for s in v.sides)
        reported = next(
            s for s in v.sides if (s.instance_id, s.direction) == (v.instance_id, v.direction)
        )
        assert reported.rule == v.rule and reported.reason == v.reason
        assert (v.reason == "implicit-deny") == (v.rule is None)
        if v.rule is not None:
            assert v.rule.action == reported.verdict
    else:
        assert not v.sides and v.reason == ""


# --- section 4 --------------------------------------------------------------------------------


def outbound_only(**extra_groups: list[Rule]) -> Policy:
    """vm1 may send anything (IPv4 and IPv6) and receive nothing; vm2 receives TCP 80 only."""
    return make_policy(
        {
            "out": [rule("out", 1, "egress"), rule("out", 2, "egress", ip_version=6)],
            "web": [rule("web", 1, protocol=6, ports=((80, 80),))],
            **extra_groups,
        },
        {"vm1": ([VM1, "2001:db8::1"], ["out"]), "vm2": ([VM2], ["web"])},
    )


def run(policy: Policy, packets: list[Packet], **kw: Any) -> list[tuple[str, str]]:
    ref = StatefulReference(policy, **kw)
    return [(v.verdict, v.reason) for v in ref.run(packets)]


ESTABLISHED, NEW_DENIED = ("allow", "established"), ("deny", "implicit-deny")


def test_tcp_reply_is_established_until_exactly_600_s() -> None:
    syn = pkt(VM1, OUT, tcp_flags=TCP_SYN)
    ref = StatefulReference(outbound_only())
    first = ref.process(syn)
    assert (first.verdict, first.reason, first.created, first.midstream) == (
        "allow",
        "rule",
        True,
        False,
    )
    r = ref.process(reply(syn, 600))
    assert (r.verdict, r.reason, r.instance_id, r.direction, r.rule) == (
        "allow",
        "established",
        "vm1",
        "ingress",
        None,
    )
    assert run(outbound_only(), [syn, reply(syn, 600)]) == [("allow", "rule"), ESTABLISHED]
    late = reply(syn, 0)
    late = Packet(**{**late.__dict__, "ts_ns": 600 * S + 1})
    assert run(outbound_only(), [syn, late]) == [("allow", "rule"), NEW_DENIED]
    # every established packet refreshes
    assert run(outbound_only(), [syn, reply(syn, 500), reply(syn, 1100)])[-1] == ESTABLISHED


def test_fin_or_rst_shortens_tcp_to_30_s_creating_packet_included() -> None:
    syn = pkt(VM1, OUT, tcp_flags=TCP_SYN)
    fin_at = [syn, reply(syn, 10), reply(syn, 20, tcp_flags=TCP_FIN | TCP_ACK)]
    assert run(outbound_only(), [*fin_at, reply(syn, 50)])[-1] == ESTABLISHED
    assert run(outbound_only(), [*fin_at, reply(syn, 50.000000001)])[-1] == NEW_DENIED
    rst = pkt(VM1, OUT, tcp_flags=TCP_RST)
    assert run(outbound_only(), [rst, reply(rst, 30)])[-1] == ESTABLISHED
    assert run(outbound_only(), [rst, reply(rst, 30.000000001)])[-1] == NEW_DENIED


def test_udp_and_gre_need_both_directions_for_180_s() -> None:
    for protocol in (17, 47):
        out = pkt(VM1, OUT, protocol)
        back = reply(out, 0)

        def at(p: Packet, t: float) -> Packet:
            return Packet(**{**p.__dict__, "ts_ns": round(t * S)})

        # one way only: 30 s, counted from the last packet (the initiator's repeats refresh)
        assert run(outbound_only(), [out, at(out, 20), at(back, 50)])[-1] == ESTABLISHED
        assert run(outbound_only(), [out, at(back, 30.000000001)])[-1] == NEW_DENIED
        # the reply makes it 180 s
        seq = [out, at(back, 30), at(back, 210)]
        assert run(outbound_only(), seq)[1:] == [ESTABLISHED, ESTABLISHED]
        seq = [out, at(back, 1), at(out, 181.000000001)]
        assert run(outbound_only(), seq)[-1] == ("allow", "rule")  # new connection, not established
        assert StatefulReference(outbound_only()).run(seq)[-1].created


def test_icmp_echo_is_keyed_by_identifier_and_lives_30_s() -> None:
    echo = pkt(VM1, OUT, 1, icmp_type=8, icmp_code=0, icmp_id=7)
    answer = reply(echo, 30, icmp_type=0)
    assert run(outbound_only(), [echo, answer])[-1] == ESTABLISHED
    assert run(outbound_only(), [echo, reply(echo, 1, icmp_type=0, icmp_id=8)])[-1] == NEW_DENIED
    assert run(outbound_only(), [echo, reply(echo, 30.000000001, icmp_type=0)])[-1] == NEW_DENIED
    echo6 = pkt("2001:db8::1", "2600::1", 58, icmp_type=128, icmp_code=0, icmp_id=7)
    assert run(outbound_only(), [echo6, reply(echo6, 3, icmp_type=129)])[-1] == ESTABLISHED
    # a query with its identifier cut off has no key: never established
    cut = pkt(VM1, OUT, 1, icmp_type=8, icmp_code=0, status=STATUS_L4_TRUNCATED)
    assert connection_key(cut) is None
    assert run(outbound_only(), [cut, reply(cut, 1, icmp_type=0)])[-1] == NEW_DENIED


def test_icmp_errors_are_related_by_their_quoted_header_and_never_refresh() -> None:
    out = pkt(VM1, OUT, 17, sport=5000, dport=53)
    quoted = QuotedHeader(17, ip(VM1), ip(OUT), 5000, 53)

    def error(src: str, t: float, q: QuotedHeader = quoted) -> Packet:
        return pkt(src, VM1, 1, t=t, icmp_type=3, icmp_code=3, quoted=q)

    ref = StatefulReference(outbound_only())
    ref.process(out)
    v = ref.process(error("192.0.2.1", 30))  # from any router
    assert (v.verdict, v.reason, v.instance_id, v.direction, v.rule) == (
        "allow",
        "related",
        "vm1",
        "ingress",
        None,
    )
    assert not v.created
    # the error did not refresh: the connection (one way, 30 s) is gone at 30 s + 1 ns
    assert run(outbound_only(), [out, error(OUT, 20), reply(out, 30.000000001)])[-1] == NEW_DENIED
    assert run(outbound_only(), [out, error(OUT, 30.000000001)])[-1] == NEW_DENIED
    other = QuotedHeader(17, ip(VM1), ip(OUT), 5000, 54)
    assert run(outbound_only(), [out, error(OUT, 1, other)])[-1] == NEW_DENIED
    # no connection at all: judged by the rules (vm1 accepts nothing)
    assert run(outbound_only(), [error(OUT, 0)]) == [NEW_DENIED]


def test_allowed_icmp_errors_create_nothing() -> None:
    policy = make_policy(
        {"g": [rule("g", 1, "egress", protocol=1, icmp_type=3)]}, {"vm1": ([VM1], ["g"])}
    )
    err = pkt(
        VM1, OUT, 1, icmp_type=3, icmp_code=1, quoted=QuotedHeader(6, ip(OUT), ip(VM1), 80, 1234)
    )
    ref = StatefulReference(policy)
    assert [(v.verdict, v.reason, v.created) for v in ref.run([err, reply(err, 1)])] == [
        ("allow", "rule", False),
        ("deny", "implicit-deny", False),
    ]
    assert not ref.connections


def test_denied_packets_create_and_refresh_nothing() -> None:
    incoming = pkt(OUT, VM1, tcp_flags=TCP_SYN)
    ref = StatefulReference(outbound_only())
    assert ref.process(incoming).verdict == "deny"
    assert not ref.connections
    back = reply(incoming, 1)  # vm1 -> OUT is allowed by the rules, as a new connection
    v = ref.process(back)
    assert (v.verdict, v.reason, v.created, v.midstream) == ("allow", "rule", True, True)
    # an expired connection is not revived by a denied packet
    syn = pkt(VM1, OUT, tcp_flags=TCP_SYN)
    seq = [syn, reply(syn, 700), reply(syn, 701)]
    assert run(outbound_only(), seq)[1:] == [NEW_DENIED, NEW_DENIED]


def test_fragments_join_their_first_fragment_within_30_s() -> None:
    policy = outbound_only()
    first = pkt(
        OUT, VM2, 6, sport=1234, dport=80, tcp_flags=TCP_SYN, fragment=FRAGMENT_FIRST, ip_id=9
    )
    later = pkt(OUT, VM2, 6, t=30, fragment=FRAGMENT_LATER, ip_id=9, frag_offset=185)
    assert run(policy, [first, later]) == [("allow", "rule"), ESTABLISHED]
    assert run(policy, [later]) == [NEW_DENIED]  # no first fragment: ports unknown
    too_late = Packet(**{**later.__dict__, "ts_ns": 30 * S + 1})
    assert run(policy, [first, too_late])[-1] == NEW_DENIED
    other_id = Packet(**{**later.__dict__, "ip_id": 10})
    assert run(policy, [first, other_id])[-1] == NEW_DENIED
    # a denied first fragment still lends its ports: the later one matches the port rule
    denied_first = pkt(OUT, VM2, 6, sport=1, dport=81, fragment=FRAGMENT_FIRST, ip_id=3)
    to_80 = pkt(OUT, VM2, 6, sport=1, dport=80, fragment=FRAGMENT_FIRST, ip_id=3)
    later3 = pkt(OUT, VM2, 6, t=1, fragment=FRAGMENT_LATER, ip_id=3, frag_offset=8)
    assert run(policy, [to_80, denied_first, later3]) == [
        ("allow", "rule"),
        ("deny", "implicit-deny"),
        NEW_DENIED,
    ]
    assert run(policy, [denied_first, to_80, later3]) == [
        ("deny", "implicit-deny"),
        ("allow", "rule"),
        ESTABLISHED,
    ]
    # stateless: no joining at all
    assert run(policy, [first, later], stateless=True) == [("allow", "rule"), NEW_DENIED]


def test_joined_fragment_is_matched_with_the_lent_ports_and_flags_unknown() -> None:
    policy = outbound_only()
    first = pkt(
        VM1, OUT, 6, sport=1234, dport=80, tcp_flags=TCP_SYN, fragment=FRAGMENT_FIRST, ip_id=9
    )
    later = pkt(VM1, OUT, 6, t=1, fragment=FRAGMENT_LATER, ip_id=9, frag_offset=185)
    ref = StatefulReference(policy)
    v = ref.run([later, first])  # the later fragment arrives first: not joined, creates port-less
    assert [x.created for x in v] == [True, True]
    assert v[0].midstream  # flags unknown
    echo = pkt(VM1, OUT, 1, icmp_type=8, icmp_code=0, icmp_id=4, fragment=FRAGMENT_FIRST, ip_id=2)
    echo_rest = pkt(VM1, OUT, 1, t=1, fragment=FRAGMENT_LATER, ip_id=2, frag_offset=185)
    answer_rest = pkt(OUT, VM1, 1, t=2, fragment=FRAGMENT_LATER, ip_id=2, frag_offset=185)
    answer = reply(echo, 2, icmp_type=0, fragment=FRAGMENT_FIRST, ip_id=2)
    assert run(policy, [echo, echo_rest, answer, answer_rest]) == [
        ("allow", "rule"),
        ESTABLISHED,
        ESTABLISHED,
        ESTABLISHED,
    ]


def test_the_clock_never_goes_back() -> None:
    syn = pkt(VM1, OUT, tcp_flags=TCP_SYN, t=1000)
    # stamped earlier, counted at 1000: still within 600 s of the SYN
    early = reply(syn, 0)
    assert run(outbound_only(), [syn, early])[-1] == ESTABLISHED
    # a later packet at 1600 s: the reply stamped 0 refreshed the connection at 1000 s
    assert run(outbound_only(), [syn, early, reply(syn, 1600)])[-1] == ESTABLISHED
    # the clock moves with not-ip records too
    udp = pkt(VM1, OUT, 17, t=0)
    seq = [udp, Packet(ts_ns=31 * S, status=STATUS_NOT_IP, ip_version=0), reply(udp, 1)]
    assert run(outbound_only(), seq)[-1] == NEW_DENIED


def test_initiator_side_of_state_allowed_packets_and_created_counts() -> None:
    policy = outbound_only()
    syn = pkt(OUT, VM2, tcp_flags=TCP_SYN)
    ref = StatefulReference(policy)
    v = ref.run([syn, reply(syn, 1), pkt(VM1, OUT, tcp_flags=TCP_ACK, t=2)])
    assert (v[1].instance_id, v[1].direction, v[1].reason) == ("vm2", "egress", "established")
    assert ref.created_per_rule == {"web/1": 1, "out/1": 1}
    assert ref.connections_created == 2 and ref.midstream_created == 1


def test_unmanaged_and_invalid_packets_never_touch_state() -> None:
    policy = outbound_only()
    ref = StatefulReference(policy)
    assert ref.process(pkt(OUT, "1.1.1.1", tcp_flags=TCP_SYN)).verdict == "unmanaged"
    assert ref.process(Packet(status=STATUS_MALFORMED, ip_version=0)).verdict == "malformed"
    assert not ref.connections


def test_instance_without_groups_allows_nothing_even_replies() -> None:
    policy = make_policy(
        {"g": [rule("g", 1, "egress")]}, {"vm1": ([VM1], ["g"]), "vm2": ([VM2], [])}
    )
    syn = pkt(VM1, VM2, tcp_flags=TCP_SYN)
    assert run(policy, [syn, reply(syn, 1)]) == [NEW_DENIED, NEW_DENIED]


@settings(max_examples=150, suppress_health_check=list(HealthCheck))
@given(policy_and_sequences())
def test_stateful_invariants(case: tuple[Policy, list[Packet]]) -> None:
    policy, packets = case
    stateless = [evaluate(policy, p) for p in packets]
    stateless_ref = StatefulReference(policy, stateless=True)
    stateless_ref.run(packets)
    assert not stateless_ref.connections  # stateless mode keeps no state at all
    for p, v, s in zip(packets, StatefulReference(policy).run(packets), stateless, strict=True):
        # state only ever turns a decision into "allow"; statuses are never changed
        if s.verdict not in ("allow", "deny"):
            assert v == s
        if v.reason in ("established", "related"):
            assert v.verdict == "allow" and v.rule is None and not v.created
        if v.created:
            assert v.verdict == "allow" and v.reason == "rule"
        if p.fragment != FRAGMENT_LATER:
            assert v.reason in ("established", "related") or (v.verdict, v.rule) == (
                s.verdict,
                s.rule,
            )
