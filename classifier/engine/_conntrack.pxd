# Declarations of classifier/engine/_conntrack.pyx shared with the fused pass (_fused.pyx):
# the flow table's constants, structs and key/hash/timeout helpers, and the Tracker's fields.
# Read _conntrack.pyx for the design note; the layouts are classifier/engine/layouts.py.

from libc.stdint cimport int8_t, int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t

from classifier.engine._hashing cimport _word, fmix64
from classifier._codes cimport (
    ICMP_TIMEOUT_NS,
    L4_ICMP,
    L4_ICMP_ID,
    L4_INNER,
    L4_INNER_ICMP_ID,
    L4_INNER_PORTS,
    L4_PORTS,
    L4_TCP_FLAGS,
    OTHER_ONE_WAY_TIMEOUT_NS,
    OTHER_TIMEOUT_NS,
    PROTO_ICMP,
    PROTO_ICMPV6,
    PROTO_TCP,
    TCP_ACK,
    TCP_CLOSING_TIMEOUT_NS,
    TCP_FIN,
    TCP_RST,
    TCP_SYN,
    TCP_TIMEOUT_NS,
    code_carries_ports,
)

# the flow table's own constants: compile-time copies of classifier.engine.layouts, checked
# against it below (a mismatch fails the import)
cdef enum:
    KIND_PORTS = 1
    KIND_ICMP = 2
    KIND_ADDR = 3
    FLAG_FIN_RST = 1
    FLAG_BOTH = 2
    FLAG_INIT_LOW = 4
    FLAG_MIDSTREAM = 8
    FLAG_GONE = 16
    CLASS_TCP = 0
    CLASS_TCP_CLOSING = 1
    CLASS_ICMP = 2
    CLASS_ONE_WAY = 3
    CLASS_BOTH = 4
    N_CLASSES = 5
    MIN_CAPACITY = 64
    PREFETCH_AHEAD = 8  # packets between a slot's prefetch and its use
    LOOKUP_OWN = 1  # the packet's own key
    LOOKUP_QUOTED = 2  # an ICMP error: the key of the header it quotes

cdef extern from *:
    void __builtin_prefetch(const void* address) noexcept nogil


cdef struct Key:
    uint64_t w[5]  # meta, lo0, lo1, hi0, hi1 (flow) / meta, src0, src1, dst0, dst1 (fragment)
    bint from_low  # flow keys: the packet's source is the lo endpoint


cdef inline uint64_t _hash(const uint64_t* w) noexcept nogil:
    """The slot hash of a 5-word key: the words times odd constants, summed (independent
    multiplies, no dependency chain between words), then murmur3's 64-bit finaliser."""
    cdef uint64_t x = (w[0] * 0x9E3779B97F4A7C15ULL + w[1] * 0xC2B2AE3D27D4EB4FULL
                       + w[2] * 0x165667B19E3779F9ULL + w[3] * 0xD6E8FEB86659FD93ULL
                       + w[4] * 0xFF51AFD7ED558CCDULL)
    return fmix64(x)


cdef inline bint _is_icmp(uint8_t version, uint8_t protocol) noexcept nogil:
    return (version == 4 and protocol == PROTO_ICMP) or (version == 6 and protocol == PROTO_ICMPV6)


cdef inline bint _is_query(uint8_t version, uint8_t t) noexcept nogil:
    if version == 4:
        return t == 0 or t == 8 or (13 <= t <= 18)
    return t == 128 or t == 129


cdef inline bint _is_error(uint8_t version, uint8_t t) noexcept nogil:
    if version == 4:
        return t == 3 or t == 4 or t == 5 or t == 11 or t == 12
    return 1 <= t <= 4


cdef inline int64_t _timeout(uint64_t meta, uint8_t flags) noexcept nogil:
    # every candidate computed, then chosen: selects, not branches (a capture mixes the
    # protocols packet by packet, so a branch on them is mispredicted often: 5 cycles a
    # packet of the fused pass on the issue-15 workload)
    cdef uint64_t protocol = (meta >> 48) & 0xFF
    cdef uint64_t kind = (meta >> 40) & 0xFF
    cdef int64_t tcp = TCP_CLOSING_TIMEOUT_NS if flags & FLAG_FIN_RST else TCP_TIMEOUT_NS
    cdef int64_t other = OTHER_TIMEOUT_NS if flags & FLAG_BOTH else OTHER_ONE_WAY_TIMEOUT_NS
    cdef int64_t not_tcp = ICMP_TIMEOUT_NS if kind == KIND_ICMP else other
    return tcp if protocol == PROTO_TCP else not_tcp


cdef inline bint _make_key(
    Key* key,
    uint8_t version,
    uint8_t protocol,
    const uint8_t* src,
    const uint8_t* dst,
    bint ports_known,
    uint64_t sport,
    uint64_t dport,
    bint query_known,
    uint8_t icmp_type,
    uint64_t icmp_id,
) noexcept nogil:
    """The canonical flow key; False when the packet has none (ICMP other than queries)."""
    cdef uint64_t kind, s0, s1, d0, d1, plo, phi
    if _is_icmp(version, protocol):
        if not (query_known and _is_query(version, icmp_type)):
            return False
        kind = KIND_ICMP
        sport = 0
        dport = 0
    elif code_carries_ports(protocol) and ports_known:
        kind = KIND_PORTS
    else:
        kind = KIND_ADDR
        sport = 0
        dport = 0
    s0 = _word(src)
    s1 = _word(src + 8)
    d0 = _word(dst)
    d1 = _word(dst + 8)
    key.from_low = s0 < d0 or (s0 == d0 and (s1 < d1 or (s1 == d1 and sport <= dport)))
    if key.from_low:
        key.w[1], key.w[2], key.w[3], key.w[4], plo, phi = s0, s1, d0, d1, sport, dport
    else:
        key.w[1], key.w[2], key.w[3], key.w[4], plo, phi = d0, d1, s0, s1, dport, sport
    if kind == KIND_ICMP:
        plo = icmp_id
        phi = 0
    key.w[0] = (
        (<uint64_t>version << 56) | (<uint64_t>protocol << 48) | (kind << 40) | (plo << 16) | phi
    )
    return True


cdef inline bint _same(const uint64_t* a, const uint64_t* b) noexcept nogil:
    return a[0] == b[0] and a[1] == b[1] and a[2] == b[2] and a[3] == b[3] and a[4] == b[4]


cdef inline bint _is_bare_syn(bint known, uint8_t flags) noexcept nogil:
    return known and (flags & (TCP_SYN | TCP_ACK | TCP_FIN | TCP_RST)) == TCP_SYN


cdef struct Flow:  # layout of FLOW_DTYPE
    uint64_t key[5]
    int64_t last
    int32_t rule
    uint8_t used
    uint8_t flags
    uint8_t direction  # with flow records: the creating packet's reported direction
    uint8_t pad
    int64_t seq  # creation number of the tracked connection, -1: forgotten


cdef struct FlowStat:  # layout of FLOWSTAT_DTYPE: the counters of a connection's record
    int64_t first_ns  # the creating packet's timestamp as recorded
    int64_t last_ns  # the largest recorded timestamp among the counted packets
    int64_t index  # the creating packet's index in its file
    int64_t initiator_packets
    int64_t initiator_bytes
    int64_t responder_packets
    int64_t responder_bytes
    int32_t file  # the creating packet's file number
    int32_t instance  # the creating packet's reported side (its direction: Flow.direction)


cdef struct FlowRecord:  # layout of RECORD_DTYPE: a connection that left the table
    Flow flow
    FlowStat stat


cdef struct HeapEntry:  # one entry of an eviction heap, ordered by (last, seq)
    int64_t last
    int64_t seq
    int64_t slot


cdef struct Fragment:  # layout of FRAGMENT_DTYPE
    uint64_t key[5]
    int64_t ts
    uint16_t sport
    uint16_t dport
    uint16_t icmp_id
    uint16_t inner_sport
    uint16_t inner_dport
    uint16_t inner_icmp_id
    uint8_t icmp_type
    uint8_t icmp_code
    uint8_t l4
    uint8_t used
    uint8_t protocol
    uint8_t inner_protocol
    uint8_t inner_icmp_type
    uint8_t inner_src[16]
    uint8_t inner_dst[16]
    uint8_t pad[29]


cdef inline bint _flow_expired(const Flow* f, int64_t t) noexcept nogil:
    return (f.flags & FLAG_GONE) != 0 or t - f.last > _timeout(f.key[0], f.flags)


cdef inline int flow_class(const Flow* f) noexcept nogil:
    """The timeout class of a connection (CLASS_*): which eviction heap it belongs to."""
    cdef uint64_t protocol = (f.key[0] >> 48) & 0xFF
    if protocol == PROTO_TCP:
        return CLASS_TCP_CLOSING if f.flags & FLAG_FIN_RST else CLASS_TCP
    if ((f.key[0] >> 40) & 0xFF) == KIND_ICMP:
        return CLASS_ICMP
    return CLASS_BOTH if f.flags & FLAG_BOTH else CLASS_ONE_WAY


cdef inline void _copy_key(uint64_t* to, const uint64_t* w) noexcept nogil:
    cdef int k
    for k in range(5):
        to[k] = w[k]


cdef inline Py_ssize_t flow_find(
    Flow* flows, Py_ssize_t mask, const uint64_t* w, uint64_t h, int64_t t, Py_ssize_t* free
) noexcept nogil:
    """The slot holding the key (hash `h`) or -1; `free` = where it would go (the slot holding
    the key, else the first expired slot of the probe chain, or the empty slot that ends it)."""
    cdef Py_ssize_t i = <Py_ssize_t>(h & <uint64_t>mask)
    cdef Flow* f
    free[0] = -1
    while True:
        f = &flows[i]
        if not f.used:
            break
        if _same(f.key, w):
            free[0] = i
            return i
        if free[0] < 0 and _flow_expired(f, t):
            free[0] = i
        i = (i + 1) & mask
    if free[0] < 0:
        free[0] = i
    return -1


cdef inline uint8_t flow_tag(uint64_t h) noexcept nogil:
    """The tag byte of a used slot whose key hashes to `h`: the hash's top 7 bits (the slot
    index takes the low ones), the high bit set, so that 0 stays "unused"."""
    return <uint8_t>(0x80 | (h >> 57))


cdef inline Py_ssize_t flow_probe(
    const Flow* flows, const uint8_t* tags, Py_ssize_t mask, const uint64_t* w, uint64_t h
) noexcept nogil:
    """flow_find without its `free`: the slot holding the key, or -1. Walks the tag bytes
    (one per slot, 64 to a cache line) and reads a slot only where its tag matches, so a key
    that is absent, the common case of a denied packet, mostly reads no slot at all."""
    cdef Py_ssize_t i = <Py_ssize_t>(h & <uint64_t>mask)
    cdef uint8_t want = flow_tag(h), tag
    while True:
        tag = tags[i]
        if tag == 0:
            return -1
        if tag == want and _same(flows[i].key, w):
            return i
        i = (i + 1) & mask


cdef inline void flow_prefetch(
    const Flow* flows, const uint8_t* tags, const FlowStat* stats, Py_ssize_t mask,
    uint64_t h
) noexcept nogil:
    """Start fetching what a probe of a key with hash `h` will read: its tag byte, its home
    slot and the next one (a slot is one cache line; at the table's load about half the walks
    reach the second, and without this that line was the pass's costliest miss: RESULTS.md
    section 13), and with flow records the home slot's counters."""
    __builtin_prefetch(&tags[h & <uint64_t>mask])
    __builtin_prefetch(&flows[h & <uint64_t>mask])
    __builtin_prefetch(&flows[(h + 1) & <uint64_t>mask])
    if stats != NULL:
        __builtin_prefetch(&stats[h & <uint64_t>mask])


cdef inline void flow_refresh(Flow* f, const Key* key, int64_t t, bint closing) noexcept nogil:
    """A packet of a live connection (established): refresh it, note FIN/RST and the reply."""
    f.last = t
    if closing:
        f.flags |= FLAG_FIN_RST
    if key.from_low != ((f.flags & FLAG_INIT_LOW) != 0):
        f.flags |= FLAG_BOTH


cdef inline bint flow_touch(Flow* f, const Key* key, int64_t t, bint closing) noexcept nogil:
    """flow_refresh of a packet that changes no flag (most packets of a live connection):
    then the connection keeps its timeout class and heap entry, and only `last` moves.
    Returns False, f untouched, when a flag would change (call Tracker.refresh). The two
    tests are flow_refresh's two flags, written again as early returns: computing the new
    flags and comparing them cost the fused pass 5-7 cycles a packet (RESULTS.md section 19)."""
    if closing and not (f.flags & FLAG_FIN_RST):
        return False
    if not (f.flags & FLAG_BOTH) and key.from_low != ((f.flags & FLAG_INIT_LOW) != 0):
        return False
    f.last = t
    return True


cdef inline void flow_create(
    Flow* f, uint8_t* tag, uint64_t h, const Key* key, int64_t t, bint closing, bint mid,
    int32_t rule
) noexcept nogil:
    """An allowed packet without a live connection (key hash `h`) creates one in slot `f`
    (which may hold an expired connection: the new one replaces it), `tag` its tag byte. The
    caller counts it (flow_count when the slot was unused, connections_created,
    midstream_created)."""
    f.used = 1
    tag[0] = flow_tag(h)
    _copy_key(f.key, key.w)
    f.last = t
    f.flags = (
        (FLAG_INIT_LOW if key.from_low else 0)
        | (FLAG_FIN_RST if closing else 0)
        | (FLAG_MIDSTREAM if mid else 0)
    )
    f.rule = rule


cdef class Tracker:
    cdef public int64_t clock_ns
    cdef public int64_t fragment_clock_ns
    cdef public int64_t connections_created
    cdef public int64_t midstream_created
    cdef public Py_ssize_t flow_count  # occupied flow slots, expired ones included
    cdef public Py_ssize_t frag_count
    cdef public int64_t limit  # connections tracked at once, at most
    cdef public int64_t evicted  # alive connections forgotten to respect the limit
    cdef public int64_t tracked  # connections not forgotten (alive, or expired not dropped)
    cdef public int64_t next_seq  # the creation number of the next connection
    cdef public int64_t max_fragments  # first fragments remembered at once, at most
    cdef public int64_t fragments_dropped  # first fragments not remembered (table full)
    cdef public bint record_flows  # keep a record per connection (flow records)
    cdef public int32_t file_number  # the file of the batches given now (flow records)
    cdef readonly object flowstats  # numpy FLOWSTAT_DTYPE array beside `flows` (or None)
    cdef FlowStat* _stats  # its data, NULL without flow records
    cdef object _record_array  # numpy RECORD_DTYPE array: records not yet taken
    cdef FlowRecord* _records
    cdef Py_ssize_t _n_records
    cdef Py_ssize_t _record_cap
    cdef object _heap_arrays  # one numpy HeapEntry array per timeout class
    cdef HeapEntry* _heap[N_CLASSES]
    cdef Py_ssize_t _heap_size[N_CLASSES]
    cdef Py_ssize_t _heap_cap[N_CLASSES]
    cdef readonly object flows  # numpy FLOW_DTYPE array (inspectable, picklable)
    cdef readonly object fragments  # numpy FRAGMENT_DTYPE array
    cdef readonly object flow_tags  # numpy uint8 array beside `flows`: 0 for an unused slot,
    # else flow_tag of its key's hash (flow_probe walks it); rebuilt by every rehash
    cdef Flow* _flows  # the arrays' data; valid while the arrays above are held
    cdef uint8_t* _tags
    cdef Py_ssize_t _flow_mask
    cdef Fragment* _frags
    cdef Py_ssize_t _frag_mask

    cdef Py_ssize_t _flow_find(
        self, const uint64_t* w, uint64_t h, int64_t t, Py_ssize_t* free
    ) noexcept nogil
    cdef Py_ssize_t _frag_find(self, const uint64_t* w, int64_t t, Py_ssize_t* free) noexcept nogil
    cdef void _heap_push(self, int c, int64_t last, int64_t seq, int64_t slot) noexcept nogil
    cdef void _heap_pop(self, int c) noexcept nogil
    cdef Py_ssize_t _heap_head(self, int c) noexcept nogil
    cdef void refresh(
        self, Py_ssize_t found, const Key* key, int64_t t, bint closing, int64_t ts,
        uint32_t wire
    ) noexcept nogil
    cdef void admit(self, Py_ssize_t slot, int64_t t) noexcept nogil
    cdef void created(
        self, Py_ssize_t slot, int64_t ts, uint32_t wire, int64_t index, int32_t instance,
        uint8_t direction
    ) noexcept nogil
    cdef void _emit(self, const Flow* f, const FlowStat* st) noexcept nogil


cdef struct Columns:
    # pointers to the columns of a PacketBatch (classifier.packets; addresses 16 bytes a row),
    # valid while the batch is held
    Py_ssize_t n
    const int64_t* index
    const int64_t* ts_ns
    const uint32_t* wire_len
    const uint8_t* status
    const uint8_t* malformed_reason
    const uint8_t* ip_version
    const uint8_t* src
    const uint8_t* dst
    const uint8_t* protocol
    const uint8_t* l4
    const uint16_t* sport
    const uint16_t* dport
    const uint8_t* icmp_type
    const uint8_t* icmp_code
    const uint16_t* icmp_id
    const uint8_t* tcp_flags
    const uint8_t* inner_protocol
    const uint8_t* inner_src
    const uint8_t* inner_dst
    const uint16_t* inner_sport
    const uint16_t* inner_dport
    const uint8_t* inner_icmp_type
    const uint16_t* inner_icmp_id


cdef inline int columns_of(object batch, Columns* c) except -1:
    """Fill `c` from a non-empty batch whose columns have the contract's dtypes and shapes."""
    cdef const int64_t[::1] index = batch.index
    cdef const int64_t[::1] ts_ns = batch.ts_ns
    cdef const uint32_t[::1] wire_len = batch.wire_len
    cdef const uint8_t[::1] status = batch.status
    cdef const uint8_t[::1] malformed_reason = batch.malformed_reason
    cdef const uint8_t[::1] ip_version = batch.ip_version
    cdef const uint8_t[:, ::1] src = batch.src
    cdef const uint8_t[:, ::1] dst = batch.dst
    cdef const uint8_t[::1] protocol = batch.protocol
    cdef const uint8_t[::1] l4 = batch.l4
    cdef const uint16_t[::1] sport = batch.sport
    cdef const uint16_t[::1] dport = batch.dport
    cdef const uint8_t[::1] icmp_type = batch.icmp_type
    cdef const uint8_t[::1] icmp_code = batch.icmp_code
    cdef const uint16_t[::1] icmp_id = batch.icmp_id
    cdef const uint8_t[::1] tcp_flags = batch.tcp_flags
    cdef const uint8_t[::1] inner_protocol = batch.inner_protocol
    cdef const uint8_t[:, ::1] inner_src = batch.inner_src
    cdef const uint8_t[:, ::1] inner_dst = batch.inner_dst
    cdef const uint16_t[::1] inner_sport = batch.inner_sport
    cdef const uint16_t[::1] inner_dport = batch.inner_dport
    cdef const uint8_t[::1] inner_icmp_type = batch.inner_icmp_type
    cdef const uint16_t[::1] inner_icmp_id = batch.inner_icmp_id
    c.n = ts_ns.shape[0]
    c.index = &index[0]
    c.ts_ns = &ts_ns[0]
    c.wire_len = &wire_len[0]
    c.status = &status[0]
    c.malformed_reason = &malformed_reason[0]
    c.ip_version = &ip_version[0]
    c.src = &src[0, 0]
    c.dst = &dst[0, 0]
    c.protocol = &protocol[0]
    c.l4 = &l4[0]
    c.sport = &sport[0]
    c.dport = &dport[0]
    c.icmp_type = &icmp_type[0]
    c.icmp_code = &icmp_code[0]
    c.icmp_id = &icmp_id[0]
    c.tcp_flags = &tcp_flags[0]
    c.inner_protocol = &inner_protocol[0]
    c.inner_src = &inner_src[0, 0]
    c.inner_dst = &inner_dst[0, 0]
    c.inner_sport = &inner_sport[0]
    c.inner_dport = &inner_dport[0]
    c.inner_icmp_type = &inner_icmp_type[0]
    c.inner_icmp_id = &inner_icmp_id[0]
    return 0


cdef inline uint8_t packet_key(Key* key, const Columns* c, Py_ssize_t i) noexcept nogil:
    """What judged packet i looks up (section 4): LOOKUP_QUOTED with the key of the header an
    ICMP error quotes, LOOKUP_OWN with its own key, or 0 when it has no key."""
    cdef uint8_t bits = c.l4[i], version = c.ip_version[i]
    if _is_icmp(version, c.protocol[i]) and bits & L4_ICMP and _is_error(version, c.icmp_type[i]):
        if bits & L4_INNER and _make_key(
            key,
            version,
            c.inner_protocol[i],
            &c.inner_src[16 * i],
            &c.inner_dst[16 * i],
            (bits & L4_INNER_PORTS) != 0,
            c.inner_sport[i],
            c.inner_dport[i],
            (bits & L4_INNER_ICMP_ID) != 0,
            c.inner_icmp_type[i],
            c.inner_icmp_id[i],
        ):
            return LOOKUP_QUOTED
        return 0
    if _make_key(
        key,
        version,
        c.protocol[i],
        &c.src[16 * i],
        &c.dst[16 * i],
        (bits & L4_PORTS) != 0,
        c.sport[i],
        c.dport[i],
        (bits & L4_ICMP) != 0 and (bits & L4_ICMP_ID) != 0,
        c.icmp_type[i],
        c.icmp_id[i],
    ):
        return LOOKUP_OWN
    return 0


cdef inline bint is_closing(const Columns* c, Py_ssize_t i) noexcept nogil:
    """A TCP packet whose captured flags carry FIN or RST."""
    return (
        c.protocol[i] == PROTO_TCP and (c.l4[i] & L4_TCP_FLAGS) != 0
        and (c.tcp_flags[i] & (TCP_FIN | TCP_RST)) != 0
    )


cdef inline bint is_midstream(const Columns* c, Py_ssize_t i) noexcept nogil:
    """A TCP packet that is not a bare SYN (a connection it creates is picked up mid-stream)."""
    return c.protocol[i] == PROTO_TCP and not _is_bare_syn(
        (c.l4[i] & L4_TCP_FLAGS) != 0, c.tcp_flags[i]
    )
