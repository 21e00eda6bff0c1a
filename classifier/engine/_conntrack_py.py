"""Pure-Python twin of `classifier.engine._conntrack`: the same tables, the same algorithm, slowly.

Read `_conntrack.pyx` for the design note; this file mirrors it function by function so that
the two can be compared line by line (and so that a checkout without a compiler still works).
Both twins keep their tables in the same flat numpy arrays (`classifier.engine.layouts`).
"""

from __future__ import annotations

import heapq
from typing import Any

import numpy as np

from classifier.codes import (
    FRAGMENT_FIRST,
    FRAGMENT_LATER,
    FRAGMENT_WINDOW_NS,
    ICMP_ERROR_TYPES,
    ICMP_QUERY_TYPES,
    ICMP_TIMEOUT_NS,
    L4_ICMP,
    L4_ICMP_ID,
    L4_ICMP_NO_CODE,
    L4_INNER,
    L4_INNER_ICMP_ID,
    L4_INNER_PORTS,
    L4_PORTS,
    L4_TCP_FLAGS,
    OTHER_ONE_WAY_TIMEOUT_NS,
    OTHER_TIMEOUT_NS,
    PORT_PROTOCOLS,
    PROTO_ICMP,
    PROTO_ICMPV6,
    PROTO_TCP,
    REASON_ESTABLISHED,
    REASON_RELATED,
    STATUS_L4_TRUNCATED,
    STATUS_OK,
    TCP_ACK,
    TCP_CLOSING_TIMEOUT_NS,
    TCP_FIN,
    TCP_RST,
    TCP_SYN,
    TCP_TIMEOUT_NS,
    VERDICT_ALLOW,
    VERDICT_DENY,
)
from classifier.engine.hashing import fmix64
from classifier.engine.layouts import (
    CLASS_BOTH,
    CLASS_ICMP,
    CLASS_ONE_WAY,
    CLASS_TCP,
    CLASS_TCP_CLOSING,
    CLOCK_START,
    FLAG_BOTH,
    FLAG_FIN_RST,
    FLAG_GONE,
    FLAG_INIT_LOW,
    FLAG_MIDSTREAM,
    FLOW_DTYPE,
    FLOWSTAT_DTYPE,
    FRAGMENT_DTYPE,
    KIND_ADDR,
    KIND_ICMP,
    KIND_PORTS,
    MIN_CAPACITY,
    N_CLASSES,
    RECORD_DTYPE,
)
from classifier.limits import DEFAULT_MAX_CONNECTIONS, MAX_FRAGMENTS

M64 = (1 << 64) - 1
# what a first fragment lends to its later fragments: everything but the TCP flags
LENT = (
    L4_PORTS | L4_ICMP | L4_ICMP_ID | L4_ICMP_NO_CODE | L4_INNER | L4_INNER_PORTS | L4_INNER_ICMP_ID
)


_HASH_MULTIPLIERS = (
    0x9E3779B97F4A7C15,
    0xC2B2AE3D27D4EB4F,
    0x165667B19E3779F9,
    0xD6E8FEB86659FD93,
    0xFF51AFD7ED558CCD,
)


def _hash(meta: int, a0: int, a1: int, b0: int, b1: int) -> int:
    """The words times odd constants, summed mod 2**64, then murmur3's 64-bit finaliser."""
    words = (meta, a0, a1, b0, b1)
    return fmix64(sum(w * k for w, k in zip(words, _HASH_MULTIPLIERS, strict=True)) & M64)


def _flow_tag(h: int) -> int:
    """A used slot's byte in `flow_tags`: the top 7 bits of its key's hash, the high bit set."""
    return 0x80 | (h >> 57)


def _words(address: np.ndarray) -> tuple[int, int]:
    raw = bytes(address)
    return int.from_bytes(raw[:8], "big"), int.from_bytes(raw[8:], "big")


def _is_icmp(version: int, protocol: int) -> bool:
    return (version == 4 and protocol == PROTO_ICMP) or (version == 6 and protocol == PROTO_ICMPV6)


def _is_query(version: int, icmp_type: int) -> bool:
    return icmp_type in ICMP_QUERY_TYPES[version]


def _is_error(version: int, icmp_type: int) -> bool:
    return icmp_type in ICMP_ERROR_TYPES[version]


def _capacity_for(entries: int) -> int:
    capacity = MIN_CAPACITY
    while capacity < 4 * entries:
        capacity *= 2
    return capacity


Key = tuple[int, int, int, int, int, bool]  # meta, lo addr (2 words), hi addr (2 words), from_low


def _make_key(
    version: int,
    protocol: int,
    src: np.ndarray,
    dst: np.ndarray,
    ports_known: bool,
    sport: int,
    dport: int,
    query_known: bool,
    icmp_type: int,
    icmp_id: int,
) -> Key | None:
    """The canonical key: endpoints ordered (address, port) ascending; None = no key."""
    if _is_icmp(version, protocol):
        if not (query_known and _is_query(version, icmp_type)):
            return None
        kind, sport, dport, ident = KIND_ICMP, 0, 0, icmp_id
    elif protocol in PORT_PROTOCOLS and ports_known:
        kind, ident = KIND_PORTS, 0
    else:
        kind, sport, dport, ident = KIND_ADDR, 0, 0, 0
    s0, s1 = _words(src)
    d0, d1 = _words(dst)
    from_low = (s0, s1, sport) <= (d0, d1, dport)
    if from_low:
        lo0, lo1, hi0, hi1, plo, phi = s0, s1, d0, d1, sport, dport
    else:
        lo0, lo1, hi0, hi1, plo, phi = d0, d1, s0, s1, dport, sport
    if kind == KIND_ICMP:
        plo, phi = ident, 0
    meta = (version << 56) | (protocol << 48) | (kind << 40) | (plo << 16) | phi
    return meta, lo0, lo1, hi0, hi1, from_low


def _timeout(meta: int, flags: int) -> int:
    protocol = (meta >> 48) & 0xFF
    kind = (meta >> 40) & 0xFF
    if protocol == PROTO_TCP:
        return TCP_CLOSING_TIMEOUT_NS if flags & FLAG_FIN_RST else TCP_TIMEOUT_NS
    if kind == KIND_ICMP:
        return ICMP_TIMEOUT_NS
    return OTHER_TIMEOUT_NS if flags & FLAG_BOTH else OTHER_ONE_WAY_TIMEOUT_NS


def _flow_class(meta: int, flags: int) -> int:
    """The timeout class of a connection (CLASS_*): which eviction heap it belongs to."""
    if (meta >> 48) & 0xFF == PROTO_TCP:
        return CLASS_TCP_CLOSING if flags & FLAG_FIN_RST else CLASS_TCP
    if (meta >> 40) & 0xFF == KIND_ICMP:
        return CLASS_ICMP
    return CLASS_BOTH if flags & FLAG_BOTH else CLASS_ONE_WAY


def _is_bare_syn(known: bool, flags: int) -> bool:
    return known and flags & (TCP_SYN | TCP_ACK | TCP_FIN | TCP_RST) == TCP_SYN


class Tracker:
    """Connection state and the first-fragment table, carried across batches."""

    def __init__(
        self,
        capacity: int = MIN_CAPACITY,
        limit: int = DEFAULT_MAX_CONNECTIONS,
        max_fragments: int = MAX_FRAGMENTS,
        record_flows: bool = False,
    ):
        self.clock_ns = CLOCK_START
        self.fragment_clock_ns = CLOCK_START
        self.connections_created = 0
        self.midstream_created = 0
        self.limit = max(limit, 1)  # connections tracked at once, at most
        self.evicted = 0  # alive connections forgotten to respect the limit
        self.tracked = 0  # connections not forgotten (alive, or expired and not dropped)
        self.next_seq = 0  # the creation number of the next connection
        self.max_fragments = max(max_fragments, 1)  # first fragments remembered, at most
        self.fragments_dropped = 0  # first fragments not remembered (the table was full)
        self.record_flows = record_flows  # keep a record per connection (flow records)
        self.file_number = 0  # the file of the batches given now (flow records)
        self.flowstats: np.ndarray | None = None  # FLOWSTAT_DTYPE beside `flows`
        self._records: list[np.ndarray] = []  # records not yet taken
        # one heap of (last, seq, slot) per timeout class (the .pyx's HeapEntry arrays)
        self._heaps: list[list[tuple[int, int, int]]] = [[] for _ in range(N_CLASSES)]
        self._alloc_flows(_capacity_for(min(capacity, self.limit) // 4))
        self._alloc_fragments(_capacity_for(min(capacity, self.max_fragments) // 4))

    # --- flow table -----------------------------------------------------------------------

    def _alloc_flows(self, capacity: int) -> None:
        self.flows = np.zeros(capacity, FLOW_DTYPE)
        # field views, so that the code below reads like the .pyx's struct accesses
        self._flow_used = self.flows["used"]
        self._flow_key = self.flows["key"]
        self._flow_last = self.flows["last"]
        self._flow_flags = self.flows["flags"]
        self._flow_rule = self.flows["rule"]
        self._flow_seq = self.flows["seq"]
        # 0 for an unused slot, else _flow_tag of its key's hash: the compiled core walks
        # these bytes instead of the slots; kept here so that the twins' tables stay equal
        self.flow_tags = np.zeros(capacity, np.uint8)
        self.flow_count = 0  # occupied slots, expired ones included
        if self.record_flows:
            self.flowstats = np.zeros(capacity, FLOWSTAT_DTYPE)

    def _flow_expired(self, slot: int, t: int) -> bool:
        flags = int(self._flow_flags[slot])
        return bool(flags & FLAG_GONE) or t - int(self._flow_last[slot]) > _timeout(
            int(self._flow_key[slot, 0]), flags
        )

    def _class_of(self, slot: int) -> int:
        return _flow_class(int(self._flow_key[slot, 0]), int(self._flow_flags[slot]))

    def _flow_find(self, key: Key, t: int) -> tuple[int, int]:
        """(slot holding the key or -1, slot where it would go: first expired or empty)."""
        mask = len(self._flow_used) - 1
        words = key[:5]
        i = _hash(*words) & mask
        free = -1
        while self._flow_used[i]:
            if tuple(int(w) for w in self._flow_key[i]) == words:
                return i, i
            if free < 0 and self._flow_expired(i, t):
                free = i
            i = (i + 1) & mask
        return -1, (i if free < 0 else free)

    def _flow_reserve(self, more: int, t: int) -> None:
        """Make room for `more` insertions at load <= 1/2: rehash live entries if needed.

        `t` is the batch's first effective time: what is expired then stays expired."""
        if self.flow_count + more <= len(self._flow_used) // 2:
            return
        self.rehash(more, t)

    def rehash(self, more: int, t: int) -> None:
        """The table rebuilt at time `t` with room for `more` insertions: what has expired is
        dropped (forgotten uncounted), the eviction heaps are rebuilt from what remains."""
        capacity = len(self._flow_used)
        live = [i for i in range(capacity) if self._flow_used[i] and not self._flow_expired(i, t)]
        old, old_stats = self.flows, self.flowstats
        if old_stats is not None:
            for i in range(capacity):  # the tracked ones dropped now: their records are done
                if self._flow_used[i] and self._flow_seq[i] >= 0 and self._flow_expired(i, t):
                    self._emit_record(old[i], old_stats[i])
        self._alloc_flows(max(capacity, _capacity_for(len(live) + more)))
        mask = len(self._flow_used) - 1
        for i in live:
            h = _hash(*(int(w) for w in old["key"][i]))
            j = h & mask
            while self._flow_used[j]:
                j = (j + 1) & mask
            self.flows[j] = old[i]
            self.flow_tags[j] = _flow_tag(h)
            if old_stats is not None and self.flowstats is not None:
                self.flowstats[j] = old_stats[i]
        self.flow_count = len(live)
        self._heaps_rebuild()

    # --- flow records -----------------------------------------------------------------------

    def _emit_record(self, flow: np.void, stat: np.void) -> None:
        record = np.zeros((), RECORD_DTYPE)
        record["flow"] = flow
        record["stat"] = stat
        self._records.append(record)

    def _emit(self, slot: int) -> None:
        if self.flowstats is not None:
            self._emit_record(self.flows[slot], self.flowstats[slot])

    def take_records(self) -> np.ndarray:
        """The records of the connections that left the table since the last call (a
        RECORD_DTYPE array, in the order they left)."""
        taken = (
            np.array(self._records, RECORD_DTYPE) if self._records else np.zeros(0, RECORD_DTYPE)
        )
        self._records = []
        return taken

    def finish_records(self) -> None:
        """The end of the run: the records of every connection still tracked."""
        if self.flowstats is None:
            return
        for i in np.flatnonzero(self._flow_used).tolist():
            if self._flow_seq[i] >= 0:
                self._emit(i)

    # --- the eviction heaps ---------------------------------------------------------------

    def _heap_reserve(self, pushes: int) -> None:
        """(The compiled heaps are arrays grown here; lists need no room.) The heaps are
        compacted when stale entries outnumber the tracked connections."""
        if sum(len(heap) for heap in self._heaps) > 2 * self.tracked + 1024:
            for c, heap in enumerate(self._heaps):
                kept = [
                    (int(self._flow_last[slot]), seq, slot)
                    for _, seq, slot in heap
                    if int(self._flow_seq[slot]) == seq and self._class_of(slot) == c
                ]
                heapq.heapify(kept)
                self._heaps[c] = kept

    def _heaps_rebuild(self) -> None:
        """The heaps of a rehashed table (every connection in it is alive and tracked)."""
        self._heaps = [[] for _ in range(N_CLASSES)]
        for i in np.flatnonzero(self._flow_used).tolist():
            entry = (int(self._flow_last[i]), int(self._flow_seq[i]), i)
            self._heaps[self._class_of(i)].append(entry)
        for heap in self._heaps:
            heapq.heapify(heap)
        self.tracked = self.flow_count

    def _heap_head(self, c: int) -> int:
        """The slot of class c's tracked connection with the oldest last packet (ties: the
        one created first), or -1; stale entries on the way are dropped or re-keyed."""
        heap = self._heaps[c]
        while heap:
            last, seq, slot = heap[0]
            if int(self._flow_seq[slot]) != seq or self._class_of(slot) != c:
                heapq.heappop(heap)
            elif int(self._flow_last[slot]) != last:
                heapq.heapreplace(heap, (int(self._flow_last[slot]), seq, slot))
            else:
                return slot
        return -1

    def _refresh(
        self, found: int, from_low: bool, t: int, closing: bool, ts: int, wire: int
    ) -> None:
        """A packet of a live connection: refresh it; a new class, a new heap entry; with
        flow records, the packet (recorded time `ts`, `wire` bytes) counted on its side."""
        before = self._class_of(found)
        self._flow_last[found] = t
        flags = int(self._flow_flags[found])
        if closing:
            flags |= FLAG_FIN_RST
        if from_low != bool(flags & FLAG_INIT_LOW):
            flags |= FLAG_BOTH
        self._flow_flags[found] = flags
        after = self._class_of(found)
        if after != before:
            heapq.heappush(self._heaps[after], (t, int(self._flow_seq[found]), found))
        if self.flowstats is not None:
            stat = self.flowstats[found]
            side = "initiator" if from_low == bool(flags & FLAG_INIT_LOW) else "responder"
            stat[side + "_packets"] += 1
            stat[side + "_bytes"] += wire
            stat["last_ns"] = max(int(stat["last_ns"]), ts)

    def _admit(self, slot: int, t: int) -> None:
        """Before a connection is created in `slot` at time t: drop the slot's expired
        connection, then while `limit` are tracked drop an expired one (uncounted), else
        evict the alive one whose last packet is the oldest (ties: created first)."""
        if self._flow_used[slot] and self._flow_seq[slot] >= 0:
            self._emit(slot)
            self._flow_seq[slot] = -1
            self.tracked -= 1
        while self.tracked >= self.limit:
            best: tuple[int, int, int, int] | None = None  # last, seq, slot, class
            dropped = False
            for c in range(N_CLASSES):
                s = self._heap_head(c)
                if s < 0:
                    continue
                if self._flow_expired(s, t):
                    heapq.heappop(self._heaps[c])
                    self._emit(s)
                    self._flow_seq[s] = -1
                    self.tracked -= 1
                    dropped = True
                    break
                candidate = (int(self._flow_last[s]), int(self._flow_seq[s]), s, c)
                if best is None or candidate[:2] < best[:2]:
                    best = candidate
            if dropped:
                continue
            if best is None:
                break  # cannot happen: every tracked connection has an entry
            _, _, s, c = best
            heapq.heappop(self._heaps[c])
            self._emit(s)
            self._flow_seq[s] = -1
            self._flow_flags[s] = int(self._flow_flags[s]) | FLAG_GONE
            self.tracked -= 1
            self.evicted += 1

    def _created(
        self, slot: int, ts: int, wire: int, index: int, instance: int, direction: int
    ) -> None:
        """After a creation in `slot`: tracked; with flow records, its counters start."""
        if self.flowstats is not None:
            stat = self.flowstats[slot]
            stat["first_ns"] = stat["last_ns"] = ts
            stat["index"] = index
            stat["initiator_packets"], stat["initiator_bytes"] = 1, wire
            stat["responder_packets"] = stat["responder_bytes"] = 0
            stat["file"] = self.file_number
            stat["instance"] = instance
            self.flows["direction"][slot] = direction
        seq = self.next_seq
        self._flow_seq[slot] = seq
        self.next_seq += 1
        self.tracked += 1
        entry = (int(self._flow_last[slot]), seq, slot)
        heapq.heappush(self._heaps[self._class_of(slot)], entry)

    # --- fragment table -------------------------------------------------------------------

    def _alloc_fragments(self, capacity: int) -> None:
        self.fragments = np.zeros(capacity, FRAGMENT_DTYPE)
        self._frag_used = self.fragments["used"]
        self._frag_key = self.fragments["key"]
        self._frag_ts = self.fragments["ts"]
        self._frag_l4 = self.fragments["l4"]
        self._frag_sport = self.fragments["sport"]
        self._frag_dport = self.fragments["dport"]
        self._frag_icmp_id = self.fragments["icmp_id"]
        self._frag_icmp_type = self.fragments["icmp_type"]
        self._frag_icmp_code = self.fragments["icmp_code"]
        self._frag_protocol = self.fragments["protocol"]
        self.frag_count = 0

    def _frag_find(self, key: tuple[int, ...], t: int) -> tuple[int, int]:
        mask = len(self._frag_used) - 1
        i = _hash(*key) & mask
        free = -1
        while self._frag_used[i]:
            if tuple(int(w) for w in self._frag_key[i]) == key:
                return i, i
            if free < 0 and t - int(self._frag_ts[i]) > FRAGMENT_WINDOW_NS:
                free = i
            i = (i + 1) & mask
        return -1, (i if free < 0 else free)

    def _frag_reserve(self, more: int, t: int) -> None:
        """Room for `more` insertions at load <= 1/2, at most `max_fragments` entries: the
        expired ones are dropped when the bound is near."""
        capacity = len(self._frag_used)
        if self.frag_count + more <= min(capacity // 2, self.max_fragments):
            return
        live = [
            i
            for i in range(capacity)
            if self._frag_used[i] and t - int(self._frag_ts[i]) <= FRAGMENT_WINDOW_NS
        ]
        if len(live) == self.frag_count and self.frag_count + more <= capacity // 2:
            return  # every entry is live: nothing to drop, room enough
        old = self.fragments
        self._alloc_fragments(
            max(capacity, _capacity_for(min(len(live) + more, self.max_fragments)))
        )
        mask = len(self._frag_used) - 1
        for i in live:
            j = _hash(*(int(w) for w in old["key"][i])) & mask
            while self._frag_used[j]:
                j = (j + 1) & mask
            self.fragments[j] = old[i]
        self.frag_count = len(live)

    # --- the two passes -------------------------------------------------------------------

    def join_fragments(self, batch: Any, times: np.ndarray | None = None) -> None:
        ts = batch.ts_ns if times is None else times
        n = len(ts)
        if n == 0:
            return
        first_t = max(int(ts[0]), self.fragment_clock_ns)
        self._frag_reserve(int(np.count_nonzero(batch.fragment == FRAGMENT_FIRST)), first_t)
        lent = LENT
        quoted = ("inner_protocol", "inner_src", "inner_dst", "inner_sport", "inner_dport",
                  "inner_icmp_type", "inner_icmp_id")  # fmt: skip
        for i in range(n):
            t = max(int(ts[i]), self.fragment_clock_ns)
            self.fragment_clock_ns = t
            status = int(batch.status[i])
            fragment = int(batch.fragment[i])
            if (status != STATUS_OK and status != STATUS_L4_TRUNCATED) or fragment == 0:
                continue
            s0, s1 = _words(batch.src[i])
            d0, d1 = _words(batch.dst[i])
            meta = (
                (int(batch.ip_version[i]) << 56)
                | (int(batch.frag_next_header[i]) << 48)
                | int(batch.ip_id[i])
            )
            key = (meta, s0, s1, d0, d1)
            found, slot = self._frag_find(key, t)
            if fragment == FRAGMENT_FIRST:
                if found < 0 and not self._frag_used[slot]:
                    if self.frag_count >= self.max_fragments:
                        self.fragments_dropped += 1  # the table is full: not remembered
                        continue
                    self.frag_count += 1
                self._frag_used[slot] = 1
                self._frag_key[slot] = key
                self._frag_ts[slot] = t
                self._frag_l4[slot] = int(batch.l4[i]) & lent
                self._frag_sport[slot] = batch.sport[i]
                self._frag_dport[slot] = batch.dport[i]
                self._frag_icmp_id[slot] = batch.icmp_id[i]
                self._frag_icmp_type[slot] = batch.icmp_type[i]
                self._frag_icmp_code[slot] = batch.icmp_code[i]
                self._frag_protocol[slot] = batch.protocol[i]
                for name in quoted:
                    self.fragments[name][slot] = getattr(batch, name)[i]
            elif fragment == FRAGMENT_LATER and found >= 0:
                if t - int(self._frag_ts[found]) > FRAGMENT_WINDOW_NS:
                    continue
                bits = int(self._frag_l4[found])
                batch.l4[i] = (int(batch.l4[i]) & ~(lent | L4_TCP_FLAGS)) | bits
                batch.sport[i] = self._frag_sport[found]
                batch.dport[i] = self._frag_dport[found]
                batch.icmp_id[i] = self._frag_icmp_id[found]
                batch.icmp_type[i] = self._frag_icmp_type[found]
                batch.icmp_code[i] = self._frag_icmp_code[found]
                batch.tcp_flags[i] = 0
                batch.protocol[i] = self._frag_protocol[found]
                for name in quoted:
                    getattr(batch, name)[i] = self.fragments[name][found]

    def apply(
        self,
        batch: Any,
        verdict: np.ndarray,
        reason: np.ndarray,
        rule: np.ndarray,
        side_instance: np.ndarray,
        side_direction: np.ndarray,
        new_side_instance: np.ndarray,
        new_side_direction: np.ndarray,
        created: np.ndarray,
        midstream: np.ndarray,
        times: np.ndarray | None = None,
    ) -> None:
        ts = batch.ts_ns if times is None else times
        n = len(ts)
        if n == 0:
            return
        first_t = max(int(ts[0]), self.clock_ns)
        allowed = int(np.count_nonzero(verdict == VERDICT_ALLOW))
        self._flow_reserve(allowed, first_t)
        self._heap_reserve(n + allowed)
        for i in range(n):
            t = max(int(ts[i]), self.clock_ns)
            self.clock_ns = t
            created[i] = 0
            midstream[i] = 0
            v = int(verdict[i])
            if v != VERDICT_ALLOW and v != VERDICT_DENY:
                continue
            version = int(batch.ip_version[i])
            protocol = int(batch.protocol[i])
            bits = int(batch.l4[i])
            state_reason = 0
            if (
                _is_icmp(version, protocol)
                and bits & L4_ICMP
                and _is_error(version, int(batch.icmp_type[i]))
            ):
                # related: the quoted header alone decides; never creates or refreshes
                if bits & L4_INNER:
                    key = _make_key(
                        version,
                        int(batch.inner_protocol[i]),
                        batch.inner_src[i],
                        batch.inner_dst[i],
                        bool(bits & L4_INNER_PORTS),
                        int(batch.inner_sport[i]),
                        int(batch.inner_dport[i]),
                        bool(bits & L4_INNER_ICMP_ID),
                        int(batch.inner_icmp_type[i]),
                        int(batch.inner_icmp_id[i]),
                    )
                    if key is not None:
                        found, _ = self._flow_find(key, t)
                        if found >= 0 and not self._flow_expired(found, t):
                            state_reason = REASON_RELATED
            else:
                key = _make_key(
                    version,
                    protocol,
                    batch.src[i],
                    batch.dst[i],
                    bool(bits & L4_PORTS),
                    int(batch.sport[i]),
                    int(batch.dport[i]),
                    bool(bits & L4_ICMP) and bool(bits & L4_ICMP_ID),
                    int(batch.icmp_type[i]),
                    int(batch.icmp_id[i]),
                )
                if key is not None:
                    flags_known = bool(bits & L4_TCP_FLAGS)
                    tcp_flags = int(batch.tcp_flags[i])
                    closing = (
                        protocol == PROTO_TCP and flags_known and tcp_flags & (TCP_FIN | TCP_RST)
                    )
                    found, slot = self._flow_find(key, t)
                    if found >= 0 and not self._flow_expired(found, t):
                        self._refresh(
                            found,
                            key[5],
                            t,
                            bool(closing),
                            int(batch.ts_ns[i]),
                            int(batch.wire_len[i]),
                        )
                        state_reason = REASON_ESTABLISHED
                    elif v == VERDICT_ALLOW:
                        self._admit(slot, t)
                        if not self._flow_used[slot]:
                            self.flow_count += 1
                        mid = protocol == PROTO_TCP and not _is_bare_syn(flags_known, tcp_flags)
                        self._flow_used[slot] = 1
                        self.flow_tags[slot] = _flow_tag(_hash(*key[:5]))
                        self._flow_key[slot] = key[:5]
                        self._flow_last[slot] = t
                        self._flow_flags[slot] = (
                            (FLAG_INIT_LOW if key[5] else 0)
                            | (FLAG_FIN_RST if closing else 0)
                            | (FLAG_MIDSTREAM if mid else 0)
                        )
                        self._flow_rule[slot] = rule[i]
                        self._created(
                            slot,
                            int(batch.ts_ns[i]),
                            int(batch.wire_len[i]),
                            int(batch.index[i]),
                            int(side_instance[i]),
                            int(side_direction[i]),
                        )
                        created[i] = 1
                        midstream[i] = 1 if mid else 0
                        self.connections_created += 1
                        self.midstream_created += 1 if mid else 0
            if state_reason:
                verdict[i] = VERDICT_ALLOW
                reason[i] = state_reason
                rule[i] = -1
                side_instance[i] = new_side_instance[i]
                side_direction[i] = new_side_direction[i]

    # --- inspection -----------------------------------------------------------------------

    def live_connections(self) -> int:
        """Connections alive at the clock (the latest timestamp seen)."""
        t = self.clock_ns
        return sum(
            1
            for i in range(len(self._flow_used))
            if self._flow_used[i] and not self._flow_expired(i, t)
        )

    @property
    def capacity(self) -> int:
        return len(self._flow_used)
