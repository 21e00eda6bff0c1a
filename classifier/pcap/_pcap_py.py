"""Pure-Python twin of classifier.pcap._pcap (same names, same results, much slower).

It follows pcap_core.h statement by statement, so that the two can be compared on any input;
where the C code relies on the zeroed batch, so does this. Its codes are `classifier.codes`
and its header table `classifier.pcap.layout`, the Python sides of codes.h and pcap_layout.h.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from classifier.codes import (
    DAMAGE_BAD_BOM,
    DAMAGE_BAD_INTERFACE,
    DAMAGE_BLOCK_LEN,
    DAMAGE_BLOCK_LEN_MISMATCH,
    DAMAGE_BLOCK_TOO_SHORT,
    DAMAGE_CAPLEN_ABOVE_ORIG,
    DAMAGE_CAPLEN_BEYOND_BLOCK,
    DAMAGE_CAPLEN_TOO_BIG,
    DAMAGE_CUT_DATA,
    DAMAGE_CUT_HEADER,
    DAMAGE_NONE,
    DAMAGE_SPB_LENGTH,
    FORMAT_PCAP_BE_NSEC,
    FORMAT_PCAP_BE_USEC,
    FORMAT_PCAP_LE_NSEC,
    FORMAT_PCAP_LE_USEC,
    FORMAT_PCAPNG_BE,
    FORMAT_PCAPNG_LE,
    FRAGMENT_FIRST,
    FRAGMENT_LATER,
    FRAGMENT_NONE,
    L4_ICMP,
    L4_ICMP_ID,
    L4_INNER,
    L4_INNER_ICMP_ID,
    L4_INNER_PORTS,
    L4_PORTS,
    L4_TCP_FLAGS,
    LINKTYPE_C_HDLC,
    LINKTYPE_EN10MB,
    LINKTYPE_IEEE802_11,
    LINKTYPE_IEEE802_11_RADIOTAP,
    LINKTYPE_IPV4,
    LINKTYPE_IPV6,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2,
    LINKTYPE_LOOP,
    LINKTYPE_NULL,
    LINKTYPE_PPP,
    LINKTYPE_PPP_ETHER,
    LINKTYPE_PPP_HDLC,
    LINKTYPE_RAW,
    LINKTYPE_RAW_BSD12,
    LINKTYPE_RAW_BSD14,
    MALFORMED_BAD_IHL,
    MALFORMED_BAD_TOTAL_LENGTH,
    MALFORMED_BAD_VERSION,
    MALFORMED_EXT_HEADERS,
    MALFORMED_IHL_BEYOND_CAPTURE,
    MALFORMED_IP_TRUNCATED,
    MALFORMED_LINK_TRUNCATED,
    MALFORMED_UNSUPPORTED_LINK,
    PORT_PROTOCOLS,
    STATUS_L4_TRUNCATED,
    STATUS_MALFORMED,
    STATUS_NOT_IP,
    STATUS_OK,
    STOP_DAMAGED,
    STOP_EOF,
    STOP_FILTER,
    STOP_FULL,
    STOP_GROW_IFACES,
    STOP_LIMIT,
    STOP_MORE,
)
from classifier.pcap import bpf
from classifier.pcap.layout import LAYOUT

L = LAYOUT
MAX_CAPLEN = L["PC_MAX_CAPLEN"]
DEBUG_BUILD = False  # Python checks every index itself
GUARDED = False  # run() reads no map: the facade gives this twin bytes read with pread

PCAP_MAGIC_USEC, PCAP_MAGIC_NSEC = 0xA1B2C3D4, 0xA1B23C4D
PCAP_MAGIC_USEC_SWAPPED, PCAP_MAGIC_NSEC_SWAPPED = 0xD4C3B2A1, 0x4D3CB2A1
NG_TYPE_SHB, NG_TYPE_IDB, NG_TYPE_PB, NG_TYPE_SPB, NG_TYPE_EPB = 0x0A0D0D0A, 1, 2, 3, 6
NG_BOM, NG_BOM_SWAPPED = 0x1A2B3C4D, 0x4D3C2B1A

SNAP = b"\xaa\xaa\x03\x00\x00\x00"  # 802.2 LLC (DSAP, SSAP, control) + SNAP OUI 00-00-00
PPP_ETHERTYPES = {0x0021: 0x0800, 0x0057: 0x86DD, 0x0281: 0x8847, 0x0283: 0x8848}

EXT_8 = frozenset((0, 43, 60, 135, 139, 140))  # length in 8-byte units, not counting the first
AH = 51
FRAG = 44
IP4_MAPPED = b"\x00" * 10 + b"\xff\xff"
MASK64 = (1 << 64) - 1


def _be16(p: bytes, off: int) -> int:
    return (p[off] << 8) | p[off + 1]


def _be32(p: bytes, off: int) -> int:
    return int.from_bytes(p[off : off + 4], "big")


def _rd32(p: Any, off: int, swap: int) -> int:
    return int.from_bytes(p[off : off + 4], "big" if swap else "little")


def _rd16(p: Any, off: int, swap: int) -> int:
    return int.from_bytes(p[off : off + 2], "big" if swap else "little")


def _is_error(v6: bool, t: int) -> bool:
    return 1 <= t <= 4 if v6 else t in (3, 4, 5, 11, 12)


def _is_query(v6: bool, t: int) -> bool:
    return t in (128, 129) if v6 else (t in (0, 8) or 13 <= t <= 18)


def _has_ports(proto: int) -> bool:
    return proto in PORT_PROTOCOLS


def _is_icmp(v6: bool, proto: int) -> bool:
    return proto == (58 if v6 else 1)


def _set_addr(col: np.ndarray, i: int, raw: bytes) -> None:
    col[i] = np.frombuffer(raw if len(raw) == 16 else IP4_MAPPED + raw, np.uint8)


def _ip6_walk(p: bytes, end: int, cur: int, nh: int) -> tuple[bool, int, int, int, int, int, int]:
    """(complete, cur, next header, fragment kind, identification, offset, the fragment
    header's Next Header or -1 without one)."""
    frag, ident, foff, fnh = FRAGMENT_NONE, 0, 0, -1
    for k in range(L["PC_MAX_EXT_HEADERS"] + 1):
        if nh in EXT_8 or nh == AH:
            if k == L["PC_MAX_EXT_HEADERS"] or cur + 2 > end:
                return False, cur, nh, frag, ident, foff, fnh
            unit = p[cur + L["IP6_EXT_LEN"]]
            length = (unit + 2) * 4 if nh == AH else (unit + 1) * 8
            if cur + length > end:
                return False, cur, nh, frag, ident, foff, fnh
            nh = p[cur + L["IP6_EXT_NEXT"]]
            cur += length
        elif nh == FRAG:
            if k == L["PC_MAX_EXT_HEADERS"] or cur + L["IP6_FRAG_LEN"] > end:
                return False, cur, nh, frag, ident, foff, fnh
            fo = _be16(p, cur + L["IP6_FRAG_OFFSET"])
            ident = _be32(p, cur + L["IP6_FRAG_ID"])
            foff = fo >> 3
            nh = fnh = p[cur + L["IP6_EXT_NEXT"]]
            cur += L["IP6_FRAG_LEN"]
            if foff:
                return True, cur, nh, FRAGMENT_LATER, ident, foff, fnh
            if fo & 1:
                frag = FRAGMENT_FIRST
        else:
            return True, cur, nh, frag, ident, foff, fnh
    return False, cur, nh, frag, ident, foff, fnh


def _quoted(p: bytes, q: int, end: int, v6: bool, b: Any, i: int) -> int:
    """The IP header quoted by an ICMP error; returns the l4 bits it adds."""
    later = False
    if not v6:
        if q + L["IP4_MIN_LEN"] > end or (p[q] >> 4) != 4:
            return 0
        ihl = (p[q] & 15) * 4
        if ihl < L["IP4_MIN_LEN"] or q + ihl > end:
            return 0
        proto = p[q + L["IP4_PROTO"]]
        _set_addr(b.inner_src, i, p[q + L["IP4_SRC"] : q + L["IP4_SRC"] + 4])
        _set_addr(b.inner_dst, i, p[q + L["IP4_DST"] : q + L["IP4_DST"] + 4])
        later = (_be16(p, q + L["IP4_FRAG"]) & 0x1FFF) != 0
        cur = q + ihl
    else:
        if q + L["IP6_LEN"] > end or (p[q] >> 4) != 6:
            return 0
        _set_addr(b.inner_src, i, p[q + L["IP6_SRC"] : q + L["IP6_SRC"] + 16])
        _set_addr(b.inner_dst, i, p[q + L["IP6_DST"] : q + L["IP6_DST"] + 16])
        ok, cur, proto, frag, _, _, _ = _ip6_walk(p, end, q + L["IP6_LEN"], p[q + L["IP6_NEXT"]])
        later = not ok or frag == FRAGMENT_LATER
    b.inner_protocol[i] = proto
    bits = L4_INNER
    if later:
        return bits
    if _has_ports(proto) and cur + L["L4_PORTS_LEN"] <= end:
        b.inner_sport[i] = _be16(p, cur + L["L4_SPORT"])
        b.inner_dport[i] = _be16(p, cur + L["L4_DPORT"])
        bits |= L4_INNER_PORTS
    elif _is_icmp(v6, proto) and cur + L["ICMP_ID_LEN"] <= end:
        t = p[cur + L["ICMP_TYPE"]]
        if _is_query(v6, t):
            b.inner_icmp_type[i] = t
            b.inner_icmp_id[i] = _be16(p, cur + L["ICMP_ID"])
            bits |= L4_INNER_ICMP_ID
    return bits


def _l4(p: bytes, cur: int, end: int, v6: bool, proto: int, b: Any, i: int) -> int:
    avail = end - cur if end > cur else 0
    bits = 0
    if _has_ports(proto):
        if avail < L["L4_PORTS_LEN"]:
            return STATUS_L4_TRUNCATED
        b.sport[i] = _be16(p, cur + L["L4_SPORT"])
        b.dport[i] = _be16(p, cur + L["L4_DPORT"])
        bits = L4_PORTS
        if proto == 6 and avail >= L["TCP_FLAGS_LEN"]:
            b.tcp_flags[i] = p[cur + L["TCP_FLAGS"]]
            bits |= L4_TCP_FLAGS
    elif _is_icmp(v6, proto):
        if avail < L["ICMP_TYPE_LEN"]:
            return STATUS_L4_TRUNCATED
        t = p[cur + L["ICMP_TYPE"]]
        b.icmp_type[i] = t
        b.icmp_code[i] = p[cur + L["ICMP_CODE"]]
        bits = L4_ICMP
        if _is_query(v6, t):
            if avail >= L["ICMP_ID_LEN"]:
                b.icmp_id[i] = _be16(p, cur + L["ICMP_ID"])
                bits |= L4_ICMP_ID
        elif _is_error(v6, t) and avail > L["ICMP_QUOTE"]:
            bits |= _quoted(p, cur + L["ICMP_QUOTE"], end, v6, b, i)
    b.l4[i] = bits
    return STATUS_OK


def _malformed(b: Any, i: int, reason: int) -> bool:
    b.status[i] = STATUS_MALFORMED
    b.malformed_reason[i] = reason
    return True


def _not_ip(b: Any, i: int) -> bool:
    b.status[i] = STATUS_NOT_IP
    return True


def _pppoe(p: bytes, off: int) -> int:
    """Past a PPPoE session header at off: the PPP protocol's offset; -1 too short, -2 not
    a session packet."""
    if len(p) - off < L["PPPOE_LEN"]:
        return -1
    if p[off] != 0x11 or p[off + 1] != 0x00:  # version 1 type 1, code 0 (session data)
        return -2
    return off + L["PPPOE_LEN"]


def _ppp(p: bytes, off: int) -> tuple[int, int]:
    """The PPP protocol field at off (one byte when its low bit is set: field compression)
    as (EtherType or -2 for no IP, offset after it); (-1, off) when cut off."""
    n = len(p)
    if off >= n:
        return -1, off
    proto = p[off]
    if proto & 1:
        off += 1
    else:
        if n - off < 2:
            return -1, off
        proto = _be16(p, off)
        off += 2
    return PPP_ETHERTYPES.get(proto, -2), off


def _radiotap(p: bytes) -> tuple[int, bool]:
    """(length of the radiotap header, data padding after the 802.11 header); length -1:
    cut off or impossible, -2: not version 0."""
    n = len(p)
    if n < L["RT_LEN"]:
        return -1, False
    if p[0] != 0:  # radiotap version 0 is the only one
        return -2, False
    length = _rd16(p, L["RT_LENGTH"], 0)
    if length < L["RT_LEN"] or length > n:
        return -1, False
    # the flags field (present bit 1) follows the present words and TSFT (bit 0: 8 bytes,
    # aligned to 8 from the header's start); only its data-padding bit matters
    present = word = _rd32(p, L["RT_PRESENT"], 0)
    q = L["RT_PRESENT"] + 4
    while word & 0x80000000:
        if q + 4 > length:
            return -1, False
        word = _rd32(p, q, 0)
        q += 4
    datapad = False
    if present & 2:
        if present & 1:
            q = ((q + 7) & ~7) + 8
        if q >= length:
            return -1, False
        datapad = bool(p[q] & 0x20)
    return length, datapad


def _dot11(p: bytes, off: int, datapad: bool) -> int:
    """Past the 802.11 data header at off (an LLC header follows): the offset; -1 cut off,
    -2 no data (not a data frame, a null frame, an encrypted one)."""
    n = len(p)
    if n - off < 2:
        return -1
    fc0, fc1 = p[off], p[off + 1]
    # frame control: version 0, type 2 (data); subtype bit 0x40 no data, 0x80 QoS; flags:
    # to-DS + from-DS = 4 addresses, 0x40 protected, 0x80 order (HT control)
    if fc0 & 0x0F != 0x08 or fc0 & 0x40 or fc1 & 0x40:
        return -2
    hdr, qos = L["DOT11_LEN"], 0
    if fc1 & 3 == 3:
        hdr += L["DOT11_ADDR4_LEN"]
    if fc0 & 0x80:
        qos = hdr
        hdr += L["DOT11_QOS_LEN"]
        if fc1 & 0x80:
            hdr += L["DOT11_HT_LEN"]
    if n - off < hdr:
        return -1
    if datapad:
        hdr = (hdr + 3) & ~3
    if qos and p[off + qos] & 0x80:  # an A-MSDU: its first subframe
        hdr += L["AMSDU_SUB_LEN"]
    if n - off < hdr:
        return -1
    return off + hdr


def _decode(p: bytes, link: int, b: Any, i: int) -> bool:
    """Decode one frame into row i; False when the link type is not decoded here."""
    n = len(p)
    off = 0
    want = 0
    et = -1
    af = -1
    lengths = True  # a type field <= 1500 is an 802.3 length (an LLC header follows)
    ppp_at = -1  # a PPP protocol field starts here
    if link == LINKTYPE_EN10MB:
        if n < L["ETH_LEN"]:
            return _malformed(b, i, MALFORMED_LINK_TRUNCATED)
        et, off = _be16(p, L["ETH_TYPE"]), L["ETH_LEN"]
    elif link in (LINKTYPE_LINUX_SLL, LINKTYPE_LINUX_SLL2):
        head, field = (
            ("SLL_LEN", "SLL_PROTO") if link == LINKTYPE_LINUX_SLL else ("SLL2_LEN", "SLL2_PROTO")
        )
        if n < L[head]:
            return _malformed(b, i, MALFORMED_LINK_TRUNCATED)
        et, off = _be16(p, L[field]), L[head]
        # a Linux cooked protocol below 0x0600 is a packet type of its own (4: LLC follows)
        if et < L["ETH_MIN_TYPE"] and et != L["SLL_P_802_2"]:
            return _not_ip(b, i)
    elif link in (LINKTYPE_PPP, LINKTYPE_PPP_HDLC) and not (n >= 1 and p[0] in (0x0F, 0x8F)):
        if n >= 1 and p[0] == 0xFF:
            if n < L["PPP_ADDR_CTRL_LEN"]:
                return _malformed(b, i, MALFORMED_LINK_TRUNCATED)
            if p[1] == 0x03:
                off = L["PPP_ADDR_CTRL_LEN"]
        ppp_at = off
    elif link in (LINKTYPE_PPP, LINKTYPE_PPP_HDLC, LINKTYPE_C_HDLC):  # Cisco HDLC framing
        if n < L["CHDLC_LEN"]:
            return _malformed(b, i, MALFORMED_LINK_TRUNCATED)
        et, off, lengths = _be16(p, L["CHDLC_TYPE"]), L["CHDLC_LEN"], False
    elif link == LINKTYPE_PPP_ETHER:
        ppp_at = _pppoe(p, 0)
        if ppp_at == -1:
            return _malformed(b, i, MALFORMED_LINK_TRUNCATED)
        if ppp_at == -2:
            return _not_ip(b, i)
    elif link in (LINKTYPE_IEEE802_11, LINKTYPE_IEEE802_11_RADIOTAP):
        datapad = False
        if link == LINKTYPE_IEEE802_11_RADIOTAP:
            off, datapad = _radiotap(p)
            if off == -1:
                return _malformed(b, i, MALFORMED_LINK_TRUNCATED)
            if off == -2:
                return _not_ip(b, i)
        off = _dot11(p, off, datapad)
        if off == -1:
            return _malformed(b, i, MALFORMED_LINK_TRUNCATED)
        if off == -2:
            return _not_ip(b, i)
        et = 0  # an LLC header follows, as after an 802.3 length
    elif link in (LINKTYPE_RAW, LINKTYPE_RAW_BSD12, LINKTYPE_RAW_BSD14):
        pass
    elif link == LINKTYPE_IPV4:
        want = 4
    elif link == LINKTYPE_IPV6:
        want = 6
    elif link == LINKTYPE_NULL:
        if n < L["NULL_LEN"]:
            return _malformed(b, i, MALFORMED_LINK_TRUNCATED)
        af = int.from_bytes(p[0:4], "little")
        if af & 0xFFFF0000:  # written by a big-endian host
            af = int.from_bytes(p[0:4], "big")
        off = L["NULL_LEN"]
    elif link == LINKTYPE_LOOP:
        if n < L["LOOP_LEN"]:
            return _malformed(b, i, MALFORMED_LINK_TRUNCATED)
        af, off = _be32(p, 0), L["LOOP_LEN"]
    else:
        return False
    if af >= 0:
        if af == 2:
            want = 4
        elif af in (10, 24, 28, 30):
            want = 6
        else:
            b.status[i] = STATUS_NOT_IP
            return True
    while et >= 0 or ppp_at >= 0:
        if ppp_at >= 0:
            et, off = _ppp(p, ppp_at)
            ppp_at, lengths = -1, False
            if et == -1:
                return _malformed(b, i, MALFORMED_LINK_TRUNCATED)
            if et == -2:
                return _not_ip(b, i)
        if et == 0x0800:
            want = 4
            break
        if et == 0x86DD:
            want = 6
            break
        if et in (0x8100, 0x88A8, 0x9100):
            if n - off < L["VLAN_LEN"]:
                return _malformed(b, i, MALFORMED_LINK_TRUNCATED)
            et = _be16(p, off + L["VLAN_TYPE"])
            off += L["VLAN_LEN"]
            lengths = True
            continue
        if et == 0x8864:
            ppp_at = _pppoe(p, off)
            if ppp_at == -1:
                return _malformed(b, i, MALFORMED_LINK_TRUNCATED)
            if ppp_at == -2:
                return _not_ip(b, i)
            continue
        if et <= L["ETH_MAX_LEN"] and lengths:
            # 802.3 length: an 802.2 LLC header; SNAP (AA AA 03, OUI 0) carries an EtherType.
            # Cut inside what could still be SNAP: link truncated; anything else: not IP.
            for k in range(len(SNAP)):
                if off + k >= n:
                    return _malformed(b, i, MALFORMED_LINK_TRUNCATED)
                if p[off + k] != SNAP[k]:
                    return _not_ip(b, i)
            if n - off < L["LLC_SNAP_LEN"]:
                return _malformed(b, i, MALFORMED_LINK_TRUNCATED)
            et = _be16(p, off + L["LLC_SNAP_TYPE"])
            off += L["LLC_SNAP_LEN"]
            lengths = False
            continue
        if et in (0x8847, 0x8848):
            while True:
                if n - off < L["MPLS_LEN"]:
                    return _malformed(b, i, MALFORMED_LINK_TRUNCATED)
                bos = p[off + L["MPLS_BOS_BYTE"]] & 1
                off += L["MPLS_LEN"]
                if bos:
                    break
            nibble = p[off] >> 4 if off < n else -1
            if nibble in (4, 6):
                want = nibble
                break
            b.status[i] = STATUS_NOT_IP
            return True
        b.status[i] = STATUS_NOT_IP
        return True
    # IP
    if off >= n:
        return _malformed(b, i, MALFORMED_IP_TRUNCATED)
    v = p[off] >> 4
    if v not in (4, 6) or (want and v != want):
        return _malformed(b, i, MALFORMED_BAD_VERSION)
    if v == 4:
        if n - off < L["IP4_MIN_LEN"]:
            return _malformed(b, i, MALFORMED_IP_TRUNCATED)
        ihl = (p[off] & 15) * 4
        if ihl < L["IP4_MIN_LEN"]:
            return _malformed(b, i, MALFORMED_BAD_IHL)
        if ihl > n - off:
            return _malformed(b, i, MALFORMED_IHL_BEYOND_CAPTURE)
        tot = _be16(p, off + L["IP4_TOTAL_LEN"])
        if tot < ihl:
            return _malformed(b, i, MALFORMED_BAD_TOTAL_LENGTH)
        b.ip_version[i] = 4
        _set_addr(b.src, i, p[off + L["IP4_SRC"] : off + L["IP4_SRC"] + 4])
        _set_addr(b.dst, i, p[off + L["IP4_DST"] : off + L["IP4_DST"] + 4])
        proto = p[off + L["IP4_PROTO"]]
        b.protocol[i] = proto
        b.frag_next_header[i] = proto
        b.ip_id[i] = _be16(p, off + L["IP4_ID"])
        fo = _be16(p, off + L["IP4_FRAG"])
        b.frag_offset[i] = fo & 0x1FFF
        end = min(off + tot, n)  # bytes past the total length are link padding
        if fo & 0x1FFF:
            b.fragment[i] = FRAGMENT_LATER
            return True
        if fo & 0x2000:
            b.fragment[i] = FRAGMENT_FIRST
        b.status[i] = _l4(p, off + ihl, end, False, proto, b, i)
        return True
    if n - off < L["IP6_LEN"]:
        return _malformed(b, i, MALFORMED_IP_TRUNCATED)
    plen = _be16(p, off + L["IP6_PAYLOAD_LEN"])
    end = off + L["IP6_LEN"] + plen if plen and off + L["IP6_LEN"] + plen < n else n
    ok, cur, proto, frag, ident, foff, fnh = _ip6_walk(
        p, end, off + L["IP6_LEN"], p[off + L["IP6_NEXT"]]
    )
    if not ok:
        return _malformed(b, i, MALFORMED_EXT_HEADERS)
    b.ip_version[i] = 6
    _set_addr(b.src, i, p[off + L["IP6_SRC"] : off + L["IP6_SRC"] + 16])
    _set_addr(b.dst, i, p[off + L["IP6_DST"] : off + L["IP6_DST"] + 16])
    b.protocol[i] = proto
    b.frag_next_header[i] = fnh if fnh >= 0 else proto
    b.ip_id[i] = ident
    b.frag_offset[i] = foff
    b.fragment[i] = frag
    if frag == FRAGMENT_LATER:
        return True
    b.status[i] = _l4(p, cur, end, True, proto, b, i)
    return True


def _ng_ts(ts: int, res: int, offset_s: int) -> int:
    e = res & 0x7F
    if res & 0x80:
        ns = 0 if e >= 64 else (ts * 1_000_000_000) >> e
    elif e <= 9:
        ns = ts * 10 ** (9 - e)
    else:
        ns = 0 if e >= 29 else ts // 10 ** (e - 9)
    value = (ns + offset_s * 1_000_000_000) & MASK64
    return value - (1 << 64) if value >= 1 << 63 else value


class Decoder:
    """Reader state between calls of `run` over one capture (see _pcap.pyx)."""

    def __init__(self) -> None:
        self.pcapng = False
        self.swap = 0
        self.nsec = False
        self.linktype = 0
        self.snaplen = 0
        self.interfaces: list[tuple[int, int, int, int]] = []  # link, snaplen, tsresol, offset
        self.cap_if = 8
        self.pos = 0
        self.records = 0
        self.formats = 0
        self.linktypes: list[int] = []
        self.over_snaplen = 0
        self.over_snaplen_offset = 0
        self.over_snaplen_record = 0  # the index of that first record in the file
        self.damage = DAMAGE_NONE
        self.damage_offset = 0
        self.damage_value = 0
        self.base = 0
        self.more = False
        self.need = 0
        self.filters: dict[int, np.ndarray] | None = None  # link type -> packed BPF program
        self.filtered = 0
        self._fallback: list[tuple[int, int, int, int]] = []

    def grow_interfaces(self) -> None:
        self.cap_if *= 2

    def _note_linktype(self, link: int) -> None:
        if link not in self.linktypes and len(self.linktypes) < 64:
            self.linktypes.append(link)

    def _damage(self, code: int, offset: int, value: int) -> int:
        self.damage, self.damage_offset, self.damage_value = code, self.base + offset, value
        return STOP_DAMAGED

    def add_filter(self, link: int, program: np.ndarray) -> None:
        if self.filters is None:
            self.filters = {}
        if len(self.filters) >= 16:
            raise ValueError("a filter for more link types than the reader holds")
        if len(program) == 0:
            raise ValueError("an empty BPF program")
        self.filters[link] = np.ascontiguousarray(program, dtype=np.uint64)

    def _keep(self, buf: Any, link: int, data: int, cap: int, wire: int) -> int:
        """The filter on one frame: 1 keep, 0 drop (the record counted, as filtered), -1 no
        program for its link type yet."""
        assert self.filters is not None
        program = self.filters.get(link)
        if program is None:
            self.need = link
            return -1
        if bpf.run(program, bytes(buf[data : data + cap]), wire):
            return 1
        self.records += 1
        self.filtered += 1
        return 0

    def fail(self, code: int, offset: int, value: int) -> None:
        self.damage, self.damage_offset, self.damage_value = code, offset, value

    def _cut(self, need: int) -> int:
        self.need = need
        return STOP_MORE

    def begin(self, buf: Any) -> int:
        n = len(buf)
        if n < 4:
            return -2
        magic = _rd32(buf, 0, 0)
        if magic == NG_TYPE_SHB:
            self.pcapng = True
            self.pos = 0
            return 0
        if magic in (PCAP_MAGIC_USEC, PCAP_MAGIC_USEC_SWAPPED):
            self.nsec = False
        elif magic in (PCAP_MAGIC_NSEC, PCAP_MAGIC_NSEC_SWAPPED):
            self.nsec = True
        else:
            return -1
        if n < L["PCAP_FILE_LEN"]:
            return -2
        self.swap = int(magic in (PCAP_MAGIC_USEC_SWAPPED, PCAP_MAGIC_NSEC_SWAPPED))
        self.snaplen = _rd32(buf, L["PCAP_FILE_SNAPLEN"], self.swap)
        self.linktype = _rd32(buf, L["PCAP_FILE_LINKTYPE"], self.swap) & 0xFFFF
        if self.swap:
            self.formats |= FORMAT_PCAP_BE_NSEC if self.nsec else FORMAT_PCAP_BE_USEC
        else:
            self.formats |= FORMAT_PCAP_LE_NSEC if self.nsec else FORMAT_PCAP_LE_USEC
        self._note_linktype(self.linktype)
        self.pos = L["PCAP_FILE_LEN"]
        return 0

    def fallback(self) -> list[tuple[int, int, int, int]]:
        return list(self._fallback)

    def skip(self, buf: Any, limit: int) -> int:
        """Frame records without decoding them, up to `limit` (pcap_guard.h, pc_skip_guarded)."""
        if self.damage:
            return STOP_DAMAGED
        run = self._run_pcapng if self.pcapng else self._run_pcap
        return run(buf, None, 0, 1 << 62, limit)[0]

    def snapshot(self) -> tuple[Any, ...]:
        return (int(self.pcapng), self.swap, int(self.nsec), self.linktype, self.snaplen,
                tuple(self.interfaces), self.pos, self.records)  # fmt: skip

    def restore(self, state: tuple[Any, ...]) -> None:
        pcapng, swap, nsec, linktype, snaplen, interfaces, pos, records = state
        while self.cap_if < len(interfaces):
            self.grow_interfaces()
        self.pcapng, self.swap, self.nsec = bool(pcapng), swap, bool(nsec)
        self.linktype, self.snaplen, self.interfaces = linktype, snaplen, list(interfaces)
        self.pos, self.records = pos, records
        self.over_snaplen = self.over_snaplen_offset = self.over_snaplen_record = 0
        self.damage, self.damage_offset, self.damage_value = DAMAGE_NONE, 0, 0

    def _row(
        self, buf: Any, b: Any, row: int, ts: int, wire: int, cap: int, data: int, link: int
    ) -> None:
        b.index[row] = self.records
        self.records += 1
        b.ts_ns[row] = ts
        b.wire_len[row] = wire
        b.cap_len[row] = cap
        if not _decode(bytes(buf[data : data + cap]), link, b, row):
            b.status[row] = STATUS_MALFORMED
            b.malformed_reason[row] = MALFORMED_UNSUPPORTED_LINK
            self._fallback.append((row, data, cap, link))

    def run(self, buf: Any, batch: Any, row: int, limit: int) -> tuple[int, int]:
        """Fill rows row.. of `batch` from the file; returns (stop code, next row)."""
        cap = len(batch)
        self._fallback = []
        if cap == 0 or row >= cap:
            return STOP_FULL, row
        if self.damage:
            return STOP_DAMAGED, row
        if self.pcapng:
            return self._run_pcapng(buf, batch, row, cap, limit)
        return self._run_pcap(buf, batch, row, cap, limit)

    def _run_pcap(self, buf: Any, b: Any, row: int, cap: int, limit: int) -> tuple[int, int]:
        n = len(buf)
        pos = self.pos - self.base  # offsets in the buffer from here on
        start = pos
        limit -= self.base
        swap = self.swap
        mul = 1 if self.nsec else 1000
        stop = STOP_FULL
        rec = L["PCAP_REC_LEN"]
        while row < cap:
            if limit <= pos < n:
                stop = STOP_LIMIT
                break
            if n - pos < rec:
                if self.more:
                    stop = self._cut(rec)
                elif pos >= n:
                    stop = STOP_EOF
                else:
                    stop = self._damage(DAMAGE_CUT_HEADER, pos, n - pos)
                break
            sec = _rd32(buf, pos + L["PCAP_REC_TS_SEC"], swap)
            frac = _rd32(buf, pos + L["PCAP_REC_TS_FRAC"], swap)
            incl = _rd32(buf, pos + L["PCAP_REC_CAPLEN"], swap)
            orig = _rd32(buf, pos + L["PCAP_REC_ORIGLEN"], swap)
            if incl > MAX_CAPLEN:
                stop = self._damage(DAMAGE_CAPLEN_TOO_BIG, pos, incl)
                break
            if incl > orig:
                stop = self._damage(DAMAGE_CAPLEN_ABOVE_ORIG, pos, incl)
                break
            if n - pos - rec < incl:
                if self.more:
                    stop = self._cut(rec + incl)
                else:
                    stop = self._damage(DAMAGE_CUT_DATA, pos, incl)
                break
            if b is None and pos != start and pos + rec + incl > limit:
                stop = STOP_LIMIT  # framing a block: this record would end past its limit
                break
            if self.filters is not None:
                keep = self._keep(buf, self.linktype, pos + rec, incl, orig)
                if keep < 0:
                    stop = STOP_FILTER
                    break
                if not keep:
                    pos += rec + incl
                    continue
            if self.snaplen and incl > self.snaplen:
                if not self.over_snaplen:
                    self.over_snaplen_offset = self.base + pos
                    self.over_snaplen_record = self.records
                self.over_snaplen += 1
            if b is None:  # framing only (skip)
                self.records += 1
            else:
                ts = sec * 1_000_000_000 + frac * mul
                self._row(buf, b, row, ts, orig, incl, pos + rec, self.linktype)
            pos += rec + incl
            row += 1
        self.pos = self.base + pos
        return stop, row

    def _idb_options(self, buf: Any, cur: int, end: int) -> tuple[int, int]:
        res, offset = 6, 0
        swap = self.swap
        while cur + L["NG_OPT_VALUE"] <= end:
            code = _rd16(buf, cur + L["NG_OPT_CODE"], swap)
            olen = _rd16(buf, cur + L["NG_OPT_LEN"], swap)
            v = cur + L["NG_OPT_VALUE"]
            if code == L["NG_OPT_END"] or v + olen > end:
                break
            if code == L["NG_OPT_IF_TSRESOL"] and olen >= 1:
                res = int(buf[v])
            if code == L["NG_OPT_IF_TSOFFSET"] and olen >= 8:
                offset = int.from_bytes(buf[v : v + 8], "big" if swap else "little", signed=True)
            cur = v + ((olen + 3) & ~3)
        return res, offset

    def _run_pcapng(self, buf: Any, b: Any, row: int, cap: int, limit: int) -> tuple[int, int]:
        n = len(buf)
        pos = self.pos - self.base  # offsets in the buffer from here on
        start = pos
        limit -= self.base
        stop = STOP_FULL
        body_off = L["NG_BLOCK_BODY"]
        while row < cap:
            if limit <= pos < n:
                stop = STOP_LIMIT
                break
            if n - pos < L["NG_BLOCK_OVERHEAD"]:
                if self.more:
                    stop = self._cut(L["NG_BLOCK_OVERHEAD"])
                elif pos >= n:
                    stop = STOP_EOF
                else:
                    stop = self._damage(DAMAGE_CUT_HEADER, pos, n - pos)
                break
            btype = _rd32(buf, pos + L["NG_BLOCK_TYPE"], self.swap)
            if btype == NG_TYPE_SHB:
                bom = _rd32(buf, pos + body_off + L["NG_SHB_BOM"], 0)
                if bom == NG_BOM:
                    self.swap = 0
                elif bom == NG_BOM_SWAPPED:
                    self.swap = 1
                else:
                    stop = self._damage(DAMAGE_BAD_BOM, pos, bom)
                    break
            swap = self.swap
            blen = _rd32(buf, pos + L["NG_BLOCK_LEN"], swap)
            if blen < L["NG_BLOCK_OVERHEAD"] or blen & 3:
                stop = self._damage(DAMAGE_BLOCK_LEN, pos, blen)
                break
            if blen > n - pos:
                if self.more:
                    stop = self._cut(blen)
                else:
                    stop = self._damage(DAMAGE_CUT_DATA, pos, blen)
                break
            if _rd32(buf, pos + blen - 4, swap) != blen:
                stop = self._damage(DAMAGE_BLOCK_LEN_MISMATCH, pos, blen)
                break
            if b is None and pos != start and pos + blen > limit:
                stop = STOP_LIMIT  # framing a block: this block would end past its limit
                break
            body = pos + body_off
            blim = pos + blen - 4
            packet = None
            if btype == NG_TYPE_SHB:
                if blim - body < L["NG_SHB_MIN_BODY"]:
                    stop = self._damage(DAMAGE_BLOCK_TOO_SHORT, pos, blen)
                    break
                self.interfaces = []
                self.pcapng = True
                self.formats |= FORMAT_PCAPNG_BE if swap else FORMAT_PCAPNG_LE
            elif btype == NG_TYPE_IDB:
                if blim - body < L["NG_IDB_OPTIONS"]:
                    stop = self._damage(DAMAGE_BLOCK_TOO_SHORT, pos, blen)
                    break
                if len(self.interfaces) == self.cap_if:
                    stop = STOP_GROW_IFACES
                    break
                link = _rd16(buf, body + L["NG_IDB_LINKTYPE"], swap)
                snap = _rd32(buf, body + L["NG_IDB_SNAPLEN"], swap)
                res, offset = self._idb_options(buf, body + L["NG_IDB_OPTIONS"], blim)
                self.interfaces.append((link, snap, res, offset))
                self._note_linktype(link)
            elif btype in (NG_TYPE_EPB, NG_TYPE_PB):
                kind = "NG_EPB_" if btype == NG_TYPE_EPB else "NG_PB_"
                if blim - body < L[kind + "DATA"]:
                    stop = self._damage(DAMAGE_BLOCK_TOO_SHORT, pos, blen)
                    break
                if btype == NG_TYPE_EPB:
                    iface = _rd32(buf, body + L["NG_EPB_IFACE"], swap)
                else:
                    iface = _rd16(buf, body + L["NG_PB_IFACE"], swap)
                ts = (_rd32(buf, body + L[kind + "TS_HIGH"], swap) << 32) | _rd32(
                    buf, body + L[kind + "TS_LOW"], swap
                )
                incl = _rd32(buf, body + L[kind + "CAPLEN"], swap)
                orig = _rd32(buf, body + L[kind + "ORIGLEN"], swap)
                data = body + L[kind + "DATA"]
                if incl > MAX_CAPLEN:
                    stop = self._damage(DAMAGE_CAPLEN_TOO_BIG, pos, incl)
                    break
                if incl > orig:
                    stop = self._damage(DAMAGE_CAPLEN_ABOVE_ORIG, pos, incl)
                    break
                if incl > blim - data:
                    stop = self._damage(DAMAGE_CAPLEN_BEYOND_BLOCK, pos, incl)
                    break
                packet = (iface, ts, True, incl, orig, data)
            elif btype == NG_TYPE_SPB:
                if blim - body < L["NG_SPB_DATA"]:
                    stop = self._damage(DAMAGE_BLOCK_TOO_SHORT, pos, blen)
                    break
                orig = _rd32(buf, body + L["NG_SPB_ORIGLEN"], swap)
                data = body + L["NG_SPB_DATA"]
                # the packet's length is min(original length, snaplen); the block holds
                # exactly that, padded to 4 bytes
                incl = orig
                if self.interfaces and self.interfaces[0][1] and incl > self.interfaces[0][1]:
                    incl = self.interfaces[0][1]
                if incl > MAX_CAPLEN:
                    stop = self._damage(DAMAGE_CAPLEN_TOO_BIG, pos, incl)
                    break
                if (incl + 3) & ~3 != blim - data:
                    stop = self._damage(DAMAGE_SPB_LENGTH, pos, blen)
                    break
                packet = (0, 0, False, incl, orig, data)
            if packet is not None:
                iface, ts, has_ts, incl, orig, data = packet
                if iface >= len(self.interfaces):
                    stop = self._damage(DAMAGE_BAD_INTERFACE, pos, iface)
                    break
                link, snap, res, offset = self.interfaces[iface]
                if self.filters is not None:
                    keep = self._keep(buf, link, data, incl, orig)
                    if keep < 0:
                        stop = STOP_FILTER
                        break
                    if not keep:
                        pos += blen
                        continue
                if snap and incl > snap:
                    if not self.over_snaplen:
                        self.over_snaplen_offset = self.base + pos
                        self.over_snaplen_record = self.records
                    self.over_snaplen += 1
                if b is None:  # framing only (skip)
                    self.records += 1
                else:
                    ts = _ng_ts(ts, res, offset) if has_ts else 0
                    self._row(buf, b, row, ts, orig, incl, data, link)
                row += 1
            pos += blen
        self.pos = self.base + pos
        return stop, row


def decode_into(batch: Any, row: int, data: bytes, linktype: int) -> bool:
    """Decode one frame of `linktype` into row `row` of `batch` (which must be zero there).
    Returns False when the link type is not decoded natively."""
    if row >= len(batch):
        raise IndexError("row outside the batch")
    return _decode(bytes(data), linktype, batch, row)


def bpf_run(program: np.ndarray, frame: bytes, wire: int) -> int:
    """Run a validated BPF program on one frame: BPF's return value (0 = reject)."""
    return bpf.run(program, bytes(frame), wire)
