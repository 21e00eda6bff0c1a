"""The security-group engine: a policy compiled onto the first-match core, classifying batches.

What: `Engine(policy)` turns the policy into one first-match table per distinct
(security-group sequence, direction, IP version), and classifies `PacketBatch`es into
per-packet verdict columns (spec sections 2, 3 and 6), statelessly; connection tracking
(`classifier.conntrack`) then overrides what state allows.

Why this shape:
- A side's verdict depends only on the instance's group *sequence*, the direction and the
  IP version (remote-group membership is a property of the whole policy), so instances
  that share a sequence share a table: a fleet of 100 web servers is one table, not 100.
- Each table is a generic 5-tuple rule list (`classifier.acl`): the remote address in the
  source-address field, the protocol, and the destination port. Rules are emitted in the
  spec's order (group position, priority, deny before allow, position in group), so the
  core's first match is the spec's deciding rule. One policy rule becomes several rows
  (remote prefixes x remote-group member ranges x address-group ranges x port ranges);
  `row_rule` maps a row back to the policy rule.
- ICMP type/code travel in the destination-port field as type*256+code (a type-only rule
  is the range [t*256, t*256+255]); a packet whose ports/type are unknown carries
  PORT_UNKNOWN, which only an unrestricted rule's range [0, PORT_ANY_HI] contains.
- Local addresses map to instances through one sorted array of 16-byte keys (IPv4 mapped)
  and a binary search per packet: vectorised, no Python per packet.

Invariants: every packet of a batch gets exactly one verdict; `rule` is a global rule index
(position in `engine.rules`, the policy order) or -1; for judged packets the reported side is
the sender's egress when it denies, else the receiver's ingress when evaluated, else egress.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from classifier import acl
from classifier.conntrack import (
    DIRECTION_EGRESS,
    DIRECTION_INGRESS,
    DIRECTION_NONE,
    REASON_IMPLICIT_DENY,
    REASON_NONE,
    REASON_RULE,
    VERDICT_ALLOW,
    VERDICT_DENY,
    VERDICT_MALFORMED,
    VERDICT_NOT_IP,
    VERDICT_UNMANAGED,
)
from classifier.packets import (
    L4_ICMP,
    L4_PORTS,
    STATUS_L4_TRUNCATED,
    STATUS_MALFORMED,
    STATUS_NOT_IP,
    STATUS_OK,
    PacketBatch,
    address_to_bytes,
)
from classifier.policy import Policy, Rule

PORT_UNKNOWN = 0x10000  # a packet's port/type field when unknown: outside every restriction
PORT_ANY_HI = 0xFFFFFFFF  # an unrestricted rule's port range is [0, PORT_ANY_HI]
PORT_PROTOCOLS = (6, 17, 132)  # protocols whose packets carry ports
ICMP_PROTOCOLS = (1, 58)
DIRECTIONS = ("ingress", "egress")  # index = DIRECTION_INGRESS / DIRECTION_EGRESS
VERSIONS = (4, 6)


@dataclass
class SideTable:
    """One compiled (group sequence, direction, version) table."""

    matcher: acl.Matcher | None  # None when the side has no rule rows at all
    row_rule: np.ndarray  # int32 [rows]: global rule index of each row
    row_allow: np.ndarray  # bool [rows]: the row's rule allows


@dataclass
class StatelessVerdicts:
    """Per-packet columns of a batch, before connection tracking (see conntrack.py)."""

    verdict: np.ndarray  # uint8 VERDICT_*
    reason: np.ndarray  # uint8 REASON_*
    rule: np.ndarray  # int32 global rule index or -1
    instance: np.ndarray  # int32 reported side's instance index or -1
    direction: np.ndarray  # uint8 DIRECTION_*
    new_instance: np.ndarray  # int32 the side reported for a state-allowed packet
    new_direction: np.ndarray  # uint8


class Engine:
    """A policy compiled for batch classification. Build once, classify many batches."""

    def __init__(self, policy: Policy):
        self.policy = policy
        self.rules: list[Rule] = list(policy.rules())
        self.rule_ids: list[str] = [rule.id for rule in self.rules]
        self.instances = list(policy.instances.values())
        self.instance_ids = [instance.id for instance in self.instances]
        self._rule_position = {(rule.group_id, rule.position): i for i, rule in enumerate(self.rules)}
        self._build_address_index()
        self._build_tables()

    # --- build ---------------------------------------------------------------------------

    def _build_address_index(self) -> None:
        keys: list[bytes] = []
        owners: list[int] = []
        for i, instance in enumerate(self.instances):
            for ip in instance.ips:
                keys.append(address_to_bytes(ip))
                owners.append(i)
        order = np.argsort(np.array(keys, dtype="S16"), kind="stable") if keys else np.zeros(0, int)
        self._address_keys = np.array(keys, dtype="S16")[order] if keys else np.zeros(0, "S16")
        self._address_owner = np.array(owners, dtype=np.int32)[order] if keys else np.zeros(0, np.int32)

    def _build_tables(self) -> None:
        """One table per distinct (sequence, direction, version); instances index into them."""
        self.tables: list[SideTable] = []
        by_key: dict[tuple[tuple[str, ...], int, int], int] = {}
        # side_table[instance, direction, version index] -> index into self.tables
        self.side_table = np.zeros((max(len(self.instances), 1), 2, 2), dtype=np.int32)
        for i, instance in enumerate(self.instances):
            for direction in (DIRECTION_INGRESS, DIRECTION_EGRESS):
                for v, version in enumerate(VERSIONS):
                    key = (instance.security_groups, direction, version)
                    if key not in by_key:
                        by_key[key] = len(self.tables)
                        self.tables.append(self._compile_side(*key))
                    self.side_table[i, direction, v] = by_key[key]

    def _ordered_rules(self, sequence: tuple[str, ...], direction: int, version: int) -> list[Rule]:
        """Candidates of spec section 2, steps 1-2: enabled, this direction and ethertype."""
        ordered = []
        for group_position, group_id in enumerate(sequence):
            for rule in self.policy.groups[group_id].rules:
                if rule.enabled and rule.direction == DIRECTIONS[direction] and rule.ip_version == version:
                    key = (group_position, rule.priority, rule.action != "deny", rule.position)
                    ordered.append((key, rule))
        ordered.sort(key=lambda item: item[0])
        return [rule for _, rule in ordered]

    def _compile_side(self, sequence: tuple[str, ...], direction: int, version: int) -> SideTable:
        rows = acl.RuleRows(version)
        row_rule: list[int] = []
        row_allow: list[bool] = []
        for rule in self._ordered_rules(sequence, direction, version):
            index = self._rule_position[(rule.group_id, rule.position)]
            port_ranges = self._port_ranges(rule)
            proto, proto_mask = (0, 0) if rule.protocol is None else (rule.protocol, 0xFF)
            for lo, hi in self._remote_ranges(rule, version):
                for port_lo, port_hi in port_ranges:
                    rows.add(
                        src=(lo, hi),
                        dport=(port_lo, port_hi),
                        proto=proto,
                        proto_mask=proto_mask,
                    )
                    row_rule.append(index)
                    row_allow.append(rule.action == "allow")
        matcher = acl.compile(rows) if len(row_rule) else None
        return SideTable(matcher, np.array(row_rule, np.int32), np.array(row_allow, bool))

    @staticmethod
    def _port_ranges(rule: Rule) -> list[tuple[int, int]]:
        if rule.ports is not None:
            return list(rule.ports)
        if rule.icmp_type is not None:
            base = rule.icmp_type * 256
            if rule.icmp_code is not None:
                return [(base + rule.icmp_code, base + rule.icmp_code)]
            return [(base, base + 255)]
        return [(0, PORT_ANY_HI)]

    def _remote_ranges(self, rule: Rule, version: int) -> list[tuple[int, int]]:
        """The remote addresses of a rule as exact, merged, inclusive integer ranges."""
        if rule.remote_group_id is not None:
            members = sorted(int(ip) for ip in self.policy.group_members(rule.remote_group_id, version))
            return _merge([(ip, ip) for ip in members])
        if rule.remote_address_group_id is not None:
            group = self.policy.address_groups[rule.remote_address_group_id]
            return _merge([(int(e.first), int(e.last)) for e in group.entries])
        if rule.remote_prefixes:
            return _merge(
                [(int(net.network_address), int(net.broadcast_address)) for net in rule.remote_prefixes]
            )
        return [(0, (1 << (32 if version == 4 else 128)) - 1)]

    # --- run -----------------------------------------------------------------------------

    def classify_pcap(self, paths: Any, stateful: bool = True, batch_size: int = 65536) -> Any:
        """Classify one capture (or several, as one continuous capture): per-packet numpy
        columns and the summary, as a `pipeline.ClassifyResult`. For captures larger than
        memory, iterate `pipeline.Classification(engine).run(paths)` instead."""
        from classifier.pipeline import classify_pcap

        return classify_pcap(self, paths, stateful=stateful, batch_size=batch_size)

    def instance_of(self, addresses: np.ndarray) -> np.ndarray:
        """Instance index (int32) owning each 16-byte address row, or -1."""
        keys = np.ascontiguousarray(addresses).view("S16").reshape(-1)
        if len(self._address_keys) == 0:
            return np.full(len(keys), -1, np.int32)
        position = np.searchsorted(self._address_keys, keys)
        position = np.minimum(position, len(self._address_keys) - 1)
        found = self._address_keys[position] == keys
        return np.where(found, self._address_owner[position], -1).astype(np.int32)

    def classify(self, batch: PacketBatch) -> StatelessVerdicts:
        """Stateless verdicts of spec sections 2-3 for every packet of the batch."""
        n = len(batch)
        verdict = np.full(n, VERDICT_UNMANAGED, np.uint8)
        verdict[batch.status == STATUS_NOT_IP] = VERDICT_NOT_IP
        verdict[batch.status == STATUS_MALFORMED] = VERDICT_MALFORMED
        reason = np.full(n, REASON_NONE, np.uint8)
        rule = np.full(n, -1, np.int32)
        instance = np.full(n, -1, np.int32)
        direction = np.full(n, DIRECTION_NONE, np.uint8)
        new_instance = np.full(n, -1, np.int32)
        new_direction = np.full(n, DIRECTION_NONE, np.uint8)

        is_ip = (batch.status == STATUS_OK) | (batch.status == STATUS_L4_TRUNCATED)
        is_ip &= (batch.ip_version == 4) | (batch.ip_version == 6)
        src_owner = np.where(is_ip, self.instance_of(batch.src), -1)
        dst_owner = np.where(is_ip, self.instance_of(batch.dst), -1)
        port = self._port_column(batch)

        egress_rule, egress_allow = self._evaluate_side(batch, src_owner, DIRECTION_EGRESS, batch.dst, port)
        ingress_rule, ingress_allow = self._evaluate_side(batch, dst_owner, DIRECTION_INGRESS, batch.src, port)

        has_egress = src_owner >= 0
        has_ingress = dst_owner >= 0
        judged = has_egress | has_ingress
        allowed = judged & (~has_egress | egress_allow) & (~has_ingress | ingress_allow)
        # Reported side: sender's egress if it denies, else receiver's ingress, else egress.
        report_egress = has_egress & (~egress_allow | ~has_ingress)
        report_ingress = judged & ~report_egress

        verdict[judged] = np.where(allowed[judged], VERDICT_ALLOW, VERDICT_DENY)
        side_rule = np.where(report_egress, egress_rule, ingress_rule)
        rule[judged] = side_rule[judged]
        reason[judged] = np.where(side_rule[judged] >= 0, REASON_RULE, REASON_IMPLICIT_DENY)
        instance[report_egress] = src_owner[report_egress]
        direction[report_egress] = DIRECTION_EGRESS
        instance[report_ingress] = dst_owner[report_ingress]
        direction[report_ingress] = DIRECTION_INGRESS
        # Section 6: a state-allowed packet reports the receiver's ingress, else sender's egress.
        new_instance[has_ingress] = dst_owner[has_ingress]
        new_direction[has_ingress] = DIRECTION_INGRESS
        only_egress = has_egress & ~has_ingress
        new_instance[only_egress] = src_owner[only_egress]
        new_direction[only_egress] = DIRECTION_EGRESS
        return StatelessVerdicts(verdict, reason, rule, instance, direction, new_instance, new_direction)

    @staticmethod
    def _port_column(batch: PacketBatch) -> np.ndarray:
        """Destination port, ICMP type*256+code, or PORT_UNKNOWN, as uint32."""
        port = np.full(len(batch), PORT_UNKNOWN, np.uint32)
        protocol = batch.protocol
        has_ports = ((batch.l4 & L4_PORTS) != 0) & np.isin(protocol, PORT_PROTOCOLS)
        port[has_ports] = batch.dport[has_ports]
        has_icmp = ((batch.l4 & L4_ICMP) != 0) & np.isin(protocol, ICMP_PROTOCOLS)
        port[has_icmp] = batch.icmp_type[has_icmp].astype(np.uint32) * 256 + batch.icmp_code[has_icmp]
        return port

    def _evaluate_side(
        self,
        batch: PacketBatch,
        owner: np.ndarray,
        direction: int,
        remote: np.ndarray,
        port: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(matched global rule or -1, allowed) for the packets whose `owner` is an instance."""
        n = len(batch)
        matched = np.full(n, -1, np.int32)
        allowed = np.zeros(n, bool)
        evaluated = np.flatnonzero(owner >= 0)
        if len(evaluated) == 0:
            return matched, allowed
        version_index = (batch.ip_version[evaluated] == 6).astype(np.intp)
        table = self.side_table[owner[evaluated], direction, version_index]
        order = np.argsort(table, kind="stable")
        sorted_tables = table[order]
        starts = np.flatnonzero(np.r_[True, sorted_tables[1:] != sorted_tables[:-1]])
        ends = np.r_[starts[1:], len(order)]
        for start, end in zip(starts, ends, strict=True):
            side = self.tables[int(sorted_tables[start])]
            rows = evaluated[order[start:end]]
            if side.matcher is None:
                continue  # no rows: implicit deny for all of them
            hit = side.matcher.match_columns(
                src=remote[rows], dport=port[rows], proto=batch.protocol[rows]
            )
            found = hit >= 0
            matched[rows[found]] = side.row_rule[hit[found]]
            allowed[rows[found]] = side.row_allow[hit[found]]
        return matched, allowed


def _merge(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted, merged inclusive ranges (adjacent ones joined): the exact same address set."""
    merged: list[tuple[int, int]] = []
    for lo, hi in sorted(ranges):
        if merged and lo <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return merged

