"""The one contract: every numeric code that crosses a room of the package.

The reader writes statuses, malformed reasons, `l4` bits and fragment kinds into the packet
batch; the engine and connection tracking turn them into verdict, reason and direction codes;
the statistics and the reports turn those into names. Python, Cython and C all speak these
numbers, so they are assigned here, once:

- `classifier/csrc/codes.h` mirrors them for C (the reader core, the kernels);
- `classifier/_codes.pxd` declares them for Cython from that header (`cimport` them);
- `tests/test_codes.py` proves the three agree, name by name and value by value.

A pure-Python twin imports its codes from here; nothing else restates a value. `names()` turns
a code array into text, for every output that shows codes.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# --- record status (PacketBatch.status): exactly one per record ---------------------------
STATUS_OK = 0  # IP header read; L4 fields as far as captured (see `l4`)
STATUS_NOT_IP = 1  # the frame carries no IP (ARP, LLDP, MPLS with a non-IP payload, ...)
STATUS_MALFORMED = 2  # the IP header cannot be read; `malformed_reason` says why
STATUS_L4_TRUNCATED = 3  # IP header fine, but the transport header is cut off: ports unknown
STATUS_NAMES = ("ok", "not-ip", "malformed", "l4-truncated")

# --- malformed_reason (meaningful when status == STATUS_MALFORMED) -------------------------
MALFORMED_NONE = 0
MALFORMED_LINK_TRUNCATED = 1  # the frame ends inside the link-layer header (or a tag)
MALFORMED_IP_TRUNCATED = 2  # the frame ends inside the fixed IP header
MALFORMED_BAD_VERSION = 3  # version nibble contradicts the link layer
MALFORMED_BAD_IHL = 4  # IPv4 IHL < 5
MALFORMED_IHL_BEYOND_CAPTURE = 5  # IHL*4 beyond the captured bytes
MALFORMED_BAD_TOTAL_LENGTH = 6  # IPv4 total length below IHL*4
MALFORMED_EXT_HEADERS = 7  # IPv6 extension-header chain cut off or too long
MALFORMED_UNSUPPORTED_LINK = 8  # a link type nobody could decode
MALFORMED_REASONS = (
    "",
    "frame ends inside the link-layer header",
    "frame ends inside the IP header",
    "IP version contradicts the link layer",
    "IPv4 header length below 20 bytes",
    "IPv4 header length beyond the captured bytes",
    "IPv4 total length below the header length",
    "IPv6 extension headers cut off or too many",
    "link type not decoded",
)

# --- l4: bit set = the field is known ------------------------------------------------------
L4_PORTS = 1  # sport, dport (TCP, UDP, SCTP: first 4 bytes captured)
L4_ICMP = 2  # icmp_type, icmp_code (2 bytes captured)
L4_ICMP_ID = 4  # icmp_id (query messages, 6 bytes captured)
L4_TCP_FLAGS = 8  # tcp_flags (14 bytes captured)
L4_INNER = 16  # ICMP error: the quoted IP header was read (inner_* columns)
L4_INNER_PORTS = 32  # ... and its ports (inner_sport, inner_dport)
L4_INNER_ICMP_ID = 64  # ... or, quoting an ICMP query, its identifier (inner_icmp_id)
# With L4_ICMP: the type is known but the code is not (`sgclassify check --icmp-type` without
# --icmp-code); a captured ICMP header always has both, so the reader never sets it.
L4_ICMP_NO_CODE = 128

# --- fragment ------------------------------------------------------------------------------
FRAGMENT_NONE = 0  # not a fragment (IPv6 atomic fragments included)
FRAGMENT_FIRST = 1  # offset 0, more-fragments set
FRAGMENT_LATER = 2  # offset > 0: carries no transport header
FRAGMENT_NAMES = ("none", "first", "later")

# --- TCP flag bits (tcp_flags column) ------------------------------------------------------
TCP_FIN = 0x01
TCP_SYN = 0x02
TCP_RST = 0x04
TCP_PSH = 0x08
TCP_ACK = 0x10

# --- IP protocols --------------------------------------------------------------------------
PROTO_ICMP = 1
PROTO_TCP = 6
PROTO_UDP = 17
PROTO_GRE = 47
PROTO_ICMPV6 = 58
PROTO_SCTP = 132
PROTOCOL_NAMES = {
    PROTO_ICMP: "icmp",
    PROTO_TCP: "tcp",
    PROTO_UDP: "udp",
    PROTO_GRE: "gre",
    PROTO_ICMPV6: "icmpv6",
    PROTO_SCTP: "sctp",
}
PORT_PROTOCOLS = frozenset({PROTO_TCP, PROTO_UDP, PROTO_SCTP})  # packets that carry ports
RULE_PORT_PROTOCOLS = frozenset({PROTO_TCP, PROTO_UDP})  # rules that may restrict ports
ICMP_PROTOCOLS = frozenset({PROTO_ICMP, PROTO_ICMPV6})  # rules that may restrict type/code
ICMP_PROTOCOL_OF_VERSION = {4: PROTO_ICMP, 6: PROTO_ICMPV6}
ICMP_QUERY_TYPES = {4: frozenset({8, 0, 13, 14, 15, 16, 17, 18}), 6: frozenset({128, 129})}
ICMP_ERROR_TYPES = {4: frozenset({3, 4, 5, 11, 12}), 6: frozenset({1, 2, 3, 4})}

# --- the port column of a lookup -----------------------------------------------------------
# Rules match the destination port (or an ICMP type and code, below) in a uint32 key. A packet
# whose ports (or ICMP type) are unknown carries PORT_UNKNOWN: above every real port and
# every type/code, so only an unrestricted rule's range contains it.
PORT_UNKNOWN = 0x10000
# ICMP rides in the same field as ICMP_PORT_BASE + type * 512 + code, with 256 in the code's
# place when the code is unknown (`check --icmp-type` alone): inside its type's block
# [base + t*512, base + t*512 + 511], which a type-only rule matches, but equal to no code.
# The ICMP values start above PORT_UNKNOWN, so neither is mistaken for the other.
ICMP_PORT_BASE = 0x20000
ICMP_CODE_UNKNOWN = 256

# --- per-packet verdicts (uint8 columns) ---------------------------------------------------
VERDICT_ALLOW = 0
VERDICT_DENY = 1
VERDICT_UNMANAGED = 2
VERDICT_NOT_IP = 3
VERDICT_MALFORMED = 4
VERDICT_NAMES = ("allow", "deny", "unmanaged", "not-ip", "malformed")

REASON_NONE = 0  # unmanaged, not-ip, malformed
REASON_RULE = 1
REASON_IMPLICIT_DENY = 2
REASON_ESTABLISHED = 3
REASON_RELATED = 4
REASON_NAMES = ("", "rule", "implicit-deny", "established", "related")

DIRECTION_INGRESS = 0
DIRECTION_EGRESS = 1
DIRECTION_NONE = 2  # no side (unmanaged, not-ip, malformed)
DIRECTION_NAMES = ("ingress", "egress", "")

NO_RULE = -1  # rule columns: no matched rule (implicit deny, state, not evaluated)
NO_INSTANCE = -1  # instance columns: no side (unmanaged, not-ip, malformed)

# --- connection tracking: the idle timeouts of the semantics contract, section 4 ------------
SECOND_NS = 1_000_000_000
TCP_TIMEOUT_NS = 600 * SECOND_NS
TCP_CLOSING_TIMEOUT_NS = 30 * SECOND_NS  # once a FIN or RST was seen
ICMP_TIMEOUT_NS = 30 * SECOND_NS
OTHER_TIMEOUT_NS = 180 * SECOND_NS  # once both directions were seen
OTHER_ONE_WAY_TIMEOUT_NS = 30 * SECOND_NS
FRAGMENT_WINDOW_NS = 30 * SECOND_NS  # a non-first fragment joins a first fragment this recent

# --- the capture reader core (classifier.pcap, pcap_core.h) --------------------------------
# link types framed natively
LINKTYPE_NULL = 0
LINKTYPE_EN10MB = 1
LINKTYPE_PPP = 9
LINKTYPE_RAW_BSD12 = 12
LINKTYPE_RAW_BSD14 = 14
LINKTYPE_PPP_HDLC = 50
LINKTYPE_PPP_ETHER = 51
LINKTYPE_RAW = 101
LINKTYPE_C_HDLC = 104
LINKTYPE_IEEE802_11 = 105
LINKTYPE_LOOP = 108
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IEEE802_11_RADIOTAP = 127
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276

# why a read ended early (the reader's facade words them)
DAMAGE_NONE = 0
DAMAGE_CUT_HEADER = 1
DAMAGE_CUT_DATA = 2
DAMAGE_CAPLEN_TOO_BIG = 3
DAMAGE_CAPLEN_ABOVE_ORIG = 4
DAMAGE_BLOCK_LEN = 5
DAMAGE_BLOCK_LEN_MISMATCH = 6
DAMAGE_BLOCK_TOO_SHORT = 7
DAMAGE_BAD_BOM = 8
DAMAGE_BAD_INTERFACE = 9
DAMAGE_CAPLEN_BEYOND_BLOCK = 10
DAMAGE_SPB_LENGTH = 11

# why the core returned from a run
STOP_FULL = 0  # the batch is full
STOP_EOF = 1  # the end of the file
STOP_LIMIT = 2  # the byte limit of this call (one window of the map)
STOP_DAMAGED = 3  # a record that cannot be framed
STOP_GROW_IFACES = 4  # a pcapng section defines more interfaces than the arrays hold
STOP_MORE = 5  # a stream: the record at `pos` needs bytes beyond the buffer (`need` of them)
STOP_FAULT = 6  # a mapped file shrank under the reader (SIGBUS survived): state as on entry
STOP_FILTER = 7  # --filter: the record at `pos` has a link type without a program (`need`)

# capture formats seen (bits)
FORMAT_PCAP_LE_USEC = 1
FORMAT_PCAP_LE_NSEC = 2
FORMAT_PCAP_BE_USEC = 4
FORMAT_PCAP_BE_NSEC = 8
FORMAT_PCAPNG_LE = 16
FORMAT_PCAPNG_BE = 32


def protocol_name(number: int) -> str:
    """tcp, udp, ... for the protocols that have a name here, else the number as text."""
    return PROTOCOL_NAMES.get(number) or str(number)


def names(table: Sequence[str], codes: np.ndarray) -> np.ndarray:
    """The names of a code array (uint8 codes indexing `table`) as an object array of str;
    "" for a code beyond the table."""
    lookup = np.array([table[c] if c < len(table) else "" for c in range(256)], dtype=object)
    return lookup[np.asarray(codes, dtype=np.uint8)]
