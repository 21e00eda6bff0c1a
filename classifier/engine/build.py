"""Build phase of the engine: a policy compiled onto the first-match core, as flat arrays.

What: `compile_policy(policy)` turns the policy into one first-match table per distinct
(security-group sequence, direction, IP version), packed into shared matchers, plus the
address -> instance hash table; the result, a `CompiledPolicy`, is all the run phase
(`classifier.engine.engine`) reads. It is plain data: numpy arrays and matchers, picklable.

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
  16-byte address and its IP version (`_engine.owners` walks it): one probe or two per
  packet, in C.
- All tables of one IP version are packed into shared matchers ("chunks", at most
  CHUNK_ROWS rows each), a table's rows tagged with an exact source-port value: one lookup
  call per chunk serves every instance, with no grouping of packets by table.

Invariants: a table's rows are in the spec's candidate order, so the core's first match is
the deciding rule; `row_rule` holds global rule indices (positions in `rules`, the policy
order); `plan[i, d, v, k]` is the k-th table instance i tries for direction d and version
index v, -1 past the end (sequence mode: one table per side); the owner table is at most
half full, so every probe sequence ends at an empty slot.

The owner table is probed twice for every packet, and most addresses it is asked about are
remote ones it does not hold: a lookup that misses walks to the next empty slot. Up to
SPARSE_OWNER_SLOTS slots it is kept at most an eighth full, so a miss usually stops at its
first slot (a half-full table's misses walk two or three slots, with a branch each that the
processor cannot predict; the sparse table takes 12 % off the fused pass's time on the
end-to-end workload, 23 % with every table cached: benchmarks/RESULTS.md section 13); past
that, half full bounds its memory (21 bytes a slot).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from classifier import acl
from classifier.codes import DIRECTION_EGRESS, DIRECTION_INGRESS, ICMP_PORT_BASE
from classifier.engine.kernels import engine_kernels
from classifier.packets import address_to_bytes
from classifier.policy import Instance, Policy, Rule, merge_ranges

CHUNK_ROWS = 4096  # rows per shared matcher: bounds the bit-vector width (memory, scan cost)
SEQUENCE_ROWS_BUDGET = 1_000_000  # past this many rows in per-sequence tables, use group mode
SPARSE_OWNER_SLOTS = 1 << 16  # the owner table is kept at most 1/8 full up to this many slots
DIRECTIONS = ("ingress", "egress")  # index = DIRECTION_INGRESS / DIRECTION_EGRESS
VERSIONS = (4, 6)


@dataclass
class SideTable:
    """One (group sequence, direction, version): its rule rows live in chunk `chunk`."""

    sequence: tuple[str, ...]
    direction: int
    version: int
    rows: list[
        tuple[int, int, int, int, int, int, int]
    ]  # (src lo, hi, port lo, hi, proto, mask, rule)
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
class CompiledPolicy:
    """Everything the run phase reads: flat arrays and matchers, built once per policy."""

    rules: list[Rule]  # every rule, policy order: a rule index is a position here
    instances: list[Instance]  # policy order: an instance index is a position here
    mode: str  # "sequence" (one table per side) or "group" (per-group tables in sequence order)
    tables: list[SideTable]
    plan: np.ndarray  # int32 [instance, direction, version index, step]: table to try, -1 none
    chunks: list[Chunk]
    table_chunk: np.ndarray  # int32 [table]: the chunk holding the table's rows, -1 none
    table_local: np.ndarray  # uint32 [table]: the table's tag inside its chunk
    slot_hi: np.ndarray  # uint64 [slot]: owner table, address bytes 0..7 (big-endian)
    slot_lo: np.ndarray  # uint64 [slot]: address bytes 8..15
    slot_version: np.ndarray  # uint8 [slot]: 4 or 6
    slot_owner: np.ndarray  # int32 [slot]: instance index, -1 for an empty slot

    @property
    def rule_ids(self) -> list[str]:
        return [rule.id for rule in self.rules]

    @property
    def instance_ids(self) -> list[str]:
        return [instance.id for instance in self.instances]


def compile_policy(policy: Policy) -> CompiledPolicy:
    """The build phase: tables, plans, chunks and the owner table of a policy."""
    b = _Builder(policy)
    return CompiledPolicy(
        rules=b.rules,
        instances=b.instances,
        mode=b.mode,
        tables=b.tables,
        plan=b.plan,
        chunks=b.chunks,
        table_chunk=b.table_chunk,
        table_local=b.table_local,
        slot_hi=b._slot_hi,
        slot_lo=b._slot_lo,
        slot_version=b._slot_version,
        slot_owner=b._slot_owner,
    )


class _Builder:
    """The build itself; `compile_policy` keeps only its result."""

    def __init__(self, policy: Policy):
        self.policy = policy
        self.rules: list[Rule] = list(policy.rules())
        self.instances = list(policy.instances.values())
        self._rule_position = {
            (rule.group_id, rule.position): i for i, rule in enumerate(self.rules)
        }
        self._member_ranges: dict[tuple[str, int], list[tuple[int, int]]] = {}
        self._build_address_index()
        self._build_tables()

    def _build_address_index(self) -> None:
        """Local address -> instance: an open-addressing table for `_engine.owners`."""
        entries = [(ip, i) for i, instance in enumerate(self.instances) for ip in instance.ips]
        capacity = 16
        while capacity < 2 * len(entries) or (
            capacity < SPARSE_OWNER_SLOTS and capacity < 8 * len(entries)
        ):
            capacity *= 2
        self._slot_hi = np.zeros(capacity, np.uint64)
        self._slot_lo = np.zeros(capacity, np.uint64)
        self._slot_version = np.zeros(capacity, np.uint8)
        self._slot_owner = np.full(capacity, -1, np.int32)
        for ip, owner in entries:
            raw = address_to_bytes(ip)
            hi, lo = int.from_bytes(raw[:8], "big"), int.from_bytes(raw[8:], "big")
            slot = engine_kernels.address_hash(hi, lo, ip.version) & (capacity - 1)
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
            len(group_rows[(g, d, v)])
            for seq in sequences
            for g in seq
            for d in (0, 1)
            for v in VERSIONS
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
        depth = (
            1
            if self.mode == "sequence"
            else max((len(i.security_groups) for i in self.instances), default=1)
        )
        self.plan = np.full((max(len(self.instances), 1), 2, 2, max(depth, 1)), -1, dtype=np.int32)
        for i, instance in enumerate(self.instances):
            for direction in (DIRECTION_INGRESS, DIRECTION_EGRESS):
                for v, version in enumerate(VERSIONS):
                    if self.mode == "sequence":
                        self.plan[i, direction, v, 0] = table_of(
                            instance.security_groups, direction, version
                        )
                    else:
                        for k, group_id in enumerate(instance.security_groups):
                            self.plan[i, direction, v, k] = table_of(
                                (group_id,), direction, version
                            )
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
        """The tables' rows as one rule array (column by column: a 5,000-rule policy has
        tens of thousands of rows, too many to add one by one), compiled into one matcher."""
        version = tables[0].version
        rows = [row for table in tables for row in table.rows]
        tags = [local_id for local_id, table in enumerate(tables) for _ in table.rows]
        for local_id, table in enumerate(tables):
            table.chunk, table.local_id = len(self.chunks), local_id
        rules = acl.wildcard_rules(len(rows), version)
        columns = np.array([row[2:] for row in rows], dtype=np.int64).reshape(-1, 5)
        if version == 4:
            rules["src_lo"] = [row[0] for row in rows]
            rules["src_hi"] = [row[1] for row in rows]
        else:
            low = (1 << 64) - 1
            rules["src_lo"] = [(row[0] >> 64, row[0] & low) for row in rows]
            rules["src_hi"] = [(row[1] >> 64, row[1] & low) for row in rows]
        rules["sport_lo"] = rules["sport_hi"] = tags
        rules["dport_lo"], rules["dport_hi"] = columns[:, 0], columns[:, 1]
        rules["proto"], rules["proto_mask"] = columns[:, 2], columns[:, 3]
        row_rule = columns[:, 4].astype(np.int32)
        allows = np.array([rule.action == "allow" for rule in self.rules], bool)
        self.chunks.append(
            Chunk(
                version,
                acl.compile(acl.RuleSet(rules, version)),
                row_rule,
                allows[row_rule] if len(row_rule) else np.zeros(0, bool),
            )
        )

    def _group_rows(
        self, group_id: str, direction: int, version: int
    ) -> list[tuple[int, int, int, int, int, int, int]]:
        """One group's candidates for a side (enabled, this direction and ethertype) in the
        spec's order within a group (priority, deny before allow, position), each expanded
        into exact rows: (remote lo, hi, port lo, hi, protocol, protocol mask, rule index)."""
        candidates = sorted(
            (
                rule
                for rule in self.policy.groups[group_id].rules
                if rule.enabled
                and rule.direction == DIRECTIONS[direction]
                and rule.ip_version == version
            ),
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
            # the last address from the prefix length (ipaddress's broadcast_address property
            # costs tens of microseconds a network, which thousands of rules notice)
            return merge_ranges(
                [
                    (
                        int(net.network_address),
                        int(net.network_address) | ((1 << (net.max_prefixlen - net.prefixlen)) - 1),
                    )
                    for net in rule.remote_prefixes
                ]
            )
        return [(0, (1 << (32 if version == 4 else 128)) - 1)]
