/* The codes of classifier/codes.py, for C: statuses, malformed reasons, l4 bits, fragment
 * kinds, TCP flags, protocols, the unknown-port key, verdict/reason/direction codes, the
 * idle timeouts, and the reader core's link types, damage, stop and format codes.
 *
 * classifier/codes.py assigns every value; this header mirrors it and classifier/_codes.pxd
 * declares it for Cython. tests/test_codes.py proves the three agree: change all three, or
 * the test fails.
 */
#ifndef CLASSIFIER_CODES_H
#define CLASSIFIER_CODES_H

#include <stdint.h>

/* record status (PacketBatch.status) */
enum {
    STATUS_OK = 0,
    STATUS_NOT_IP = 1,
    STATUS_MALFORMED = 2,
    STATUS_L4_TRUNCATED = 3,
};

/* malformed_reason */
enum {
    MALFORMED_NONE = 0,
    MALFORMED_LINK_TRUNCATED = 1,
    MALFORMED_IP_TRUNCATED = 2,
    MALFORMED_BAD_VERSION = 3,
    MALFORMED_BAD_IHL = 4,
    MALFORMED_IHL_BEYOND_CAPTURE = 5,
    MALFORMED_BAD_TOTAL_LENGTH = 6,
    MALFORMED_EXT_HEADERS = 7,
    MALFORMED_UNSUPPORTED_LINK = 8,
};

/* l4: which fields are known */
enum {
    L4_PORTS = 1,
    L4_ICMP = 2,
    L4_ICMP_ID = 4,
    L4_TCP_FLAGS = 8,
    L4_INNER = 16,
    L4_INNER_PORTS = 32,
    L4_INNER_ICMP_ID = 64,
    L4_ICMP_NO_CODE = 128,
};

/* fragment */
enum { FRAGMENT_NONE = 0, FRAGMENT_FIRST = 1, FRAGMENT_LATER = 2 };

/* TCP flags */
enum { TCP_FIN = 0x01, TCP_SYN = 0x02, TCP_RST = 0x04, TCP_PSH = 0x08, TCP_ACK = 0x10 };

/* IP protocols */
enum {
    PROTO_ICMP = 1,
    PROTO_TCP = 6,
    PROTO_UDP = 17,
    PROTO_GRE = 47,
    PROTO_ICMPV6 = 58,
    PROTO_SCTP = 132,
};

/* the key of a packet whose ports / ICMP type are unknown */
enum { PORT_UNKNOWN = 0x10000, ICMP_PORT_BASE = 0x20000, ICMP_CODE_UNKNOWN = 256 };

/* per-packet verdicts */
enum {
    VERDICT_ALLOW = 0,
    VERDICT_DENY = 1,
    VERDICT_UNMANAGED = 2,
    VERDICT_NOT_IP = 3,
    VERDICT_MALFORMED = 4,
};
enum {
    REASON_NONE = 0,
    REASON_RULE = 1,
    REASON_IMPLICIT_DENY = 2,
    REASON_ESTABLISHED = 3,
    REASON_RELATED = 4,
};
enum { DIRECTION_INGRESS = 0, DIRECTION_EGRESS = 1, DIRECTION_NONE = 2 };
enum { NO_RULE = -1, NO_INSTANCE = -1 };

/* idle timeouts (64-bit: not enum constants) */
#define SECOND_NS 1000000000LL
#define TCP_TIMEOUT_NS (600LL * SECOND_NS)
#define TCP_CLOSING_TIMEOUT_NS (30LL * SECOND_NS)
#define ICMP_TIMEOUT_NS (30LL * SECOND_NS)
#define OTHER_TIMEOUT_NS (180LL * SECOND_NS)
#define OTHER_ONE_WAY_TIMEOUT_NS (30LL * SECOND_NS)
#define FRAGMENT_WINDOW_NS (30LL * SECOND_NS)

/* the capture reader core: link types framed natively */
enum {
    LINKTYPE_NULL = 0,
    LINKTYPE_EN10MB = 1,
    LINKTYPE_PPP = 9,
    LINKTYPE_RAW_BSD12 = 12,
    LINKTYPE_RAW_BSD14 = 14,
    LINKTYPE_PPP_HDLC = 50,
    LINKTYPE_PPP_ETHER = 51,
    LINKTYPE_RAW = 101,
    LINKTYPE_C_HDLC = 104,
    LINKTYPE_IEEE802_11 = 105,
    LINKTYPE_LOOP = 108,
    LINKTYPE_LINUX_SLL = 113,
    LINKTYPE_IEEE802_11_RADIOTAP = 127,
    LINKTYPE_IPV4 = 228,
    LINKTYPE_IPV6 = 229,
    LINKTYPE_LINUX_SLL2 = 276,
};

/* why a read ended early */
enum {
    DAMAGE_NONE = 0,
    DAMAGE_CUT_HEADER = 1,
    DAMAGE_CUT_DATA = 2,
    DAMAGE_CAPLEN_TOO_BIG = 3,
    DAMAGE_CAPLEN_ABOVE_ORIG = 4,
    DAMAGE_BLOCK_LEN = 5,
    DAMAGE_BLOCK_LEN_MISMATCH = 6,
    DAMAGE_BLOCK_TOO_SHORT = 7,
    DAMAGE_BAD_BOM = 8,
    DAMAGE_BAD_INTERFACE = 9,
    DAMAGE_CAPLEN_BEYOND_BLOCK = 10,
    DAMAGE_SPB_LENGTH = 11,
};

/* why the core returned from a run */
enum { STOP_FULL = 0, STOP_EOF = 1, STOP_LIMIT = 2, STOP_DAMAGED = 3, STOP_GROW_IFACES = 4, STOP_MORE = 5,
       STOP_FAULT = 6, STOP_FILTER = 7 };

/* capture formats seen (bits) */
enum {
    FORMAT_PCAP_LE_USEC = 1,
    FORMAT_PCAP_LE_NSEC = 2,
    FORMAT_PCAP_BE_USEC = 4,
    FORMAT_PCAP_BE_NSEC = 8,
    FORMAT_PCAPNG_LE = 16,
    FORMAT_PCAPNG_BE = 32,
};

/* codes.PORT_PROTOCOLS: the protocols whose packets carry ports */
static inline int code_carries_ports(uint32_t protocol) {
    return protocol == PROTO_TCP || protocol == PROTO_UDP || protocol == PROTO_SCTP;
}

#endif
