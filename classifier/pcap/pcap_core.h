/* The native capture reader: frame pcap/pcapng records and decode their headers in one pass.
 *
 * Design: the whole file is mapped; `pc_run` walks records from `state->pos`, and for each
 * record writes one row of every PacketBatch column (the columns arrive zeroed, so only the
 * fields that apply are written). Per-record work is a switch on the link type, a walk over
 * tags/labels/extension headers bounded by the captured length, and a handful of loads. No
 * allocation, no Python, no error path that can raise: every problem with the input becomes
 * a status (per packet) or a damage code that ends the read (per file).
 *
 * Invariants: every read of the record's bytes is preceded by a length check against the
 * captured length (debug builds, CLASSIFIER_DEBUG=1, assert it again in each load helper);
 * `pos` only moves past a record that was entirely inside the file and passed its checks,
 * so a damaged file never produces an invented row.
 *
 * Records of link types decoded here go straight into the columns; others are listed in the
 * fallback arrays (row, offset in the buffer, length, link type) for the facade's scapy path.
 *
 * Streaming: `pos`, `limit` and every offset reported (damage, snap length) are offsets in the
 * file; the buffer holds the file from `base` on. A map is the whole file (base 0, more 0).
 * A stream (a pipe, a decompressor) hands over what it has with `more` set: a record that
 * does not fit stops the run at its start with STOP_MORE and `need`, the facade reads on and
 * calls again, so a stream gives exactly the rows and damage of the same bytes in a file.
 *
 * Framing alone (`c` NULL: pcap_guard.h's `pc_skip_guarded`) walks the same records with the
 * same checks, counting them: the scale-out finds its cut points with it
 * (classifier.pcap.reader's `Capture.cut`), so a block begins exactly where a record does and
 * damage is found where a full read finds it.
 */
#ifndef CLASSIFIER_PCAP_CORE_H
#define CLASSIFIER_PCAP_CORE_H

#include <stdint.h>
#include <stddef.h>
#include <string.h>
#include "codes.h"
#include "pcap_bpf.h"
#include "pcap_layout.h"

#ifdef CLASSIFIER_DEBUG
#include <assert.h>
#define PC_BOUND(off, n, lim) assert((uint64_t)(off) + (uint64_t)(n) <= (uint64_t)(lim))
#define PC_DEBUG_BUILD 1
#else
#define PC_BOUND(off, n, lim) ((void)0)
#define PC_DEBUG_BUILD 0
#endif

/* statuses, malformed reasons, l4 bits, fragment kinds, link types, damage, stop and format
 * codes: classifier/codes.py, mirrored by codes.h */

typedef struct {
    int64_t *index, *ts_ns;
    uint32_t *wire_len, *cap_len;
    uint8_t *status, *malformed_reason, *ip_version;
    uint8_t *src, *dst;
    uint8_t *protocol, *l4;
    uint16_t *sport, *dport;
    uint8_t *icmp_type, *icmp_code;
    uint16_t *icmp_id;
    uint8_t *tcp_flags, *fragment;
    uint32_t *ip_id;
    uint16_t *frag_offset;
    uint8_t *frag_next_header;
    uint8_t *inner_protocol, *inner_src, *inner_dst;
    uint16_t *inner_sport, *inner_dport;
    uint8_t *inner_icmp_type;
    uint16_t *inner_icmp_id;
} pc_cols;

typedef struct {
    int64_t *row;
    uint64_t *offset;
    uint32_t *length, *linktype;
    size_t n;
} pc_fallback;

typedef struct {
    int pcapng;               /* 0 = classic pcap, 1 = pcapng */
    int swap;                 /* multi-byte fields of the file/section are big-endian */
    int nsec;                 /* classic pcap: nanosecond timestamps */
    uint32_t linktype, snaplen; /* classic pcap */
    /* pcapng interfaces of the current section (arrays owned by the caller) */
    uint32_t n_if, cap_if;
    uint32_t *if_link, *if_snap;
    uint8_t *if_tsresol;
    int64_t *if_tsoffset;
    /* progress */
    uint64_t pos;
    int64_t records;
    int formats;
    uint32_t linktypes[PC_MAX_LINKTYPES_SEEN];
    uint32_t n_linktypes;
    /* a captured length above the snap length: counted, and where it was first seen */
    int64_t over_snaplen;
    uint64_t over_snaplen_offset;
    int64_t over_snaplen_record; /* the index of that first record in the file */
    /* damage: what, where, the offending value */
    int damage;
    uint64_t damage_offset;
    uint64_t damage_value;
    /* streaming: the buffer `p` holds the file's bytes from offset `base` on (0 for a map);
     * with `more` set, a record that runs past the buffer stops the run with STOP_MORE and
     * `need` (the bytes it needs from `pos`) instead of being damage */
    uint64_t base;
    int more;
    uint64_t need;
    /* --filter: a BPF program per link type (NULL: none); records it rejects are counted in
     * `filtered` (and in `records`: indexes stay the file's), never written as rows */
    const pc_filter *filter;
    int64_t filtered;
} pc_state;

/* --- loads ---------------------------------------------------------------------------- */
static inline uint16_t pc_be16(const uint8_t *p, uint64_t off, uint64_t lim) {
    PC_BOUND(off, 2, lim);
    (void)lim;
    return (uint16_t)((p[off] << 8) | p[off + 1]);
}
static inline uint32_t pc_be32(const uint8_t *p, uint64_t off, uint64_t lim) {
    PC_BOUND(off, 4, lim);
    (void)lim;
    return ((uint32_t)p[off] << 24) | ((uint32_t)p[off + 1] << 16) | ((uint32_t)p[off + 2] << 8) |
           p[off + 3];
}
static inline uint8_t pc_u8(const uint8_t *p, uint64_t off, uint64_t lim) {
    PC_BOUND(off, 1, lim);
    (void)lim;
    return p[off];
}
static inline uint32_t pc_rd32(const uint8_t *p, uint64_t off, uint64_t lim, int swap) {
    uint32_t v;
    PC_BOUND(off, 4, lim);
    (void)lim;
    memcpy(&v, p + off, 4);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    return swap ? v : __builtin_bswap32(v);
#else
    return swap ? __builtin_bswap32(v) : v;
#endif
}
static inline uint16_t pc_rd16(const uint8_t *p, uint64_t off, uint64_t lim, int swap) {
    PC_BOUND(off, 2, lim);
    (void)lim;
    return swap ? (uint16_t)((p[off] << 8) | p[off + 1]) : (uint16_t)(p[off] | (p[off + 1] << 8));
}
static inline void pc_copy(uint8_t *dst, const uint8_t *p, uint64_t off, uint64_t n, uint64_t lim) {
    PC_BOUND(off, n, lim);
    (void)lim;
    memcpy(dst, p + off, n);
}

static inline int pc_is_error(int v6, uint8_t type) {
    return v6 ? (type >= 1 && type <= 4)
              : (type == 3 || type == 4 || type == 5 || type == 11 || type == 12);
}
static inline int pc_is_query(int v6, uint8_t type) {
    return v6 ? (type == 128 || type == 129)
              : (type == 0 || type == 8 || (type >= 13 && type <= 18));
}
static inline int pc_is_icmp(int v6, uint8_t proto) { return v6 ? proto == PROTO_ICMPV6 : proto == PROTO_ICMP; }

static inline void pc_map4(uint8_t *dst16, const uint8_t *p, uint64_t off, uint64_t lim) {
    memset(dst16, 0, 10);
    dst16[10] = 0xff;
    dst16[11] = 0xff;
    pc_copy(dst16 + 12, p, off, 4, lim);
}

/* Walk IPv6 extension headers from `*cur` (next header `*nh`) up to `end`.
 * Returns 0 when the chain is cut off or too long, 1 when it reached an upper layer or a
 * non-first fragment (then *frag = FRAGMENT_LATER). Fragment headers set *frag, *id, *foff and
 * *fnh (their Next Header field, which names the datagram in fragment keys). */
static inline int pc_ip6_walk(const uint8_t *p, uint64_t end, uint64_t *cur, uint8_t *nh,
                              int *frag, uint32_t *id, uint16_t *foff, int *fnh) {
    int k;
    for (k = 0; k <= PC_MAX_EXT_HEADERS; k++) {
        uint8_t h = *nh;
        uint64_t len;
        if (h == 0 || h == 43 || h == 60 || h == 135 || h == 139 || h == 140 || h == 51) {
            if (k == PC_MAX_EXT_HEADERS || *cur + 2 > end) return 0;
            len = h == 51 ? ((uint64_t)pc_u8(p, *cur + IP6_EXT_LEN, end) + 2) * 4
                          : ((uint64_t)pc_u8(p, *cur + IP6_EXT_LEN, end) + 1) * 8;
            if (*cur + len > end) return 0;
            *nh = pc_u8(p, *cur + IP6_EXT_NEXT, end);
            *cur += len;
        } else if (h == 44) {
            uint16_t fo;
            if (k == PC_MAX_EXT_HEADERS || *cur + IP6_FRAG_LEN > end) return 0;
            fo = pc_be16(p, *cur + IP6_FRAG_OFFSET, end);
            *id = pc_be32(p, *cur + IP6_FRAG_ID, end);
            *foff = (uint16_t)(fo >> 3);
            *nh = pc_u8(p, *cur + IP6_EXT_NEXT, end);
            *fnh = *nh;
            *cur += IP6_FRAG_LEN;
            if (*foff) {
                *frag = FRAGMENT_LATER;
                return 1;
            }
            if (fo & 1) *frag = FRAGMENT_FIRST;
        } else {
            return 1;
        }
    }
    return 0;
}

/* The IP header quoted by an ICMP error, at q..end (same IP version as the outer one). */
static inline void pc_quoted(const uint8_t *p, uint64_t q, uint64_t end, int v6, pc_cols *c,
                             size_t i, uint8_t *bits) {
    uint8_t proto;
    uint64_t cur;
    int later = 0;
    if (!v6) {
        uint64_t ihl;
        if (q + IP4_MIN_LEN > end || (pc_u8(p, q, end) >> 4) != 4) return;
        ihl = (uint64_t)(pc_u8(p, q, end) & 15) * 4;
        if (ihl < IP4_MIN_LEN || q + ihl > end) return;
        proto = pc_u8(p, q + IP4_PROTO, end);
        pc_map4(c->inner_src + 16 * i, p, q + IP4_SRC, end);
        pc_map4(c->inner_dst + 16 * i, p, q + IP4_DST, end);
        later = (pc_be16(p, q + IP4_FRAG, end) & 0x1fff) != 0;
        cur = q + ihl;
    } else {
        int frag = FRAGMENT_NONE, fnh = -1;
        uint32_t id = 0;
        uint16_t foff = 0;
        if (q + IP6_LEN > end || (pc_u8(p, q, end) >> 4) != 6) return;
        pc_copy(c->inner_src + 16 * i, p, q + IP6_SRC, 16, end);
        pc_copy(c->inner_dst + 16 * i, p, q + IP6_DST, 16, end);
        proto = pc_u8(p, q + IP6_NEXT, end);
        cur = q + IP6_LEN;
        if (!pc_ip6_walk(p, end, &cur, &proto, &frag, &id, &foff, &fnh)) later = 1;
        if (frag == FRAGMENT_LATER) later = 1;
    }
    c->inner_protocol[i] = proto;
    *bits |= L4_INNER;
    if (later) return;
    if (code_carries_ports(proto) && cur + L4_PORTS_LEN <= end) {
        c->inner_sport[i] = pc_be16(p, cur + L4_SPORT, end);
        c->inner_dport[i] = pc_be16(p, cur + L4_DPORT, end);
        *bits |= L4_INNER_PORTS;
    } else if (pc_is_icmp(v6, proto) && cur + ICMP_ID_LEN <= end) {
        uint8_t t = pc_u8(p, cur + ICMP_TYPE, end);
        if (pc_is_query(v6, t)) {
            c->inner_icmp_type[i] = t;
            c->inner_icmp_id[i] = pc_be16(p, cur + ICMP_ID, end);
            *bits |= L4_INNER_ICMP_ID;
        }
    }
}

/* Transport fields from cur..end; returns the record's status (OK or L4_TRUNCATED). */
static inline int pc_l4(const uint8_t *p, uint64_t cur, uint64_t end, int v6, uint8_t proto,
                        pc_cols *c, size_t i) {
    uint64_t avail = end > cur ? end - cur : 0;
    uint8_t bits = 0;
    int st = STATUS_OK;
    if (code_carries_ports(proto)) {
        if (avail < L4_PORTS_LEN) return STATUS_L4_TRUNCATED;
        c->sport[i] = pc_be16(p, cur + L4_SPORT, end);
        c->dport[i] = pc_be16(p, cur + L4_DPORT, end);
        bits = L4_PORTS;
        if (proto == PROTO_TCP && avail >= TCP_FLAGS_LEN) {
            c->tcp_flags[i] = pc_u8(p, cur + TCP_FLAGS, end);
            bits |= L4_TCP_FLAGS;
        }
    } else if (pc_is_icmp(v6, proto)) {
        uint8_t t;
        if (avail < ICMP_TYPE_LEN) return STATUS_L4_TRUNCATED;
        t = pc_u8(p, cur + ICMP_TYPE, end);
        c->icmp_type[i] = t;
        c->icmp_code[i] = pc_u8(p, cur + ICMP_CODE, end);
        bits = L4_ICMP;
        if (pc_is_query(v6, t)) {
            if (avail >= ICMP_ID_LEN) {
                c->icmp_id[i] = pc_be16(p, cur + ICMP_ID, end);
                bits |= L4_ICMP_ID;
            }
        } else if (pc_is_error(v6, t) && avail > ICMP_QUOTE) {
            pc_quoted(p, cur + ICMP_QUOTE, end, v6, c, i, &bits);
        }
    }
    c->l4[i] = bits;
    return st;
}

static inline int pc_malformed(pc_cols *c, size_t i, int reason) {
    c->status[i] = STATUS_MALFORMED;
    c->malformed_reason[i] = (uint8_t)reason;
    return 1;
}

/* Decode one frame of `n` captured bytes into row i. Returns 0 when the link type is not
 * decoded natively (the row is then left for the fallback path).
 *
 * Link layers: Ethernet (a type field up to 1500 is a length: an 802.2 LLC header follows,
 * and LLC/SNAP with OUI 00-00-00 carries an EtherType), Linux cooked v1/v2 (protocol 4:
 * an LLC header follows), raw IP, BSD loopback, PPP (HDLC-like address/control optional,
 * protocol-field compression, Cisco HDLC framing), Cisco HDLC, PPPoE sessions (as link
 * type or EtherType 0x8864), 802.11 data frames with or without a radiotap header (LLC/SNAP
 * after the MAC header; QoS and HT control, four addresses, radiotap data padding, the first
 * subframe of an A-MSDU). VLAN tags, MPLS labels, SNAP and PPP all lead back into the one
 * EtherType loop. */
static int pc_decode(const uint8_t *p, uint64_t n, uint32_t link, pc_cols *c, size_t i) {
    static const uint8_t snap[6] = {0xAA, 0xAA, 0x03, 0x00, 0x00, 0x00};
    uint64_t off = 0, end;
    uint32_t et, af;
    int want = 0, lengths = 1; /* lengths: a type field <= 1500 is an 802.3 length (LLC) */
    int datapad = 0;           /* radiotap: padding to 4 bytes after the 802.11 header */
    switch (link) {
    case LINKTYPE_EN10MB:
        if (n < ETH_LEN) return pc_malformed(c, i, MALFORMED_LINK_TRUNCATED);
        et = pc_be16(p, ETH_TYPE, n);
        off = ETH_LEN;
        goto ethertype;
    case LINKTYPE_LINUX_SLL:
        if (n < SLL_LEN) return pc_malformed(c, i, MALFORMED_LINK_TRUNCATED);
        et = pc_be16(p, SLL_PROTO, n);
        off = SLL_LEN;
        goto cooked;
    case LINKTYPE_LINUX_SLL2:
        if (n < SLL2_LEN) return pc_malformed(c, i, MALFORMED_LINK_TRUNCATED);
        et = pc_be16(p, SLL2_PROTO, n);
        off = SLL2_LEN;
        goto cooked;
    case LINKTYPE_PPP:
    case LINKTYPE_PPP_HDLC:
        if (n >= 1 && (pc_u8(p, 0, n) == 0x0F || pc_u8(p, 0, n) == 0x8F)) goto chdlc;
        if (n >= 1 && pc_u8(p, 0, n) == 0xFF) {
            if (n < PPP_ADDR_CTRL_LEN) return pc_malformed(c, i, MALFORMED_LINK_TRUNCATED);
            if (pc_u8(p, 1, n) == 0x03) off = PPP_ADDR_CTRL_LEN;
        }
        goto ppp;
    case LINKTYPE_C_HDLC:
        goto chdlc;
    case LINKTYPE_PPP_ETHER:
        goto pppoe;
    case LINKTYPE_IEEE802_11:
        goto dot11;
    case LINKTYPE_IEEE802_11_RADIOTAP: {
        uint64_t q;
        uint32_t present, w;
        if (n < RT_LEN) return pc_malformed(c, i, MALFORMED_LINK_TRUNCATED);
        if (pc_u8(p, 0, n) != 0) { /* radiotap version 0 is the only one */
            c->status[i] = STATUS_NOT_IP;
            return 1;
        }
        off = pc_rd16(p, RT_LENGTH, n, 0);
        if (off < RT_LEN || off > n) return pc_malformed(c, i, MALFORMED_LINK_TRUNCATED);
        /* the flags field (present bit 1) follows the present words and TSFT (bit 0: 8
         * bytes, aligned to 8 from the header's start); only its data-padding bit matters */
        present = w = pc_rd32(p, RT_PRESENT, n, 0);
        q = RT_PRESENT + 4;
        while (w & 0x80000000u) {
            if (q + 4 > off) return pc_malformed(c, i, MALFORMED_LINK_TRUNCATED);
            w = pc_rd32(p, q, n, 0);
            q += 4;
        }
        if (present & 2) {
            if (present & 1) q = ((q + 7) & ~(uint64_t)7) + 8;
            if (q >= off) return pc_malformed(c, i, MALFORMED_LINK_TRUNCATED);
            datapad = (pc_u8(p, q, n) & 0x20) != 0;
        }
        goto dot11;
    }
    case LINKTYPE_RAW:
    case LINKTYPE_RAW_BSD12:
    case LINKTYPE_RAW_BSD14:
        goto ip;
    case LINKTYPE_IPV4:
        want = 4;
        goto ip;
    case LINKTYPE_IPV6:
        want = 6;
        goto ip;
    case LINKTYPE_NULL:
        if (n < NULL_LEN) return pc_malformed(c, i, MALFORMED_LINK_TRUNCATED);
        af = pc_rd32(p, 0, n, 0);
        if (af & 0xFFFF0000u) af = __builtin_bswap32(af); /* written by a big-endian host */
        off = NULL_LEN;
        goto family;
    case LINKTYPE_LOOP:
        if (n < LOOP_LEN) return pc_malformed(c, i, MALFORMED_LINK_TRUNCATED);
        af = pc_be32(p, 0, n);
        off = LOOP_LEN;
        goto family;
    default:
        return 0;
    }
dot11: {
    /* frame control: version (bits 0-1) 0, type (2-3) 2 = data, subtype bit 0x40 = no data,
     * 0x80 = QoS; flags: to-DS + from-DS = 4 addresses, 0x40 protected, 0x80 order (HT) */
    uint8_t fc0, fc1;
    uint64_t hdr = DOT11_LEN, qos = 0;
    if (n - off < 2) return pc_malformed(c, i, MALFORMED_LINK_TRUNCATED);
    fc0 = pc_u8(p, off, n);
    fc1 = pc_u8(p, off + 1, n);
    if ((fc0 & 0x0F) != 0x08 || (fc0 & 0x40) || (fc1 & 0x40)) { /* not data, null, encrypted */
        c->status[i] = STATUS_NOT_IP;
        return 1;
    }
    if ((fc1 & 3) == 3) hdr += DOT11_ADDR4_LEN;
    if (fc0 & 0x80) {
        qos = hdr;
        hdr += DOT11_QOS_LEN;
        if (fc1 & 0x80) hdr += DOT11_HT_LEN;
    }
    if (n - off < hdr) return pc_malformed(c, i, MALFORMED_LINK_TRUNCATED);
    if (datapad) hdr = (hdr + 3) & ~(uint64_t)3;
    if (qos && (pc_u8(p, off + qos, n) & 0x80)) hdr += AMSDU_SUB_LEN; /* its first subframe */
    if (n - off < hdr) return pc_malformed(c, i, MALFORMED_LINK_TRUNCATED);
    off += hdr;
    et = 0; /* an LLC header follows, as after an 802.3 length */
    lengths = 1;
    goto ethertype;
}
cooked:
    /* Linux cooked protocol: an EtherType, or below 0x0600 a packet type of its own */
    if (et < ETH_MIN_TYPE && et != SLL_P_802_2) {
        c->status[i] = STATUS_NOT_IP;
        return 1;
    }
    goto ethertype;
chdlc:
    if (n < CHDLC_LEN) return pc_malformed(c, i, MALFORMED_LINK_TRUNCATED);
    et = pc_be16(p, CHDLC_TYPE, n);
    off = CHDLC_LEN;
    lengths = 0;
    goto ethertype;
pppoe:
    if (n - off < PPPOE_LEN) return pc_malformed(c, i, MALFORMED_LINK_TRUNCATED);
    if (pc_u8(p, off, n) != 0x11 || pc_u8(p, off + 1, n) != 0x00) { /* version 1 type 1, session */
        c->status[i] = STATUS_NOT_IP;
        return 1;
    }
    off += PPPOE_LEN;
    goto ppp;
ppp:
    /* the PPP protocol field: one byte when its low bit is set (field compression) */
    if (off >= n) return pc_malformed(c, i, MALFORMED_LINK_TRUNCATED);
    et = pc_u8(p, off, n);
    if (et & 1) {
        off += 1;
    } else {
        if (n - off < 2) return pc_malformed(c, i, MALFORMED_LINK_TRUNCATED);
        et = pc_be16(p, off, n);
        off += 2;
    }
    lengths = 0;
    if (et == 0x0021) et = 0x0800;
    else if (et == 0x0057) et = 0x86DD;
    else if (et == 0x0281) et = 0x8847;
    else if (et == 0x0283) et = 0x8848;
    else {
        c->status[i] = STATUS_NOT_IP;
        return 1;
    }
    goto ethertype;
family:
    if (af == 2) want = 4;
    else if (af == 10 || af == 24 || af == 28 || af == 30) want = 6;
    else {
        c->status[i] = STATUS_NOT_IP;
        return 1;
    }
    goto ip;
ethertype:
    for (;;) {
        if (et == 0x0800) {
            want = 4;
            goto ip;
        }
        if (et == 0x86DD) {
            want = 6;
            goto ip;
        }
        if (et == 0x8100 || et == 0x88A8 || et == 0x9100) {
            if (n - off < VLAN_LEN) return pc_malformed(c, i, MALFORMED_LINK_TRUNCATED);
            et = pc_be16(p, off + VLAN_TYPE, n);
            off += VLAN_LEN;
            lengths = 1;
            continue;
        }
        if (et == 0x8864) goto pppoe;
        if (et <= ETH_MAX_LEN && lengths) {
            /* 802.3 length: an 802.2 LLC header; SNAP (AA AA 03, OUI 0) carries an EtherType.
             * Cut inside what could still be SNAP: link truncated; anything else: not IP. */
            uint64_t k;
            for (k = 0; k < sizeof snap; k++) {
                if (off + k >= n) return pc_malformed(c, i, MALFORMED_LINK_TRUNCATED);
                if (pc_u8(p, off + k, n) != snap[k]) {
                    c->status[i] = STATUS_NOT_IP;
                    return 1;
                }
            }
            if (n - off < LLC_SNAP_LEN) return pc_malformed(c, i, MALFORMED_LINK_TRUNCATED);
            et = pc_be16(p, off + LLC_SNAP_TYPE, n);
            off += LLC_SNAP_LEN;
            lengths = 0;
            continue;
        }
        if (et == 0x8847 || et == 0x8848) {
            for (;;) {
                int bos;
                if (n - off < MPLS_LEN) return pc_malformed(c, i, MALFORMED_LINK_TRUNCATED);
                bos = pc_u8(p, off + MPLS_BOS_BYTE, n) & 1;
                off += MPLS_LEN;
                if (bos) break;
            }
            if (off < n && (pc_u8(p, off, n) >> 4) == 4) want = 4;
            else if (off < n && (pc_u8(p, off, n) >> 4) == 6) want = 6;
            else {
                c->status[i] = STATUS_NOT_IP;
                return 1;
            }
            goto ip;
        }
        c->status[i] = STATUS_NOT_IP;
        return 1;
    }
ip:
    {
        uint8_t v, proto;
        if (off >= n) return pc_malformed(c, i, MALFORMED_IP_TRUNCATED);
        v = pc_u8(p, off, n) >> 4;
        if ((v != 4 && v != 6) || (want && v != want)) return pc_malformed(c, i, MALFORMED_BAD_VERSION);
        if (v == 4) {
            uint64_t ihl, tot;
            uint16_t fo;
            if (n - off < IP4_MIN_LEN) return pc_malformed(c, i, MALFORMED_IP_TRUNCATED);
            ihl = (uint64_t)(pc_u8(p, off, n) & 15) * 4;
            if (ihl < IP4_MIN_LEN) return pc_malformed(c, i, MALFORMED_BAD_IHL);
            if (ihl > n - off) return pc_malformed(c, i, MALFORMED_IHL_BEYOND_CAPTURE);
            tot = pc_be16(p, off + IP4_TOTAL_LEN, n);
            if (tot < ihl) return pc_malformed(c, i, MALFORMED_BAD_TOTAL_LENGTH);
            c->ip_version[i] = 4;
            pc_map4(c->src + 16 * i, p, off + IP4_SRC, n);
            pc_map4(c->dst + 16 * i, p, off + IP4_DST, n);
            proto = pc_u8(p, off + IP4_PROTO, n);
            c->protocol[i] = proto;
            c->frag_next_header[i] = proto;
            c->ip_id[i] = pc_be16(p, off + IP4_ID, n);
            fo = pc_be16(p, off + IP4_FRAG, n);
            c->frag_offset[i] = fo & 0x1fff;
            end = off + tot < n ? off + tot : n; /* bytes past total length are link padding */
            if (fo & 0x1fff) {
                c->fragment[i] = FRAGMENT_LATER;
                return 1;
            }
            if (fo & 0x2000) c->fragment[i] = FRAGMENT_FIRST;
            c->status[i] = (uint8_t)pc_l4(p, off + ihl, end, 0, proto, c, i);
            return 1;
        } else {
            uint64_t plen, cur;
            int frag = FRAGMENT_NONE, fnh = -1;
            uint32_t id = 0;
            uint16_t foff = 0;
            if (n - off < IP6_LEN) return pc_malformed(c, i, MALFORMED_IP_TRUNCATED);
            plen = pc_be16(p, off + IP6_PAYLOAD_LEN, n);
            /* payload length 0 is a jumbogram (its length is in a hop-by-hop option) */
            end = plen && off + IP6_LEN + plen < n ? off + IP6_LEN + plen : n;
            proto = pc_u8(p, off + IP6_NEXT, n);
            cur = off + IP6_LEN;
            if (!pc_ip6_walk(p, end, &cur, &proto, &frag, &id, &foff, &fnh))
                return pc_malformed(c, i, MALFORMED_EXT_HEADERS);
            c->ip_version[i] = 6;
            pc_copy(c->src + 16 * i, p, off + IP6_SRC, 16, n);
            pc_copy(c->dst + 16 * i, p, off + IP6_DST, 16, n);
            c->protocol[i] = proto;
            c->frag_next_header[i] = (uint8_t)(fnh >= 0 ? fnh : proto);
            c->ip_id[i] = id;
            c->frag_offset[i] = foff;
            c->fragment[i] = (uint8_t)frag;
            if (frag == FRAGMENT_LATER) return 1;
            c->status[i] = (uint8_t)pc_l4(p, cur, end, 1, proto, c, i);
            return 1;
        }
    }
}

/* --- framing ------------------------------------------------------------------------ */

static inline void pc_note_linktype(pc_state *s, uint32_t link) {
    uint32_t k;
    for (k = 0; k < s->n_linktypes; k++)
        if (s->linktypes[k] == link) return;
    if (s->n_linktypes < PC_MAX_LINKTYPES_SEEN) s->linktypes[s->n_linktypes++] = link;
}

static inline int pc_damage(pc_state *s, int code, uint64_t offset, uint64_t value) {
    s->damage = code;
    s->damage_offset = offset;
    s->damage_value = value;
    return STOP_DAMAGED;
}

/* pcapng timestamp units -> nanoseconds. */
static inline int64_t pc_ng_ts(uint64_t ts, uint8_t res, int64_t offset_s) {
    uint64_t ns;
    uint8_t e = res & 0x7f;
    if (res & 0x80) {
        ns = e >= 64 ? 0 : (uint64_t)(((unsigned __int128)ts * 1000000000u) >> e);
    } else if (e <= 9) {
        static const uint64_t mul[10] = {1000000000u, 100000000u, 10000000u, 1000000u, 100000u,
                                         10000u, 1000u, 100u, 10u, 1u};
        ns = ts * mul[e];
    } else {
        uint64_t div = 1;
        uint8_t k;
        for (k = 9; k < e && k < 29; k++) div *= 10;
        ns = e >= 29 ? 0 : ts / div;
    }
    return (int64_t)(ns + (uint64_t)offset_s * 1000000000u);
}

static inline void pc_row_head(pc_state *s, pc_cols *c, size_t row, int64_t ts, uint32_t wire,
                               uint32_t cap) {
    PC_BOUND(cap, 0, wire);
    c->index[row] = s->records++;
    c->ts_ns[row] = ts;
    c->wire_len[row] = wire;
    c->cap_len[row] = cap;
}

static inline void pc_row_body(const uint8_t *p, uint64_t data, uint32_t cap, uint32_t link,
                               pc_cols *c, size_t row, pc_fallback *fb) {
    if (!pc_decode(p + data, cap, link, c, row)) {
        c->status[row] = STATUS_MALFORMED;
        c->malformed_reason[row] = MALFORMED_UNSUPPORTED_LINK;
        fb->row[fb->n] = (int64_t)row;
        fb->offset[fb->n] = data;
        fb->length[fb->n] = cap;
        fb->linktype[fb->n] = link;
        fb->n++;
    }
}

/* The filter's verdict on one frame: 1 keep, 0 drop (the record counted, as filtered), -1 no
 * program for this link type yet (the run stops with STOP_FILTER and `need` = the link type;
 * the facade compiles one). */
static inline int pc_filter_keep(pc_state *s, uint32_t link, const uint8_t *frame, uint32_t cap,
                                 uint32_t wire) {
    const pc_filter *f = s->filter;
    uint32_t k;
    for (k = 0; k < f->n; k++) {
        if (f->link[k] != link) continue;
        if (pc_bpf_run(f->prog[k], frame, cap, wire)) return 1;
        s->records++;
        s->filtered++;
        return 0;
    }
    s->need = link;
    return -1;
}

/* Read the file header at offset 0. Returns 0, or -1 when it is not a capture this reader
 * knows (the facade turns that into PcapError), -2 when the file is too short for it. */
static int pc_begin(pc_state *s, const uint8_t *p, uint64_t len) {
    uint32_t magic;
    if (len < 4) return -2;
    magic = pc_rd32(p, 0, len, 0);
    if (magic == NG_TYPE_SHB) {
        s->pcapng = 1;
        s->pos = 0;
        return 0;
    }
    if (magic == PCAP_MAGIC_USEC || magic == PCAP_MAGIC_USEC_SWAPPED) s->nsec = 0;
    else if (magic == PCAP_MAGIC_NSEC || magic == PCAP_MAGIC_NSEC_SWAPPED) s->nsec = 1;
    else return -1;
    if (len < PCAP_FILE_LEN) return -2;
    s->swap = magic == PCAP_MAGIC_USEC_SWAPPED || magic == PCAP_MAGIC_NSEC_SWAPPED;
    s->snaplen = pc_rd32(p, PCAP_FILE_SNAPLEN, len, s->swap);
    s->linktype = pc_rd32(p, PCAP_FILE_LINKTYPE, len, s->swap) & 0xFFFFu;
    s->formats |= s->swap ? (s->nsec ? FORMAT_PCAP_BE_NSEC : FORMAT_PCAP_BE_USEC)
                          : (s->nsec ? FORMAT_PCAP_LE_NSEC : FORMAT_PCAP_LE_USEC);
    pc_note_linktype(s, s->linktype);
    s->pos = PCAP_FILE_LEN;
    return 0;
}

static int pc_run_pcap(pc_state *s, const uint8_t *p, uint64_t len, pc_cols *c, size_t *rowp,
                       size_t cap, uint64_t limit, pc_fallback *fb) {
    uint64_t base = s->base, pos = s->pos - base; /* offsets in the buffer from here on */
    uint64_t start = pos;
    size_t row = *rowp;
    int swap = s->swap, stop = STOP_FULL;
    uint32_t frac_mul = s->nsec ? 1 : 1000, link = s->linktype, snap = s->snaplen;
    limit = limit > base ? limit - base : 0;
    while (row < cap) {
        uint32_t sec, frac, incl, orig;
        if (pos >= limit && pos < len) {
            stop = STOP_LIMIT;
            break;
        }
        if (len - pos < PCAP_REC_LEN) {
            if (s->more) {
                s->need = PCAP_REC_LEN;
                stop = STOP_MORE;
            } else if (pos >= len) {
                stop = STOP_EOF;
            } else {
                stop = pc_damage(s, DAMAGE_CUT_HEADER, base + pos, len - pos);
            }
            break;
        }
        sec = pc_rd32(p, pos + PCAP_REC_TS_SEC, len, swap);
        frac = pc_rd32(p, pos + PCAP_REC_TS_FRAC, len, swap);
        incl = pc_rd32(p, pos + PCAP_REC_CAPLEN, len, swap);
        orig = pc_rd32(p, pos + PCAP_REC_ORIGLEN, len, swap);
        if (incl > PC_MAX_CAPLEN) {
            stop = pc_damage(s, DAMAGE_CAPLEN_TOO_BIG, base + pos, incl);
            break;
        }
        if (incl > orig) {
            stop = pc_damage(s, DAMAGE_CAPLEN_ABOVE_ORIG, base + pos, incl);
            break;
        }
        if (len - pos - PCAP_REC_LEN < incl) {
            if (s->more) {
                s->need = PCAP_REC_LEN + (uint64_t)incl;
                stop = STOP_MORE;
            } else {
                stop = pc_damage(s, DAMAGE_CUT_DATA, base + pos, incl);
            }
            break;
        }
        if (!c && pos != start && pos + PCAP_REC_LEN + incl > limit) {
            stop = STOP_LIMIT; /* framing a block: this record would end past its limit */
            break;
        }
        if (s->filter) {
            int keep = pc_filter_keep(s, link, p + pos + PCAP_REC_LEN, incl, orig);
            if (keep < 0) {
                stop = STOP_FILTER;
                break;
            }
            if (!keep) {
                pos += PCAP_REC_LEN + incl;
                continue;
            }
        }
        if (incl > snap && snap) {
            if (!s->over_snaplen) {
                s->over_snaplen_offset = base + pos;
                s->over_snaplen_record = s->records;
            }
            s->over_snaplen++;
        }
        if (c) {
            pc_row_head(s, c, row, (int64_t)sec * 1000000000 + (int64_t)frac * frac_mul, orig,
                        incl);
            pc_row_body(p, pos + PCAP_REC_LEN, incl, link, c, row, fb);
        } else {
            s->records++;
        }
        pos += PCAP_REC_LEN + incl;
        row++;
    }
    s->pos = base + pos;
    *rowp = row;
    return stop;
}

/* IDB options: if_tsresol and if_tsoffset; a malformed option list just ends the scan. */
static void pc_idb_options(const uint8_t *p, uint64_t cur, uint64_t end, int swap, uint8_t *res,
                           int64_t *offset) {
    while (cur + NG_OPT_VALUE <= end) {
        uint16_t code = pc_rd16(p, cur + NG_OPT_CODE, end, swap);
        uint16_t olen = pc_rd16(p, cur + NG_OPT_LEN, end, swap);
        uint64_t v = cur + NG_OPT_VALUE;
        if (code == NG_OPT_END || v + olen > end) return;
        if (code == NG_OPT_IF_TSRESOL && olen >= 1) *res = pc_u8(p, v, end);
        if (code == NG_OPT_IF_TSOFFSET && olen >= 8) {
            uint64_t lo = pc_rd32(p, v, end, swap), hi = pc_rd32(p, v + 4, end, swap);
            *offset = (int64_t)(swap ? (lo << 32) | hi : (hi << 32) | lo);
        }
        cur = v + (((uint64_t)olen + 3) & ~(uint64_t)3);
    }
}

static int pc_run_pcapng(pc_state *s, const uint8_t *p, uint64_t len, pc_cols *c, size_t *rowp,
                         size_t cap, uint64_t limit, pc_fallback *fb) {
    uint64_t base = s->base, pos = s->pos - base; /* offsets in the buffer from here on */
    uint64_t start = pos;
    size_t row = *rowp;
    int stop = STOP_FULL;
    limit = limit > base ? limit - base : 0;
    while (row < cap) {
        uint32_t type, blen, iface = 0, incl = 0, orig = 0;
        uint64_t body, blim, data = 0, ts = 0;
        int is_packet = 0, has_ts = 1;
        if (pos >= limit && pos < len) {
            stop = STOP_LIMIT;
            break;
        }
        if (len - pos < NG_BLOCK_OVERHEAD) {
            if (s->more) {
                s->need = NG_BLOCK_OVERHEAD;
                stop = STOP_MORE;
            } else if (pos >= len) {
                stop = STOP_EOF;
            } else {
                stop = pc_damage(s, DAMAGE_CUT_HEADER, base + pos, len - pos);
            }
            break;
        }
        type = pc_rd32(p, pos + NG_BLOCK_TYPE, len, s->swap);
        if (type == NG_TYPE_SHB) {
            uint32_t bom = pc_rd32(p, pos + NG_BLOCK_BODY + NG_SHB_BOM, len, 0);
            if (bom == NG_BOM) s->swap = 0;
            else if (bom == NG_BOM_SWAPPED) s->swap = 1;
            else {
                stop = pc_damage(s, DAMAGE_BAD_BOM, base + pos, bom);
                break;
            }
        }
        blen = pc_rd32(p, pos + NG_BLOCK_LEN, len, s->swap);
        if (blen < NG_BLOCK_OVERHEAD || (blen & 3)) {
            stop = pc_damage(s, DAMAGE_BLOCK_LEN, base + pos, blen);
            break;
        }
        if (blen > len - pos) {
            if (s->more) {
                s->need = blen;
                stop = STOP_MORE;
            } else {
                stop = pc_damage(s, DAMAGE_CUT_DATA, base + pos, blen);
            }
            break;
        }
        if (pc_rd32(p, pos + blen - 4, len, s->swap) != blen) {
            stop = pc_damage(s, DAMAGE_BLOCK_LEN_MISMATCH, base + pos, blen);
            break;
        }
        if (!c && pos != start && pos + blen > limit) {
            stop = STOP_LIMIT; /* framing a block: this block would end past its limit */
            break;
        }
        body = pos + NG_BLOCK_BODY;
        blim = pos + blen - 4; /* body ends here */
        switch (type) {
        case NG_TYPE_SHB:
            if (blim - body < NG_SHB_MIN_BODY) {
                stop = pc_damage(s, DAMAGE_BLOCK_TOO_SHORT, base + pos, blen);
                goto out;
            }
            s->n_if = 0;
            s->pcapng = 1;
            s->formats |= s->swap ? FORMAT_PCAPNG_BE : FORMAT_PCAPNG_LE;
            break;
        case NG_TYPE_IDB: {
            uint32_t k = s->n_if;
            if (blim - body < NG_IDB_OPTIONS) {
                stop = pc_damage(s, DAMAGE_BLOCK_TOO_SHORT, base + pos, blen);
                goto out;
            }
            if (k == s->cap_if) {
                stop = STOP_GROW_IFACES;
                goto out;
            }
            s->if_link[k] = pc_rd16(p, body + NG_IDB_LINKTYPE, blim, s->swap);
            s->if_snap[k] = pc_rd32(p, body + NG_IDB_SNAPLEN, blim, s->swap);
            s->if_tsresol[k] = 6;
            s->if_tsoffset[k] = 0;
            pc_idb_options(p, body + NG_IDB_OPTIONS, blim, s->swap, &s->if_tsresol[k],
                           &s->if_tsoffset[k]);
            pc_note_linktype(s, s->if_link[k]);
            s->n_if = k + 1;
            break;
        }
        case NG_TYPE_EPB:
        case NG_TYPE_PB:
            if (blim - body < (type == NG_TYPE_EPB ? NG_EPB_DATA : NG_PB_DATA)) {
                stop = pc_damage(s, DAMAGE_BLOCK_TOO_SHORT, base + pos, blen);
                goto out;
            }
            if (type == NG_TYPE_EPB) {
                iface = pc_rd32(p, body + NG_EPB_IFACE, blim, s->swap);
                ts = ((uint64_t)pc_rd32(p, body + NG_EPB_TS_HIGH, blim, s->swap) << 32) |
                     pc_rd32(p, body + NG_EPB_TS_LOW, blim, s->swap);
                incl = pc_rd32(p, body + NG_EPB_CAPLEN, blim, s->swap);
                orig = pc_rd32(p, body + NG_EPB_ORIGLEN, blim, s->swap);
                data = body + NG_EPB_DATA;
            } else {
                iface = pc_rd16(p, body + NG_PB_IFACE, blim, s->swap);
                ts = ((uint64_t)pc_rd32(p, body + NG_PB_TS_HIGH, blim, s->swap) << 32) |
                     pc_rd32(p, body + NG_PB_TS_LOW, blim, s->swap);
                incl = pc_rd32(p, body + NG_PB_CAPLEN, blim, s->swap);
                orig = pc_rd32(p, body + NG_PB_ORIGLEN, blim, s->swap);
                data = body + NG_PB_DATA;
            }
            if (incl > PC_MAX_CAPLEN) {
                stop = pc_damage(s, DAMAGE_CAPLEN_TOO_BIG, base + pos, incl);
                goto out;
            }
            if (incl > orig) {
                stop = pc_damage(s, DAMAGE_CAPLEN_ABOVE_ORIG, base + pos, incl);
                goto out;
            }
            if (incl > blim - data) {
                stop = pc_damage(s, DAMAGE_CAPLEN_BEYOND_BLOCK, base + pos, incl);
                goto out;
            }
            is_packet = 1;
            break;
        case NG_TYPE_SPB: {
            uint64_t room;
            if (blim - body < NG_SPB_DATA) {
                stop = pc_damage(s, DAMAGE_BLOCK_TOO_SHORT, base + pos, blen);
                goto out;
            }
            orig = pc_rd32(p, body + NG_SPB_ORIGLEN, blim, s->swap);
            data = body + NG_SPB_DATA;
            room = blim - data;
            /* the packet's length is not stored: it is min(original length, snaplen), and
             * the block holds exactly that, padded to 4 bytes */
            incl = orig;
            if (s->n_if && s->if_snap[0] && incl > s->if_snap[0]) incl = s->if_snap[0];
            if (incl > PC_MAX_CAPLEN) {
                stop = pc_damage(s, DAMAGE_CAPLEN_TOO_BIG, base + pos, incl);
                goto out;
            }
            if ((((uint64_t)incl + 3) & ~(uint64_t)3) != room) {
                stop = pc_damage(s, DAMAGE_SPB_LENGTH, base + pos, blen);
                goto out;
            }
            iface = 0;
            has_ts = 0;
            is_packet = 1;
            break;
        }
        default:
            break; /* NRB, ISB, custom, unknown: skipped */
        }
        if (is_packet) {
            uint32_t link;
            if (iface >= s->n_if) {
                stop = pc_damage(s, DAMAGE_BAD_INTERFACE, base + pos, iface);
                goto out;
            }
            link = s->if_link[iface];
            if (s->filter) {
                int keep = pc_filter_keep(s, link, p + data, incl, orig);
                if (keep < 0) {
                    stop = STOP_FILTER;
                    goto out;
                }
                if (!keep) {
                    pos += blen;
                    continue;
                }
            }
            if (incl > s->if_snap[iface] && s->if_snap[iface]) {
                if (!s->over_snaplen) {
                    s->over_snaplen_offset = base + pos;
                    s->over_snaplen_record = s->records;
                }
                s->over_snaplen++;
            }
            if (c) {
                pc_row_head(s, c, row,
                            has_ts ? pc_ng_ts(ts, s->if_tsresol[iface], s->if_tsoffset[iface])
                                   : 0,
                            orig, incl);
                pc_row_body(p, data, incl, link, c, row, fb);
            } else {
                s->records++;
            }
            row++;
        }
        pos += blen;
    }
out:
    s->pos = base + pos;
    *rowp = row;
    return stop;
}

static int pc_run(pc_state *s, const uint8_t *p, uint64_t len, pc_cols *c, size_t *rowp,
                  size_t cap, uint64_t limit, pc_fallback *fb) {
    if (s->damage) return STOP_DAMAGED;
    return s->pcapng ? pc_run_pcapng(s, p, len, c, rowp, cap, limit, fb)
                     : pc_run_pcap(s, p, len, c, rowp, cap, limit, fb);
}

#endif
