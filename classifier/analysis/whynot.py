"""`check --why-not` (analysis.md section 5): per evaluated side, the near misses and the
pre-empted rules of one packet.

Each candidate of the side (docs/semantics.md section 2, steps 1-2) is judged on the three
conditions separately: `protocol`, `port` and `remote`. A near miss fails exactly one; a
candidate that fails none matches, the first such decides, and the later ones are pre-empted.
The conditions are read off the same match sets as lint (`KeySpace`), so the three together
are exactly the reference's `rule_matches`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from classifier.analysis.keyspace import FAMILY_ICMP, KeySpace, in_ranges
from classifier.codes import PORT_PROTOCOLS
from classifier.packets import (
    Packet,
)
from classifier.policy import Direction, Instance, IPAddress, Rule

Condition = Literal["protocol", "port", "remote"]
CONDITIONS: tuple[Condition, ...] = ("protocol", "port", "remote")


def failed_conditions(
    space: KeySpace, rule: Rule, packet: Packet, remote: IPAddress
) -> tuple[Condition, ...]:
    """The conditions of analysis.md section 5 that the rule fails for this packet, in the
    order protocol, port, remote (empty: the rule matches)."""
    failed: list[Condition] = []
    if rule.protocol is not None and rule.protocol != packet.protocol:
        failed.append("protocol")
    if rule.ports is not None:
        port_ok = (
            packet.protocol in PORT_PROTOCOLS
            and packet.dport is not None
            and in_ranges(tuple(rule.ports), packet.dport)
        )
    elif rule.icmp_type is not None:
        port_ok = (
            packet.protocol == FAMILY_ICMP.get(packet.ip_version)
            and packet.icmp_type is not None
            and packet.icmp_type == rule.icmp_type
            and (rule.icmp_code is None or packet.icmp_code == rule.icmp_code)
        )
    else:
        port_ok = True
    if not port_ok:
        failed.append("port")
    if remote.version != rule.ip_version or not in_ranges(space.remote_ranges(rule), int(remote)):
        failed.append("remote")
    return tuple(failed)


@dataclass(frozen=True)
class NearMiss:
    rule: Rule
    failed: Condition

    def to_json(self) -> dict[str, Any]:
        return {
            "group": self.rule.group_id,
            "rule": self.rule.id,
            "action": self.rule.action,
            "failed": self.failed,
        }


@dataclass(frozen=True)
class SideWhyNot:
    """One evaluated side: its deciding rule (None: implicit deny), near misses, pre-empted."""

    instance_id: str
    direction: Direction
    deciding: Rule | None
    near_misses: tuple[NearMiss, ...]
    preempted: tuple[Rule, ...]

    def to_json(self) -> dict[str, Any]:
        """The two fields `check --json --why-not` adds to a side object."""
        return {
            "near_misses": [miss.to_json() for miss in self.near_misses],
            "preempted": [
                {"group": rule.group_id, "rule": rule.id, "action": rule.action}
                for rule in self.preempted
            ],
        }

    def lines(self) -> list[str]:
        """The text lines printed after the side's line."""
        return [
            f"  near miss: rule {m.rule.id} of group {m.rule.group_id} ({m.rule.action}): "
            f"fails {m.failed}"
            for m in self.near_misses
        ] + [
            f"  preempted: rule {rule.id} of group {rule.group_id} ({rule.action})"
            for rule in self.preempted
        ]


def explain_side(
    space: KeySpace, instance: Instance, direction: Direction, packet: Packet
) -> SideWhyNot:
    assert packet.src is not None and packet.dst is not None
    remote = packet.src if direction == "ingress" else packet.dst
    near: list[NearMiss] = []
    preempted: list[Rule] = []
    deciding: Rule | None = None
    for number in space.candidates(instance.security_groups, direction, packet.ip_version):
        rule = space.rules[number]
        failed = failed_conditions(space, rule, packet, remote)
        if len(failed) == 1:
            near.append(NearMiss(rule, failed[0]))
        elif not failed:
            if deciding is None:
                deciding = rule
            else:
                preempted.append(rule)
    return SideWhyNot(instance.id, direction, deciding, tuple(near), tuple(preempted))


def explain(space: KeySpace, packet: Packet) -> tuple[SideWhyNot, ...]:
    """Every evaluated side of the packet (docs/semantics.md section 3), egress first."""
    assert packet.src is not None and packet.dst is not None
    sides: list[SideWhyNot] = []
    policy = space.policy
    sender = policy.instance_of(packet.src)
    receiver = policy.instance_of(packet.dst)
    if sender is not None:
        sides.append(explain_side(space, sender, "egress", packet))
    if receiver is not None:
        sides.append(explain_side(space, receiver, "ingress", packet))
    return tuple(sides)
