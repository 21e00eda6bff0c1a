"""`lint(policy)`: the findings of analysis.md section 3, exact, as typed frozen dataclasses.

Every finding is a `Finding` subclass with the spec's `kind` and `severity`, the `group` and
`rule` columns, and its own fields; `details()` is the spec's `details` object (exactly its
keys, in its order) and `to_json()` the finding's object of section 4. `LintReport` holds
them in the spec's order (kind, then policy order) and renders the JSON document.

Per rule the kinds disabled, matches-nothing, shadowed, redundant exclude one another in that
order; conflict and exposed come on top. Shadowed, redundant and exposed are questions about
the rule's contexts and are answered by `KeySpace` decision maps (set arithmetic, never
sampling): shadowed = the rule decides no cell of some context, redundant = on every context
the `second` rule of every cell it decides has its action, exposed = it decides a cell of a
sensitive port (or, for an all-ports rule, any cell) in some ingress context.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from classifier.analysis.keyspace import DecisionMap, KeySpace
from classifier.policy import Policy, Rule

Severity = Literal["error", "warning", "info"]
SEVERITY_RANK: dict[str, int] = {"info": 0, "warning": 1, "error": 2}
SEVERITIES: tuple[Severity, ...] = ("error", "warning", "info")

# fmt: off
SENSITIVE_PORTS: dict[int, tuple[int, ...]] = {
    6: (20, 21, 22, 23, 135, 139, 445, 1433, 1521, 2375, 3306, 3389, 5432, 5900, 6379, 9200,
        11211, 27017),
    17: (69, 111, 137, 138, 161, 1900, 11211),
}
# fmt: on
PROTOCOL_WORD = {6: "tcp", 17: "udp"}


@dataclass(frozen=True)
class Finding:
    """One finding: the table's columns; subclasses add their details."""

    kind: ClassVar[str]
    severity: ClassVar[Severity]
    group: str | None
    rule: str | None

    def details(self) -> dict[str, Any]:
        return {}

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "severity": self.severity,
            "group": self.group,
            "rule": self.rule,
            "details": self.details(),
        }


@dataclass(frozen=True)
class ShadowedSequence:
    """One sequence on which a rule is shadowed."""

    groups: tuple[str, ...]
    instances: tuple[str, ...]
    covering: tuple[str, ...]  # candidates before the rule whose match sets meet it
    opposite_action: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "groups": list(self.groups),
            "instances": list(self.instances),
            "covering": list(self.covering),
            "opposite_action": self.opposite_action,
        }


@dataclass(frozen=True)
class Shadowed(Finding):
    kind: ClassVar[str] = "shadowed"
    severity: ClassVar[Severity] = "warning"
    everywhere: bool = False
    instances: tuple[str, ...] = ()
    sequences: tuple[ShadowedSequence, ...] = ()

    def details(self) -> dict[str, Any]:
        return {
            "everywhere": self.everywhere,
            "instances": list(self.instances),
            "sequences": [sequence.to_json() for sequence in self.sequences],
        }


@dataclass(frozen=True)
class Redundant(Finding):
    kind: ClassVar[str] = "redundant"
    severity: ClassVar[Severity] = "info"
    instances: tuple[str, ...] = ()
    fallback: tuple[str, ...] = ()  # rule ids in policy order, then "implicit-deny"

    def details(self) -> dict[str, Any]:
        return {"instances": list(self.instances), "fallback": list(self.fallback)}


@dataclass(frozen=True)
class Conflict(Finding):
    kind: ClassVar[str] = "conflict"
    severity: ClassVar[Severity] = "warning"
    allow: str = ""
    deny: str = ""

    def details(self) -> dict[str, Any]:
        return {"allow": self.allow, "deny": self.deny}


@dataclass(frozen=True)
class MatchesNothing(Finding):
    kind: ClassVar[str] = "matches-nothing"
    severity: ClassVar[Severity] = "warning"
    remote: str = ""
    remote_kind: str = "security group"  # or "address group" (not part of the JSON details)
    family: int = 4  # the rule's IP version (not part of the JSON details)

    def details(self) -> dict[str, Any]:
        return {"remote": self.remote}


@dataclass(frozen=True)
class Exposed(Finding):
    kind: ClassVar[str] = "exposed"
    severity: ClassVar[Severity] = "warning"
    instances: tuple[str, ...] = ()
    ports: tuple[str, ...] = ()  # "tcp/22", tcp first, then by port
    all_ports: bool = False

    def details(self) -> dict[str, Any]:
        return {
            "instances": list(self.instances),
            "ports": list(self.ports),
            "all_ports": self.all_ports,
        }


@dataclass(frozen=True)
class Disabled(Finding):
    kind: ClassVar[str] = "disabled"
    severity: ClassVar[Severity] = "info"


@dataclass(frozen=True)
class UnusedGroup(Finding):
    kind: ClassVar[str] = "unused-group"
    severity: ClassVar[Severity] = "info"


@dataclass(frozen=True)
class UnusedAddressGroup(Finding):
    kind: ClassVar[str] = "unused-address-group"
    severity: ClassVar[Severity] = "info"
    address_group: str = ""

    def details(self) -> dict[str, Any]:
        return {"address_group": self.address_group}


KINDS: tuple[type[Finding], ...] = (
    Shadowed,
    Redundant,
    Conflict,
    MatchesNothing,
    Exposed,
    Disabled,
    UnusedGroup,
    UnusedAddressGroup,
)
KIND_NAMES = tuple(kind.kind for kind in KINDS)


@dataclass(frozen=True)
class LintReport:
    """The findings of one policy, in the spec's order (kind, then policy order)."""

    source: str
    findings: tuple[Finding, ...] = field(default=())

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = dict.fromkeys(SEVERITIES, 0)
        for finding in self.findings:
            counts[finding.severity] += 1
        return counts

    def fails(self, level: str) -> bool:
        """Is there a finding of severity `level` or higher?"""
        return any(SEVERITY_RANK[f.severity] >= SEVERITY_RANK[level] for f in self.findings)

    def of_kind(self, kind: str) -> list[Finding]:
        return [finding for finding in self.findings if finding.kind == kind]

    def to_json(self, policy: str | None = None) -> dict[str, Any]:
        return {
            "policy": self.source if policy is None else policy,
            "counts": self.counts(),
            "findings": [finding.to_json() for finding in self.findings],
        }


def is_all_ports(rule: Rule) -> bool:
    """Protocol all, or tcp/udp without a port restriction (analysis.md section 3)."""
    return rule.protocol is None or (rule.protocol in (6, 17) and rule.ports is None)


class _Linter:
    def __init__(self, policy: Policy, space: KeySpace):
        self.policy = policy
        self.space = space
        self.instance_order = {iid: n for n, iid in enumerate(policy.instances)}
        self.sequences_of_group: dict[str, list[tuple[str, ...]]] = {
            gid: [] for gid in policy.groups
        }
        for sequence in space.sequences:  # in order of their first instance
            for gid in sequence:
                self.sequences_of_group[gid].append(sequence)
        self._sensitive: dict[int, dict[int, list[tuple[int, int]]]] = {}

    def in_policy_order(self, instance_ids: Iterable[str]) -> tuple[str, ...]:
        return tuple(sorted(set(instance_ids), key=self.instance_order.__getitem__))

    def sensitive_deciders(self, decision: DecisionMap) -> dict[int, list[tuple[int, int]]]:
        """Candidate position -> the sensitive (protocol, port) points it decides (some remote)."""
        found = self._sensitive.get(id(decision))
        if found is None:
            found = {}
            for protocol, ports in SENSITIVE_PORTS.items():
                for port in ports:
                    for k in sorted(decision.deciders_at_service(protocol, port)):
                        found.setdefault(k, []).append((protocol, port))
            self._sensitive[id(decision)] = found
        return found

    def run(self) -> list[Finding]:
        by_kind: dict[str, list[Finding]] = {name: [] for name in KIND_NAMES}
        for number, rule in enumerate(self.space.rules):
            for finding in self.rule_findings(number, rule):
                by_kind[finding.kind].append(finding)
        by_kind["conflict"] = list(self.conflicts())
        used = {gid for sequence in self.space.sequences for gid in sequence}
        by_kind["unused-group"] = [
            UnusedGroup(gid, None) for gid in self.policy.groups if gid not in used
        ]
        named = {rule.remote_address_group_id for rule in self.space.rules}
        by_kind["unused-address-group"] = [
            UnusedAddressGroup(None, None, address_group=agid)
            for agid in self.policy.address_groups
            if agid not in named
        ]
        return [finding for name in KIND_NAMES for finding in by_kind[name]]

    def rule_findings(self, number: int, rule: Rule) -> list[Finding]:
        if not rule.enabled:
            return [Disabled(rule.group_id, rule.id)]
        box = self.space.boxes[number]
        assert box is not None
        if box.empty:
            if rule.remote_group_id is not None:
                remote, remote_kind = rule.remote_group_id, "security group"
            else:
                remote, remote_kind = rule.remote_address_group_id or "", "address group"
            return [MatchesNothing(rule.group_id, rule.id, remote, remote_kind, rule.ip_version)]
        sequences = self.sequences_of_group[rule.group_id]
        if not sequences:
            return []
        found: list[Finding] = []
        shadowed: list[ShadowedSequence] = []
        redundant = True
        fallback: set[int] = set()
        for sequence in sequences:
            decision = self.space.context(sequence, rule.direction, rule.ip_version)
            k = decision.position(number)
            if not decision.decided()[k]:
                covering = decision.covering(k)
                shadowed.append(
                    ShadowedSequence(
                        groups=sequence,
                        instances=tuple(self.space.sequences[sequence]),
                        covering=tuple(decision.ids[c] for c in covering.tolist()),
                        opposite_action=bool(
                            (decision.allows[covering] != (rule.action == "allow")).any()
                        ),
                    )
                )
                continue
            for position in decision.fallbacks().get(k, set()):
                action = "deny" if position < 0 else decision.rules[position].action
                redundant = redundant and action == rule.action
                fallback.add(-1 if position < 0 else decision.candidates[position])
        if shadowed:
            found.append(
                Shadowed(
                    rule.group_id,
                    rule.id,
                    everywhere=len(shadowed) == len(sequences),
                    instances=self.in_policy_order(i for s in shadowed for i in s.instances),
                    sequences=tuple(shadowed),
                )
            )
        elif redundant:
            ids = [self.space.rules[n].id for n in sorted(f for f in fallback if f >= 0)]
            found.append(
                Redundant(
                    rule.group_id,
                    rule.id,
                    instances=self.in_policy_order(
                        i for sequence in sequences for i in self.space.sequences[sequence]
                    ),
                    fallback=tuple(ids + (["implicit-deny"] if -1 in fallback else [])),
                )
            )
        exposed = self.exposed(number, rule, sequences)
        if exposed is not None:
            found.append(exposed)
        return found

    def exposed(self, number: int, rule: Rule, sequences: list[tuple[str, ...]]) -> Exposed | None:
        if (
            rule.direction != "ingress"
            or rule.action != "allow"
            or not self.space.full_remote(rule)
        ):
            return None
        all_ports = is_all_ports(rule)
        instances: list[str] = []
        ports: set[tuple[int, int]] = set()
        for sequence in sequences:
            decision = self.space.context(sequence, "ingress", rule.ip_version)
            k = decision.position(number)
            sensitive = self.sensitive_deciders(decision).get(k, [])
            if sensitive or (all_ports and decision.decided()[k]):
                instances.extend(self.space.sequences[sequence])
                ports.update(sensitive)
        if not instances:
            return None
        return Exposed(
            rule.group_id,
            rule.id,
            instances=self.in_policy_order(instances),
            ports=tuple(f"{PROTOCOL_WORD[p]}/{q}" for p, q in sorted(ports)),
            all_ports=all_ports,
        )

    def conflicts(self) -> Iterable[Conflict]:
        """Allow/deny pairs of one group, same direction, ethertype and priority, whose match
        sets intersect; ordered by the allow rule, then the deny rule (policy order)."""
        found: list[tuple[int, int]] = []
        for gid in self.policy.groups:
            buckets: dict[tuple[str, int, int], tuple[list[int], list[int]]] = {}
            for number in self.space.group_rules(gid):
                rule = self.space.rules[number]
                box = self.space.boxes[number]
                if box is None or box.empty:
                    continue
                allow, deny = buckets.setdefault(
                    (rule.direction, rule.ip_version, rule.priority), ([], [])
                )
                (allow if rule.action == "allow" else deny).append(number)
            for allow, deny in buckets.values():
                for a in allow if deny else ():
                    meets = self.space.meets(a, deny)
                    found.extend((a, d) for d, hit in zip(deny, meets.tolist(), strict=True) if hit)
        for a, d in sorted(found):
            rule = self.space.rules[a]
            yield Conflict(rule.group_id, rule.id, allow=rule.id, deny=self.space.rules[d].id)


def lint(policy: Policy, space: KeySpace | None = None) -> LintReport:
    """Every finding of analysis.md section 3 for the policy, in the order of section 4."""
    space = space if space is not None else KeySpace(policy)
    return LintReport(policy.source, tuple(_Linter(policy, space).run()))


__all__ = [
    "KINDS",
    "KIND_NAMES",
    "SENSITIVE_PORTS",
    "Conflict",
    "Disabled",
    "Exposed",
    "Finding",
    "LintReport",
    "MatchesNothing",
    "Redundant",
    "Shadowed",
    "ShadowedSequence",
    "UnusedAddressGroup",
    "UnusedGroup",
    "is_all_ports",
    "lint",
]
