/* Headers as data: every offset and size the native capture reader uses, in one table.
 *
 * The pure-Python twin (_pcap_py.py) reads the same numbers from the LAYOUT table of
 * classifier/pcap/layout.py; _pcap.pyx exports this table under the same name and a test
 * checks that both agree, so a typo in either is caught rather than copied.
 *
 * Offsets are in bytes from the start of the header they belong to. Multi-byte fields of the
 * file formats are in the file's (pcap) or the section's (pcapng) byte order; protocol
 * header fields are big-endian (network order).
 */
#ifndef CLASSIFIER_PCAP_LAYOUT_H
#define CLASSIFIER_PCAP_LAYOUT_H

/* --- classic pcap ------------------------------------------------------------------- */
enum {
    PCAP_FILE_LEN = 24,          /* global header */
    PCAP_FILE_MAGIC = 0,         /* u32 */
    PCAP_FILE_VERSION_MAJOR = 4, /* u16 */
    PCAP_FILE_VERSION_MINOR = 6, /* u16 */
    PCAP_FILE_SNAPLEN = 16,      /* u32 */
    PCAP_FILE_LINKTYPE = 20,     /* u32: low 16 bits are the link type (FCS bits above) */

    PCAP_REC_LEN = 16,           /* record header */
    PCAP_REC_TS_SEC = 0,         /* u32 */
    PCAP_REC_TS_FRAC = 4,        /* u32: micro- or nanoseconds, by the magic */
    PCAP_REC_CAPLEN = 8,         /* u32 */
    PCAP_REC_ORIGLEN = 12,       /* u32 */
};

#define PCAP_MAGIC_USEC 0xA1B2C3D4u /* as read little-endian: LE usec file */
#define PCAP_MAGIC_NSEC 0xA1B23C4Du
#define PCAP_MAGIC_USEC_SWAPPED 0xD4C3B2A1u
#define PCAP_MAGIC_NSEC_SWAPPED 0x4D3CB2A1u

/* --- pcapng ------------------------------------------------------------------------- */
enum {
    NG_BLOCK_TYPE = 0,           /* u32 */
    NG_BLOCK_LEN = 4,            /* u32: total length, repeated in the last 4 bytes */
    NG_BLOCK_BODY = 8,           /* body starts here */
    NG_BLOCK_OVERHEAD = 12,      /* type + length + trailing length */

    NG_SHB_BOM = 0,              /* body offsets: u32 byte-order magic */
    NG_SHB_MIN_BODY = 16,        /* BOM, major, minor, section length (u64) */

    NG_IDB_LINKTYPE = 0,         /* u16 */
    NG_IDB_SNAPLEN = 4,          /* u32, 0 = no limit */
    NG_IDB_OPTIONS = 8,          /* options follow the fixed part */

    NG_EPB_IFACE = 0,            /* u32 */
    NG_EPB_TS_HIGH = 4,          /* u32 */
    NG_EPB_TS_LOW = 8,           /* u32 */
    NG_EPB_CAPLEN = 12,          /* u32 */
    NG_EPB_ORIGLEN = 16,         /* u32 */
    NG_EPB_DATA = 20,

    NG_SPB_ORIGLEN = 0,          /* u32 */
    NG_SPB_DATA = 4,

    NG_PB_IFACE = 0,             /* u16 (obsolete Packet Block, type 2) */
    NG_PB_DROPS = 2,             /* u16 */
    NG_PB_TS_HIGH = 4,           /* u32 */
    NG_PB_TS_LOW = 8,            /* u32 */
    NG_PB_CAPLEN = 12,           /* u32 */
    NG_PB_ORIGLEN = 16,          /* u32 */
    NG_PB_DATA = 20,

    NG_OPT_CODE = 0,             /* u16 */
    NG_OPT_LEN = 2,              /* u16, value padded to 4 bytes */
    NG_OPT_VALUE = 4,
    NG_OPT_END = 0,
    NG_OPT_IF_TSRESOL = 9,       /* u8: bit 7 set = 2^-n, else 10^-n; default 10^-6 */
    NG_OPT_IF_TSOFFSET = 14,     /* i64 seconds added to every timestamp */
};

#define NG_TYPE_SHB 0x0A0D0D0Au
#define NG_TYPE_IDB 0x00000001u
#define NG_TYPE_PB 0x00000002u
#define NG_TYPE_SPB 0x00000003u
#define NG_TYPE_EPB 0x00000006u
#define NG_BOM 0x1A2B3C4Du /* as read little-endian: LE section */
#define NG_BOM_SWAPPED 0x4D3C2B1Au

/* --- link-layer headers ------------------------------------------------------------- */
enum {
    ETH_LEN = 14, ETH_TYPE = 12,
    VLAN_LEN = 4, VLAN_TYPE = 2,            /* tag after the TPID: TCI u16, inner type u16 */
    MPLS_LEN = 4, MPLS_BOS_BYTE = 2,        /* bottom-of-stack bit: byte 2, bit 0 */
    SLL_LEN = 16, SLL_PROTO = 14,
    SLL2_LEN = 20, SLL2_PROTO = 0,
    NULL_LEN = 4,                           /* u32 address family, writer's byte order */
    LOOP_LEN = 4,                           /* u32 address family, big-endian */
    ETH_MAX_LEN = 1500,                     /* an Ethernet type field up to this is a length */
    ETH_MIN_TYPE = 0x0600,                  /* ... and from this on an EtherType */
    SLL_P_802_2 = 4,                        /* SLL/SLL2 protocol: an 802.2 LLC header follows */
    LLC_SNAP_LEN = 8,                       /* 802.2 LLC (DSAP, SSAP, control) + SNAP (OUI, type) */
    LLC_SNAP_TYPE = 6,                      /* u16 EtherType after DSAP, SSAP, control, OUI */
    PPP_ADDR_CTRL_LEN = 2,                  /* HDLC-like framing: address 0xff, control 0x03 */
    CHDLC_LEN = 4, CHDLC_TYPE = 2,          /* Cisco HDLC: address, control, u16 EtherType */
    PPPOE_LEN = 6,                          /* PPPoE session: ver/type, code, session id, length */
    RT_LEN = 8, RT_LENGTH = 2, RT_PRESENT = 4, /* radiotap: version, pad, u16 LE length, u32 LE
                                                present words (bit 31: another follows) */
    DOT11_LEN = 24,                         /* 802.11 data header: FC, duration, 3 addresses, seq */
    DOT11_ADDR4_LEN = 6,                    /* ... + address 4 when to-DS and from-DS */
    DOT11_QOS_LEN = 2, DOT11_HT_LEN = 4,    /* ... + QoS control, + HT control (QoS + order bit) */
    AMSDU_SUB_LEN = 14,                     /* A-MSDU subframe header: DA, SA, u16 length */
};

/* --- IP and transport headers ------------------------------------------------------- */
enum {
    IP4_MIN_LEN = 20, IP4_TOTAL_LEN = 2, IP4_ID = 4, IP4_FRAG = 6, IP4_PROTO = 9,
    IP4_SRC = 12, IP4_DST = 16,
    IP6_LEN = 40, IP6_PAYLOAD_LEN = 4, IP6_NEXT = 6, IP6_SRC = 8, IP6_DST = 24,
    IP6_EXT_NEXT = 0, IP6_EXT_LEN = 1,      /* generic extension header: next, length */
    IP6_FRAG_LEN = 8, IP6_FRAG_OFFSET = 2, IP6_FRAG_ID = 4,
    L4_SPORT = 0, L4_DPORT = 2, L4_PORTS_LEN = 4,
    TCP_FLAGS = 13, TCP_FLAGS_LEN = 14,
    ICMP_TYPE = 0, ICMP_CODE = 1, ICMP_TYPE_LEN = 2,
    ICMP_ID = 4, ICMP_ID_LEN = 6,
    ICMP_QUOTE = 8,                         /* an error's quoted IP header starts here */
};

/* --- limits ------------------------------------------------------------------------- */
enum {
    PC_MAX_CAPLEN = 262144,      /* above this a record is impossible: the file is damaged */
    PC_MAX_EXT_HEADERS = 64,     /* an IPv6 chain longer than this is malformed */
    PC_MAX_LINKTYPES_SEEN = 64,
};

#endif
