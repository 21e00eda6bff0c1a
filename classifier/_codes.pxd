# Cython declarations of classifier/codes.py, from its C mirror csrc/codes.h.
#
# `from classifier._codes cimport STATUS_OK, ...` in a .pyx. The values come from the header, so
# this file only names them; tests/test_codes.py checks that the names here, the header and
# codes.py are the same set with the same values.

from libc.stdint cimport int64_t, uint32_t


cdef extern from "codes.h":
    enum:
        STATUS_OK
        STATUS_NOT_IP
        STATUS_MALFORMED
        STATUS_L4_TRUNCATED
        MALFORMED_NONE
        MALFORMED_LINK_TRUNCATED
        MALFORMED_IP_TRUNCATED
        MALFORMED_BAD_VERSION
        MALFORMED_BAD_IHL
        MALFORMED_IHL_BEYOND_CAPTURE
        MALFORMED_BAD_TOTAL_LENGTH
        MALFORMED_EXT_HEADERS
        MALFORMED_UNSUPPORTED_LINK
        L4_PORTS
        L4_ICMP
        L4_ICMP_ID
        L4_TCP_FLAGS
        L4_INNER
        L4_INNER_PORTS
        L4_INNER_ICMP_ID
        L4_ICMP_NO_CODE
        FRAGMENT_NONE
        FRAGMENT_FIRST
        FRAGMENT_LATER
        TCP_FIN
        TCP_SYN
        TCP_RST
        TCP_PSH
        TCP_ACK
        PROTO_ICMP
        PROTO_TCP
        PROTO_UDP
        PROTO_GRE
        PROTO_ICMPV6
        PROTO_SCTP
        PORT_UNKNOWN
        ICMP_PORT_BASE
        ICMP_CODE_UNKNOWN
        VERDICT_ALLOW
        VERDICT_DENY
        VERDICT_UNMANAGED
        VERDICT_NOT_IP
        VERDICT_MALFORMED
        REASON_NONE
        REASON_RULE
        REASON_IMPLICIT_DENY
        REASON_ESTABLISHED
        REASON_RELATED
        DIRECTION_INGRESS
        DIRECTION_EGRESS
        DIRECTION_NONE
        NO_RULE
        NO_INSTANCE
        LINKTYPE_NULL
        LINKTYPE_EN10MB
        LINKTYPE_PPP
        LINKTYPE_RAW_BSD12
        LINKTYPE_RAW_BSD14
        LINKTYPE_PPP_HDLC
        LINKTYPE_PPP_ETHER
        LINKTYPE_RAW
        LINKTYPE_C_HDLC
        LINKTYPE_IEEE802_11
        LINKTYPE_LOOP
        LINKTYPE_LINUX_SLL
        LINKTYPE_IEEE802_11_RADIOTAP
        LINKTYPE_IPV4
        LINKTYPE_IPV6
        LINKTYPE_LINUX_SLL2
        DAMAGE_NONE
        DAMAGE_CUT_HEADER
        DAMAGE_CUT_DATA
        DAMAGE_CAPLEN_TOO_BIG
        DAMAGE_CAPLEN_ABOVE_ORIG
        DAMAGE_BLOCK_LEN
        DAMAGE_BLOCK_LEN_MISMATCH
        DAMAGE_BLOCK_TOO_SHORT
        DAMAGE_BAD_BOM
        DAMAGE_BAD_INTERFACE
        DAMAGE_CAPLEN_BEYOND_BLOCK
        DAMAGE_SPB_LENGTH
        STOP_FULL
        STOP_EOF
        STOP_LIMIT
        STOP_DAMAGED
        STOP_GROW_IFACES
        STOP_MORE
        STOP_FAULT
        STOP_FILTER
        FORMAT_PCAP_LE_USEC
        FORMAT_PCAP_LE_NSEC
        FORMAT_PCAP_BE_USEC
        FORMAT_PCAP_BE_NSEC
        FORMAT_PCAPNG_LE
        FORMAT_PCAPNG_BE

    const int64_t SECOND_NS
    const int64_t TCP_TIMEOUT_NS
    const int64_t TCP_CLOSING_TIMEOUT_NS
    const int64_t ICMP_TIMEOUT_NS
    const int64_t OTHER_TIMEOUT_NS
    const int64_t OTHER_ONE_WAY_TIMEOUT_NS
    const int64_t FRAGMENT_WINDOW_NS

    int code_carries_ports(uint32_t protocol) noexcept nogil  # codes.PORT_PROTOCOLS
