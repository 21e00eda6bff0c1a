"""Brute force over a cell grid, built from `classifier.reference`: the oracle of the analysis.

The grid of an IP version holds one point per elementary interval of every axis, cut at every
boundary of every rule of the policy (remote: prefixes, address-group entries, remote-group
members; services: port ranges and ICMP type/code ranges), plus the special points (port 0,
port 1 and 65535, `unknown`, the sensitive ports, protocol 0 and a few protocols no rule
names). Every rule is constant on each elementary cell, so a question answered at every grid
point is answered for the whole key space. Each point is judged by `reference.candidates` and
`reference.rule_matches`, never by the code under test.

`brute_lint(policy)` is the lint JSON document (analysis.md sections 3-4) computed this way,
straight from the spec's wording.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from classifier import reference
from classifier.packets import (
    Packet,
)
from classifier.policy import Instance, IPAddress, Policy, Rule

BITS = {4: 32, 6: 128}
FAMILY_ICMP = {4: 1, 6: 58}
OTHER_ICMP = {4: 58, 6: 1}
# The spec's sensitive services, copied here on purpose: the oracle shares no constant with
# the code under test.
# fmt: off
SENSITIVE = {
    6: (20, 21, 22, 23, 135, 139, 445, 1433, 1521, 2375, 3306, 3389, 5432, 5900, 6379, 9200,
        11211, 27017),
    17: (69, 111, 137, 138, 161, 1900, 11211),
}
# fmt: on
KINDS = (
    "shadowed",
    "redundant",
    "conflict",
    "matches-nothing",
    "exposed",
    "disabled",
    "unused-group",
    "unused-address-group",
)
SEVERITY = {
    "shadowed": "warning",
    "redundant": "info",
    "conflict": "warning",
    "matches-nothing": "warning",
    "exposed": "warning",
    "disabled": "info",
    "unused-group": "info",
    "unused-address-group": "info",
}


def address(version: int, value: int) -> IPAddress:
    return ipaddress.IPv4Address(value) if version == 4 else ipaddress.IPv6Address(value)


def remote_points(policy: Policy, version: int) -> list[IPAddress]:
    """The first address of every elementary remote interval."""
    end = 1 << BITS[version]
    cuts = {0}

    def cut(lo: int, hi: int) -> None:
        cuts.add(lo)
        if hi + 1 < end:
            cuts.add(hi + 1)

    for rule in policy.rules():
        if rule.ip_version != version:
            continue
        for prefix in rule.remote_prefixes:
            cut(int(prefix.network_address), int(prefix.broadcast_address))
        if rule.remote_group_id is not None:
            for member in policy.group_members(rule.remote_group_id, version):
                cut(int(member), int(member))
        if rule.remote_address_group_id is not None:
            for entry in policy.address_groups[rule.remote_address_group_id].entries:
                cut(int(entry.first), int(entry.last))
    return [address(version, value) for value in sorted(cuts)]


@dataclass(frozen=True)
class Point:
    """A point of the key space minus its remote: protocol and service."""

    protocol: int
    dport: int | None = None
    icmp_type: int | None = None
    icmp_code: int | None = None

    def packet(self, version: int, remote: IPAddress, local: IPAddress) -> Packet:
        return Packet(
            ip_version=version,
            src=remote,
            dst=local,
            protocol=self.protocol,
            sport=None if self.dport is None else 40000,
            dport=self.dport,
            icmp_type=self.icmp_type,
            icmp_code=self.icmp_code,
        )


def service_points(
    policy: Policy, version: int, extra_ports: dict[int, set[int]] | None = None
) -> list[Point]:
    rules = [rule for rule in policy.rules() if rule.ip_version == version]
    protocols = {0, 6, 17, 132, 47, FAMILY_ICMP[version], OTHER_ICMP[version], 255}
    protocols |= {rule.protocol for rule in rules if rule.protocol is not None}
    points: list[Point] = []
    for protocol in sorted(protocols):
        if protocol in (6, 17, 132):
            ports = {0, 1, 65535} | set(SENSITIVE.get(protocol, ()))
            ports |= (extra_ports or {}).get(protocol, set())
            for rule in rules:
                if rule.protocol == protocol and rule.ports is not None:
                    for lo, hi in rule.ports:
                        ports |= {lo, hi + 1} if hi < 65535 else {lo}
            points += [Point(protocol, dport=port) for port in sorted(ports)]
            points.append(Point(protocol))  # ports unknown
        elif protocol == FAMILY_ICMP[version]:
            services = {(0, 0), (255, 255)}
            for rule in rules:
                if rule.protocol == protocol and rule.icmp_type is not None:
                    t = rule.icmp_type
                    if rule.icmp_code is None:
                        services |= {(t, 0)} | ({(t + 1, 0)} if t < 255 else set())
                    else:
                        c = rule.icmp_code
                        services |= {(t, c)}
                        services |= (
                            {(t, c + 1)} if c < 255 else ({(t + 1, 0)} if t < 255 else set())
                        )
            points += [Point(protocol, icmp_type=t, icmp_code=c) for t, c in sorted(services)]
            points.append(Point(protocol))  # type unknown
        else:
            points.append(Point(protocol))
    return points


class Grid:
    """Every point of one IP version, and which rules match it (reference.rule_matches)."""

    def __init__(
        self, policy: Policy, version: int, extra_ports: dict[int, set[int]] | None = None
    ):
        self.policy = policy
        self.version = version
        self.remotes = remote_points(policy, version)
        self.services = service_points(policy, version, extra_ports)
        local = address(version, 1)
        self.points = [(r, s) for r in self.remotes for s in self.services]
        self.packets = [s.packet(version, r, local) for r, s in self.points]
        self.matches: dict[str, list[bool]] = {}
        for rule in policy.rules():
            if rule.ip_version == version and rule.enabled:
                self.matches[rule.id] = [
                    reference.rule_matches(policy, rule, packet, remote)
                    for packet, (remote, _) in zip(self.packets, self.points, strict=True)
                ]

    def deciding(self, candidates: list[Rule], skip: str | None = None) -> list[Rule | None]:
        """Per point: the first candidate that matches it (skipping rule `skip`), or None."""
        result: list[Rule | None] = []
        for n in range(len(self.points)):
            found = None
            for rule in candidates:
                if rule.id != skip and self.matches[rule.id][n]:
                    found = rule
                    break
            result.append(found)
        return result


def sequences(policy: Policy) -> dict[tuple[str, ...], list[Instance]]:
    found: dict[tuple[str, ...], list[Instance]] = {}
    for instance in policy.instances.values():
        if instance.security_groups:
            found.setdefault(tuple(instance.security_groups), []).append(instance)
    return found


def brute_lint(policy: Policy) -> dict[str, Any]:
    """The lint document of analysis.md section 4, by brute force over the grids."""
    grids = {v: Grid(policy, v) for v in (4, 6)}
    rules = list(policy.rules())
    order = {rule.id: n for n, rule in enumerate(rules)}
    instance_order = {iid: n for n, iid in enumerate(policy.instances)}
    seqs = sequences(policy)
    findings: dict[str, list[tuple[Any, dict[str, Any]]]] = {kind: [] for kind in KINDS}

    def add(
        kind: str, key: Any, group: str | None, rule: str | None, details: dict[str, Any]
    ) -> None:
        findings[kind].append(
            (
                key,
                {
                    "kind": kind,
                    "severity": SEVERITY[kind],
                    "group": group,
                    "rule": rule,
                    "details": details,
                },
            )
        )

    def by_instance(ids: list[str]) -> list[str]:
        return sorted(set(ids), key=instance_order.__getitem__)

    for rule in rules:
        if not rule.enabled:
            add("disabled", order[rule.id], rule.group_id, rule.id, {})
            continue
        grid = grids[rule.ip_version]
        hits = grid.matches[rule.id]
        if not any(hits):
            add(
                "matches-nothing",
                order[rule.id],
                rule.group_id,
                rule.id,
                {"remote": rule.remote_group_id or rule.remote_address_group_id},
            )
            continue
        contexts = [(s, members) for s, members in seqs.items() if rule.group_id in s]
        if not contexts:
            continue
        shadowed: list[dict[str, Any]] = []
        redundant = True
        fallback: set[str] = set()
        exposed_instances: list[str] = []
        exposed_ports: set[tuple[int, int]] = set()
        full_remote = (
            rule.direction == "ingress" and rule.action == "allow" and _full_remote(grid, rule)
        )
        all_ports = rule.protocol is None or (rule.protocol in (6, 17) and rule.ports is None)
        for sequence, members in contexts:
            candidates = reference.candidates(policy, members[0], rule.direction, rule.ip_version)
            first = grid.deciding(candidates)
            decided = [n for n, f in enumerate(first) if f is not None and f.id == rule.id]
            if not decided:
                before = candidates[: [c.id for c in candidates].index(rule.id)]
                covering = [
                    c
                    for c in before
                    if any(a and b for a, b in zip(grid.matches[c.id], hits, strict=True))
                ]
                shadowed.append(
                    {
                        "groups": list(sequence),
                        "instances": [m.id for m in members],
                        "covering": [c.id for c in covering],
                        "opposite_action": any(c.action != rule.action for c in covering),
                    }
                )
            else:
                without = grid.deciding(candidates, skip=rule.id)
                for n in decided:
                    after = without[n]
                    if (after.action if after is not None else "deny") != rule.action:
                        redundant = False
                    fallback.add(after.id if after is not None else "implicit-deny")
            if full_remote:
                sensitive = {
                    (s.protocol, s.dport)
                    for n in decided
                    for s in [grid.points[n][1]]
                    if s.protocol in SENSITIVE and s.dport in SENSITIVE[s.protocol]
                }
                if sensitive or (all_ports and decided):
                    exposed_instances += [m.id for m in members]
                    exposed_ports |= sensitive
        if shadowed:
            add(
                "shadowed",
                order[rule.id],
                rule.group_id,
                rule.id,
                {
                    "everywhere": len(shadowed) == len(contexts),
                    "instances": by_instance([i for s in shadowed for i in s["instances"]]),
                    "sequences": shadowed,
                },
            )
        elif redundant:
            ids = sorted((f for f in fallback if f != "implicit-deny"), key=order.__getitem__)
            add(
                "redundant",
                order[rule.id],
                rule.group_id,
                rule.id,
                {
                    "instances": by_instance([m.id for _, members in contexts for m in members]),
                    "fallback": ids + (["implicit-deny"] if "implicit-deny" in fallback else []),
                },
            )
        if exposed_instances:
            add(
                "exposed",
                order[rule.id],
                rule.group_id,
                rule.id,
                {
                    "instances": by_instance(exposed_instances),
                    "ports": [
                        f"{'tcp' if p == 6 else 'udp'}/{q}" for p, q in sorted(exposed_ports)
                    ],
                    "all_ports": all_ports,
                },
            )
    for group in policy.groups.values():
        for a in group.rules:
            for d in group.rules:
                if not (a.enabled and d.enabled and a.action == "allow" and d.action == "deny"):
                    continue
                if (a.direction, a.ip_version, a.priority) != (
                    d.direction,
                    d.ip_version,
                    d.priority,
                ):
                    continue
                grid = grids[a.ip_version]
                if any(
                    x and y for x, y in zip(grid.matches[a.id], grid.matches[d.id], strict=True)
                ):
                    add(
                        "conflict",
                        (order[a.id], order[d.id]),
                        group.id,
                        a.id,
                        {"allow": a.id, "deny": d.id},
                    )
    used = {gid for s in seqs for gid in s}
    for n, gid in enumerate(policy.groups):
        if gid not in used:
            add("unused-group", n, gid, None, {})
    named = {rule.remote_address_group_id for rule in rules}
    for n, agid in enumerate(policy.address_groups):
        if agid not in named:
            add("unused-address-group", n, None, None, {"address_group": agid})
    ordered = [f for kind in KINDS for _, f in sorted(findings[kind], key=lambda item: item[0])]
    counts = {"error": 0, "warning": 0, "info": 0}
    for finding in ordered:
        counts[finding["severity"]] += 1
    return {"policy": policy.source, "counts": counts, "findings": ordered}


def _full_remote(grid: Grid, rule: Rule) -> bool:
    """Is the rule's remote the whole address space? Every remote point matches together with
    one (protocol, service) point the rule matches (its match set is a product)."""
    hits = grid.matches[rule.id]
    n = next(n for n, hit in enumerate(hits) if hit)
    service = grid.points[n][1]
    return all(hits[m] for m, (_, other) in enumerate(grid.points) if other == service)
