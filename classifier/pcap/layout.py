"""The reader's header table: offsets and widths of pcap/pcapng blocks and protocol headers.

Headers as data (dpkt's habit): every offset the reader uses is named here once, for Python, and
in `pcap_layout.h` for C. The compiled reader exports the C values as `_pcap.LAYOUT`; the pure
twin reads this table; tests/test_pcap_unit.py checks that the two are equal.
"""

from __future__ import annotations

LAYOUT: dict[str, int] = {
    # classic pcap: global header and record header
    "PCAP_FILE_LEN": 24, "PCAP_FILE_MAGIC": 0, "PCAP_FILE_VERSION_MAJOR": 4,
    "PCAP_FILE_VERSION_MINOR": 6, "PCAP_FILE_SNAPLEN": 16, "PCAP_FILE_LINKTYPE": 20,
    "PCAP_REC_LEN": 16, "PCAP_REC_TS_SEC": 0, "PCAP_REC_TS_FRAC": 4, "PCAP_REC_CAPLEN": 8,
    "PCAP_REC_ORIGLEN": 12,
    # pcapng blocks (body offsets after type + length)
    "NG_BLOCK_TYPE": 0, "NG_BLOCK_LEN": 4, "NG_BLOCK_BODY": 8, "NG_BLOCK_OVERHEAD": 12,
    "NG_SHB_BOM": 0, "NG_SHB_MIN_BODY": 16,
    "NG_IDB_LINKTYPE": 0, "NG_IDB_SNAPLEN": 4, "NG_IDB_OPTIONS": 8,
    "NG_EPB_IFACE": 0, "NG_EPB_TS_HIGH": 4, "NG_EPB_TS_LOW": 8, "NG_EPB_CAPLEN": 12,
    "NG_EPB_ORIGLEN": 16, "NG_EPB_DATA": 20,
    "NG_SPB_ORIGLEN": 0, "NG_SPB_DATA": 4,
    "NG_PB_IFACE": 0, "NG_PB_DROPS": 2, "NG_PB_TS_HIGH": 4, "NG_PB_TS_LOW": 8,
    "NG_PB_CAPLEN": 12, "NG_PB_ORIGLEN": 16, "NG_PB_DATA": 20,
    "NG_OPT_CODE": 0, "NG_OPT_LEN": 2, "NG_OPT_VALUE": 4, "NG_OPT_END": 0,
    "NG_OPT_IF_TSRESOL": 9, "NG_OPT_IF_TSOFFSET": 14,
    # link layers
    "ETH_LEN": 14, "ETH_TYPE": 12, "VLAN_LEN": 4, "VLAN_TYPE": 2, "MPLS_LEN": 4,
    "MPLS_BOS_BYTE": 2, "SLL_LEN": 16, "SLL_PROTO": 14, "SLL2_LEN": 20, "SLL2_PROTO": 0,
    "NULL_LEN": 4, "LOOP_LEN": 4, "ETH_MAX_LEN": 1500, "ETH_MIN_TYPE": 0x0600,
    "SLL_P_802_2": 4, "LLC_SNAP_LEN": 8, "LLC_SNAP_TYPE": 6, "PPP_ADDR_CTRL_LEN": 2,
    "CHDLC_LEN": 4, "CHDLC_TYPE": 2, "PPPOE_LEN": 6, "RT_LEN": 8, "RT_LENGTH": 2,
    "RT_PRESENT": 4, "DOT11_LEN": 24, "DOT11_ADDR4_LEN": 6, "DOT11_QOS_LEN": 2,
    "DOT11_HT_LEN": 4, "AMSDU_SUB_LEN": 14,
    # IP and transport
    "IP4_MIN_LEN": 20, "IP4_TOTAL_LEN": 2, "IP4_ID": 4, "IP4_FRAG": 6, "IP4_PROTO": 9,
    "IP4_SRC": 12, "IP4_DST": 16,
    "IP6_LEN": 40, "IP6_PAYLOAD_LEN": 4, "IP6_NEXT": 6, "IP6_SRC": 8, "IP6_DST": 24,
    "IP6_EXT_NEXT": 0, "IP6_EXT_LEN": 1, "IP6_FRAG_LEN": 8, "IP6_FRAG_OFFSET": 2,
    "IP6_FRAG_ID": 4,
    "L4_SPORT": 0, "L4_DPORT": 2, "L4_PORTS_LEN": 4, "TCP_FLAGS": 13, "TCP_FLAGS_LEN": 14,
    "ICMP_TYPE": 0, "ICMP_CODE": 1, "ICMP_TYPE_LEN": 2, "ICMP_ID": 4, "ICMP_ID_LEN": 6,
    "ICMP_QUOTE": 8,
    # limits
    "PC_MAX_CAPLEN": 262144, "PC_MAX_EXT_HEADERS": 64,
}  # fmt: skip
