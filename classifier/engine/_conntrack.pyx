"""Connection tracking over packet batches (spec section 4): two open-addressing hash tables.

Design note
-----------
What it is. A `Tracker` keeps, across the batches of one capture, the state of section 4:
live connections (the flow table) and the latest first fragment of each recent datagram (the
fragment table). Two calls use it, both nogil loops over the batch in capture order:
`join_fragments` (before classification: non-first fragments get their first fragment's
upper-layer protocol, ports / ICMP type, code and identifier, and an error's quoted header)
and `apply` (after the engine's stateless verdicts: established / related overrides and
connection creation).

Flow table. A numpy structured array `flows` (FLOW_DTYPE, the C struct `Flow`): one 64-byte
record, one cache line, per slot; capacity a power of two:
  key    5 x uint64: meta, lo endpoint address (2 big-endian words), hi endpoint address;
         meta = version << 56 | protocol << 48 | kind << 40 | port_lo << 16 | port_hi
         (kind: 1 ports, 2 ICMP query with the identifier in port_lo, 3 addresses only).
         Endpoints are ordered by (address, port) so both directions share a key.
  last   effective time of the connection's last allowed packet (ns)
  rule   global index of the rule that created the connection (-1: none)
  used   1 = the slot holds a key (alive or expired), 0 = never used
  flags  FIN/RST seen, both directions seen, initiator is the lo endpoint, created mid-stream
The timeout is a function of (protocol, kind, flags), so expiry needs no timer: a slot is
expired when t - last > timeout, and since the clock never goes back, expired stays expired.
Linear probing; nothing is ever deleted (a probe chain never breaks), but an insertion reuses
the first expired slot of its chain. Invariant: occupied slots <= capacity / 2. Before each
batch the table makes room for every packet that could create a connection (the allowed
ones): if that could break the invariant, the live entries are rehashed into a table of at
least 4 x (live + batch allowance) slots. So the nogil loops never allocate.

`apply` runs in two passes: the first computes each packet's lookup key and hash
sequentially, the second walks the packets in order and prefetches the slot of the packet
PREFETCH_AHEAD places ahead: with many connections the table outgrows the caches, and a
cache miss per packet would otherwise set the pace.

Fragment table. Same scheme (`fragments`, FRAGMENT_DTYPE, struct `Fragment`, 128 bytes),
keyed by (version, datagram protocol, IP identification, src, dst) in that order (not
canonical: a datagram has one direction); the datagram protocol is the batch's
`frag_next_header` (IPv6: the fragment header's Next Header, the same in every fragment even
when further extension headers follow it in the first). Values: effective time, the first
fragment's upper-layer protocol, the l4 bits lent (ports, ICMP type/code, identifier, an
error's quoted header) and those fields. An entry older than 30 s is dead and its slot
reusable.

The clock. Each pass reads a packet's time from `ts_ns`, or from `times` when given: a
tracker that sees only some of a capture's packets (one group of keys of the scale-out,
classifier.scale) is given their effective times, the running maximum over the whole capture,
which its own packets alone do not tell.

Memory: 64 bytes per flow slot, so 128 to 256 bytes per live connection (plus the allowance of the
batch in flight), and 57 bytes of scratch per packet of the batch in `apply`.
Thread safety: none; one tracker per capture stream. The pure-Python twin `_conntrack_py`
mirrors this file (same tables, same hash, same slots) without the prefetching pass.
"""

import numpy as np

from libc.stdint cimport INT64_MIN, int8_t, int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t

from classifier._codes cimport (
    FRAGMENT_FIRST,
    FRAGMENT_LATER,
    FRAGMENT_WINDOW_NS,
    L4_ICMP,
    L4_ICMP_ID,
    L4_ICMP_NO_CODE,
    L4_INNER,
    L4_INNER_ICMP_ID,
    L4_INNER_PORTS,
    L4_PORTS,
    L4_TCP_FLAGS,
    REASON_ESTABLISHED,
    REASON_RELATED,
    STATUS_L4_TRUNCATED,
    STATUS_OK,
    VERDICT_ALLOW,
    VERDICT_DENY,
)
from classifier.engine import layouts
from classifier.engine.layouts import FLOW_DTYPE, FRAGMENT_DTYPE

cdef int64_t CLOCK_START = INT64_MIN


def _capacity_for(Py_ssize_t entries):
    cdef Py_ssize_t capacity = MIN_CAPACITY
    while capacity < 4 * entries:
        capacity *= 2
    return capacity


if not (
    FLOW_DTYPE.itemsize == sizeof(Flow) == 64
    and FRAGMENT_DTYPE.itemsize == sizeof(Fragment) == 128
    and (KIND_PORTS, KIND_ICMP, KIND_ADDR)
    == (layouts.KIND_PORTS, layouts.KIND_ICMP, layouts.KIND_ADDR)
    and (FLAG_FIN_RST, FLAG_BOTH, FLAG_INIT_LOW, FLAG_MIDSTREAM)
    == (layouts.FLAG_FIN_RST, layouts.FLAG_BOTH, layouts.FLAG_INIT_LOW, layouts.FLAG_MIDSTREAM)
    and MIN_CAPACITY == layouts.MIN_CAPACITY and CLOCK_START == layouts.CLOCK_START
):
    raise ImportError("classifier.engine._conntrack disagrees with its layouts module: rebuild")


cdef class Tracker:
    """Connection state and the first-fragment table, carried across batches (fields: the
    .pxd, shared with the fused pass)."""

    def __init__(self, Py_ssize_t capacity=MIN_CAPACITY):
        self.clock_ns = CLOCK_START
        self.fragment_clock_ns = CLOCK_START
        self.connections_created = 0
        self.midstream_created = 0
        self._alloc_flows(_capacity_for(capacity // 4))
        self._alloc_fragments(_capacity_for(capacity // 4))

    # --- flow table ---------------------------------------------------------------------

    def _alloc_flows(self, Py_ssize_t capacity):
        self.flows = np.zeros(capacity, FLOW_DTYPE)
        cdef uint8_t[::1] raw = self.flows.view(np.uint8)
        self._flows = <Flow*>&raw[0]
        self._flow_mask = capacity - 1
        self.flow_count = 0

    cdef Py_ssize_t _flow_find(
        self, const uint64_t* w, uint64_t h, int64_t t, Py_ssize_t* free
    ) noexcept nogil:
        return flow_find(self._flows, self._flow_mask, w, h, t, free)

    def _flow_reserve(self, Py_ssize_t more, int64_t t):
        """Room for `more` insertions at load <= 1/2; `t` = the batch's first effective time
        (what is expired then stays expired)."""
        cdef Py_ssize_t capacity = self._flow_mask + 1
        if self.flow_count + more <= capacity // 2:
            return
        cdef Py_ssize_t i, j, live = 0
        for i in range(capacity):
            if self._flows[i].used and not _flow_expired(&self._flows[i], t):
                live += 1
        old_array = self.flows  # keeps the old data alive while it is copied
        cdef Flow* old = self._flows
        self._alloc_flows(max(capacity, _capacity_for(live + more)))
        with nogil:
            for i in range(capacity):
                if not old[i].used or _flow_expired(&old[i], t):
                    continue
                j = <Py_ssize_t>(_hash(old[i].key) & <uint64_t>self._flow_mask)
                while self._flows[j].used:
                    j = (j + 1) & self._flow_mask
                self._flows[j] = old[i]
        self.flow_count = live
        del old_array

    # --- fragment table -----------------------------------------------------------------

    def _alloc_fragments(self, Py_ssize_t capacity):
        self.fragments = np.zeros(capacity, FRAGMENT_DTYPE)
        cdef uint8_t[::1] raw = self.fragments.view(np.uint8)
        self._frags = <Fragment*>&raw[0]
        self._frag_mask = capacity - 1
        self.frag_count = 0

    cdef Py_ssize_t _frag_find(self, const uint64_t* w, int64_t t, Py_ssize_t* free) noexcept nogil:
        cdef Py_ssize_t i = <Py_ssize_t>(_hash(w) & <uint64_t>self._frag_mask)
        cdef Fragment* f
        free[0] = -1
        while True:
            f = &self._frags[i]
            if not f.used:
                break
            if _same(f.key, w):
                free[0] = i
                return i
            if free[0] < 0 and t - f.ts > FRAGMENT_WINDOW_NS:
                free[0] = i
            i = (i + 1) & self._frag_mask
        if free[0] < 0:
            free[0] = i
        return -1

    def _frag_reserve(self, Py_ssize_t more, int64_t t):
        cdef Py_ssize_t capacity = self._frag_mask + 1
        if self.frag_count + more <= capacity // 2:
            return
        cdef Py_ssize_t i, j, live = 0
        for i in range(capacity):
            if self._frags[i].used and t - self._frags[i].ts <= FRAGMENT_WINDOW_NS:
                live += 1
        old_array = self.fragments
        cdef Fragment* old = self._frags
        self._alloc_fragments(max(capacity, _capacity_for(live + more)))
        with nogil:
            for i in range(capacity):
                if not old[i].used or t - old[i].ts > FRAGMENT_WINDOW_NS:
                    continue
                j = <Py_ssize_t>(_hash(old[i].key) & <uint64_t>self._frag_mask)
                while self._frags[j].used:
                    j = (j + 1) & self._frag_mask
                self._frags[j] = old[i]
        self.frag_count = live
        del old_array

    # --- the two passes -----------------------------------------------------------------

    def join_fragments(self, batch, times=None):
        cdef const int64_t[::1] ts = batch.ts_ns if times is None else times
        cdef const uint8_t[::1] status = batch.status
        cdef const uint8_t[::1] version = batch.ip_version
        cdef const uint8_t[:, ::1] src = batch.src
        cdef const uint8_t[:, ::1] dst = batch.dst
        cdef uint8_t[::1] protocol = batch.protocol
        cdef const uint8_t[::1] next_header = batch.frag_next_header
        cdef const uint8_t[::1] fragment = batch.fragment
        cdef const uint32_t[::1] ip_id = batch.ip_id
        cdef uint8_t[::1] l4 = batch.l4
        cdef uint16_t[::1] sport = batch.sport
        cdef uint16_t[::1] dport = batch.dport
        cdef uint8_t[::1] icmp_type = batch.icmp_type
        cdef uint8_t[::1] icmp_code = batch.icmp_code
        cdef uint16_t[::1] icmp_id = batch.icmp_id
        cdef uint8_t[::1] tcp_flags = batch.tcp_flags
        cdef uint8_t[::1] inner_protocol = batch.inner_protocol
        cdef uint8_t[:, ::1] inner_src = batch.inner_src
        cdef uint8_t[:, ::1] inner_dst = batch.inner_dst
        cdef uint16_t[::1] inner_sport = batch.inner_sport
        cdef uint16_t[::1] inner_dport = batch.inner_dport
        cdef uint8_t[::1] inner_icmp_type = batch.inner_icmp_type
        cdef uint16_t[::1] inner_icmp_id = batch.inner_icmp_id
        cdef Py_ssize_t n = ts.shape[0], i, found, slot, firsts = 0
        cdef int64_t t
        cdef int k
        # everything a first fragment lends (ports, ICMP fields, an error's quoted header)
        cdef uint8_t lent = (L4_PORTS | L4_ICMP | L4_ICMP_ID | L4_ICMP_NO_CODE | L4_INNER
                             | L4_INNER_PORTS | L4_INNER_ICMP_ID)
        cdef Key key
        cdef Fragment* g
        if n == 0:
            return
        for i in range(n):
            firsts += fragment[i] == FRAGMENT_FIRST
        self._frag_reserve(firsts, max(ts[0], self.fragment_clock_ns))
        with nogil:
            for i in range(n):
                t = ts[i] if ts[i] > self.fragment_clock_ns else self.fragment_clock_ns
                self.fragment_clock_ns = t
                if fragment[i] == 0 or (
                    status[i] != STATUS_OK and status[i] != STATUS_L4_TRUNCATED
                ):
                    continue
                key.w[0] = ((<uint64_t>version[i] << 56) | (<uint64_t>next_header[i] << 48)
                            | ip_id[i])
                key.w[1] = _word(&src[i, 0])
                key.w[2] = _word(&src[i, 8])
                key.w[3] = _word(&dst[i, 0])
                key.w[4] = _word(&dst[i, 8])
                found = self._frag_find(key.w, t, &slot)
                if fragment[i] == FRAGMENT_FIRST:
                    g = &self._frags[slot]
                    if found < 0 and not g.used:
                        self.frag_count += 1
                    g.used = 1
                    _copy_key(g.key, key.w)
                    g.ts = t
                    g.l4 = l4[i] & lent
                    g.sport = sport[i]
                    g.dport = dport[i]
                    g.icmp_id = icmp_id[i]
                    g.icmp_type = icmp_type[i]
                    g.icmp_code = icmp_code[i]
                    g.protocol = protocol[i]
                    g.inner_protocol = inner_protocol[i]
                    g.inner_sport = inner_sport[i]
                    g.inner_dport = inner_dport[i]
                    g.inner_icmp_type = inner_icmp_type[i]
                    g.inner_icmp_id = inner_icmp_id[i]
                    for k in range(16):
                        g.inner_src[k] = inner_src[i, k]
                        g.inner_dst[k] = inner_dst[i, k]
                elif fragment[i] == FRAGMENT_LATER and found >= 0:
                    g = &self._frags[found]
                    if t - g.ts > FRAGMENT_WINDOW_NS:
                        continue
                    l4[i] = (l4[i] & ~(lent | L4_TCP_FLAGS)) | g.l4
                    sport[i] = g.sport
                    dport[i] = g.dport
                    icmp_id[i] = g.icmp_id
                    icmp_type[i] = g.icmp_type
                    icmp_code[i] = g.icmp_code
                    tcp_flags[i] = 0
                    protocol[i] = g.protocol
                    inner_protocol[i] = g.inner_protocol
                    inner_sport[i] = g.inner_sport
                    inner_dport[i] = g.inner_dport
                    inner_icmp_type[i] = g.inner_icmp_type
                    inner_icmp_id[i] = g.inner_icmp_id
                    for k in range(16):
                        inner_src[i, k] = g.inner_src[k]
                        inner_dst[i, k] = g.inner_dst[k]

    def apply(
        self,
        batch,
        uint8_t[::1] verdict,
        uint8_t[::1] reason,
        int32_t[::1] rule,
        int32_t[::1] side_instance,
        uint8_t[::1] side_direction,
        const int32_t[::1] new_side_instance,
        const uint8_t[::1] new_side_direction,
        int8_t[::1] created,
        int8_t[::1] midstream,
        times=None,
    ):
        cdef Columns c
        cdef const int64_t[::1] ts = batch.ts_ns if times is None else times
        cdef Py_ssize_t n = verdict.shape[0], i, found, slot, allowed = 0
        cdef int64_t t
        cdef uint8_t state_reason
        cdef bint mid, live
        cdef Flow* f
        cdef Key* key
        if n == 0:
            return
        columns_of(batch, &c)
        c.ts_ns = &ts[0]  # the effective times, when given (the scale-out's groups)
        for i in range(n):
            allowed += verdict[i] == VERDICT_ALLOW
        self._flow_reserve(allowed, max(c.ts_ns[0], self.clock_ns))
        # Pass 1 (sequential): what each packet looks up. Pass 2 then prefetches the table
        # slot of packet i + PREFETCH_AHEAD while it handles packet i: with many connections
        # the table is far bigger than the caches, and one miss per packet would dominate.
        scratch = np.empty(n * sizeof(Key) + 1, np.uint8)
        cdef uint8_t[::1] scratch_view = scratch
        cdef Key* keys = <Key*>&scratch_view[0]
        cdef uint8_t[::1] lookup = np.zeros(n, np.uint8)  # LOOKUP_*
        cdef uint64_t[::1] home = np.zeros(n, np.uint64)  # the key's hash
        with nogil:
            for i in range(n):
                if verdict[i] == VERDICT_ALLOW or verdict[i] == VERDICT_DENY:
                    lookup[i] = packet_key(&keys[i], &c, i)
                    if lookup[i]:
                        home[i] = _hash(keys[i].w)

            for i in range(n):
                if i + PREFETCH_AHEAD < n and lookup[i + PREFETCH_AHEAD]:
                    __builtin_prefetch(
                        &self._flows[home[i + PREFETCH_AHEAD] & <uint64_t>self._flow_mask]
                    )
                t = c.ts_ns[i] if c.ts_ns[i] > self.clock_ns else self.clock_ns
                self.clock_ns = t
                created[i] = 0
                midstream[i] = 0
                if not lookup[i]:
                    continue  # not judged (unmanaged, ...), or an ICMP message with no key
                state_reason = 0
                key = &keys[i]
                found = flow_find(self._flows, self._flow_mask, key.w, home[i], t, &slot)
                live = found >= 0 and not _flow_expired(&self._flows[found], t)
                if lookup[i] == LOOKUP_QUOTED:
                    # related: the quoted header alone decides; never creates or refreshes
                    if live:
                        state_reason = REASON_RELATED
                elif live:
                    flow_refresh(&self._flows[found], key, t, is_closing(&c, i))
                    state_reason = REASON_ESTABLISHED
                elif verdict[i] == VERDICT_ALLOW:
                    f = &self._flows[slot]
                    if not f.used:
                        self.flow_count += 1
                    mid = is_midstream(&c, i)
                    flow_create(f, key, t, is_closing(&c, i), mid, rule[i])
                    created[i] = 1
                    midstream[i] = mid
                    self.connections_created += 1
                    self.midstream_created += mid
                if state_reason:
                    verdict[i] = VERDICT_ALLOW
                    reason[i] = state_reason
                    rule[i] = -1
                    side_instance[i] = new_side_instance[i]
                    side_direction[i] = new_side_direction[i]

    # --- inspection ---------------------------------------------------------------------

    def live_connections(self):
        """Connections alive at the clock (the latest timestamp seen)."""
        cdef Py_ssize_t i, live = 0
        for i in range(self._flow_mask + 1):
            if self._flows[i].used and not _flow_expired(&self._flows[i], self.clock_ns):
                live += 1
        return live

    @property
    def capacity(self):
        return self._flow_mask + 1
