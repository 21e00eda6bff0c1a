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

The connection limit (robustness contract, section 4). `limit` connections are tracked at
once at most. Each tracked connection has a creation number `seq` (in its slot: -1 once it
is forgotten) and an entry (last, seq, slot) in one of five binary min-heaps ordered by
(last, seq), one per timeout class (flow_class: TCP, TCP after FIN/RST, ICMP, other one-way,
other both ways). Within a class every connection has the same timeout, so a heap's head is
its class's oldest connection and also its first to expire. The heaps are lazy: a refresh
does not touch them (an O(1) hot path); an entry whose connection was refreshed since is
re-keyed when it reaches the head, one whose connection is gone (forgotten, replaced, or
moved to another class, which pushed a new entry there) is discarded. `admit`, before each
creation: the slot's own expired connection is dropped; then while `limit` are tracked, the
five heads are looked at: an expired head is dropped uncounted, else the oldest (last, seq)
of them is evicted (flag FLAG_GONE: expired whatever the time, so its probe chain stays whole
and its slot is reusable). O(log n) per creation, amortised over the refreshes. The heaps are
rebuilt when the table is rehashed (slots move) and compacted when stale entries outnumber
the tracked connections; their arrays are grown before each batch (`_heap_reserve`), never
inside the nogil loops. With the limit, the table never holds more than 4 x (limit + batch)
slots.

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
batch in flight), 24 to 48 bytes of heap entries per tracked connection, and 57 bytes of scratch
per packet of the batch in `apply`. The fragment table holds at most `max_fragments` entries
(a first fragment beyond is not remembered: `fragments_dropped`).
Thread safety: none; one tracker per capture stream. The pure-Python twin `_conntrack_py`
mirrors this file (same tables, same hash, same slots) without the prefetching pass.
"""

import mmap

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
from classifier import limits
from classifier.engine import layouts
from classifier.engine.layouts import FLOW_DTYPE, FLOWSTAT_DTYPE, FRAGMENT_DTYPE, RECORD_DTYPE

cdef int64_t CLOCK_START = INT64_MIN


def _capacity_for(Py_ssize_t entries):
    cdef Py_ssize_t capacity = MIN_CAPACITY
    while capacity < 4 * entries:
        capacity *= 2
    return capacity


cdef inline bint _before(const HeapEntry* a, const HeapEntry* b) noexcept nogil:
    return a.last < b.last or (a.last == b.last and a.seq < b.seq)


cdef void _sift_down(HeapEntry* h, Py_ssize_t n, Py_ssize_t i) noexcept nogil:
    cdef HeapEntry e = h[i]
    cdef Py_ssize_t child
    while True:
        child = 2 * i + 1
        if child >= n:
            break
        if child + 1 < n and _before(&h[child + 1], &h[child]):
            child += 1
        if not _before(&h[child], &e):
            break
        h[i] = h[child]
        i = child
    h[i] = e


cdef void _sift_up(HeapEntry* h, Py_ssize_t i) noexcept nogil:
    cdef HeapEntry e = h[i]
    cdef Py_ssize_t parent
    while i > 0:
        parent = (i - 1) // 2
        if not _before(&e, &h[parent]):
            break
        h[i] = h[parent]
        i = parent
    h[i] = e


cdef void _heapify(HeapEntry* h, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n // 2 - 1, -1, -1):
        _sift_down(h, n, i)


if not (
    FLOW_DTYPE.itemsize == sizeof(Flow) == 64
    and FRAGMENT_DTYPE.itemsize == sizeof(Fragment) == 128
    and (KIND_PORTS, KIND_ICMP, KIND_ADDR)
    == (layouts.KIND_PORTS, layouts.KIND_ICMP, layouts.KIND_ADDR)
    and (FLAG_FIN_RST, FLAG_BOTH, FLAG_INIT_LOW, FLAG_MIDSTREAM, FLAG_GONE)
    == (layouts.FLAG_FIN_RST, layouts.FLAG_BOTH, layouts.FLAG_INIT_LOW, layouts.FLAG_MIDSTREAM,
        layouts.FLAG_GONE)
    and (CLASS_TCP, CLASS_TCP_CLOSING, CLASS_ICMP, CLASS_ONE_WAY, CLASS_BOTH, N_CLASSES)
    == (layouts.CLASS_TCP, layouts.CLASS_TCP_CLOSING, layouts.CLASS_ICMP, layouts.CLASS_ONE_WAY,
        layouts.CLASS_BOTH, layouts.N_CLASSES)
    and sizeof(HeapEntry) == 24
    and FLOWSTAT_DTYPE.itemsize == sizeof(FlowStat) == 64
    and RECORD_DTYPE.itemsize == sizeof(FlowRecord) == 128
    and MIN_CAPACITY == layouts.MIN_CAPACITY and CLOCK_START == layouts.CLOCK_START
):
    raise ImportError("classifier.engine._conntrack disagrees with its layouts module: rebuild")


HUGE_PAGE = 1 << 21


def _table_zeros(Py_ssize_t count, dtype):
    """A zeroed array for a table probed at random (the flow table): from 2 MiB up, in a
    mapping of its own, asked for 2 MiB pages before its first touch. With 4 KiB pages a
    table past the TLB's reach costs a page walk on nearly every probe, which the probes'
    prefetches do not hide (RESULTS.md, section 12); where the kernel grants no huge pages
    the array is simply zeroed memory."""
    dtype = np.dtype(dtype)
    cdef Py_ssize_t size = count * dtype.itemsize
    if size < HUGE_PAGE or not hasattr(mmap, "MADV_HUGEPAGE"):
        return np.zeros(count, dtype)
    area = mmap.mmap(-1, size + HUGE_PAGE, flags=mmap.MAP_PRIVATE)  # shared memory: no THP
    raw = np.frombuffer(area, np.uint8)
    start = (-raw.ctypes.data) % HUGE_PAGE
    try:
        area.madvise(mmap.MADV_HUGEPAGE, start, size)
    except OSError:  # a kernel without transparent huge pages: small pages, same table
        pass
    return raw[start : start + size].view(dtype)


cdef class Tracker:
    """Connection state and the first-fragment table, carried across batches (fields: the
    .pxd, shared with the fused pass)."""

    def __init__(
        self,
        Py_ssize_t capacity=MIN_CAPACITY,
        int64_t limit=limits.DEFAULT_MAX_CONNECTIONS,
        int64_t max_fragments=limits.MAX_FRAGMENTS,
        bint record_flows=False,
    ):
        self.clock_ns = CLOCK_START
        self.fragment_clock_ns = CLOCK_START
        self.connections_created = 0
        self.midstream_created = 0
        self.limit = max(limit, 1)
        self.evicted = 0
        self.tracked = 0
        self.next_seq = 0
        self.max_fragments = max(max_fragments, 1)
        self.fragments_dropped = 0
        self.record_flows = record_flows
        self.file_number = 0
        self.flowstats = None
        self._stats = NULL
        self._record_array = np.zeros(0, RECORD_DTYPE)
        self._records = NULL
        self._n_records = 0
        self._record_cap = 0
        self._heap_arrays = [None] * N_CLASSES
        cdef int c
        for c in range(N_CLASSES):
            self._heap_size[c] = 0
            self._heap_cap[c] = 0
            self._heap[c] = NULL
        self._alloc_flows(_capacity_for(min(capacity, self.limit) // 4))
        self._alloc_fragments(_capacity_for(min(capacity, self.max_fragments) // 4))
        self._heap_reserve(MIN_CAPACITY)

    # --- flow table ---------------------------------------------------------------------

    def _alloc_flows(self, Py_ssize_t capacity):
        self.flows = _table_zeros(capacity, FLOW_DTYPE)
        cdef uint8_t[::1] raw = self.flows.view(np.uint8)
        self._flows = <Flow*>&raw[0]
        self.flow_tags = np.zeros(capacity, np.uint8)
        cdef uint8_t[::1] tags = self.flow_tags
        self._tags = &tags[0]
        self._flow_mask = capacity - 1
        self.flow_count = 0
        cdef uint8_t[::1] stats
        if self.record_flows:
            self.flowstats = _table_zeros(capacity, FLOWSTAT_DTYPE)
            stats = self.flowstats.view(np.uint8)
            self._stats = <FlowStat*>&stats[0]

    cdef Py_ssize_t _flow_find(
        self, const uint64_t* w, uint64_t h, int64_t t, Py_ssize_t* free
    ) noexcept nogil:
        return flow_find(self._flows, self._flow_mask, w, h, t, free)

    def _flow_reserve(self, Py_ssize_t more, int64_t t):
        """Room for `more` insertions at load <= 1/2; `t` = the batch's first effective time
        (what is expired then stays expired)."""
        if self.flow_count + more <= (self._flow_mask + 1) // 2:
            return
        self.rehash(more, t)

    def rehash(self, Py_ssize_t more, int64_t t):
        """The table rebuilt at time `t` with room for `more` insertions: what has expired is
        dropped (forgotten uncounted: expired connections are dead), the eviction heaps are
        rebuilt from what remains."""
        cdef Py_ssize_t capacity = self._flow_mask + 1
        cdef Py_ssize_t i, j, live = 0
        for i in range(capacity):
            if self._flows[i].used and not _flow_expired(&self._flows[i], t):
                live += 1
        cdef uint64_t h
        old_array = self.flows  # keeps the old data alive while it is copied
        old_stats_array = self.flowstats
        cdef Flow* old = self._flows
        cdef FlowStat* old_stats = self._stats
        if old_stats != NULL:
            self._record_reserve(self.tracked)
        self._alloc_flows(max(capacity, _capacity_for(live + more)))
        with nogil:
            for i in range(capacity):
                if not old[i].used:
                    continue
                if _flow_expired(&old[i], t):
                    if old_stats != NULL and old[i].seq >= 0:
                        self._emit(&old[i], &old_stats[i])  # dropped: its record is done
                    continue
                h = _hash(old[i].key)
                j = <Py_ssize_t>(h & <uint64_t>self._flow_mask)
                while self._flows[j].used:
                    j = (j + 1) & self._flow_mask
                self._flows[j] = old[i]
                self._tags[j] = flow_tag(h)
                if old_stats != NULL:
                    self._stats[j] = old_stats[i]
        self.flow_count = live
        del old_array, old_stats_array
        self._heaps_rebuild()

    # --- the eviction heaps ---------------------------------------------------------------

    def _record_reserve(self, Py_ssize_t more):
        """Room for `more` flow records (each creation ends at most two connections)."""
        if self._n_records + more <= self._record_cap:
            return
        grown = np.zeros(max(2 * self._record_cap, self._n_records + more, 64), RECORD_DTYPE)
        grown[: self._n_records] = self._record_array[: self._n_records]
        cdef uint8_t[::1] raw = grown.view(np.uint8)
        self._record_array = grown
        self._records = <FlowRecord*>&raw[0]
        self._record_cap = len(grown)

    def take_records(self):
        """The records of the connections that left the table since the last call (a
        RECORD_DTYPE array, in the order they left)."""
        taken = self._record_array[: self._n_records].copy()
        self._n_records = 0
        return taken

    def finish_records(self):
        """The end of the run: the records of every connection still tracked (then taken
        with take_records); they stay in the table."""
        if self._stats == NULL:
            return
        self._record_reserve(self.tracked)
        cdef Py_ssize_t i
        with nogil:
            for i in range(self._flow_mask + 1):
                if self._flows[i].used and self._flows[i].seq >= 0:
                    self._emit(&self._flows[i], &self._stats[i])

    cdef void _emit(self, const Flow* f, const FlowStat* st) noexcept nogil:
        cdef FlowRecord* r = &self._records[self._n_records]
        r.flow = f[0]
        r.stat = st[0]
        self._n_records += 1

    def _heap_reserve(self, Py_ssize_t pushes):
        """Room for `pushes` more entries in every heap (the nogil loops never allocate);
        first the heaps are compacted when stale entries outnumber the tracked ones. With
        flow records, room for `pushes` records too."""
        cdef Py_ssize_t total = 0, size
        cdef int c
        if self._stats != NULL:
            self._record_reserve(pushes)
        for c in range(N_CLASSES):
            total += self._heap_size[c]
        if total > 2 * self.tracked + 1024:
            self._heaps_compact()
        for c in range(N_CLASSES):
            size = self._heap_size[c]
            if size + pushes <= self._heap_cap[c]:
                continue
            grown = np.zeros((max(2 * self._heap_cap[c], size + pushes, MIN_CAPACITY), 3),
                             np.int64)
            if size:
                grown[:size] = self._heap_arrays[c][:size]
            self._set_heap(c, grown)

    def _set_heap(self, int c, array):
        cdef int64_t[:, ::1] view = array
        self._heap_arrays[c] = array
        self._heap[c] = <HeapEntry*>&view[0, 0]
        self._heap_cap[c] = view.shape[0]

    def _heaps_compact(self):
        """Keep one entry per tracked connection, keyed by its last packet, in its class."""
        cdef int c
        cdef Py_ssize_t i, kept
        cdef HeapEntry* h
        cdef Flow* f
        with nogil:
            for c in range(N_CLASSES):
                h = self._heap[c]
                kept = 0
                for i in range(self._heap_size[c]):
                    f = &self._flows[h[i].slot]
                    if f.seq == h[i].seq and flow_class(f) == c:
                        h[kept] = h[i]
                        h[kept].last = f.last
                        kept += 1
                self._heap_size[c] = kept
                _heapify(h, kept)

    def _heaps_rebuild(self):
        """The heaps of a rehashed table (every connection in it is alive and tracked)."""
        cdef int c
        for c in range(N_CLASSES):
            self._heap_size[c] = 0
        self._heap_reserve(self.flow_count)
        cdef Py_ssize_t i, k
        cdef Flow* f
        with nogil:
            for i in range(self._flow_mask + 1):
                f = &self._flows[i]
                if not f.used:
                    continue
                c = flow_class(f)
                k = self._heap_size[c]
                self._heap[c][k].last = f.last
                self._heap[c][k].seq = f.seq
                self._heap[c][k].slot = i
                self._heap_size[c] = k + 1
            for c in range(N_CLASSES):
                _heapify(self._heap[c], self._heap_size[c])
        self.tracked = self.flow_count

    cdef void _heap_push(self, int c, int64_t last, int64_t seq, int64_t slot) noexcept nogil:
        cdef Py_ssize_t i = self._heap_size[c]
        cdef HeapEntry* h = self._heap[c]
        h[i].last = last
        h[i].seq = seq
        h[i].slot = slot
        self._heap_size[c] = i + 1
        _sift_up(h, i)

    cdef void _heap_pop(self, int c) noexcept nogil:
        cdef Py_ssize_t n = self._heap_size[c] - 1
        cdef HeapEntry* h = self._heap[c]
        self._heap_size[c] = n
        if n > 0:
            h[0] = h[n]
            _sift_down(h, n, 0)

    cdef Py_ssize_t _heap_head(self, int c) noexcept nogil:
        """The slot of class c's tracked connection with the oldest last packet (ties: the
        one created first), or -1: stale entries on the way are dropped (a connection
        forgotten, replaced or moved to another class) or re-keyed (refreshed since)."""
        cdef HeapEntry* h = self._heap[c]
        cdef Flow* f
        while self._heap_size[c] > 0:
            f = &self._flows[h[0].slot]
            if f.seq != h[0].seq or flow_class(f) != c:
                self._heap_pop(c)
            elif f.last != h[0].last:
                h[0].last = f.last
                _sift_down(h, self._heap_size[c], 0)
            else:
                return h[0].slot
        return -1

    cdef void refresh(
        self, Py_ssize_t found, const Key* key, int64_t t, bint closing, int64_t ts,
        uint32_t wire
    ) noexcept nogil:
        """flow_refresh, and the connection's entry in its new heap when its class changes
        (a FIN/RST shortens a TCP timeout, a reply lengthens a one-way one); with flow
        records, the packet (recorded time `ts`, `wire` bytes) counted on its side."""
        cdef Flow* f = &self._flows[found]
        cdef FlowStat* st
        cdef uint8_t flags = f.flags
        cdef int before = flow_class(f)
        flow_refresh(f, key, t, closing)
        if f.flags != flags and flow_class(f) != before:
            self._heap_push(flow_class(f), t, f.seq, found)
        if self._stats != NULL:
            st = &self._stats[found]
            if key.from_low == ((f.flags & FLAG_INIT_LOW) != 0):
                st.initiator_packets += 1
                st.initiator_bytes += wire
            else:
                st.responder_packets += 1
                st.responder_bytes += wire
            if ts > st.last_ns:
                st.last_ns = ts

    cdef void admit(self, Py_ssize_t slot, int64_t t) noexcept nogil:
        """Before a connection is created in `slot` at time t (robustness contract, section
        4): the expired connection the slot may hold is dropped; then, while `limit`
        connections are tracked, an expired one is dropped (uncounted) if there is one, else
        the alive one whose last packet is the oldest (ties: created first) is evicted."""
        cdef Flow* f = &self._flows[slot]
        cdef Flow* g
        cdef Flow* b
        cdef Py_ssize_t s, best
        cdef int c, best_class
        cdef bint dropped
        if f.used and f.seq >= 0:
            if self._stats != NULL:
                self._emit(f, &self._stats[slot])
            f.seq = -1
            self.tracked -= 1
        while self.tracked >= self.limit:
            best = -1
            best_class = 0
            dropped = False
            for c in range(N_CLASSES):
                s = self._heap_head(c)
                if s < 0:
                    continue
                g = &self._flows[s]
                if _flow_expired(g, t):
                    self._heap_pop(c)
                    if self._stats != NULL:
                        self._emit(g, &self._stats[s])
                    g.seq = -1
                    self.tracked -= 1
                    dropped = True
                    break
                if best >= 0:
                    b = &self._flows[best]
                    if b.last < g.last or (b.last == g.last and b.seq < g.seq):
                        continue
                best = s
                best_class = c
            if dropped:
                continue
            if best < 0:
                break  # cannot happen: every tracked connection has an entry
            self._heap_pop(best_class)
            g = &self._flows[best]
            if self._stats != NULL:
                self._emit(g, &self._stats[best])
            g.seq = -1
            g.flags |= FLAG_GONE
            self.tracked -= 1
            self.evicted += 1

    cdef void created(
        self, Py_ssize_t slot, int64_t ts, uint32_t wire, int64_t index, int32_t instance,
        uint8_t direction
    ) noexcept nogil:
        """After flow_create in `slot`: the new connection is tracked; with flow records, its
        counters start with the creating packet (recorded time `ts`, `wire` bytes, `index`
        in the current file, its reported side)."""
        cdef Flow* f = &self._flows[slot]
        cdef FlowStat* st
        f.seq = self.next_seq
        self.next_seq += 1
        self.tracked += 1
        self._heap_push(flow_class(f), f.last, f.seq, slot)
        if self._stats != NULL:
            st = &self._stats[slot]
            st.first_ns = ts
            st.last_ns = ts
            st.index = index
            st.initiator_packets = 1
            st.initiator_bytes = wire
            st.responder_packets = 0
            st.responder_bytes = 0
            st.file = self.file_number
            st.instance = instance
            f.direction = direction

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
        """Room for `more` insertions at load <= 1/2, at most `max_fragments` entries: the
        expired ones are dropped when the bound is near."""
        cdef Py_ssize_t capacity = self._frag_mask + 1
        if self.frag_count + more <= min(capacity // 2, self.max_fragments):
            return
        cdef Py_ssize_t i, j, live = 0
        for i in range(capacity):
            if self._frags[i].used and t - self._frags[i].ts <= FRAGMENT_WINDOW_NS:
                live += 1
        if live == self.frag_count and self.frag_count + more <= capacity // 2:
            return  # every entry is live: nothing to drop, room enough
        old_array = self.fragments
        cdef Fragment* old = self._frags
        self._alloc_fragments(
            max(capacity, _capacity_for(min(live + more, self.max_fragments))))
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
                        if self.frag_count >= self.max_fragments:
                            self.fragments_dropped += 1  # the table is full: not remembered
                            continue
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
        self._heap_reserve(n + allowed)  # creations and class changes
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
                    flow_prefetch(self._flows, self._tags, self._stats, self._flow_mask,
                                  home[i + PREFETCH_AHEAD])
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
                    self.refresh(found, key, t, is_closing(&c, i), c.ts_ns[i], c.wire_len[i])
                    state_reason = REASON_ESTABLISHED
                elif verdict[i] == VERDICT_ALLOW:
                    self.admit(slot, t)
                    f = &self._flows[slot]
                    if not f.used:
                        self.flow_count += 1
                    mid = is_midstream(&c, i)
                    flow_create(f, &self._tags[slot], home[i], key, t, is_closing(&c, i), mid,
                                rule[i])
                    self.created(slot, c.ts_ns[i], c.wire_len[i], c.index[i], side_instance[i],
                                 side_direction[i])
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
