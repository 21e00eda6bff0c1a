"""The fused pass: decoded columns -> final verdicts, connection state and counters, in C.

Design note
-----------
What it is. `classify_batch` does for one batch what `Engine.classify` (stateless verdicts),
`Tracker.apply` (connection state) and `SummaryBuilder.count` plus the denied-tuple hashing
(statistics) do one after the other, in nogil loops over the batch with no numpy pass per
packet in between: owner lookup, table choice, the first-match lookup kernel
(classifier/acl/acl_lookup.h, called directly per chunk), side combination, state, and the
per-verdict / per-reason / per-side / per-rule / per-connection counters. The unfused pieces
stay (another engineer builds the scale-out on them) and are what the pure twin
(`_fused_py`) composes, so the twin is their sum by construction and the differential tests
hold the compiled pass to it and to the reference.

Why its own module. It reads the compiled policy (engine.build), the tracker's table
(`_conntrack.pxd`: structs, key and state helpers shared with `Tracker.apply`, so that the
state machine is written once) and the per-packet helpers of `_engine.pxd` (owner probe,
port field, tuple key). Putting it in `_engine.pyx` would make the stateless kernels depend
on the tracker, and in `_conntrack.pyx` would make the tracker know the policy; here each
stays what it was and the fused pass is the one place where they meet.

How. The batch is walked in blocks of BLOCK (1,024) packets (so the flow slots a block touches stay
in the caches between its passes); gathering a block advances the capture clock over every
row and takes each packet's effective time. With `lane_of` (the scale-out's lanes), a block
is the next BLOCK packets of the lane: the other rows only move the clock, and the passes
below run on full blocks of the lane's packets. Four passes per block:
  1. per packet: status, owners (open-addressing table, behind a bit filter of the owned
     addresses that answers "no owner" for most remote addresses without probing it), and
     for judged packets the connection key and its hash (LOOKUP_OWN / LOOKUP_QUOTED, as in
     apply);
  2. per judged packet with a key: probe the flow table (`flow_probe`: it walks the
     table's tag bytes, one per slot, and reads a slot only where the tag matches, so an
     absent key mostly reads none). A live connection (or, for an ICMP error, a live quoted
     one) means the packet will be allowed by state, so it needs no rule lookup: a *guess*,
     taken on the table as it was before this block. Every other judged packet gets one
     side row per evaluated side (egress for an owned source, ingress for an owned
     destination);
  3. per plan step: side rows are bucketed by chunk (a counting sort), their keys written
     field-major (remote address, table tag, port, protocol) and each chunk's bucket looked
     up in one kernel call; found rows are decided, the others try their next table (group
     mode) or end as implicit deny;
  4. per packet, in capture order: the state step exactly as `Tracker.apply` (established /
     related / create), the side combination exactly as `combine_sides`, and the counters.
     The key is not looked for again when pass 2's answer still holds: the pass marks, in a
     bit set of 4,096 bits indexed by the key hash, each key it creates a connection for or
     whose flags it changes (a FIN, a first reply: Tracker.refresh), and an unmarked key,
     while no connection was evicted in the block, is as pass 2 found it (a connection
     refreshed without a flag change only lives longer; a creation takes an expired or empty
     slot, never a live one). Otherwise the key is found again. A guess that turns out wrong
     (a FIN earlier in the block shortened the connection's timeout, or an eviction) is
     caught here: the packet's sides are looked up on the spot, one packet at a time. The
     other wrong guess (no connection before the block, one created by an earlier packet of
     it) only wastes the lookup. So the guesses change no result, only how much lookup work
     a block does: with most packets of a capture on live connections, most packets need no
     rule lookup at all.
Statistics: the caller frames the batch first (`SummaryBuilder.frame`: packet count, time
span, time line widened) and folds in the distinct denied tuples afterwards
(`DeniedCounter.add_distinct`); this pass increments the builder's arrays in place and adds
the bytes and mid-stream count to it. The per-verdict and per-reason counts are kept in
local arrays during the call (which no store through a column pointer can alias, so the
compiler keeps them in registers) and added at its end; the time line is counted by runs of
consecutive packets in one bucket: a packet outside the current run's time span adds the run
to its bucket (the verdict counts since the run began) and starts a new one, so a packet
costs two comparisons instead of a division and a memory increment.

Extending the per-connection state (flow records): the slot of the connection a packet
created, refreshed or was refused by is `slot`/`found` in pass 4, and the state step is
`flow_find` / `Tracker.refresh` / `Tracker.admit` + `flow_create` + `Tracker.created` (the
connection limit: _conntrack.pyx's design note); per-flow counters belong in a parallel array
indexed by slot (`Flow` is one full cache line), updated at those places. An eviction inside
a block makes a guess of pass 2 wrong like a FIN does: pass 4 finds the connection gone and
looks the sides up on the spot.

Memory: per call, about 200 bytes of scratch per packet of a block (BLOCK packets), plus the
denied-tuple scratch the caller passes. Thread safety: a `FusedPolicy` is read-only; a tracker
and a summary builder belong to one run.
"""

import numpy as np

from libc.stdint cimport (
    INT64_MAX, INT64_MIN, int8_t, int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t
)
from libc.stdlib cimport calloc, free, malloc

from classifier._codes cimport (
    DIRECTION_EGRESS,
    DIRECTION_INGRESS,
    DIRECTION_NONE,
    REASON_ESTABLISHED,
    REASON_IMPLICIT_DENY,
    REASON_NONE,
    REASON_RELATED,
    REASON_RULE,
    STATUS_L4_TRUNCATED,
    STATUS_MALFORMED,
    STATUS_NOT_IP,
    STATUS_OK,
    VERDICT_ALLOW,
    VERDICT_DENY,
    VERDICT_MALFORMED,
    VERDICT_NOT_IP,
    VERDICT_UNMANAGED,
)
from classifier.engine._conntrack cimport (
    LOOKUP_OWN,
    LOOKUP_QUOTED,
    Columns,
    Flow,
    Key,
    Tracker,
    __builtin_prefetch,
    _flow_expired,
    _same,
    _hash,
    columns_of,
    flow_create,
    flow_find,
    flow_prefetch,
    flow_probe,
    flow_touch,
    is_closing,
    is_midstream,
    packet_key,
)
from classifier.engine._engine cimport owner_of, port_value, tuple_key, tuples_reset
from classifier.engine._hashing cimport _word

from classifier.acl.acl_lookup cimport acl_match_v4, acl_match_v6

cdef enum:
    BLOCK = 1024  # packets per block: the flow slots of a block stay cached across its passes
    NF4 = 5  # key fields of an IPv4 chunk (src, dst, sport, dport, proto)
    NF6 = 7  # ... of an IPv6 chunk (src hi/lo, dst hi/lo, sport, dport, proto)
    OWNER_FILTER_LOG2 = 16  # the owner filter's bits: 65,536 (8 KiB, stays in the L1 cache)
    CHANGED_WORDS = 64  # the bit set of keys a block changed: 4,096 bits (12 bits of hash)


cdef struct ChunkRef:
    # one shared matcher of the compiled policy (classifier/acl/tables.py: its arrays)
    int version
    const int64_t* field
    const int64_t* group
    int64_t ngroups
    const void* tree  # uint32 (IPv4) or uint64 (IPv6) keys
    const uint32_t* gtab
    const uint64_t* summary
    const uint32_t* rank
    int64_t nsumm
    const uint64_t* words
    const int32_t* rule_of
    int identity
    const int32_t* row_rule  # global rule index of each row
    const uint8_t* row_allow  # 1: the row's rule allows


cdef struct PolicyRef:
    # the run phase's view of a compiled policy (classifier/engine/build.py: its arrays)
    const ChunkRef* chunks
    Py_ssize_t n_chunks
    const uint64_t* slot_hi  # the owner table
    const uint64_t* slot_lo
    const uint8_t* slot_version
    const int32_t* slot_owner
    uint64_t slot_mask
    const int32_t* plan  # [instance, direction, version index, step]: table, -1 none
    Py_ssize_t depth  # plan steps
    const int32_t* table_chunk
    const uint32_t* table_local
    const uint64_t* owner_filter  # bit _filter_index(address) set for every owned address


cdef inline uint64_t _filter_index(uint64_t hi, uint64_t lo, uint64_t version) noexcept nogil:
    """An address's bit in the owner filter: the top bits of one multiply."""
    return ((hi ^ lo ^ version) * 0x9E3779B97F4A7C15ULL) >> (64 - OWNER_FILTER_LOG2)


cdef inline int32_t _owner(
    const PolicyRef* p, const uint8_t* address, uint8_t version
) noexcept nogil:
    """owner_of, behind the owner filter: an address whose bit is clear is owned by no
    instance (every owned address sets its bit), which one multiply and one load tell; only
    the others (the owned ones, and the few remote ones sharing a bit with one) are looked
    up in the owner table. Most packets have one remote address: a table probe saved per
    packet, about 6 of the pass's 200 cycles on the issue-15 workload."""
    cdef uint64_t hi = _word(address), lo = _word(address + 8)
    cdef uint64_t b = _filter_index(hi, lo, version)
    if not ((p.owner_filter[b >> 6] >> (b & 63)) & 1):
        return -1
    return owner_of(hi, lo, version, p.slot_hi, p.slot_lo, p.slot_version, p.slot_owner,
                    p.slot_mask)


cdef inline const void* _data(object array):
    return <const void*><size_t>array.__array_interface__["data"][0]


cdef class FusedPolicy:
    """The flat arrays of an engine's compiled policy, as C pointers for the fused pass."""

    cdef object _keep  # every array the pointers below point into
    cdef ChunkRef* chunks
    cdef uint64_t* owner_filter
    cdef PolicyRef ref
    cdef readonly Py_ssize_t n_chunks
    cdef readonly Py_ssize_t n_rules
    cdef readonly Py_ssize_t n_instances

    def __init__(self, engine):
        c = engine.compiled
        keep = []

        def hold(array, dtype):
            a = np.ascontiguousarray(array, dtype=dtype)
            keep.append(a)
            return a

        self.ref.slot_hi = <const uint64_t*>_data(hold(c.slot_hi, np.uint64))
        self.ref.slot_lo = <const uint64_t*>_data(hold(c.slot_lo, np.uint64))
        self.ref.slot_version = <const uint8_t*>_data(hold(c.slot_version, np.uint8))
        self.ref.slot_owner = <const int32_t*>_data(hold(c.slot_owner, np.int32))
        self.ref.slot_mask = len(c.slot_owner) - 1
        # the owner filter, from the owner table's used slots
        self.owner_filter = <uint64_t*>calloc((1 << OWNER_FILTER_LOG2) // 64, sizeof(uint64_t))
        if self.owner_filter == NULL:
            raise MemoryError
        self.ref.owner_filter = self.owner_filter
        cdef Py_ssize_t s
        cdef uint64_t b
        for s in range(len(c.slot_owner)):
            if self.ref.slot_owner[s] >= 0:
                b = _filter_index(self.ref.slot_hi[s], self.ref.slot_lo[s],
                                  self.ref.slot_version[s])
                self.owner_filter[b >> 6] |= (<uint64_t>1) << (b & 63)
        self.ref.plan = <const int32_t*>_data(hold(c.plan, np.int32))
        self.ref.depth = c.plan.shape[3]
        self.ref.table_chunk = <const int32_t*>_data(hold(c.table_chunk, np.int32))
        self.ref.table_local = <const uint32_t*>_data(hold(c.table_local, np.uint32))
        self.n_rules = len(c.rules)
        self.n_instances = len(c.instances)
        self.n_chunks = len(c.chunks)
        self.chunks = <ChunkRef*>malloc(max(self.n_chunks, 1) * sizeof(ChunkRef))
        if self.chunks == NULL:
            raise MemoryError
        self.ref.chunks = self.chunks
        self.ref.n_chunks = self.n_chunks
        cdef ChunkRef* ref
        for number, chunk in enumerate(c.chunks):
            t = chunk.matcher.tables
            ref = &self.chunks[number]
            ref.version = t.version
            ref.field = <const int64_t*>_data(hold(t.field, np.int64))
            ref.group = <const int64_t*>_data(hold(t.group, np.int64))
            ref.ngroups = t.group.shape[0]
            ref.tree = _data(hold(t.tree, t.key_dtype))
            ref.gtab = <const uint32_t*>_data(hold(t.gtab, np.uint32))
            ref.summary = <const uint64_t*>_data(hold(t.summary, np.uint64))
            ref.rank = <const uint32_t*>_data(hold(t.rank, np.uint32))
            ref.nsumm = t.summary.shape[1]
            ref.words = <const uint64_t*>_data(hold(t.words, np.uint64))
            ref.rule_of = <const int32_t*>_data(hold(t.rule_of, np.int32))
            ref.identity = bool(t.identity)
            ref.row_rule = <const int32_t*>_data(hold(chunk.row_rule, np.int32))
            ref.row_allow = <const uint8_t*>_data(hold(chunk.row_allow, np.uint8))
        self._keep = keep

    def __dealloc__(self):
        free(self.chunks)
        free(self.owner_filter)


cdef inline void _match(
    const ChunkRef* ref, const void* keys, int64_t n, int32_t* out
) noexcept nogil:
    if ref.version == 4:
        acl_match_v4(ref.field, ref.group, ref.ngroups, <const uint32_t*>ref.tree, ref.gtab,
                     ref.summary, ref.rank, ref.nsumm, ref.words, ref.rule_of, ref.identity,
                     <const uint32_t*>keys, n, out)
    else:
        acl_match_v6(ref.field, ref.group, ref.ngroups, <const uint64_t*>ref.tree, ref.gtab,
                     ref.summary, ref.rank, ref.nsumm, ref.words, ref.rule_of, ref.identity,
                     <const uint64_t*>keys, n, out)


cdef inline void _write_keys(
    const ChunkRef* ref, void* keys, int64_t n, int64_t k, const uint8_t* remote,
    uint32_t tag, uint32_t port, uint8_t protocol
) noexcept nogil:
    """Row k of a chunk's field-major key block of n rows (the dst field is a wildcard)."""
    cdef uint32_t* k32
    cdef uint64_t* k64
    if ref.version == 4:
        k32 = <uint32_t*>keys
        k32[k] = ((<uint32_t>remote[12] << 24) | (<uint32_t>remote[13] << 16)
                  | (<uint32_t>remote[14] << 8) | remote[15])
        k32[n + k] = 0
        k32[2 * n + k] = tag
        k32[3 * n + k] = port
        k32[4 * n + k] = protocol
    else:
        k64 = <uint64_t*>keys
        k64[k] = _word(remote)
        k64[n + k] = _word(remote + 8)
        k64[2 * n + k] = 0
        k64[3 * n + k] = 0
        k64[4 * n + k] = tag
        k64[5 * n + k] = port
        k64[6 * n + k] = protocol


cdef inline int32_t _plan(
    const PolicyRef* p, int32_t owner, int direction, int v6, Py_ssize_t step
) noexcept nogil:
    return p.plan[((owner * 2 + direction) * 2 + v6) * p.depth + step]


cdef void _side_now(
    const PolicyRef* p, int32_t owner, int direction, int v6, const uint8_t* remote, uint32_t port,
    uint8_t protocol, int32_t* rule, uint8_t* allow
) noexcept nogil:
    """One side of one packet, looked up on the spot (a wrong guess of pass 2)."""
    cdef uint64_t keys[NF6]
    cdef int32_t hit
    cdef int32_t table, chunk
    cdef Py_ssize_t step
    cdef const ChunkRef* ref
    rule[0] = -1
    allow[0] = 0
    for step in range(p.depth):
        table = _plan(p, owner, direction, v6, step)
        if table < 0:
            return
        chunk = p.table_chunk[table]
        if chunk < 0:
            continue
        ref = &p.chunks[chunk]
        _write_keys(ref, keys, 1, 0, remote, p.table_local[table], port, protocol)
        _match(ref, keys, 1, &hit)
        if hit >= 0:
            rule[0] = ref.row_rule[hit]
            allow[0] = ref.row_allow[hit]
            return


cdef inline bint _marked(const uint64_t* bits, uint64_t h) noexcept nogil:
    return (bits[(h >> 6) & (CHANGED_WORDS - 1)] >> (h & 63)) & 1


cdef inline void _mark(uint64_t* bits, uint64_t h) noexcept nogil:
    bits[(h >> 6) & (CHANGED_WORDS - 1)] |= (<uint64_t>1) << (h & 63)


cdef inline void _run_flush(
    int64_t* timeline, Py_ssize_t row, const int64_t* v_packets, int64_t* base
) noexcept nogil:
    """The packets counted since `base` was taken, added to time-line row `row` (-1: none)."""
    cdef int v
    for v in range(5):
        if row >= 0:
            timeline[row * 5 + v] += v_packets[v] - base[v]
        base[v] = v_packets[v]


cdef inline Py_ssize_t _bucket_of(
    int64_t ts, int shift, int64_t* start, int64_t* end
) noexcept nogil:
    """The time-line bucket of `ts` ns, (ts // 1000) >> shift with floor division throughout,
    and the ns it covers, [start, end). A bound past the int64 range saturates (no time of
    another bucket lies between the two); a bucket too wide to bound leaves the run empty,
    so that the next packet restarts it (correct, only slower)."""
    cdef int64_t us = ts // 1000  # C division (truncating): floored below
    cdef int64_t width, first_us
    if ts % 1000 < 0:
        us -= 1
    if shift >= 62:
        start[0] = 1
        end[0] = 0
        return us >> shift
    width = (<int64_t>1) << shift
    first_us = (us >> shift) * width
    start[0] = INT64_MIN if first_us < INT64_MIN // 1000 else first_us * 1000
    end[0] = INT64_MAX if first_us + width > INT64_MAX // 1000 else (first_us + width) * 1000
    return us >> shift


def classify_batch(
    FusedPolicy policy,
    batch,
    Tracker tracker,
    uint8_t[::1] verdict,
    uint8_t[::1] reason,
    int32_t[::1] rule,
    int32_t[::1] instance,
    uint8_t[::1] direction,
    int8_t[::1] created,
    int8_t[::1] midstream,
    int32_t[::1] egress_rule,
    int32_t[::1] ingress_rule,
    stats,
    int64_t timeline_low,
    int timeline_shift,
    uint64_t[::1] slot_key,
    int64_t[::1] slot_index,
    uint64_t[::1] out_key,
    int64_t[::1] out_count,
    int64_t[::1] out_row,
    const uint16_t[::1] lane_of=None,
    int lane=0,
):
    """Final columns, state and counters of one batch (the design note); returns the number
    of distinct denied tuples written to out_key/out_count/out_row. `tracker` None: stateless.
    `stats` (a SummaryBuilder) must have framed the batch: `timeline_low`/`timeline_shift`
    are what its frame returned.

    `lane_of` (per row, a state lane: classifier.scale's design note) with `lane`: only the
    rows of that lane are classified and counted (the others' output columns are left as
    they were); the clock still advances over every row, so the tracker's times are those of
    one tracker that saw the whole batch."""
    cdef Columns c
    cdef const PolicyRef* pr = &policy.ref
    cdef Py_ssize_t n = verdict.shape[0]
    if n == 0:
        return 0
    columns_of(batch, &c)
    cdef bint stateful = tracker is not None
    cdef const uint16_t* lanes = NULL
    if lane_of is not None:
        if lane_of.shape[0] != n:
            raise ValueError(f"lane_of has {lane_of.shape[0]} rows, the batch {n}")
        lanes = &lane_of[0]
    cdef int64_t[::1] verdict_packets = stats.verdict_packets
    cdef int64_t[::1] verdict_bytes = stats.verdict_bytes
    cdef int64_t[::1] reason_packets = stats.reason_packets
    cdef int64_t[::1] side_packets = stats.side_packets.reshape(-1)
    cdef int64_t[::1] side_bytes = stats.side_bytes.reshape(-1)
    no_rules = policy.n_rules == 0  # then nothing indexes these: one element, never read
    cdef int64_t[::1] rule_packets = np.zeros(1, np.int64) if no_rules else stats.rule_packets
    cdef int64_t[::1] rule_bytes = np.zeros(1, np.int64) if no_rules else stats.rule_bytes
    cdef int64_t[::1] rule_connections = (
        np.zeros(1, np.int64) if no_rules else stats.rule_connections)
    cdef int64_t[::1] protocol_connections = stats.protocol_connections
    cdef int64_t[::1] malformed_counts = stats.malformed_counts
    cdef int64_t[::1] timeline = stats.timeline.counts.reshape(-1)
    # per-block scratch
    cdef int32_t[::1] src_owner = np.empty(BLOCK, np.int32)
    cdef int32_t[::1] dst_owner = np.empty(BLOCK, np.int32)
    cdef int64_t[::1] teff = np.empty(BLOCK, np.int64)
    cdef uint8_t[::1] lookup = np.empty(BLOCK, np.uint8)
    cdef uint8_t[::1] needs = np.empty(BLOCK, np.uint8)  # 1: sides looked up in pass 3
    cdef int64_t[::1] at = np.empty(BLOCK, np.int64)  # the batch row of each block packet
    cdef uint64_t[::1] home = np.empty(BLOCK, np.uint64)
    cdef int64_t[::1] fslot = np.empty(BLOCK, np.int64)  # pass 2: the slot holding the key
    cdef uint64_t[::1] tkey = np.empty(BLOCK, np.uint64)  # denied-tuple key (needs[j] only)
    key_scratch = np.empty(BLOCK * sizeof(Key), np.uint8)
    cdef uint8_t[::1] key_view = key_scratch
    cdef Key* keys = <Key*>&key_view[0]
    cdef int32_t[::1] eg_rule = np.empty(BLOCK, np.int32)
    cdef uint8_t[::1] eg_allow = np.empty(BLOCK, np.uint8)
    cdef int32_t[::1] in_rule = np.empty(BLOCK, np.int32)
    cdef uint8_t[::1] in_allow = np.empty(BLOCK, np.uint8)
    # side rows (at most two per packet)
    cdef int32_t[::1] row_packet = np.empty(2 * BLOCK, np.int32)  # packet within the block
    cdef uint8_t[::1] row_egress = np.empty(2 * BLOCK, np.uint8)
    cdef int32_t[::1] row_table = np.empty(2 * BLOCK, np.int32)
    cdef int32_t[::1] pending = np.empty(2 * BLOCK, np.int32)  # rows still undecided
    cdef int32_t[::1] order = np.empty(2 * BLOCK, np.int32)  # bucket position -> row
    cdef int32_t[::1] hits = np.empty(2 * BLOCK, np.int32)
    cdef int64_t[::1] bucket = np.zeros(policy.n_chunks + 1, np.int64)
    cdef int64_t[::1] bucket_end = np.zeros(policy.n_chunks + 1, np.int64)
    cdef void* kb
    cdef uint32_t[::1] keys32 = np.empty(NF4 * 2 * BLOCK, np.uint32)
    cdef uint64_t[::1] keys64 = np.empty(NF6 * 2 * BLOCK, np.uint64)
    cdef Py_ssize_t next_row = 0, m, i, j, r, pos, n_rows, n_pending, kept, step, ch
    cdef Py_ssize_t found, slot, distinct = 0, dslot
    cdef uint64_t dmask = slot_index.shape[0] - 1, dkey
    cdef int64_t total_bytes = 0, mids = 0, clock = 0, size
    cdef uint8_t st, v, vv, rs, state_reason
    cdef int32_t so, do, matched, table
    cdef int v6
    cdef uint32_t wire, port
    cdef bint closing, usable, live, report_egress, has_eg, has_in, mid
    cdef const uint8_t* remote
    cdef const ChunkRef* ref
    cdef Flow* f
    cdef Key* key
    # the call's verdict and reason counters: locals, which no store through the columns'
    # pointers can alias, so they stay in registers (added to the builder's at the end)
    cdef int64_t v_packets[5]
    cdef int64_t v_bytes[5]
    cdef int64_t r_packets[5]
    # the time line by runs: the packets of consecutive rows that fall in one bucket
    # ([run_start, run_end) ns, row run_row) are v_packets - run_base, added when a packet
    # leaves the bucket and at the end
    cdef int64_t run_base[5]
    cdef int64_t run_start = 1, run_end = 0
    cdef Py_ssize_t run_row = -1, k
    for k in range(5):
        v_packets[k] = v_bytes[k] = r_packets[k] = run_base[k] = 0
    # pass 4's memory of what it changed in the block: the keys (by 12 bits of their hash)
    # whose slot it created or whose flags it changed, and the eviction count at the block's
    # start; a key not marked, while nothing was evicted, is as pass 2 found it
    cdef uint64_t changed_keys[CHANGED_WORDS]
    cdef uint64_t marked
    cdef int64_t evicted = 0

    if stateful:
        clock = tracker.clock_ns
    while next_row < n:
        # --- the block: the next BLOCK packets (of the lane), the clock over every row
        m = 0
        with nogil:
            while next_row < n and m < BLOCK:
                i = next_row
                next_row += 1
                if stateful:
                    clock = c.ts_ns[i] if c.ts_ns[i] > clock else clock
                if lanes != NULL and lanes[i] != lane:
                    continue
                at[m] = i
                teff[m] = clock
                m += 1
        if stateful:
            if m:
                tracker._flow_reserve(m, teff[0])
                tracker._heap_reserve(2 * m)  # creations and class changes
            tracker.clock_ns = clock
        if m == 0:
            continue
        with nogil:
            # --- pass 1: owners, connection keys
            for j in range(m):
                i = at[j]
                st = c.status[i]
                usable = st == STATUS_OK or st == STATUS_L4_TRUNCATED
                v = c.ip_version[i] if usable else 0
                src_owner[j] = _owner(pr, &c.src[16 * i], v)
                dst_owner[j] = _owner(pr, &c.dst[16 * i], v)
                needs[j] = usable and (src_owner[j] >= 0 or dst_owner[j] >= 0)
                lookup[j] = 0
                fslot[j] = -1
                eg_rule[j] = -1
                eg_allow[j] = 0
                in_rule[j] = -1
                in_allow[j] = 0
                if stateful and needs[j]:
                    lookup[j] = packet_key(&keys[j], &c, i)
                    if lookup[j]:
                        home[j] = _hash(keys[j].w)
                        # fetched now, probed in pass 2: a block's slots fit in the L2 cache
                        flow_prefetch(tracker._flows, tracker._tags, tracker._stats,
                                      tracker._flow_mask, home[j])
            # --- pass 2: guess which packets state will allow; side rows for the others
            n_rows = 0
            for j in range(m):
                if not needs[j]:
                    continue
                if lookup[j]:
                    found = flow_probe(tracker._flows, tracker._tags, tracker._flow_mask,
                                       keys[j].w, home[j])
                    fslot[j] = found
                    if found >= 0 and not _flow_expired(&tracker._flows[found], teff[j]):
                        needs[j] = 0
                        continue
                i = at[j]
                # the packet may be denied: its tuple's slot, fetched for pass 4
                tkey[j] = tuple_key(&c.src[16 * i], &c.dst[16 * i], c.ip_version[i],
                                    c.protocol[i], c.l4[i], c.dport[i], c.icmp_type[i],
                                    c.icmp_code[i])
                __builtin_prefetch(&slot_index[tkey[j] & dmask])
                __builtin_prefetch(&slot_key[tkey[j] & dmask])
                v6 = c.ip_version[i] == 6
                # a row per owned side, without a branch on which sides are owned (in a
                # capture that is close to random): both rows are written, each kept by
                # counting it only when its side is owned (at least one is)
                so = src_owner[j]
                do = dst_owner[j]
                row_packet[n_rows] = j
                row_egress[n_rows] = 1
                row_table[n_rows] = _plan(pr, so if so >= 0 else 0, DIRECTION_EGRESS, v6, 0)
                n_rows += so >= 0
                row_packet[n_rows] = j
                row_egress[n_rows] = 0
                row_table[n_rows] = _plan(pr, do if do >= 0 else 0, DIRECTION_INGRESS, v6, 0)
                n_rows += do >= 0
            # --- pass 3: lookups, one kernel call per chunk and plan step
            n_pending = 0
            for r in range(n_rows):
                if row_table[r] >= 0:
                    pending[n_pending] = r
                    n_pending += 1
            step = 0
            while n_pending > 0:
                for ch in range(pr.n_chunks + 1):
                    bucket[ch] = 0
                for pos in range(n_pending):
                    ch = pr.table_chunk[row_table[pending[pos]]]
                    bucket[ch + 1 if ch >= 0 else 0] += 1  # bucket 0: tables without rows
                size = 0
                for ch in range(pr.n_chunks + 1):
                    bucket_end[ch] = size
                    size += bucket[ch]
                    bucket[ch] = bucket_end[ch]  # start
                for pos in range(n_pending):
                    r = pending[pos]
                    ch = pr.table_chunk[row_table[r]] + 1
                    order[bucket_end[ch]] = r
                    bucket_end[ch] += 1
                for ch in range(pr.n_chunks):
                    size = bucket_end[ch + 1] - bucket[ch + 1]
                    if size == 0:
                        continue
                    ref = &pr.chunks[ch]
                    if ref.version == 4:
                        kb = &keys32[NF4 * bucket[ch + 1]]
                    else:
                        kb = &keys64[NF6 * bucket[ch + 1]]
                    for pos in range(size):
                        r = order[bucket[ch + 1] + pos]
                        i = at[row_packet[r]]
                        remote = &c.dst[16 * i] if row_egress[r] else &c.src[16 * i]
                        _write_keys(
                            ref, kb, size, pos, remote, pr.table_local[row_table[r]],
                            port_value(c.protocol[i], c.l4[i], c.dport[i], c.icmp_type[i],
                                       c.icmp_code[i]),
                            c.protocol[i])
                    _match(ref, kb, size, &hits[bucket[ch + 1]])
                # decided rows leave; the rest try the next table of their plan
                step += 1
                kept = 0
                for pos in range(n_pending):
                    r = order[pos]
                    ch = pr.table_chunk[row_table[r]]
                    if ch >= 0 and hits[pos] >= 0:
                        ref = &pr.chunks[ch]
                        j = row_packet[r]
                        if row_egress[r]:
                            eg_rule[j] = ref.row_rule[hits[pos]]
                            eg_allow[j] = ref.row_allow[hits[pos]]
                        else:
                            in_rule[j] = ref.row_rule[hits[pos]]
                            in_allow[j] = ref.row_allow[hits[pos]]
                        continue
                    if step >= pr.depth:
                        continue
                    j = row_packet[r]
                    if row_egress[r]:
                        table = _plan(pr, src_owner[j], DIRECTION_EGRESS,
                                      c.ip_version[at[j]] == 6, step)
                    else:
                        table = _plan(pr, dst_owner[j], DIRECTION_INGRESS,
                                      c.ip_version[at[j]] == 6, step)
                    if table >= 0:
                        row_table[r] = table
                        pending[kept] = r
                        kept += 1
                n_pending = kept
            # --- pass 4: state, combination and counters, in capture order
            for j in range(CHANGED_WORDS):
                changed_keys[j] = 0
            evicted = tracker.evicted if stateful else 0
            for j in range(m):
                i = at[j]
                wire = c.wire_len[i]
                total_bytes += wire
                created[i] = 0
                midstream[i] = 0
                egress_rule[i] = -1
                ingress_rule[i] = -1
                rule[i] = -1
                instance[i] = -1
                direction[i] = DIRECTION_NONE
                rs = REASON_NONE
                so = src_owner[j]
                do = dst_owner[j]
                st = c.status[i]
                if st == STATUS_NOT_IP:
                    vv = VERDICT_NOT_IP
                elif st == STATUS_MALFORMED:
                    vv = VERDICT_MALFORMED
                    malformed_counts[c.malformed_reason[i]] += 1
                elif so < 0 and do < 0:
                    vv = VERDICT_UNMANAGED
                else:
                    state_reason = 0
                    found = -1
                    slot = -1
                    if lookup[j]:
                        key = &keys[j]
                        marked = _marked(changed_keys, home[j])
                        if not needs[j] and not marked and tracker.evicted == evicted:
                            # live in pass 2, and nothing since could have ended it
                            found = slot = fslot[j]
                            live = True
                        elif fslot[j] >= 0 and _same(tracker._flows[fslot[j]].key, key.w):
                            found = slot = fslot[j]  # a key has one slot: no walk again
                            live = not _flow_expired(&tracker._flows[found], teff[j])
                        elif fslot[j] < 0 and not marked:
                            found = -1  # absent in pass 2, and no creation since could be it
                            slot = -1  # where it would go: walked for only if it is created
                            live = False
                        else:
                            found = flow_find(tracker._flows, tracker._flow_mask, key.w,
                                              home[j], teff[j], &slot)
                            live = found >= 0 and not _flow_expired(&tracker._flows[found],
                                                                    teff[j])
                        if lookup[j] == LOOKUP_QUOTED:
                            if live:
                                state_reason = REASON_RELATED
                        elif live:
                            closing = is_closing(&c, i)
                            if not flow_touch(&tracker._flows[found], key, teff[j], closing):
                                # a flag changes (and maybe the timeout): what pass 2 saw of
                                # this key no longer holds
                                _mark(changed_keys, home[j])
                                tracker.refresh(found, key, teff[j], closing, c.ts_ns[i], wire)
                            elif tracker._stats != NULL:
                                # flow records: refresh counts the packet on its side (the
                                # rest flow_touch has done, and doing it again changes nothing)
                                tracker.refresh(found, key, teff[j], closing, c.ts_ns[i], wire)
                            state_reason = REASON_ESTABLISHED
                    if state_reason:
                        vv = VERDICT_ALLOW
                        rs = state_reason
                        if do >= 0:
                            instance[i] = do
                            direction[i] = DIRECTION_INGRESS
                        else:
                            instance[i] = so
                            direction[i] = DIRECTION_EGRESS
                    else:
                        if not needs[j]:  # a wrong guess: look the sides up now
                            v6 = c.ip_version[i] == 6
                            port = port_value(c.protocol[i], c.l4[i], c.dport[i],
                                              c.icmp_type[i], c.icmp_code[i])
                            if so >= 0:
                                _side_now(pr, so, DIRECTION_EGRESS, v6, &c.dst[16 * i], port,
                                          c.protocol[i], &eg_rule[j], &eg_allow[j])
                            if do >= 0:
                                _side_now(pr, do, DIRECTION_INGRESS, v6, &c.src[16 * i], port,
                                          c.protocol[i], &in_rule[j], &in_allow[j])
                        has_eg = so >= 0
                        has_in = do >= 0
                        if (has_eg and not eg_allow[j]) or (has_in and not in_allow[j]):
                            vv = VERDICT_DENY
                        else:
                            vv = VERDICT_ALLOW
                        # reported: the sender's egress if it denies, else the receiver's
                        # ingress, else the egress
                        report_egress = has_eg and (not eg_allow[j] or not has_in)
                        if report_egress:
                            matched = eg_rule[j]
                            instance[i] = so
                            direction[i] = DIRECTION_EGRESS
                        else:
                            matched = in_rule[j]
                            instance[i] = do
                            direction[i] = DIRECTION_INGRESS
                        rule[i] = matched
                        rs = REASON_RULE if matched >= 0 else REASON_IMPLICIT_DENY
                        if has_eg:
                            egress_rule[i] = eg_rule[j]
                        if has_in:
                            ingress_rule[i] = in_rule[j]
                        if lookup[j] == LOOKUP_OWN and vv == VERDICT_ALLOW:
                            if slot < 0:
                                flow_find(tracker._flows, tracker._flow_mask, keys[j].w,
                                          home[j], teff[j], &slot)
                            _mark(changed_keys, home[j])
                            tracker.admit(slot, teff[j])
                            f = &tracker._flows[slot]
                            if not f.used:
                                tracker.flow_count += 1
                            mid = is_midstream(&c, i)
                            flow_create(f, &tracker._tags[slot], home[j], &keys[j], teff[j],
                                        is_closing(&c, i), mid, matched)
                            tracker.created(slot, c.ts_ns[i], wire, c.index[i], instance[i],
                                            direction[i])
                            created[i] = 1
                            midstream[i] = mid
                            tracker.connections_created += 1
                            tracker.midstream_created += mid
                            mids += mid
                            protocol_connections[c.protocol[i]] += 1
                            # credited to the reported rule only (so the counts add up to
                            # the total): `matched` is allowed here, so never -1
                            if matched >= 0:
                                rule_connections[matched] += 1
                        if egress_rule[i] >= 0:
                            rule_packets[egress_rule[i]] += 1
                            rule_bytes[egress_rule[i]] += wire
                        if ingress_rule[i] >= 0:
                            rule_packets[ingress_rule[i]] += 1
                            rule_bytes[ingress_rule[i]] += wire
                    side_packets[(instance[i] * 2 + direction[i]) * 2 + vv] += 1
                    side_bytes[(instance[i] * 2 + direction[i]) * 2 + vv] += wire
                    if vv == VERDICT_DENY:
                        dkey = tkey[j] if needs[j] else tuple_key(
                            &c.src[16 * i], &c.dst[16 * i], c.ip_version[i], c.protocol[i],
                            c.l4[i], c.dport[i], c.icmp_type[i], c.icmp_code[i])
                        dslot = dkey & dmask
                        while slot_index[dslot] >= 0 and slot_key[dslot] != dkey:
                            dslot = (dslot + 1) & dmask
                        if slot_index[dslot] < 0:
                            slot_index[dslot] = distinct
                            slot_key[dslot] = dkey
                            out_key[distinct] = dkey
                            out_count[distinct] = 0
                            out_row[distinct] = i
                            distinct += 1
                        out_count[slot_index[dslot]] += 1
                verdict[i] = vv
                reason[i] = rs
                if c.ts_ns[i] < run_start or c.ts_ns[i] >= run_end:
                    # the packet leaves the time line's current bucket: the run so far is
                    # added to its row, and the run restarts in the packet's bucket
                    _run_flush(&timeline[0], run_row, v_packets, run_base)
                    run_row = _bucket_of(c.ts_ns[i], timeline_shift, &run_start, &run_end)
                    run_row -= timeline_low
                v_packets[vv] += 1
                v_bytes[vv] += wire
                r_packets[rs] += 1
    with nogil:
        tuples_reset(&slot_key[0], &slot_index[0], dmask, &out_key[0], distinct)
        _run_flush(&timeline[0], run_row, v_packets, run_base)
        for k in range(5):
            verdict_packets[k] += v_packets[k]
            verdict_bytes[k] += v_bytes[k]
            reason_packets[k] += r_packets[k]
    stats.bytes += total_bytes
    if stateful:
        stats.midstream += mids
    return distinct
