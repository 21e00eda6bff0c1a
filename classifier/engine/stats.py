"""Verdict columns -> summary: counts by verdict, reason, side and rule; top denied; connections.

`SummaryBuilder.add(...)` folds one classified batch in with vectorised counting
(`np.bincount` over rule indices, a kernel hash pass over denied tuples), so the cost is a few numpy
passes per batch and memory is bounded by the policy size plus the distinct denied tuples.
`SummaryBuilder.summary()` returns a plain dict, the JSON document of `classify --json`; its
`timeline` comes from `classifier.timeline.Timeline` (see its design note for merging).

`a.merge(b)` folds in a builder fed other packets (the scale-out's parts, in capture order):
every count is a sum per key, so the summary equals that of one builder fed both, exactly,
top-denied ties included (they are broken by the tuple's hash, not by arrival); only when the
distinct denied tuples overflow the table (`denied_tuples_exact` false) may it differ.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from classifier.codes import (
    DIRECTION_EGRESS,
    DIRECTION_INGRESS,
    DIRECTION_NAMES,
    L4_ICMP,
    L4_ICMP_NO_CODE,
    L4_PORTS,
    MALFORMED_REASONS,
    REASON_NAMES,
    STATUS_MALFORMED,
    VERDICT_DENY,
    VERDICT_NAMES,
    protocol_name,
)
from classifier.engine.kernels import engine_kernels
from classifier.engine.timeline import Timeline
from classifier.limits import DEFAULT_MAX_CONNECTIONS, DENIED_TUPLES_LIMIT
from classifier.packets import PacketBatch, bytes_to_address
from classifier.policy import Rule

_DENIED_TUPLE = np.dtype(
    [
        ("src", "S16"),
        ("dst", "S16"),
        ("version", "u1"),
        ("protocol", "u1"),
        ("dport", "i4"),  # -1: no port (not TCP/UDP/SCTP, or not known)
        ("icmp_type", "i2"),  # -1: not ICMP, or not known
        ("icmp_code", "i2"),
    ]
)


def _address_text(raw: bytes, version: int) -> str:
    return str(bytes_to_address(raw.ljust(16, b"\x00"), version))  # S16 drops trailing NULs


def _tuples(batch: PacketBatch, rows: np.ndarray) -> np.ndarray:
    """The denied tuples of the given rows, as a structured array (only for distinct ones)."""
    tuples = np.zeros(len(rows), _DENIED_TUPLE)
    tuples["src"] = np.ascontiguousarray(batch.src[rows]).view("S16").reshape(-1)
    tuples["dst"] = np.ascontiguousarray(batch.dst[rows]).view("S16").reshape(-1)
    tuples["version"] = batch.ip_version[rows]
    tuples["protocol"] = batch.protocol[rows]
    tuples["dport"] = np.where(
        (batch.l4[rows] & L4_PORTS) != 0, batch.dport[rows].astype(np.int32), -1
    )
    icmp = (batch.l4[rows] & L4_ICMP) != 0
    tuples["icmp_type"] = np.where(icmp, batch.icmp_type[rows].astype(np.int16), -1)
    tuples["icmp_code"] = np.where(
        icmp & ((batch.l4[rows] & L4_ICMP_NO_CODE) == 0), batch.icmp_code[rows].astype(np.int16), -1
    )
    return tuples


class DeniedCounter:
    """Packets per denied (source, destination, protocol, port) tuple, in bounded memory.

    Each batch is reduced to its distinct tuples (hash, count, first row) in the kernel's
    per-batch table, then folded into the run's table: entries in order of first sight
    (`keys`, `counts`, `rows`) and an open-addressing map from hash to entry, so a batch costs
    one probe per distinct tuple and a description only for the tuples never seen before.
    Past `limit` distinct tuples (a long scan), the least-hit half is dropped (ties: the
    larger hash goes) and `pruned` is set: the top entries remain right as long as the
    dropped ones could not have overtaken them, and the summary says it is not exact.
    A 64-bit hash identifies a tuple: a collision (odds about n**2 / 2**65) would merge two.
    """

    def __init__(self, limit: int = DENIED_TUPLES_LIMIT):
        self.limit = limit
        self.size = 0  # entries in use
        self._keys = np.zeros(0, np.uint64)  # entries, with room to grow
        self._counts = np.zeros(0, np.int64)
        self._rows = np.zeros(0, _DENIED_TUPLE)
        self._map_key = np.zeros(0, np.uint64)  # hash -> entry (index -1: empty slot)
        self._map_index = np.zeros(0, np.int64)
        self.pruned = False
        self._slot_key = np.zeros(0, np.uint64)  # the per-batch hash table (see `scratch`)
        self._slot_index = np.zeros(0, np.int64)

    @property
    def keys(self) -> np.ndarray:
        return self._keys[: self.size]

    @property
    def counts(self) -> np.ndarray:
        return self._counts[: self.size]

    @property
    def rows(self) -> np.ndarray:
        return self._rows[: self.size]

    def __getstate__(self) -> dict[str, object]:
        """What travels (a lane's counter, scale-out): the entries in use, without the maps,
        which the receiver rebuilds when it next counts."""
        state = self.__dict__.copy()
        state["_keys"], state["_counts"] = self.keys.copy(), self.counts.copy()
        state["_rows"] = self.rows.copy()
        for name in ("_map_key", "_slot_key"):
            state[name] = np.zeros(0, np.uint64)
        for name in ("_map_index", "_slot_index"):
            state[name] = np.zeros(0, np.int64)
        return state

    def add(self, batch: PacketBatch, rows: np.ndarray) -> None:
        """Count the denied packets `rows` (indices into `batch`): a hash-table pass in the
        kernel reduces the batch to its distinct tuples before they are folded in."""
        scratch = self.scratch(len(rows))
        distinct = engine_kernels.count_tuples(
            batch.src,
            batch.dst,
            batch.ip_version,
            batch.protocol,
            batch.l4,
            batch.dport,
            batch.icmp_type,
            batch.icmp_code,
            np.ascontiguousarray(rows, dtype=np.int64),
            *scratch,
        )
        self.add_distinct(batch, scratch, distinct)

    def scratch(self, n: int) -> tuple[np.ndarray, ...]:
        """The hash table and outputs for counting up to `n` denied packets of a batch:
        (slot_key, slot_index, out_key, out_count, out_row), as `count_tuples` (and the fused
        pass) take them. The table is kept from batch to batch (warm in the caches): its
        slot_index is all -1 between batches, as those passes leave it."""
        capacity = 1 << max(4, (2 * n - 1).bit_length())
        if len(self._slot_index) < capacity:
            self._slot_key = np.empty(capacity, np.uint64)
            self._slot_index = np.full(capacity, -1, np.int64)
        return (
            self._slot_key,
            self._slot_index,
            np.empty(n, np.uint64),
            np.empty(n, np.int64),
            np.empty(n, np.int64),
        )

    def add_distinct(
        self, batch: PacketBatch, scratch: tuple[np.ndarray, ...], distinct: int
    ) -> None:
        """Fold in a batch reduced to `distinct` tuples in `scratch` (keys, counts, first rows);
        only the tuples never seen before are spelled out (addresses, protocol, port)."""
        first = scratch[4][:distinct]
        self._fold(
            scratch[2][:distinct], scratch[3][:distinct], lambda new: _tuples(batch, first[new])
        )

    def merge(self, other: DeniedCounter) -> None:
        """Add `other`'s counts (packets counted after this counter's, for which tuple text a
        hash keeps)."""
        rows = other.rows
        self._fold(other.keys, other.counts, lambda new: rows[new])
        self.pruned = self.pruned or other.pruned

    def _fold(
        self, keys: np.ndarray, counts: np.ndarray, describe: Callable[[np.ndarray], np.ndarray]
    ) -> None:
        """Add the counts of the distinct `keys`; `describe(positions)`: the rows of the new
        ones among them."""
        if not len(keys):
            return
        self._reserve(len(keys))
        new = np.empty(len(keys), np.int64)
        added = engine_kernels.fold_tuples(
            self._map_key,
            self._map_index,
            self._keys,
            self._counts,
            self.size,
            np.ascontiguousarray(keys, dtype=np.uint64),
            np.ascontiguousarray(counts, dtype=np.int64),
            new,
        )
        self._rows[self.size : self.size + added] = describe(new[:added])
        self.size += added
        if self.size > self.limit:
            self._prune()

    def _reserve(self, more: int) -> None:
        """Room for `more` new entries, the map at most half full with them."""
        need = self.size + more
        if len(self._keys) < need:
            grown = max(2 * len(self._keys), need, 64)
            self._keys = _grown(self._keys, grown, self.size)
            self._counts = _grown(self._counts, grown, self.size)
            self._rows = _grown(self._rows, grown, self.size)
        if len(self._map_index) < 2 * need:
            self._index(1 << max(4, (2 * need - 1).bit_length()))

    def _index(self, capacity: int) -> None:
        """The map rebuilt at `capacity` slots from the entries in use."""
        self._map_key = np.empty(capacity, np.uint64)
        self._map_index = np.full(capacity, -1, np.int64)
        engine_kernels.index_tuples(self._map_key, self._map_index, self.keys)

    def _prune(self) -> None:
        top = _most_common_first(self.keys, self.counts, self.limit // 2)
        keep = np.sort(top)  # the order of first sight stays
        self._keys[: len(keep)] = self.keys[keep]
        self._counts[: len(keep)] = self.counts[keep]
        self._rows[: len(keep)] = self.rows[keep]
        self.size = len(keep)
        self._index(len(self._map_index))
        self.pruned = True

    def __len__(self) -> int:
        return self.size

    def most_common(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        top = _most_common_first(self.keys, self.counts, n)
        return self.rows[top], self.counts[top]


def _most_common_first(keys: np.ndarray, counts: np.ndarray, n: int) -> np.ndarray:
    """The indices of the `n` entries with the highest counts, highest first, ties by the
    lower key: `np.lexsort((keys, -counts))[:n]`. Only the entries whose count reaches the
    n-th highest are sorted (a selection finds that count in linear time): the summary's
    top 20 of a run's tens of thousands of distinct tuples took most of its time sorted
    whole. Keys are distinct, so the order is total and the two agree exactly."""
    n = max(0, min(n, len(counts)))
    if n == 0:
        return np.zeros(0, np.intp)
    if n < len(counts):
        at_least = np.partition(counts, len(counts) - n)[len(counts) - n]
        candidates = np.flatnonzero(counts >= at_least)
    else:
        candidates = np.arange(len(counts))
    order = np.lexsort((keys[candidates], -counts[candidates]))[:n]
    return candidates[order]


def _grown(array: np.ndarray, length: int, used: int) -> np.ndarray:
    grown = np.zeros(length, array.dtype)
    grown[:used] = array[:used]
    return grown


# a capture's status in the summary's `files`: read to the end; read up to damage (the
# records before it count); not a readable capture (nothing of it counts); the run stopped
# before reaching it (after an unreadable one); the run was interrupted while reading it
FILE_STATUSES = ("ok", "damaged", "unreadable", "not read", "interrupted")


class SummaryBuilder:
    """Accumulates the statistics of a classification run, batch by batch."""

    def __init__(self, rules: list[Rule], instance_ids: list[str], stateful: bool):
        self.rules = rules
        self.instance_ids = instance_ids
        self.stateful = stateful
        n_rules = len(rules)
        self.packets = 0
        self.bytes = 0
        self.verdict_packets = np.zeros(5, np.int64)
        self.verdict_bytes = np.zeros(5, np.int64)
        self.reason_packets = np.zeros(5, np.int64)
        # [instance, direction, verdict allow/deny] packets and bytes
        self.side_packets = np.zeros((max(len(instance_ids), 1), 2, 2), np.int64)
        self.side_bytes = np.zeros((max(len(instance_ids), 1), 2, 2), np.int64)
        self.rule_packets = np.zeros(n_rules, np.int64)
        self.rule_bytes = np.zeros(n_rules, np.int64)
        self.rule_connections = np.zeros(n_rules, np.int64)
        self.protocol_connections = np.zeros(256, np.int64)  # connections by IP protocol
        self.midstream = 0
        # the connection bound in force (0: stateless); the run sets both
        self.connection_limit = DEFAULT_MAX_CONNECTIONS if stateful else 0
        self.evicted = 0  # connections evicted by it
        self.denied = DeniedCounter()
        self.malformed_counts = np.zeros(256, np.int64)  # malformed records by reason code
        self.first_ns: int | None = None
        self.last_ns: int | None = None
        self.timeline = Timeline()  # records per time bucket and verdict (mergeable)
        self.files: list[dict[str, Any]] = []

    def add(
        self,
        batch: PacketBatch,
        verdict: np.ndarray,
        reason: np.ndarray,
        rule: np.ndarray,
        instance: np.ndarray,
        direction: np.ndarray,
        created: np.ndarray | None = None,
        midstream: np.ndarray | None = None,
        side_rules: tuple[np.ndarray, ...] | None = None,
    ) -> None:
        """Fold in one batch. `rule` is the reported side's rule (the per-packet column);
        `side_rules` (egress, ingress), when given, are the rules that decided each evaluated
        side, which is what per-rule hits count."""
        if len(batch) == 0:
            return
        self.frame(batch)
        self.count(
            batch, verdict, reason, rule, instance, direction, created, midstream, side_rules
        )
        denied = np.flatnonzero(verdict == VERDICT_DENY)
        if len(denied):
            self.denied.add(batch, denied)

    def frame(self, batch: PacketBatch) -> tuple[int, int]:
        """The first step of folding in a non-empty batch: its packets, its time span, the
        time line widened to it. Returns the time line's (low bucket, log2 of its width in
        µs) for counting the batch (`count`, or the fused pass)."""
        self.packets += len(batch)
        first, last = int(batch.ts_ns.min()), int(batch.ts_ns.max())
        self.first_ns = first if self.first_ns is None else min(self.first_ns, first)
        self.last_ns = last if self.last_ns is None else max(self.last_ns, last)
        return self.timeline.frame(first, last)

    def count(
        self,
        batch: PacketBatch,
        verdict: np.ndarray,
        reason: np.ndarray,
        rule: np.ndarray,
        instance: np.ndarray,
        direction: np.ndarray,
        created: np.ndarray | None = None,
        midstream: np.ndarray | None = None,
        side_rules: tuple[np.ndarray, ...] | None = None,
    ) -> None:
        """The additive counters of a framed batch (everything but the denied tuples): what
        the fused pass (`classifier.engine._fused`) counts in its loop instead."""
        wire = batch.wire_len.astype(np.int64)
        self.bytes += int(wire.sum())
        self.verdict_packets += np.bincount(verdict, minlength=5)[:5]
        self.verdict_bytes += np.bincount(verdict, weights=wire, minlength=5)[:5].astype(np.int64)
        self.reason_packets += np.bincount(reason, minlength=5)[:5]

        sided = (instance >= 0) & (verdict <= VERDICT_DENY)
        if sided.any():
            flat = (instance[sided].astype(np.int64) * 2 + direction[sided]) * 2 + verdict[sided]
            size = self.side_packets.size
            self.side_packets += np.bincount(flat, minlength=size).reshape(self.side_packets.shape)
            self.side_bytes += (
                np.bincount(flat, weights=wire[sided], minlength=size)
                .astype(np.int64)
                .reshape(self.side_bytes.shape)
            )
        # A rule is hit when it decides an evaluated side: with both sides evaluated (east-west
        # traffic) the sender's egress rule and the receiver's ingress rule are both hit.
        deciding = side_rules if side_rules is not None else (rule,)
        for side_rule in deciding:
            hit = side_rule >= 0
            if hit.any() and len(self.rules):
                self.rule_packets += np.bincount(side_rule[hit], minlength=len(self.rules))
                self.rule_bytes += np.bincount(
                    side_rule[hit], weights=wire[hit], minlength=len(self.rules)
                ).astype(np.int64)
        if created is not None:
            made = created.astype(bool)
            if made.any():
                # A connection is credited to one rule, the creating packet's reported rule
                # (`rule`: the receiver's ingress rule when the receiver is an instance, else
                # the sender's egress rule), so the per-rule counts add up to the total.
                creators = rule[made]
                known = creators >= 0
                if known.any() and len(self.rules):
                    self.rule_connections += np.bincount(creators[known], minlength=len(self.rules))
                self.protocol_connections += np.bincount(batch.protocol[made], minlength=256)
            if midstream is not None:
                self.midstream += int(np.count_nonzero(midstream))
        bad = batch.status == STATUS_MALFORMED
        if bad.any():
            self.malformed_counts += np.bincount(batch.malformed_reason[bad], minlength=256)
        self.timeline.count(batch.ts_ns, verdict)

    def merge(self, other: SummaryBuilder) -> None:
        """Fold in a builder of the same policy and mode fed packets that come after this one's
        in the capture (files excepted: `add_file` them in order)."""
        self.packets += other.packets
        self.bytes += other.bytes
        for name in ("verdict_packets", "verdict_bytes", "reason_packets", "side_packets",
                     "side_bytes", "rule_packets", "rule_bytes", "rule_connections",
                     "protocol_connections", "malformed_counts"):  # fmt: skip
            getattr(self, name)[...] += getattr(other, name)
        self.midstream += other.midstream
        self.denied.merge(other.denied)
        if other.first_ns is not None and other.last_ns is not None:
            self.first_ns = (
                other.first_ns if self.first_ns is None else min(self.first_ns, other.first_ns)
            )
            self.last_ns = (
                other.last_ns if self.last_ns is None else max(self.last_ns, other.last_ns)
            )
        self.timeline.merge(other.timeline)

    def add_file(
        self,
        path: str,
        packets: int,
        warnings: list[str],
        damaged: bool,
        slow_path: int = 0,
        status: str | None = None,
        first_ns: int | None = None,
        last_ns: int | None = None,
        filtered: int | None = None,
    ) -> None:
        """One capture's facts: packets read, reader warnings, damage, records scapy decoded,
        its status (`FILE_STATUSES`; by default `ok` or `damaged`), the first and last
        timestamps of its records (None without records), and with --filter the records it
        dropped (not packets of the run)."""
        entry: dict[str, Any] = {
            "path": path,
            "status": status or ("damaged" if damaged else "ok"),
            "packets": packets,
            "warnings": list(warnings),
            "damaged": damaged,
            "slow_path": slow_path,
            "first_ns": first_ns,
            "last_ns": last_ns,
        }
        if filtered is not None:
            entry["filtered"] = filtered
        self.files.append(entry)

    def summary(self, top: int = 10) -> dict[str, Any]:
        rules = [
            {
                "id": rule.id,
                "group": rule.group_id,
                "direction": rule.direction,
                "priority": rule.priority,
                "action": rule.action,
                "enabled": rule.enabled,
                "packets": int(self.rule_packets[i]),
                "bytes": int(self.rule_bytes[i]),
                "connections": int(self.rule_connections[i]),
            }
            for i, rule in enumerate(self.rules)
        ]
        sides = []
        for i, instance_id in enumerate(self.instance_ids):
            for d in (DIRECTION_INGRESS, DIRECTION_EGRESS):
                allow, deny = (int(x) for x in self.side_packets[i, d])
                if allow or deny:
                    sides.append(
                        {
                            "instance": instance_id,
                            "direction": DIRECTION_NAMES[d],
                            "allow": allow,
                            "deny": deny,
                            "bytes": int(self.side_bytes[i, d].sum()),
                        }
                    )
        top_rows, top_counts = self.denied.most_common(top)
        top_denied = [
            {
                "src": _address_text(src, version),
                "dst": _address_text(dst, version),
                "protocol": protocol_name(protocol),
                "dport": dport if dport >= 0 else None,
                "icmp_type": icmp_type if icmp_type >= 0 else None,
                "icmp_code": icmp_code if icmp_code >= 0 else None,
                "packets": count,
            }
            for (src, dst, version, protocol, dport, icmp_type, icmp_code), count in zip(
                top_rows.tolist(), top_counts.tolist(), strict=True
            )
        ]
        span = (
            (self.last_ns - self.first_ns) / 1e9
            if self.first_ns is not None and self.last_ns is not None
            else 0.0
        )
        return {
            "mode": "stateful" if self.stateful else "stateless",
            "packets": self.packets,
            "bytes": self.bytes,
            "verdicts": {
                name: int(self.verdict_packets[code]) for code, name in enumerate(VERDICT_NAMES)
            },
            "verdict_bytes": {
                name: int(self.verdict_bytes[code]) for code, name in enumerate(VERDICT_NAMES)
            },
            "reasons": {
                name: int(self.reason_packets[code])
                for code, name in enumerate(REASON_NAMES)
                if name
            },
            "sides": sides,
            "rules": rules,
            "never_hit": [rule["id"] for rule in rules if rule["packets"] == 0],
            "top_denied": top_denied,
            "denied_tuples": len(self.denied),
            "denied_tuples_exact": not self.denied.pruned,
            "connections": {
                "total": int(self.protocol_connections.sum()),
                "midstream": self.midstream,
                "limit": self.connection_limit,
                "evicted": self.evicted,
                "by_protocol": {
                    protocol_name(p): int(self.protocol_connections[p])
                    for p in np.flatnonzero(self.protocol_connections).tolist()
                },
            },
            "malformed": {
                (MALFORMED_REASONS[code] if code < len(MALFORMED_REASONS) else str(code)): int(
                    self.malformed_counts[code]
                )
                for code in np.flatnonzero(self.malformed_counts).tolist()
            },
            "time": {
                "first_ns": self.first_ns,
                "last_ns": self.last_ns,
                "span_seconds": span,
            },
            "timeline": self.timeline.summary(),
            "files": self.files,
        }
