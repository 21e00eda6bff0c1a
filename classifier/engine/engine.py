"""The security-group engine: a compiled policy classifying packet batches (the run phase).

`Engine(policy)` builds once (`classifier.engine.build.compile_policy`: the tables, plans,
chunks and owner table) and then classifies `PacketBatch`es into the per-packet verdict
columns of semantics sections 2, 3 and 6, statelessly (`classify`); connection tracking
(`classifier.engine.conntrack`) then overrides what state allows, and the pipeline
(`classifier.engine.pipeline`) strings reader, engine, state and statistics together.

Run phase: owner lookup (`_engine.owners`), the port column, the evaluated sides gathered in
one kernel pass (`_engine.side_rows`), one lookup call per chunk and plan step, and the sides
combined (`_engine.combine_sides`). Only flat arrays of the `CompiledPolicy` are read.

Invariants: every packet of a batch gets exactly one verdict; `rule` is a global rule index
(position in `engine.rules`, the policy order) or -1; for judged packets the reported side is
the sender's egress when it denies, else the receiver's ingress when evaluated, else egress.
Thread safety: an engine is read-only after construction; several threads may classify with it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from classifier.codes import (
    DIRECTION_EGRESS,
    DIRECTION_INGRESS,
    DIRECTION_NAMES,
    STATUS_L4_TRUNCATED,
    STATUS_OK,
    VERDICT_NAMES,
)
from classifier.engine.build import compile_policy
from classifier.engine.columns import StatelessVerdicts
from classifier.engine.kernels import engine_kernels, fused_kernels
from classifier.engine.pipeline import DEFAULT_BLOCKSIZE, ClassifyResult, classify_pcap
from classifier.packets import Packet, PacketBatch
from classifier.pcap import DEFAULT_BATCH_SIZE
from classifier.policy import Policy, Rule

_V4_MAPPED_PREFIX = np.frombuffer(b"\x00" * 10 + b"\xff\xff", np.uint8)


@dataclass(frozen=True)
class SideDecision:
    """One evaluated side of one packet (semantics section 2)."""

    instance_id: str
    direction: str  # "ingress" or "egress"
    verdict: str  # "allow" or "deny"
    rule: Rule | None  # the matched rule; None for implicit deny
    reason: str  # "rule" or "implicit-deny"


@dataclass(frozen=True)
class PacketDecision:
    """What the rules do to one packet (semantics section 3): its verdict and every side."""

    verdict: str  # allow, deny, unmanaged, not-ip or malformed
    sides: tuple[SideDecision, ...]  # the evaluated sides, egress first; () when none


class Engine:
    """A policy compiled for batch classification. Build once, classify many batches."""

    def __init__(self, policy: Policy):
        self.policy = policy
        self.compiled = compile_policy(policy)
        self.rules = self.compiled.rules
        self.rule_ids = self.compiled.rule_ids
        self.instances = self.compiled.instances
        self.instance_ids = self.compiled.instance_ids
        self.mode = self.compiled.mode
        self.tables = self.compiled.tables
        self._fused: dict[type, object] = {}

    def __getstate__(self) -> dict[str, object]:
        """Pickles without the fused pass's pointers (rebuilt on first use where unpickled)."""
        state = dict(self.__dict__)
        state["_fused"] = {}
        return state

    def fused_policy(self) -> fused_kernels.FusedPolicy:
        """The compiled policy as the fused pass reads it (`classifier.engine._fused`, or its
        twin's form when the twins are selected), built on first use and kept."""
        kind = fused_kernels.FusedPolicy
        if kind not in self._fused:
            self._fused[kind] = kind(self)
        policy = self._fused[kind]
        assert isinstance(policy, kind)
        return policy

    def classify_pcap(
        self,
        paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
        stateful: bool = True,
        batch_size: int = DEFAULT_BATCH_SIZE,
        *,
        workers: int | None = None,
        client: Any = None,
        blocksize: int = DEFAULT_BLOCKSIZE,
    ) -> ClassifyResult:
        """Classify one capture (or several, as one continuous capture): per-packet numpy
        columns and the summary, as a `ClassifyResult`. For captures larger than memory,
        iterate `Classification(engine).run(paths)` instead. `workers`, `client` and
        `blocksize`: on a Dask cluster, with the same results (see `Classification`)."""
        return classify_pcap(
            self, paths, stateful, batch_size, workers=workers, client=client, blocksize=blocksize
        )

    def instance_of(
        self, addresses: np.ndarray, ip_version: np.ndarray | None = None
    ) -> np.ndarray:
        """Instance index (int32) owning each 16-byte address row, or -1.

        `ip_version` gives each row's family (4: IPv4-mapped; other values: no owner); by
        default a row is IPv4 when it has the ::ffff:0:0/96 prefix, else IPv6.
        """
        addresses = np.ascontiguousarray(addresses, dtype=np.uint8).reshape(-1, 16)
        if ip_version is None:
            mapped = np.all(addresses[:, :12] == _V4_MAPPED_PREFIX, axis=1)
            ip_version = np.where(mapped, 4, 6).astype(np.uint8)
        owner = np.empty(len(addresses), np.int32)
        engine_kernels.owners(
            addresses,
            np.ascontiguousarray(ip_version, dtype=np.uint8),
            self.compiled.slot_hi,
            self.compiled.slot_lo,
            self.compiled.slot_version,
            self.compiled.slot_owner,
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
        engine_kernels.port_column(
            batch.protocol, batch.l4, batch.dport, batch.icmp_type, batch.icmp_code, port
        )
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
        engine_kernels.combine_sides(
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
        c = self.compiled
        n = len(batch)
        packet = np.empty(2 * n, np.int64)
        owner = np.empty(2 * n, np.int32)
        direction = np.empty(2 * n, np.uint8)
        is_v6 = np.empty(2 * n, np.uint8)
        remote_v4 = np.empty(2 * n, np.uint32)
        first_table = np.empty(2 * n, np.int32)
        m, split = engine_kernels.side_rows(
            src_owner,
            dst_owner,
            batch.ip_version,
            batch.src,
            batch.dst,
            c.plan,
            packet,
            owner,
            direction,
            is_v6,
            remote_v4,
            first_table,
        )
        packet, owner, direction, is_v6 = packet[:m], owner[:m], direction[:m], is_v6[:m]
        matched = np.full(m, -1, np.int32)
        allowed = np.zeros(m, bool)
        undecided = np.arange(m)
        for step in range(c.plan.shape[3]):
            if step == 0:
                table = first_table[:m]
            else:
                table = c.plan[owner[undecided], direction[undecided], is_v6[undecided], step]
            live = table >= 0
            if not live.all():
                undecided, table = undecided[live], table[live]
            if len(undecided) == 0:
                break
            chunk = c.table_chunk[table]
            decided = np.zeros(len(undecided), bool)
            for number, part in enumerate(c.chunks):
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
                    sport=c.table_local[table[at]],
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

    def decide(self, packet: Packet) -> PacketDecision:
        """One packet through the same run phase as every batch (`sgclassify check`), with
        each evaluated side spelled out."""
        batch = PacketBatch.from_packets([packet])
        verdicts = self.classify(batch)
        usable = int(batch.status[0]) in (STATUS_OK, STATUS_L4_TRUNCATED)
        version = batch.ip_version if usable else np.zeros(1, np.uint8)
        owners = {
            DIRECTION_EGRESS: (int(self.instance_of(batch.src, version)[0]), verdicts.egress_rule),
            DIRECTION_INGRESS: (
                int(self.instance_of(batch.dst, version)[0]),
                verdicts.ingress_rule,
            ),
        }
        sides = []
        for direction, (owner, side_rule) in owners.items():
            if owner < 0:
                continue
            index = int(side_rule[0])
            rule = self.rules[index] if index >= 0 else None
            sides.append(
                SideDecision(
                    instance_id=self.instance_ids[owner],
                    direction=DIRECTION_NAMES[direction],
                    verdict=rule.action if rule is not None else "deny",
                    rule=rule,
                    reason="rule" if rule is not None else "implicit-deny",
                )
            )
        return PacketDecision(VERDICT_NAMES[int(verdicts.verdict[0])], tuple(sides))
