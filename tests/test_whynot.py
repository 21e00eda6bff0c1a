"""`check --why-not` (analysis.md section 5): against the reference, and the CLI's text and JSON.

Each condition is judged by `reference.rule_matches` on a copy of the rule with the other two
conditions removed (no protocol, no ports/type, no remote): the oracle shares no code with
`classifier.analysis.whynot`.
"""

from __future__ import annotations

import dataclasses
import io
import json
from typing import Any

from hypothesis import HealthCheck, given, settings

from classifier import reference
from classifier.analysis.keyspace import KeySpace
from classifier.analysis.whynot import explain
from classifier.cli import main
from classifier.codes import (
    STATUS_L4_TRUNCATED,
    STATUS_OK,
)
from classifier.policy import Rule
from tests.conftest import EXAMPLES
from tests.strategies import policy_and_packets

WEB_DB = str(EXAMPLES / "web-db.yaml")


def only(rule: Rule, condition: str) -> Rule:
    """The rule with every condition but `condition` removed."""
    return dataclasses.replace(
        rule,
        protocol=rule.protocol if condition == "protocol" else None,
        ports=rule.ports if condition == "port" else None,
        icmp_type=rule.icmp_type if condition == "port" else None,
        icmp_code=rule.icmp_code if condition == "port" else None,
        remote_prefixes=rule.remote_prefixes if condition == "remote" else (),
        remote_group_id=rule.remote_group_id if condition == "remote" else None,
        remote_address_group_id=rule.remote_address_group_id if condition == "remote" else None,
    )


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(policy_and_packets())
def test_near_misses_and_preempted_against_the_reference(case: Any) -> None:
    policy, packet = case
    if packet.status not in (STATUS_OK, STATUS_L4_TRUNCATED):
        return
    verdict = reference.evaluate(policy, packet)
    sides = explain(KeySpace(policy), packet)
    assert [(s.instance_id, s.direction) for s in sides] == [
        (s.instance_id, s.direction) for s in verdict.sides
    ]
    for side, expected in zip(sides, verdict.sides, strict=True):
        assert side.deciding is expected.rule
        instance = policy.instances[side.instance_id]
        remote = packet.src if side.direction == "ingress" else packet.dst
        near: list[tuple[str, str]] = []
        matching: list[str] = []
        for rule in reference.candidates(policy, instance, side.direction, packet.ip_version):
            failed = [
                c
                for c in ("protocol", "port", "remote")
                if not reference.rule_matches(policy, only(rule, c), packet, remote)
            ]
            assert (not failed) == reference.rule_matches(policy, rule, packet, remote)
            if len(failed) == 1:
                near.append((rule.id, failed[0]))
            if not failed:
                matching.append(rule.id)
        assert [(m.rule.id, m.failed) for m in side.near_misses] == near
        assert [r.id for r in side.preempted] == matching[1:]


def check(packet: str, *options: str) -> tuple[int, str, str]:
    """`sgclassify check` on web-db.yaml; `packet` is "SRC DST PROTO [DPORT]"."""
    src, dst, proto, *dport = packet.split()
    argv = ["check", "--policy", WEB_DB, "--src", src, "--dst", dst, "--proto", proto]
    out, err = io.StringIO(), io.StringIO()
    code = main(argv + (["--dport", dport[0]] if dport else []) + list(options), out, err)
    return code, out.getvalue(), err.getvalue()


def test_text_output_lists_near_misses_then_preempted() -> None:
    code, out, _ = check("10.0.1.11 10.0.2.20 tcp 23", "--why-not")
    assert code == 0
    assert out.splitlines() == [
        "web-2 egress: allow by rule web-out of group sg-web (priority 1, allow, all)",
        "db-1 ingress: deny by rule db-deny-scan of group sg-db (priority 50, deny, tcp)",
        "  near miss: rule db-pg of group sg-db (allow): fails port",
        "  preempted: rule base-deny-telnet of group sg-base (deny)",
        "verdict: deny",
    ]


def test_text_output_under_implicit_deny() -> None:
    code, out, _ = check("203.0.113.7 10.0.1.10 tcp 22", "--why-not")
    assert code == 0
    assert out.splitlines() == [
        "web-1 ingress: deny: implicit deny (no rule matched)",
        "  near miss: rule web-http of group sg-web (allow): fails port",
        "  near miss: rule web-ssh of group sg-web (allow): fails remote",
        "  near miss: rule web-icmp of group sg-web (allow): fails protocol",
        "  near miss: rule base-deny-telnet of group sg-base (deny): fails port",
        "verdict: deny",
    ]


def test_json_sides_gain_two_fields() -> None:
    code, out, err = check("10.0.1.10 10.0.2.20 tcp 5432", "--why-not", "--json")
    assert code == 0 and err == ""
    egress, ingress = json.loads(out)["sides"]
    assert egress["near_misses"] == [] and egress["preempted"] == []
    miss = {"group": "sg-base", "rule": "base-deny-telnet", "action": "deny", "failed": "port"}
    assert ingress["near_misses"] == [miss]
    assert ingress["preempted"] == [{"group": "sg-db", "rule": "db-deny-scan", "action": "deny"}]
    assert list(ingress) == [*TODAY, "near_misses", "preempted"]


TODAY = ["instance", "direction", "verdict", "group", "rule", "reason"]  # check --json's side


def test_unknown_ports_fail_the_port_condition() -> None:
    code, out, err = check("203.0.113.7 10.0.1.10 tcp", "--why-not", "--json")
    assert code == 0 and "ports are unknown" in err
    (side,) = json.loads(out)["sides"]
    miss = {"group": "sg-web", "rule": "web-http", "action": "allow", "failed": "port"}
    assert miss in side["near_misses"]


def test_without_why_not_check_prints_what_it_printed() -> None:
    code, out, _ = check("10.0.1.10 10.0.2.20 tcp 5432")
    assert "near miss" not in out and "preempted" not in out
    code, out, _ = check("10.0.1.10 10.0.2.20 tcp 5432", "--json")
    assert all(list(side) == TODAY for side in json.loads(out)["sides"])


def test_unmanaged_packet_has_no_sides() -> None:
    code, out, _ = check("203.0.113.7 203.0.113.8 udp 53", "--why-not", "--json")
    assert code == 0 and json.loads(out)["sides"] == []
