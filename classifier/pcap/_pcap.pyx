"""Native core of the capture reader: a thin Cython shell over pcap_core.h.

`Decoder` keeps the C reader state (format, byte order, the pcapng interface table, the
position in the file) between calls; `run` fills rows of a PacketBatch with the GIL
released, stopping when the batch is full, at the end of the file, past a byte limit (so the
facade can drop pages it has read and keep memory flat), at damage, when the interface
table must grow, or (a stream: `more` set) at a record that runs past the buffer. The buffer
holds the file from offset `base` on (0 for a map). `run` survives SIGBUS inside the buffer (a
mapped file that shrinks under the reader, pcap_guard.h): it returns STOP_FAULT with the state
of its entry. Nothing here raises for bad input: problems come back as codes and the
facade (classifier.pcap.reader) turns them into warnings and errors.

The pure-Python twin is classifier/pcap/_pcap_py.py, with the same names.
"""

from libc.stdint cimport int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.string cimport memset

import numpy as np


cdef extern from "pcap_bpf.h" nogil:
    ctypedef struct pc_bpf_insn:
        uint16_t code
        uint8_t jt
        uint8_t jf
        uint32_t k

    ctypedef struct pc_filter:
        uint32_t n
        uint32_t link[16]
        const pc_bpf_insn *prog[16]

    enum:
        PC_MAX_FILTER_LINKS

    uint32_t pc_bpf_run(const pc_bpf_insn *prog, const uint8_t *p, uint32_t n, uint32_t wire)


cdef extern from "pcap_core.h" nogil:
    ctypedef struct pc_cols:
        int64_t *index
        int64_t *ts_ns
        uint32_t *wire_len
        uint32_t *cap_len
        uint8_t *status
        uint8_t *malformed_reason
        uint8_t *ip_version
        uint8_t *src
        uint8_t *dst
        uint8_t *protocol
        uint8_t *l4
        uint16_t *sport
        uint16_t *dport
        uint8_t *icmp_type
        uint8_t *icmp_code
        uint16_t *icmp_id
        uint8_t *tcp_flags
        uint8_t *fragment
        uint32_t *ip_id
        uint16_t *frag_offset
        uint8_t *frag_next_header
        uint8_t *inner_protocol
        uint8_t *inner_src
        uint8_t *inner_dst
        uint16_t *inner_sport
        uint16_t *inner_dport
        uint8_t *inner_icmp_type
        uint16_t *inner_icmp_id

    ctypedef struct pc_fallback:
        int64_t *row
        uint64_t *offset
        uint32_t *length
        uint32_t *linktype
        size_t n

    ctypedef struct pc_state:
        int pcapng
        int swap
        int nsec
        uint32_t linktype
        uint32_t snaplen
        uint32_t n_if
        uint32_t cap_if
        uint32_t *if_link
        uint32_t *if_snap
        uint8_t *if_tsresol
        int64_t *if_tsoffset
        uint64_t pos
        int64_t records
        int formats
        uint32_t linktypes[64]
        uint32_t n_linktypes
        int64_t over_snaplen
        uint64_t over_snaplen_offset
        int64_t over_snaplen_record
        int damage
        uint64_t damage_offset
        uint64_t damage_value
        uint64_t base
        int more
        uint64_t need
        const pc_filter *filter
        int64_t filtered

    int pc_begin(pc_state *s, const uint8_t *p, uint64_t length)
    int pc_run(pc_state *s, const uint8_t *p, uint64_t length, pc_cols *c, size_t *rowp,
               size_t cap, uint64_t limit, pc_fallback *fb)
    int pc_decode(const uint8_t *p, uint64_t n, uint32_t link, pc_cols *c, size_t i)


cdef extern from "pcap_guard.h" nogil:
    int pc_guard_install()
    int pc_run_guarded(pc_state *s, const uint8_t *p, uint64_t length, pc_cols *c, size_t *rowp,
                       size_t cap, uint64_t limit, pc_fallback *fb)
    int pc_skip_guarded(pc_state *s, const uint8_t *p, uint64_t length, uint64_t limit)

    # headers as data (pcap_layout.h), exported below as LAYOUT
    enum:
        PCAP_FILE_LEN, PCAP_FILE_MAGIC, PCAP_FILE_VERSION_MAJOR, PCAP_FILE_VERSION_MINOR,
        PCAP_FILE_SNAPLEN, PCAP_FILE_LINKTYPE, PCAP_REC_LEN, PCAP_REC_TS_SEC,
        PCAP_REC_TS_FRAC, PCAP_REC_CAPLEN, PCAP_REC_ORIGLEN,
        NG_BLOCK_TYPE, NG_BLOCK_LEN, NG_BLOCK_BODY, NG_BLOCK_OVERHEAD, NG_SHB_BOM,
        NG_SHB_MIN_BODY, NG_IDB_LINKTYPE, NG_IDB_SNAPLEN, NG_IDB_OPTIONS, NG_EPB_IFACE,
        NG_EPB_TS_HIGH, NG_EPB_TS_LOW, NG_EPB_CAPLEN, NG_EPB_ORIGLEN, NG_EPB_DATA,
        NG_SPB_ORIGLEN, NG_SPB_DATA, NG_PB_IFACE, NG_PB_DROPS, NG_PB_TS_HIGH, NG_PB_TS_LOW,
        NG_PB_CAPLEN, NG_PB_ORIGLEN, NG_PB_DATA, NG_OPT_CODE, NG_OPT_LEN, NG_OPT_VALUE,
        NG_OPT_END, NG_OPT_IF_TSRESOL, NG_OPT_IF_TSOFFSET,
        ETH_LEN, ETH_TYPE, VLAN_LEN, VLAN_TYPE, MPLS_LEN, MPLS_BOS_BYTE, SLL_LEN, SLL_PROTO,
        SLL2_LEN, SLL2_PROTO, NULL_LEN, LOOP_LEN, ETH_MAX_LEN, ETH_MIN_TYPE, SLL_P_802_2,
        LLC_SNAP_LEN, LLC_SNAP_TYPE, PPP_ADDR_CTRL_LEN, CHDLC_LEN, CHDLC_TYPE, PPPOE_LEN,
        RT_LEN, RT_LENGTH, RT_PRESENT, DOT11_LEN, DOT11_ADDR4_LEN, DOT11_QOS_LEN, DOT11_HT_LEN,
        AMSDU_SUB_LEN,
        IP4_MIN_LEN, IP4_TOTAL_LEN, IP4_ID, IP4_FRAG, IP4_PROTO, IP4_SRC, IP4_DST,
        IP6_LEN, IP6_PAYLOAD_LEN, IP6_NEXT, IP6_SRC, IP6_DST, IP6_EXT_NEXT, IP6_EXT_LEN,
        IP6_FRAG_LEN, IP6_FRAG_OFFSET, IP6_FRAG_ID, L4_SPORT, L4_DPORT, L4_PORTS_LEN,
        TCP_FLAGS, TCP_FLAGS_LEN, ICMP_TYPE, ICMP_CODE, ICMP_TYPE_LEN, ICMP_ID, ICMP_ID_LEN,
        ICMP_QUOTE, PC_MAX_CAPLEN, PC_MAX_EXT_HEADERS, PC_DEBUG_BUILD

LAYOUT = {
    "PCAP_FILE_LEN": PCAP_FILE_LEN, "PCAP_FILE_MAGIC": PCAP_FILE_MAGIC,
    "PCAP_FILE_VERSION_MAJOR": PCAP_FILE_VERSION_MAJOR,
    "PCAP_FILE_VERSION_MINOR": PCAP_FILE_VERSION_MINOR,
    "PCAP_FILE_SNAPLEN": PCAP_FILE_SNAPLEN, "PCAP_FILE_LINKTYPE": PCAP_FILE_LINKTYPE,
    "PCAP_REC_LEN": PCAP_REC_LEN, "PCAP_REC_TS_SEC": PCAP_REC_TS_SEC,
    "PCAP_REC_TS_FRAC": PCAP_REC_TS_FRAC, "PCAP_REC_CAPLEN": PCAP_REC_CAPLEN,
    "PCAP_REC_ORIGLEN": PCAP_REC_ORIGLEN,
    "NG_BLOCK_TYPE": NG_BLOCK_TYPE, "NG_BLOCK_LEN": NG_BLOCK_LEN,
    "NG_BLOCK_BODY": NG_BLOCK_BODY, "NG_BLOCK_OVERHEAD": NG_BLOCK_OVERHEAD,
    "NG_SHB_BOM": NG_SHB_BOM, "NG_SHB_MIN_BODY": NG_SHB_MIN_BODY,
    "NG_IDB_LINKTYPE": NG_IDB_LINKTYPE, "NG_IDB_SNAPLEN": NG_IDB_SNAPLEN,
    "NG_IDB_OPTIONS": NG_IDB_OPTIONS, "NG_EPB_IFACE": NG_EPB_IFACE,
    "NG_EPB_TS_HIGH": NG_EPB_TS_HIGH, "NG_EPB_TS_LOW": NG_EPB_TS_LOW,
    "NG_EPB_CAPLEN": NG_EPB_CAPLEN, "NG_EPB_ORIGLEN": NG_EPB_ORIGLEN,
    "NG_EPB_DATA": NG_EPB_DATA, "NG_SPB_ORIGLEN": NG_SPB_ORIGLEN, "NG_SPB_DATA": NG_SPB_DATA,
    "NG_PB_IFACE": NG_PB_IFACE, "NG_PB_DROPS": NG_PB_DROPS, "NG_PB_TS_HIGH": NG_PB_TS_HIGH,
    "NG_PB_TS_LOW": NG_PB_TS_LOW, "NG_PB_CAPLEN": NG_PB_CAPLEN,
    "NG_PB_ORIGLEN": NG_PB_ORIGLEN, "NG_PB_DATA": NG_PB_DATA,
    "NG_OPT_CODE": NG_OPT_CODE, "NG_OPT_LEN": NG_OPT_LEN, "NG_OPT_VALUE": NG_OPT_VALUE,
    "NG_OPT_END": NG_OPT_END, "NG_OPT_IF_TSRESOL": NG_OPT_IF_TSRESOL,
    "NG_OPT_IF_TSOFFSET": NG_OPT_IF_TSOFFSET,
    "ETH_LEN": ETH_LEN, "ETH_TYPE": ETH_TYPE, "VLAN_LEN": VLAN_LEN, "VLAN_TYPE": VLAN_TYPE,
    "MPLS_LEN": MPLS_LEN, "MPLS_BOS_BYTE": MPLS_BOS_BYTE, "SLL_LEN": SLL_LEN,
    "SLL_PROTO": SLL_PROTO, "SLL2_LEN": SLL2_LEN, "SLL2_PROTO": SLL2_PROTO,
    "NULL_LEN": NULL_LEN, "LOOP_LEN": LOOP_LEN, "ETH_MAX_LEN": ETH_MAX_LEN,
    "ETH_MIN_TYPE": ETH_MIN_TYPE, "SLL_P_802_2": SLL_P_802_2, "LLC_SNAP_LEN": LLC_SNAP_LEN,
    "LLC_SNAP_TYPE": LLC_SNAP_TYPE, "PPP_ADDR_CTRL_LEN": PPP_ADDR_CTRL_LEN,
    "CHDLC_LEN": CHDLC_LEN, "CHDLC_TYPE": CHDLC_TYPE, "PPPOE_LEN": PPPOE_LEN,
    "RT_LEN": RT_LEN, "RT_LENGTH": RT_LENGTH, "RT_PRESENT": RT_PRESENT, "DOT11_LEN": DOT11_LEN,
    "DOT11_ADDR4_LEN": DOT11_ADDR4_LEN, "DOT11_QOS_LEN": DOT11_QOS_LEN,
    "DOT11_HT_LEN": DOT11_HT_LEN, "AMSDU_SUB_LEN": AMSDU_SUB_LEN,
    "IP4_MIN_LEN": IP4_MIN_LEN, "IP4_TOTAL_LEN": IP4_TOTAL_LEN, "IP4_ID": IP4_ID,
    "IP4_FRAG": IP4_FRAG, "IP4_PROTO": IP4_PROTO, "IP4_SRC": IP4_SRC, "IP4_DST": IP4_DST,
    "IP6_LEN": IP6_LEN, "IP6_PAYLOAD_LEN": IP6_PAYLOAD_LEN, "IP6_NEXT": IP6_NEXT,
    "IP6_SRC": IP6_SRC, "IP6_DST": IP6_DST, "IP6_EXT_NEXT": IP6_EXT_NEXT,
    "IP6_EXT_LEN": IP6_EXT_LEN, "IP6_FRAG_LEN": IP6_FRAG_LEN,
    "IP6_FRAG_OFFSET": IP6_FRAG_OFFSET, "IP6_FRAG_ID": IP6_FRAG_ID,
    "L4_SPORT": L4_SPORT, "L4_DPORT": L4_DPORT, "L4_PORTS_LEN": L4_PORTS_LEN,
    "TCP_FLAGS": TCP_FLAGS, "TCP_FLAGS_LEN": TCP_FLAGS_LEN, "ICMP_TYPE": ICMP_TYPE,
    "ICMP_CODE": ICMP_CODE, "ICMP_TYPE_LEN": ICMP_TYPE_LEN, "ICMP_ID": ICMP_ID,
    "ICMP_ID_LEN": ICMP_ID_LEN, "ICMP_QUOTE": ICMP_QUOTE,
    "PC_MAX_CAPLEN": PC_MAX_CAPLEN, "PC_MAX_EXT_HEADERS": PC_MAX_EXT_HEADERS,
}

MAX_CAPLEN = PC_MAX_CAPLEN
GUARDED = True  # run() survives SIGBUS in a mapped buffer (the pure twin reads no map)
DEBUG_BUILD = bool(PC_DEBUG_BUILD)  # CLASSIFIER_DEBUG=1: every load of packet bytes asserted


cdef int _bind(pc_cols *c, object batch) except -1:
    """Point the C column struct at the batch's arrays (len(batch) > 0)."""
    cdef int64_t[::1] index = batch.index
    cdef int64_t[::1] ts_ns = batch.ts_ns
    cdef uint32_t[::1] wire_len = batch.wire_len
    cdef uint32_t[::1] cap_len = batch.cap_len
    cdef uint8_t[::1] status = batch.status
    cdef uint8_t[::1] malformed_reason = batch.malformed_reason
    cdef uint8_t[::1] ip_version = batch.ip_version
    cdef uint8_t[:, ::1] src = batch.src
    cdef uint8_t[:, ::1] dst = batch.dst
    cdef uint8_t[::1] protocol = batch.protocol
    cdef uint8_t[::1] l4 = batch.l4
    cdef uint16_t[::1] sport = batch.sport
    cdef uint16_t[::1] dport = batch.dport
    cdef uint8_t[::1] icmp_type = batch.icmp_type
    cdef uint8_t[::1] icmp_code = batch.icmp_code
    cdef uint16_t[::1] icmp_id = batch.icmp_id
    cdef uint8_t[::1] tcp_flags = batch.tcp_flags
    cdef uint8_t[::1] fragment = batch.fragment
    cdef uint32_t[::1] ip_id = batch.ip_id
    cdef uint16_t[::1] frag_offset = batch.frag_offset
    cdef uint8_t[::1] frag_next_header = batch.frag_next_header
    cdef uint8_t[::1] inner_protocol = batch.inner_protocol
    cdef uint8_t[:, ::1] inner_src = batch.inner_src
    cdef uint8_t[:, ::1] inner_dst = batch.inner_dst
    cdef uint16_t[::1] inner_sport = batch.inner_sport
    cdef uint16_t[::1] inner_dport = batch.inner_dport
    cdef uint8_t[::1] inner_icmp_type = batch.inner_icmp_type
    cdef uint16_t[::1] inner_icmp_id = batch.inner_icmp_id
    # the batch object keeps every array alive while the pointers are used
    c.index = &index[0]
    c.ts_ns = &ts_ns[0]
    c.wire_len = &wire_len[0]
    c.cap_len = &cap_len[0]
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
    c.fragment = &fragment[0]
    c.ip_id = &ip_id[0]
    c.frag_offset = &frag_offset[0]
    c.frag_next_header = &frag_next_header[0]
    c.inner_protocol = &inner_protocol[0]
    c.inner_src = &inner_src[0, 0]
    c.inner_dst = &inner_dst[0, 0]
    c.inner_sport = &inner_sport[0]
    c.inner_dport = &inner_dport[0]
    c.inner_icmp_type = &inner_icmp_type[0]
    c.inner_icmp_id = &inner_icmp_id[0]
    return 0


def _grown(old, size_t n, dtype):
    new = np.zeros(n, dtype)
    if old is not None:
        new[:len(old)] = old
    return new


cdef class Decoder:
    """Reader state between calls of `run` over one mapped capture."""

    cdef pc_state s
    cdef pc_filter _filter
    cdef list _programs
    cdef object _if_link, _if_snap, _if_tsresol, _if_tsoffset
    cdef object _fb_row, _fb_offset, _fb_length, _fb_linktype
    cdef size_t _fb_n

    def __cinit__(self):
        memset(&self.s, 0, sizeof(pc_state))
        memset(&self._filter, 0, sizeof(pc_filter))
        self._programs = []
        self._fb_n = 0
        self._set_interfaces(8)
        self._set_fallback(1)

    cdef _set_interfaces(self, size_t n):
        cdef uint32_t[::1] link
        cdef uint32_t[::1] snap
        cdef uint8_t[::1] res
        cdef int64_t[::1] offs
        self._if_link = _grown(self._if_link, n, np.uint32)
        self._if_snap = _grown(self._if_snap, n, np.uint32)
        self._if_tsresol = _grown(self._if_tsresol, n, np.uint8)
        self._if_tsoffset = _grown(self._if_tsoffset, n, np.int64)
        link = self._if_link
        snap = self._if_snap
        res = self._if_tsresol
        offs = self._if_tsoffset
        self.s.if_link = &link[0]
        self.s.if_snap = &snap[0]
        self.s.if_tsresol = &res[0]
        self.s.if_tsoffset = &offs[0]
        self.s.cap_if = <uint32_t>n

    cdef _set_fallback(self, size_t n):
        self._fb_row = np.zeros(n, np.int64)
        self._fb_offset = np.zeros(n, np.uint64)
        self._fb_length = np.zeros(n, np.uint32)
        self._fb_linktype = np.zeros(n, np.uint32)

    def grow_interfaces(self) -> None:
        """Double the pcapng interface table (run stopped with STOP_GROW_IFACES)."""
        self._set_interfaces(2 * self.s.cap_if)

    def begin(self, const uint8_t[::1] buf) -> int:
        """Read the file header: 0, -1 (not a capture) or -2 (too short for its header)."""
        if buf.shape[0] == 0:
            return -2
        return pc_begin(&self.s, &buf[0], buf.shape[0])

    def run(self, const uint8_t[::1] buf, object batch, size_t row, uint64_t limit) -> tuple:
        """Fill rows row.. of `batch` from the file; returns (stop code, next row)."""
        cdef pc_cols c
        cdef pc_fallback fb
        cdef size_t cap = len(batch)
        cdef size_t r = row
        cdef int stop
        cdef int64_t[::1] fb_row
        cdef uint64_t[::1] fb_offset
        cdef uint32_t[::1] fb_length
        cdef uint32_t[::1] fb_linktype
        cdef const uint8_t *p
        cdef uint64_t length = buf.shape[0]
        if cap == 0 or row >= cap:
            return 0, row
        if <size_t>len(self._fb_row) < cap:
            self._set_fallback(cap)
        _bind(&c, batch)
        fb_row = self._fb_row
        fb_offset = self._fb_offset
        fb_length = self._fb_length
        fb_linktype = self._fb_linktype
        fb.row = &fb_row[0]
        fb.offset = &fb_offset[0]
        fb.length = &fb_length[0]
        fb.linktype = &fb_linktype[0]
        fb.n = 0
        p = &buf[0] if length else NULL
        if pc_guard_install() != 0:
            raise OSError("cannot install the SIGBUS handler of the capture reader")
        with nogil:
            stop = pc_run_guarded(&self.s, p, length, &c, &r, cap, limit, &fb)
        self._fb_n = fb.n
        return stop, r

    def skip(self, const uint8_t[::1] buf, uint64_t limit) -> int:
        """Frame records without decoding them, up to `limit` (the first always, then those
        that end by `limit`): the stop code (STOP_LIMIT, STOP_EOF, STOP_DAMAGED,
        STOP_GROW_IFACES, STOP_MORE with `more` set, or STOP_FAULT: the mapped file shrank
        under it, the state as on entry, as for `run`); `records` counts them. See
        pc_skip_guarded in pcap_guard.h."""
        cdef uint64_t length = buf.shape[0]
        cdef const uint8_t *p = &buf[0] if length else NULL
        cdef int stop
        if pc_guard_install() != 0:
            raise OSError("cannot install the SIGBUS handler of the capture reader")
        with nogil:
            stop = pc_skip_guarded(&self.s, p, length, limit)
        return stop

    def snapshot(self) -> tuple:
        """What a reader needs to go on from `pos`: the format, byte order, classic pcap's
        link type and snap length, the interfaces of the pcapng section in force, `pos` and
        `records` (picklable; `restore` takes it)."""
        cdef uint32_t k
        interfaces = tuple(
            (self.s.if_link[k], self.s.if_snap[k], self.s.if_tsresol[k], self.s.if_tsoffset[k])
            for k in range(self.s.n_if)
        )
        return (self.s.pcapng, self.s.swap, self.s.nsec, self.s.linktype, self.s.snaplen,
                interfaces, self.s.pos, self.s.records)

    def restore(self, tuple state) -> None:
        """Go on from a `snapshot`: framing state as it was; no damage, nothing over the
        snap length seen yet."""
        cdef uint32_t k
        pcapng, swap, nsec, linktype, snaplen, interfaces, pos, records = state
        while self.s.cap_if < len(interfaces):
            self.grow_interfaces()
        for k in range(len(interfaces)):
            (self.s.if_link[k], self.s.if_snap[k], self.s.if_tsresol[k],
             self.s.if_tsoffset[k]) = interfaces[k]
        self.s.n_if = len(interfaces)
        self.s.pcapng, self.s.swap, self.s.nsec = pcapng, swap, nsec
        self.s.linktype, self.s.snaplen = linktype, snaplen
        self.s.pos, self.s.records = pos, records
        self.s.over_snaplen = self.s.over_snaplen_offset = self.s.over_snaplen_record = 0
        self.s.damage = self.s.damage_offset = self.s.damage_value = 0

    def add_filter(self, uint32_t link, object program) -> None:
        """Filter records of `link` through `program` (a validated BPF program: a uint64 array,
        one instruction per element as classifier.pcap.bpf packs it)."""
        cdef const uint8_t[::1] raw
        if self._filter.n >= PC_MAX_FILTER_LINKS:
            raise ValueError("a filter for more link types than the reader holds")
        program = np.ascontiguousarray(program, dtype=np.uint64)
        if len(program) == 0:
            raise ValueError("an empty BPF program")
        raw = program.view(np.uint8)
        self._programs.append(program)  # kept alive while the pointer is used
        self._filter.link[self._filter.n] = link
        self._filter.prog[self._filter.n] = <const pc_bpf_insn *>&raw[0]
        self._filter.n += 1
        self.s.filter = &self._filter

    def fail(self, int code, uint64_t offset, uint64_t value) -> None:
        """Record damage found by the facade (a stream's block too big to buffer)."""
        self.s.damage = code
        self.s.damage_offset = offset
        self.s.damage_value = value

    def fallback(self) -> list:
        """Records of the last `run` whose link type is not decoded natively:
        (row, data offset in the file, captured length, link type)."""
        n = self._fb_n
        return list(zip(self._fb_row[:n].tolist(), self._fb_offset[:n].tolist(),
                        self._fb_length[:n].tolist(), self._fb_linktype[:n].tolist()))

    @property
    def pos(self) -> int:
        return self.s.pos

    @pos.setter
    def pos(self, uint64_t value) -> None:
        self.s.pos = value

    @property
    def base(self) -> int:
        return self.s.base

    @base.setter
    def base(self, uint64_t value) -> None:
        self.s.base = value

    @property
    def more(self) -> bool:
        return bool(self.s.more)

    @more.setter
    def more(self, bint value) -> None:
        self.s.more = value

    @property
    def need(self) -> int:
        return self.s.need

    @property
    def swap(self) -> int:
        return self.s.swap

    @property
    def filtered(self) -> int:
        return self.s.filtered

    @property
    def records(self) -> int:
        return self.s.records

    @property
    def pcapng(self) -> bool:
        return bool(self.s.pcapng)

    @property
    def formats(self) -> int:
        return self.s.formats

    @property
    def linktypes(self) -> list:
        return [self.s.linktypes[k] for k in range(self.s.n_linktypes)]

    @property
    def snaplen(self) -> int:
        return self.s.snaplen

    @property
    def over_snaplen(self) -> int:
        return self.s.over_snaplen

    @property
    def over_snaplen_offset(self) -> int:
        return self.s.over_snaplen_offset

    @property
    def over_snaplen_record(self) -> int:
        return self.s.over_snaplen_record

    @property
    def damage(self) -> int:
        return self.s.damage

    @property
    def damage_offset(self) -> int:
        return self.s.damage_offset

    @property
    def damage_value(self) -> int:
        return self.s.damage_value


def decode_into(object batch, size_t row, const uint8_t[::1] data, uint32_t linktype) -> bool:
    """Decode one frame of `linktype` into row `row` of `batch` (which must be zero there).
    Returns False when the link type is not decoded natively."""
    cdef pc_cols c
    cdef int done
    cdef uint64_t n = data.shape[0]
    cdef const uint8_t *p
    cdef uint8_t empty = 0
    if row >= <size_t>len(batch):
        raise IndexError("row outside the batch")
    _bind(&c, batch)
    p = &data[0] if n else &empty
    with nogil:
        done = pc_decode(p, n, linktype, &c, row)
    return bool(done)


def bpf_run(object program, const uint8_t[::1] frame, uint32_t wire) -> int:
    """Run a validated BPF program (as for `Decoder.add_filter`) on one frame: BPF's return
    value (0 = reject)."""
    cdef const uint8_t[::1] raw
    cdef uint8_t empty = 0
    cdef uint32_t n = frame.shape[0]
    program = np.ascontiguousarray(program, dtype=np.uint64)
    raw = program.view(np.uint8)
    return pc_bpf_run(<const pc_bpf_insn *>&raw[0], &frame[0] if n else &empty, n, wire)
