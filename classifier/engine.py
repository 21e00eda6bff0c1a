"""The security-group engine: a policy compiled onto the first-match core, classifying batches.

What: `Engine(policy)` turns the policy into one first-match table per distinct
(security-group sequence, direction, IP version), and classifies `PacketBatch`es into
per-packet verdict columns (spec sections 2, 3 and 6), statelessly; connection tracking
(`classifier.conntrack`) then overrides what state allows.

Why this shape:
- A side's verdict depends only on the instance's group *sequence*, the direction and the
  IP version (remote-group membership is a property of the whole policy), so instances
  that share a sequence share a table: a fleet of 100 web servers is one table, not 100.
  When sequences are so many and so large that per-sequence tables would grow quadratically
  (thousands of instances, each with a group of its own beside a shared one), the engine
  switches to per-group tables tried in sequence order ("group mode", see _build_tables):
  the first group with a matching rule decides, which is the spec's order too.
- Each table is a generic 5-tuple rule list (`classifier.acl`): the remote address in the
  source-address field, the protocol, and the destination port. Rules are emitted in the
  spec's order (group position, priority, deny before allow, position in group), so the
  core's first match is the spec's deciding rule. One policy rule becomes several rows
  (remote prefixes x remote-group member ranges x address-group ranges x port ranges);
  `row_rule` maps a row back to the policy rule.
- ICMP type/code travel in the destination-port field as ICMP_PORT_BASE + type*512 + code
  (a type-only rule is the block [base + t*512, base + t*512 + 511]); a packet whose code is
  unknown (`check --icmp-type` alone) carries 256 in the code's place, inside its type's
  block but equal to no code. A packet whose ports/type are unknown carries
  acl.PORT_UNKNOWN, which only an unrestricted rule's range [0, acl.PORT_ANY_HI] contains;
  the ICMP values start above it, so neither is ever mistaken for the other.
- Local addresses map to instances through an open-addressing hash table keyed by the
  16-byte address and its IP version (`_engine.owners`): one probe or two per packet, in C.
- All tables of one IP version are packed into shared matchers ("chunks", at most
  CHUNK_ROWS rows each), a table's rows tagged with an exact source-port value: one lookup
  call per chunk serves every instance, with no grouping of packets by table.

Invariants: every packet of a batch gets exactly one verdict; `rule` is a global rule index
(position in `engine.rules`, the policy order) or -1; for judged packets the reported side is
the sender's egress when it denies, else the receiver's ingress when evaluated, else egress.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from classifier import _twins, acl
from classifier.conntrack import (
    DIRECTION_EGRESS,
    DIRECTION_INGRESS,
)
from classifier.packets import (
    STATUS_L4_TRUNCATED,
    STATUS_OK,
    PacketBatch,
    address_to_bytes,
)
from classifier.pcap import DEFAULT_BATCH_SIZE
from classifier.policy import Policy, Rule, merge_ranges

ICMP_PORT_BASE = 0x20000  # ICMP values in the port field (the kernels' ICMP_BASE)
CHUNK_ROWS = 4096  # rows per shared matcher: bounds the bit-vector width (memory, scan cost)
SEQUENCE_ROWS_BUDGET = 1_000_000  # past this many rows in per-sequence tables, use group mode
_V4_MAPPED_PREFIX = np.frombuffer(b"\x00" * 10 + b"\xff\xff", np.uint8)
DIRECTIONS = ("ingress", "egress")  # index = DIRECTION_INGRESS / DIRECTION_EGRESS
VERSIONS = (4, 6)


@dataclass
class SideTable:
    """One (group sequence, direction, version): its rule rows live in chunk `chunk`."""

    sequence: tuple[str, ...]
    direction: int
    version: int
    rows: list[tuple[int, int, int, int, int, int, int]]  # (src lo, hi, port lo, hi, proto, mask, rule)
    chunk: int = -1  # -1: no rows at all (every packet is an implicit deny)
    local_id: int = 0  # the table's tag inside its chunk (the source-port field)


@dataclass
class Chunk:
    """Several side tables of one IP version compiled into one first-match matcher.

    The rows of table t carry the exact source-port value t (`local_id`), and each packet is
    looked up with its table's tag as source port, so it can only match its own table's rows;
    within a table the rows keep the spec order. One lookup call serves every table of the
    chunk: no per-table grouping of packets, no per-table Python call.
    """

    version: int
    matcher: acl.Matcher
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
    egress_rule: np.ndarray  # int32 the rule that decided the sender's egress side, or -1
    ingress_rule: np.ndarray  # int32 the rule that decided the receiver's ingress side, or -1


class Engine:
    """A policy compiled for batch classification. Build once, classify many batches."""

    def __init__(self, policy: Policy):
        self.policy = policy
        self._kernels = _twins.load("_engine")  # compiled, or the pure twin
        self.rules: list[Rule] = list(policy.rules())
        self.rule_ids: list[str] = [rule.id for rule in self.rules]
        self.instances = list(policy.instances.values())
        self.instance_ids = [instance.id for instance in self.instances]
        self._rule_position = {(rule.group_id, rule.position): i for i, rule in enumerate(self.rules)}
        self._member_ranges: dict[tuple[str, int], list[tuple[int, int]]] = {}
        self._build_address_index()
        self._build_tables()

    # --- build ---------------------------------------------------------------------------

    def _build_address_index(self) -> None:
        """Local address -> instance: an open-addressing table for `_engine.owners`."""
        entries = [(ip, i) for i, instance in enumerate(self.instances) for ip in instance.ips]
        capacity = 16
        while capacity < 2 * len(entries):
            capacity *= 2  # at most half full: probe sequences stay short and end
        self._slot_hi = np.zeros(capacity, np.uint64)
        self._slot_lo = np.zeros(capacity, np.uint64)
        self._slot_version = np.zeros(capacity, np.uint8)
        self._slot_owner = np.full(capacity, -1, np.int32)
        for ip, owner in entries:
            raw = address_to_bytes(ip)
            hi, lo = int.from_bytes(raw[:8], "big"), int.from_bytes(raw[8:], "big")
            slot = self._kernels.address_hash(hi, lo, ip.version) & (capacity - 1)
            while self._slot_owner[slot] >= 0:
                slot = (slot + 1) & (capacity - 1)
            self._slot_hi[slot], self._slot_lo[slot] = hi, lo
            self._slot_version[slot], self._slot_owner[slot] = ip.version, owner

    def _build_tables(self) -> None:
        """The tables, the plans that say which tables decide each side, and the chunks.

        Sequence mode (the fast one): one table per distinct (group sequence, direction,
        version), so a side is one lookup. Its size is the sum, over distinct sequences, of
        their groups' rows; when that passes SEQUENCE_ROWS_BUDGET (thousands of instances
        each with a group of its own plus a shared group that names itself as remote: the
        cloud's default pattern), group mode: one table per (group, direction, version),
        and a side looks its groups up in sequence order until one has a matching rule.
        Both give the spec's first match: candidates are ordered by group position first.
        """
        group_rows = {
            (group_id, direction, version): self._group_rows(group_id, direction, version)
            for group_id in self.policy.groups
            for direction in (DIRECTION_INGRESS, DIRECTION_EGRESS)
            for version in VERSIONS
        }
        sequences = {instance.security_groups for instance in self.instances}
        sequence_rows = sum(
            len(group_rows[(g, d, v)]) for seq in sequences for g in seq for d in (0, 1) for v in VERSIONS
        )
        self.mode = "sequence" if sequence_rows <= SEQUENCE_ROWS_BUDGET else "group"
        self.tables: list[SideTable] = []
        by_key: dict[tuple[tuple[str, ...], int, int], int] = {}

        def table_of(sequence: tuple[str, ...], direction: int, version: int) -> int:
            key = (sequence, direction, version)
            if key not in by_key:
                rows = [row for g in sequence for row in group_rows[(g, direction, version)]]
                by_key[key] = len(self.tables)
                self.tables.append(SideTable(sequence, direction, version, rows))
            return by_key[key]

        # plan[instance, direction, version index, k]: the k-th table to try, -1 past the end
        depth = 1 if self.mode == "sequence" else max((len(i.security_groups) for i in self.instances), default=1)
        self.plan = np.full((max(len(self.instances), 1), 2, 2, max(depth, 1)), -1, dtype=np.int32)
        for i, instance in enumerate(self.instances):
            for direction in (DIRECTION_INGRESS, DIRECTION_EGRESS):
                for v, version in enumerate(VERSIONS):
                    if self.mode == "sequence":
                        self.plan[i, direction, v, 0] = table_of(instance.security_groups, direction, version)
                    else:
                        for k, group_id in enumerate(instance.security_groups):
                            self.plan[i, direction, v, k] = table_of((group_id,), direction, version)
        self.chunks: list[Chunk] = []
        for version in VERSIONS:
            pending: list[SideTable] = []
            for table in self.tables:
                if table.version != version or not table.rows:
                    continue
                if pending and sum(len(t.rows) for t in pending) + len(table.rows) > CHUNK_ROWS:
                    self._compile_chunk(pending)
                    pending = []
                pending.append(table)
            if pending:
                self._compile_chunk(pending)
        self.table_chunk = np.array([t.chunk for t in self.tables] or [-1], dtype=np.int32)
        self.table_local = np.array([t.local_id for t in self.tables] or [0], dtype=np.uint32)

    def _compile_chunk(self, tables: list[SideTable]) -> None:
        rows = acl.RuleRows(tables[0].version)
        row_rule: list[int] = []
        row_allow: list[bool] = []
        for local_id, table in enumerate(tables):
            table.chunk, table.local_id = len(self.chunks), local_id
            for lo, hi, port_lo, port_hi, proto, mask, rule in table.rows:
                rows.add(src=(lo, hi), sport=(local_id, local_id), dport=(port_lo, port_hi),
                         proto=proto, proto_mask=mask)
                row_rule.append(rule)
                row_allow.append(self.rules[rule].action == "allow")
        self.chunks.append(
            Chunk(tables[0].version, acl.compile(rows), np.array(row_rule, np.int32), np.array(row_allow, bool))
        )

    def _group_rows(self, group_id: str, direction: int, version: int) -> list[tuple[int, int, int, int, int, int, int]]:
        """One group's candidates for a side (enabled, this direction and ethertype) in the
        spec's order within a group (priority, deny before allow, position), each expanded
        into exact rows: (remote lo, hi, port lo, hi, protocol, protocol mask, rule index)."""
        candidates = sorted(
            (rule for rule in self.policy.groups[group_id].rules
             if rule.enabled and rule.direction == DIRECTIONS[direction] and rule.ip_version == version),
            key=lambda rule: (rule.priority, rule.action != "deny", rule.position),
        )
        rows = []
        for rule in candidates:
            index = self._rule_position[(rule.group_id, rule.position)]
            proto, proto_mask = (0, 0) if rule.protocol is None else (rule.protocol, 0xFF)
            for lo, hi in self._remote_ranges(rule, version):
                for port_lo, port_hi in self._port_ranges(rule):
                    rows.append((lo, hi, port_lo, port_hi, proto, proto_mask, index))
        return rows

    @staticmethod
    def _port_ranges(rule: Rule) -> list[tuple[int, int]]:
        if rule.ports is not None:
            return list(rule.ports)
        if rule.icmp_type is not None:
            base = ICMP_PORT_BASE + rule.icmp_type * 512
            if rule.icmp_code is not None:
                return [(base + rule.icmp_code, base + rule.icmp_code)]
            return [(base, base + 511)]  # the codes 0..255 and 256, "code unknown"
        return [(0, acl.PORT_ANY_HI)]  # also contains the unknown-port marker acl.PORT_UNKNOWN

    def _remote_ranges(self, rule: Rule, version: int) -> list[tuple[int, int]]:
        """The remote addresses of a rule as exact, merged, inclusive integer ranges."""
        if rule.remote_group_id is not None:
            key = (rule.remote_group_id, version)
            if key not in self._member_ranges:  # a group's members are the same for every rule
                members = self.policy.group_members(rule.remote_group_id, version)
                self._member_ranges[key] = merge_ranges([(int(ip), int(ip)) for ip in members])
            return self._member_ranges[key]
        if rule.remote_address_group_id is not None:
            group = self.policy.address_groups[rule.remote_address_group_id]
            return merge_ranges([(int(e.first), int(e.last)) for e in group.entries])
        if rule.remote_prefixes:
            return merge_ranges(
                [(int(net.network_address), int(net.broadcast_address)) for net in rule.remote_prefixes]
            )
        return [(0, (1 << (32 if version == 4 else 128)) - 1)]

    # --- run -----------------------------------------------------------------------------

    def classify_pcap(self, paths: Any, stateful: bool = True, batch_size: int = DEFAULT_BATCH_SIZE) -> Any:
        """Classify one capture (or several, as one continuous capture): per-packet numpy
        columns and the summary, as a `pipeline.ClassifyResult`. For captures larger than
        memory, iterate `pipeline.Classification(engine).run(paths)` instead."""
        from classifier.pipeline import classify_pcap

        return classify_pcap(self, paths, stateful=stateful, batch_size=batch_size)

    def instance_of(self, addresses: np.ndarray, ip_version: np.ndarray | None = None) -> np.ndarray:
        """Instance index (int32) owning each 16-byte address row, or -1.

        `ip_version` gives each row's family (4: IPv4-mapped; other values: no owner); by
        default a row is IPv4 when it has the ::ffff:0:0/96 prefix, else IPv6.
        """
        addresses = np.ascontiguousarray(addresses, dtype=np.uint8).reshape(-1, 16)
        if ip_version is None:
            mapped = np.all(addresses[:, :12] == _V4_MAPPED_PREFIX, axis=1)
            ip_version = np.where(mapped, 4, 6).astype(np.uint8)
        owner = np.empty(len(addresses), np.int32)
        self._kernels.owners(
            addresses,
            np.ascontiguousarray(ip_version, dtype=np.uint8),
            self._slot_hi,
            self._slot_lo,
            self._slot_version,
            self._slot_owner,
            owner,
        )
        return owner

    def classify(self, batch: PacketBatch) -> StatelessVerdicts:
        """Stateless verdicts of spec sections 2-3 for every packet of the batch."""
        n = len(batch)
        usable = (batch.status == STATUS_OK) | (batch.status == STATUS_L4_TRUNCATED)
        version = np.where(usable, batch.ip_version, 0).astype(np.uint8)
        src_owner = self.instance_of(batch.src, version)
        dst_owner = self.instance_of(batch.dst, version)
        port = np.empty(n, np.uint32)
        self._kernels.port_column(batch.protocol, batch.l4, batch.dport, batch.icmp_type, batch.icmp_code, port)
        egress_rule, egress_allow, ingress_rule, ingress_allow = self._evaluate_sides(
            batch, src_owner, dst_owner, port
        )
        verdicts = StatelessVerdicts(
            verdict=np.empty(n, np.uint8),
            reason=np.empty(n, np.uint8),
            rule=np.empty(n, np.int32),
            instance=np.empty(n, np.int32),
            direction=np.empty(n, np.uint8),
            new_instance=np.empty(n, np.int32),
            new_direction=np.empty(n, np.uint8),
            egress_rule=egress_rule,
            ingress_rule=ingress_rule,
        )
        self._kernels.combine_sides(
            batch.status,
            src_owner,
            dst_owner,
            egress_rule,
            egress_allow.view(np.uint8),
            ingress_rule,
            ingress_allow.view(np.uint8),
            verdicts.verdict,
            verdicts.reason,
            verdicts.rule,
            verdicts.instance,
            verdicts.direction,
            verdicts.new_instance,
            verdicts.new_direction,
        )
        return verdicts

    def _evaluate_sides(
        self, batch: PacketBatch, src_owner: np.ndarray, dst_owner: np.ndarray, port: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(matched global rule or -1, allowed) of the egress and of the ingress side.

        Every evaluated side is a row: egress rows look up the destination as remote, ingress
        rows the source. Each step k of the plans looks the still undecided rows up in their
        k-th table, through the chunk matchers (one call per chunk); in sequence mode there is
        one step.
        """
        n = len(batch)
        packet = np.empty(2 * n, np.int64)
        owner = np.empty(2 * n, np.int32)
        direction = np.empty(2 * n, np.uint8)
        is_v6 = np.empty(2 * n, np.uint8)
        remote_v4 = np.empty(2 * n, np.uint32)
        first_table = np.empty(2 * n, np.int32)
        m, split = self._kernels.side_rows(
            src_owner, dst_owner, batch.ip_version, batch.src, batch.dst, self.plan,
            packet, owner, direction, is_v6, remote_v4, first_table,
        )
        packet, owner, direction, is_v6 = packet[:m], owner[:m], direction[:m], is_v6[:m]
        matched = np.full(m, -1, np.int32)
        allowed = np.zeros(m, bool)
        undecided = np.arange(m)
        for step in range(self.plan.shape[3]):
            if step == 0:
                table = first_table[:m]
            else:
                table = self.plan[owner[undecided], direction[undecided], is_v6[undecided], step]
            live = table >= 0
            if not live.all():
                undecided, table = undecided[live], table[live]
            if len(undecided) == 0:
                break
            chunk = self.table_chunk[table]
            decided = np.zeros(len(undecided), bool)
            for number, part in enumerate(self.chunks):
                at = np.flatnonzero(chunk == number)
                if len(at) == 0:
                    continue
                rows = undecided[at]
                if part.version == 4:
                    remote = remote_v4[rows]
                else:
                    from_dst = (rows < split)[:, None]
                    remote = np.where(from_dst, batch.dst[packet[rows]], batch.src[packet[rows]])
                hit = part.matcher.match_columns(
                    src=remote,
                    sport=self.table_local[table[at]],
                    dport=port[packet[rows]],
                    proto=batch.protocol[packet[rows]],
                )
                found = hit >= 0
                matched[rows[found]] = part.row_rule[hit[found]]
                allowed[rows[found]] = part.row_allow[hit[found]]
                decided[at[found]] = True
            undecided = undecided[~decided]
        egress = packet[:split]
        ingress = packet[split:]
        egress_rule = np.full(n, -1, np.int32)
        egress_allow = np.zeros(n, bool)
        ingress_rule = np.full(n, -1, np.int32)
        ingress_allow = np.zeros(n, bool)
        egress_rule[egress], egress_allow[egress] = matched[:split], allowed[:split]
        ingress_rule[ingress], ingress_allow[ingress] = matched[split:], allowed[split:]
        return egress_rule, egress_allow, ingress_rule, ingress_allow


def _ipv4_words(addresses: np.ndarray) -> np.ndarray:
    """Bytes 12..15 of IPv4-mapped 16-byte rows as host-order uint32 (big-endian on the wire)."""
    return addresses[:, 12:16].copy().view(">u4").reshape(-1).astype(np.uint32)
