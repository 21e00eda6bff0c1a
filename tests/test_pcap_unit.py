"""The reader on hand-built captures: every link type, tags and labels, IPv6 extension
chains, ICMP errors, fragments, truncation at every byte, both pcap byte orders and time
units, pcapng sections/interfaces/resolutions/block kinds, damage of each kind, errors.

Frames are built with scapy (an independent encoder); the capture containers are written
here byte by byte with struct, since the containers are what the reader is tested on.
"""

from __future__ import annotations

import struct
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scapy.contrib.mpls import MPLS
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPOption_LSRR
from scapy.layers.inet6 import (
    ICMPv6DestUnreach,
    ICMPv6EchoRequest,
    ICMPv6ND_NS,
    ICMPv6TimeExceeded,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
)
from scapy.layers.ipsec import AH
from scapy.layers.l2 import ARP, Dot1AD, Dot1Q, Ether
from scapy.layers.pflog import PFLog
from scapy.layers.sctp import SCTP

from classifier import pcap
from classifier.codes import (
    FRAGMENT_FIRST,
    FRAGMENT_LATER,
    FRAGMENT_NONE,
    L4_ICMP,
    L4_ICMP_ID,
    L4_INNER,
    L4_PORTS,
    L4_TCP_FLAGS,
    MALFORMED_BAD_IHL,
    MALFORMED_BAD_TOTAL_LENGTH,
    MALFORMED_BAD_VERSION,
    MALFORMED_EXT_HEADERS,
    MALFORMED_IHL_BEYOND_CAPTURE,
    MALFORMED_IP_TRUNCATED,
    MALFORMED_LINK_TRUNCATED,
    MALFORMED_UNSUPPORTED_LINK,
    STATUS_L4_TRUNCATED,
    STATUS_MALFORMED,
    STATUS_NOT_IP,
    STATUS_OK,
)
from classifier.errors import PcapError
from classifier.packets import Packet, PacketBatch

# --- capture writers ---------------------------------------------------------------------


def pcap_file(
    frames: Sequence[bytes | tuple[Any, ...]],
    linktype: int = 1,
    be: bool = False,
    nsec: bool = False,
    snaplen: int = 65535,
) -> bytes:
    """frames: bytes, or (ts_sec, ts_frac, data[, orig_len[, caplen]]) tuples."""
    e = ">" if be else "<"
    out = [
        struct.pack(
            e + "IHHiIII", 0xA1B23C4D if nsec else 0xA1B2C3D4, 2, 4, 0, 0, snaplen, linktype
        )
    ]
    for k, frame in enumerate(frames):
        f = (1_600_000_000 + k, 123, frame) if isinstance(frame, bytes) else frame
        sec, frac, data = f[:3]
        orig = f[3] if len(f) > 3 else len(data)
        incl = f[4] if len(f) > 4 else len(data)
        out.append(struct.pack(e + "IIII", sec, frac, incl, orig) + data)
    return b"".join(out)


def block(btype: int, body: bytes, be: bool = False, trailer: int | None = None) -> bytes:
    e = ">" if be else "<"
    body += b"\0" * (-len(body) % 4)
    total = len(body) + 12
    return struct.pack(e + "II", btype, total) + body + struct.pack(e + "I", trailer or total)


def shb(be: bool = False) -> bytes:
    e = ">" if be else "<"
    return block(0x0A0D0D0A, struct.pack(e + "IHHq", 0x1A2B3C4D, 1, 0, -1), be)


def option(code: int, value: bytes, be: bool = False) -> bytes:
    e = ">" if be else "<"
    return struct.pack(e + "HH", code, len(value)) + value + b"\0" * (-len(value) % 4)


def idb(
    linktype: int = 1,
    snaplen: int = 0,
    tsresol: int | None = None,
    tsoffset: int | None = None,
    be: bool = False,
) -> bytes:
    e = ">" if be else "<"
    opts = b""
    if tsresol is not None:
        opts += option(9, bytes([tsresol]), be)
    if tsoffset is not None:
        opts += option(14, struct.pack(e + "q", tsoffset), be)
    if opts:
        opts += option(0, b"", be)
    return block(1, struct.pack(e + "HHI", linktype, 0, snaplen) + opts, be)


def epb(
    iface: int,
    ts: int,
    data: bytes,
    orig: int | None = None,
    be: bool = False,
    caplen: int | None = None,
) -> bytes:
    e = ">" if be else "<"
    head = struct.pack(
        e + "IIIII",
        iface,
        ts >> 32,
        ts & 0xFFFFFFFF,
        len(data) if caplen is None else caplen,
        len(data) if orig is None else orig,
    )
    return block(6, head + data, be)


def spb(data: bytes, orig: int | None = None, be: bool = False) -> bytes:
    e = ">" if be else "<"
    return block(3, struct.pack(e + "I", len(data) if orig is None else orig) + data, be)


def obsolete_pb(iface: int, ts: int, data: bytes, be: bool = False) -> bytes:
    e = ">" if be else "<"
    head = struct.pack(e + "HHIIII", iface, 0, ts >> 32, ts & 0xFFFFFFFF, len(data), len(data))
    return block(2, head + data, be)


def read(tmp_path: Path, content: bytes, name: str = "t.pcap") -> PacketBatch:
    path = tmp_path / name
    path.write_bytes(content)
    return pcap.read_all(path)


def one(tmp_path: Path, frame: bytes, linktype: int = 1) -> Packet:
    batch = read(tmp_path, pcap_file([frame], linktype))
    assert len(batch) == 1
    return batch.packet(0)


def eth(**fields: int) -> Ether:
    """Ethernet with fixed addresses (scapy would otherwise resolve them: slow, and host
    dependent)."""
    return Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02", **fields)


TCP4 = IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=1234, dport=80, flags="S")
TCP6 = IPv6(src="2001:db8::1", dst="2001:db8::2") / TCP(sport=1234, dport=443, flags="SA")


def assert_tcp4(p: Packet) -> None:
    assert (p.status, p.ip_version, str(p.src), str(p.dst)) == (
        STATUS_OK,
        4,
        "10.0.0.1",
        "10.0.0.2",
    )
    assert (p.protocol, p.sport, p.dport, p.tcp_flags) == (6, 1234, 80, 0x02)


def assert_tcp6(p: Packet) -> None:
    assert (p.status, p.ip_version, str(p.src), str(p.dst)) == (
        STATUS_OK,
        6,
        "2001:db8::1",
        "2001:db8::2",
    )
    assert (p.protocol, p.sport, p.dport, p.tcp_flags) == (6, 1234, 443, 0x12)


# --- link types ----------------------------------------------------------------------------


def test_the_facade_uses_the_chosen_twin(tmp_path: Path, twin_mode: str) -> None:
    path = tmp_path / "t.pcap"
    path.write_bytes(pcap_file([]))
    with pcap.open_capture(path) as cap:
        expected = "classifier.pcap._pcap_py" if twin_mode == "python" else "classifier.pcap._pcap"
        assert type(cap._decoder).__module__ == expected


def test_layout_tables_agree() -> None:
    from classifier.pcap import _pcap, layout

    assert _pcap.LAYOUT == layout.LAYOUT


def test_ethernet_sll_sll2(tmp_path: Path, twin_mode: str) -> None:
    assert_tcp4(one(tmp_path, bytes(eth() / TCP4)))
    assert_tcp6(one(tmp_path, bytes(eth() / TCP6)))
    sll = struct.pack("!HHH8sH", 0, 1, 6, b"\x02" * 6 + b"\0\0", 0x0800)
    assert_tcp4(one(tmp_path, sll + bytes(TCP4), 113))
    sll2 = struct.pack("!HHIHBB8s", 0x86DD, 0, 2, 1, 0, 6, b"\x02" * 6 + b"\0\0")
    assert_tcp6(one(tmp_path, sll2 + bytes(TCP6), 276))
    arp = one(tmp_path, bytes(eth() / ARP()))
    assert (arp.status, arp.ip_version, arp.src) == (STATUS_NOT_IP, 0, None)


@pytest.mark.parametrize("linktype", [101, 12, 14])
def test_raw_ip(tmp_path: Path, twin_mode: str, linktype: int) -> None:
    assert_tcp4(one(tmp_path, bytes(TCP4), linktype))
    assert_tcp6(one(tmp_path, bytes(TCP6), linktype))
    bad = one(tmp_path, b"\x50" + bytes(TCP4)[1:], linktype)
    assert (bad.status, bad.malformed_reason) == (STATUS_MALFORMED, MALFORMED_BAD_VERSION)


def test_ipv4_and_ipv6_link_types_check_the_version(tmp_path: Path, twin_mode: str) -> None:
    assert_tcp4(one(tmp_path, bytes(TCP4), 228))
    assert_tcp6(one(tmp_path, bytes(TCP6), 229))
    for frame, link in ((bytes(TCP6), 228), (bytes(TCP4), 229)):
        p = one(tmp_path, frame, link)
        assert (p.status, p.malformed_reason) == (STATUS_MALFORMED, MALFORMED_BAD_VERSION)
    p = one(tmp_path, bytes(eth() / TCP6)[:12] + b"\x08\x00" + bytes(TCP6))
    assert (p.status, p.malformed_reason) == (STATUS_MALFORMED, MALFORMED_BAD_VERSION)


@pytest.mark.parametrize("af,version", [(2, 4), (10, 6), (24, 6), (28, 6), (30, 6), (7, 0)])
@pytest.mark.parametrize("order", ["<", ">"])
def test_null_any_byte_order(
    tmp_path: Path, twin_mode: str, af: int, version: int, order: str
) -> None:
    frame = struct.pack(order + "I", af) + bytes(TCP4 if version == 4 else TCP6)
    p = one(tmp_path, frame, 0)
    if version == 0:
        assert p.status == STATUS_NOT_IP
    else:
        (assert_tcp4 if version == 4 else assert_tcp6)(p)


@pytest.mark.parametrize("af,version", [(2, 4), (24, 6), (28, 6), (30, 6), (10, 6), (99, 0)])
def test_loop_is_big_endian(tmp_path: Path, twin_mode: str, af: int, version: int) -> None:
    frame = struct.pack(">I", af) + bytes(TCP4 if version == 4 else TCP6)
    p = one(tmp_path, frame, 108)
    if version == 0:
        assert p.status == STATUS_NOT_IP
    else:
        (assert_tcp4 if version == 4 else assert_tcp6)(p)
    # a little-endian AF on LOOP is not an address family we know: not-ip, never guessed
    assert one(tmp_path, struct.pack("<I", 2) + bytes(TCP4), 108).status == STATUS_NOT_IP


def test_link_header_truncated(tmp_path: Path, twin_mode: str) -> None:
    for link, frame in (
        (1, b"\0" * 13),
        (113, b"\0" * 15),
        (276, b"\0" * 19),
        (0, b"\2\0"),
        (108, b"\0\0\0"),
    ):
        p = one(tmp_path, frame, link)
        assert (p.status, p.malformed_reason) == (STATUS_MALFORMED, MALFORMED_LINK_TRUNCATED)


# --- tags and labels -----------------------------------------------------------------------


def test_vlan_qinq_any_depth(tmp_path: Path, twin_mode: str) -> None:
    assert_tcp4(one(tmp_path, bytes(eth() / Dot1Q(vlan=5) / TCP4)))
    assert_tcp6(one(tmp_path, bytes(eth() / Dot1AD(vlan=7) / Dot1Q(vlan=5) / TCP6)))
    # outer TPID 0x88a8, then four tags whose "next type" fields chain to IPv4
    chained = b"\x02" * 12 + struct.pack("!H", 0x88A8)
    for nxt in (0x9100, 0x8100, 0x8100, 0x0800):
        chained += struct.pack("!HH", 1, nxt)
    assert_tcp4(one(tmp_path, chained + bytes(TCP4)))
    cut = one(tmp_path, bytes(eth() / Dot1Q(vlan=5))[:16])
    assert (cut.status, cut.malformed_reason) == (STATUS_MALFORMED, MALFORMED_LINK_TRUNCATED)
    lldp = one(tmp_path, bytes(eth(type=0x8100) / Dot1Q(type=0x88CC)) + b"\0" * 20)
    assert lldp.status == STATUS_NOT_IP


def test_mpls_stack(tmp_path: Path, twin_mode: str) -> None:
    two = bytes(eth(type=0x8847) / MPLS(label=16, s=0) / MPLS(label=17, s=1))
    assert_tcp4(one(tmp_path, two + bytes(TCP4)))
    assert_tcp6(one(tmp_path, two + bytes(TCP6)))
    assert one(tmp_path, two + b"\x00" * 40).status == STATUS_NOT_IP  # pseudowire control word
    assert one(tmp_path, two).status == STATUS_NOT_IP  # nothing after the labels
    vlan_mpls = bytes(eth() / Dot1Q(type=0x8847) / MPLS(label=3, s=1)) + bytes(TCP4)
    assert_tcp4(one(tmp_path, vlan_mpls))
    cut = one(tmp_path, bytes(eth(type=0x8847) / MPLS(label=16, s=0))[:20])
    assert (cut.status, cut.malformed_reason) == (STATUS_MALFORMED, MALFORMED_LINK_TRUNCATED)


# --- IPv4 ----------------------------------------------------------------------------------


def test_ipv4_options_and_malformed_headers(tmp_path: Path, twin_mode: str) -> None:
    opts = IP(src="10.0.0.1", dst="10.0.0.2", options=[IPOption_LSRR(routers=["1.2.3.4"])]) / UDP(
        sport=5, dport=53
    )
    p = one(tmp_path, bytes(eth() / opts))
    assert (p.status, p.protocol, p.sport, p.dport, str(p.dst)) == (
        STATUS_OK,
        17,
        5,
        53,
        "10.0.0.2",
    )
    raw = bytearray(bytes(eth() / TCP4))
    raw[14] = 0x44  # IHL 4
    assert one(tmp_path, bytes(raw)).malformed_reason == MALFORMED_BAD_IHL
    raw[14] = 0x4F  # IHL 15 = 60 bytes, more than the frame holds
    assert one(tmp_path, bytes(raw)).malformed_reason == MALFORMED_IHL_BEYOND_CAPTURE
    raw[14] = 0x45
    raw[16:18] = b"\x00\x10"  # total length 16 < 20
    assert one(tmp_path, bytes(raw)).malformed_reason == MALFORMED_BAD_TOTAL_LENGTH


def test_ethernet_padding_is_not_transport(tmp_path: Path, twin_mode: str) -> None:
    # total length says 22: two bytes of UDP, the rest of the frame is padding
    ip = bytes(IP(src="10.0.0.1", dst="10.0.0.2", proto=17, len=22)) + b"\x00\x35"
    p = one(tmp_path, bytes(eth(type=0x0800)) + ip + b"\x00" * 30)
    assert (p.status, p.sport) == (STATUS_L4_TRUNCATED, None)


def test_ipv4_fragments(tmp_path: Path, twin_mode: str) -> None:
    first = IP(src="10.0.0.1", dst="10.0.0.2", id=77, flags="MF") / UDP(sport=9, dport=53)
    later = IP(src="10.0.0.1", dst="10.0.0.2", id=77, frag=185, proto=17) / (b"x" * 16)
    batch = read(tmp_path, pcap_file([bytes(eth() / first), bytes(eth() / later)]))
    a, b = batch.packet(0), batch.packet(1)
    assert (a.fragment, a.ip_id, a.frag_offset, a.sport, a.dport) == (FRAGMENT_FIRST, 77, 0, 9, 53)
    assert (b.fragment, b.ip_id, b.frag_offset, b.status, b.protocol) == (
        FRAGMENT_LATER,
        77,
        185,
        STATUS_OK,
        17,
    )
    assert b.sport is None and b.dport is None


# --- IPv6 ----------------------------------------------------------------------------------


def test_ipv6_extension_chains(tmp_path: Path, twin_mode: str) -> None:
    base = IPv6(src="2001:db8::1", dst="2001:db8::2")
    chain = (
        base
        / IPv6ExtHdrHopByHop()
        / IPv6ExtHdrDestOpt()
        / IPv6ExtHdrRouting()
        / IPv6ExtHdrFragment(m=0, offset=0, id=5)
        / TCP(sport=1234, dport=443, flags="SA")
    )
    p = one(tmp_path, bytes(eth() / chain))
    assert_tcp6(p)
    assert p.fragment == FRAGMENT_NONE  # atomic fragment: a whole packet
    ah = base / AH(nh=17, payloadlen=4, icv=b"\0" * 12) / UDP(sport=7, dport=9)
    p = one(tmp_path, bytes(eth() / ah))
    assert (p.protocol, p.sport, p.dport) == (17, 7, 9)
    esp = one(tmp_path, bytes(eth() / IPv6(src="::1", dst="::2", nh=50)) + b"\0" * 16)
    assert (esp.status, esp.protocol, esp.sport) == (STATUS_OK, 50, None)
    nonext = one(tmp_path, bytes(eth() / IPv6(src="::1", dst="::2", nh=59)))
    assert (nonext.status, nonext.protocol) == (STATUS_OK, 59)
    cut = bytes(eth() / base / IPv6ExtHdrHopByHop() / IPv6ExtHdrRouting() / UDP())
    p = read(tmp_path, pcap_file([(1, 0, cut[: 14 + 40 + 12], len(cut))])).packet(0)
    assert (p.status, p.malformed_reason) == (STATUS_MALFORMED, MALFORMED_EXT_HEADERS)
    # a chain longer than the bound is malformed, not walked forever
    long = base.copy()
    long.nh = 60
    body = b"".join(bytes([60, 0]) + b"\0" * 6 for _ in range(70))
    p = one(tmp_path, bytes(eth(type=0x86DD)) + bytes(long)[:40] + body)
    assert (p.status, p.malformed_reason) == (STATUS_MALFORMED, MALFORMED_EXT_HEADERS)


def test_ipv6_fragments(tmp_path: Path, twin_mode: str) -> None:
    base = IPv6(src="2001:db8::1", dst="2001:db8::2")
    first = base / IPv6ExtHdrFragment(m=1, offset=0, id=0xABCDEF01) / UDP(sport=1, dport=2)
    later = base / IPv6ExtHdrFragment(m=0, offset=3, id=0xABCDEF01, nh=17) / (b"y" * 8)
    batch = read(tmp_path, pcap_file([bytes(eth() / first), bytes(eth() / later)]))
    a, b = batch.packet(0), batch.packet(1)
    assert (a.fragment, a.ip_id, a.sport, a.dport) == (FRAGMENT_FIRST, 0xABCDEF01, 1, 2)
    assert (b.fragment, b.ip_id, b.frag_offset, b.protocol, b.sport) == (
        FRAGMENT_LATER,
        0xABCDEF01,
        3,
        17,
        None,
    )


def test_ipv6_jumbogram_uses_captured_bytes(tmp_path: Path, twin_mode: str) -> None:
    frame = bytes(
        eth()
        / IPv6(src="::1", dst="::2", nh=0, plen=0)
        / IPv6ExtHdrHopByHop(nh=6)
        / TCP(sport=3, dport=4)
    )
    p = one(tmp_path, frame)
    assert (p.status, p.protocol, p.sport, p.dport) == (STATUS_OK, 6, 3, 4)


# --- transport and ICMP ---------------------------------------------------------------------


def test_sctp_udp_ports(tmp_path: Path, twin_mode: str) -> None:
    p = one(tmp_path, bytes(eth() / IP(src="1.1.1.1", dst="2.2.2.2") / SCTP(sport=5, dport=6)))
    assert (p.protocol, p.sport, p.dport, p.tcp_flags) == (132, 5, 6, None)
    p = one(tmp_path, bytes(eth() / IP(src="1.1.1.1", dst="2.2.2.2", proto=47) / (b"\0" * 8)))
    assert (p.protocol, p.sport, p.status) == (47, None, STATUS_OK)  # GRE: outer header only


def test_icmp_echo_and_errors(tmp_path: Path, twin_mode: str) -> None:
    echo = one(tmp_path, bytes(eth() / IP(src="1.1.1.1", dst="2.2.2.2") / ICMP(id=0x1234)))
    assert (echo.icmp_type, echo.icmp_code, echo.icmp_id, echo.quoted) == (8, 0, 0x1234, None)
    quoted_udp = IP(src="10.0.0.2", dst="10.0.0.9") / UDP(sport=4000, dport=53)
    err = one(
        tmp_path,
        bytes(eth() / IP(src="10.0.0.1", dst="10.0.0.2") / ICMP(type=3, code=3) / quoted_udp),
    )
    assert (err.icmp_type, err.icmp_code, err.icmp_id, err.sport) == (3, 3, None, None)
    assert err.quoted is not None
    q = err.quoted
    assert (q.protocol, str(q.src), str(q.dst), q.sport, q.dport) == (
        17,
        "10.0.0.2",
        "10.0.0.9",
        4000,
        53,
    )
    quoted_echo = IP(src="10.0.0.2", dst="10.0.0.9") / ICMP(type=8, id=99)
    err = one(
        tmp_path,
        bytes(eth() / IP(src="10.0.0.1", dst="10.0.0.2") / ICMP(type=11, code=0) / quoted_echo),
    )
    assert err.quoted is not None
    assert (err.quoted.icmp_type, err.quoted.icmp_id, err.quoted.sport) == (8, 99, None)
    # quoted header cut inside its ports: inner addresses known, inner ports not
    frame = bytes(
        eth() / IP(src="10.0.0.1", dst="10.0.0.2") / ICMP(type=3, code=1) / bytes(quoted_udp)[:22]
    )
    batch = read(tmp_path, pcap_file([frame]))
    assert batch.l4[0] == L4_ICMP | L4_INNER
    # redirect (5), source quench (4), parameter problem (12) also quote
    for t in (4, 5, 12):
        e = one(
            tmp_path, bytes(eth() / IP(src="10.0.0.1", dst="10.0.0.2") / ICMP(type=t) / quoted_udp)
        )
        assert e.quoted is not None and e.quoted.dport == 53


def test_icmpv6_echo_and_errors(tmp_path: Path, twin_mode: str) -> None:
    base = IPv6(src="2001:db8::1", dst="2001:db8::2")
    echo = one(tmp_path, bytes(eth() / base / ICMPv6EchoRequest(id=7)))
    assert (echo.protocol, echo.icmp_type, echo.icmp_id) == (58, 128, 7)
    inner = (
        IPv6(src="2001:db8::2", dst="2001:db8::9")
        / IPv6ExtHdrHopByHop()
        / TCP(sport=5555, dport=22)
    )
    for err_layer, t in ((ICMPv6DestUnreach(code=1), 1), (ICMPv6TimeExceeded(), 3)):
        e = one(tmp_path, bytes(eth() / base / err_layer / inner))
        assert e.icmp_type == t and e.quoted is not None
        q = e.quoted
        assert (q.protocol, str(q.src), q.sport, q.dport) == (6, "2001:db8::2", 5555, 22)
    nd = one(tmp_path, bytes(eth() / base / ICMPv6ND_NS(tgt="2001:db8::2")))
    assert (nd.icmp_type, nd.icmp_id, nd.quoted) == (135, None, None)


def test_icmp_id_needs_six_bytes(tmp_path: Path, twin_mode: str) -> None:
    frame = bytes(eth() / IP(src="1.1.1.1", dst="2.2.2.2") / ICMP(id=5))
    batch = read(tmp_path, pcap_file([(1, 0, frame[: 14 + 20 + 5], len(frame))]))
    assert batch.l4[0] == L4_ICMP
    batch = read(tmp_path, pcap_file([(1, 0, frame[: 14 + 20 + 6], len(frame))]))
    assert batch.l4[0] == L4_ICMP | L4_ICMP_ID


# --- truncation at every byte ---------------------------------------------------------------


def _expected_cut(k: int, l3: int, v6: bool, l4_off: int, proto: int) -> tuple[int, int]:
    """(status, l4 bits) of a frame cut after k bytes, from the spec's availability rules."""
    if k < l3:
        return STATUS_MALFORMED, 0
    if k < l3 + (40 if v6 else 20) or (not v6 and k < l4_off):
        return STATUS_MALFORMED, 0
    if v6 and k < l4_off:
        return STATUS_MALFORMED, 0  # extension chain cut
    avail = k - l4_off
    if proto == 6:
        if avail < 4:
            return STATUS_L4_TRUNCATED, 0
        return STATUS_OK, L4_PORTS | (L4_TCP_FLAGS if avail >= 14 else 0)
    if proto in (17, 132):
        return (STATUS_L4_TRUNCATED, 0) if avail < 4 else (STATUS_OK, L4_PORTS)
    if avail < 2:
        return STATUS_L4_TRUNCATED, 0
    bits = L4_ICMP
    if avail >= 6:
        bits |= L4_ICMP_ID
    return STATUS_OK, bits


CUT_FRAMES = {
    "tcp4-options": (
        bytes(
            eth()
            / IP(src="1.1.1.1", dst="2.2.2.2", options=[IPOption_LSRR(routers=["3.3.3.3"])])
            / TCP(sport=1, dport=2)
        ),
        14,
        False,
        6,
    ),
    "udp6-hbh": (
        bytes(eth() / IPv6(src="::1", dst="::2") / IPv6ExtHdrHopByHop() / UDP(sport=1, dport=2)),
        14,
        True,
        17,
    ),
    "icmp6-echo-vlan": (
        bytes(eth() / Dot1Q() / IPv6(src="::1", dst="::2") / ICMPv6EchoRequest(id=3)),
        18,
        True,
        58,
    ),
}


@pytest.mark.parametrize("name", sorted(CUT_FRAMES))
def test_truncation_at_every_byte(tmp_path: Path, twin_mode: str, name: str) -> None:
    frame, l3, v6, proto = CUT_FRAMES[name]
    l4_off = len(frame) - {6: 20, 17: 8, 58: 8}[proto]
    records = [(1, 0, frame[:k], len(frame)) for k in range(len(frame) + 1)]
    batch = read(tmp_path, pcap_file(records))
    assert len(batch) == len(frame) + 1
    for k in range(len(frame) + 1):
        status, bits = _expected_cut(k, l3, v6, l4_off, proto)
        assert (int(batch.status[k]), int(batch.l4[k])) == (status, bits), k
        assert int(batch.cap_len[k]) == k and int(batch.wire_len[k]) == len(frame)
        if status == STATUS_MALFORMED:
            reasons = (
                MALFORMED_LINK_TRUNCATED,
                MALFORMED_IP_TRUNCATED,
                MALFORMED_IHL_BEYOND_CAPTURE,
                MALFORMED_EXT_HEADERS,
            )
            assert int(batch.malformed_reason[k]) in reasons
            assert int(batch.ip_version[k]) == 0


# --- pcap variants --------------------------------------------------------------------------


@pytest.mark.parametrize("be", [False, True])
@pytest.mark.parametrize("nsec", [False, True])
def test_pcap_byte_orders_and_units(tmp_path: Path, twin_mode: str, be: bool, nsec: bool) -> None:
    frames = [
        (1_700_000_000, 999_999_999 if nsec else 999_999, bytes(eth() / TCP4)),
        (1_700_000_001, 1, bytes(eth() / TCP6)),
    ]
    path = tmp_path / "x.cap"
    path.write_bytes(pcap_file(frames, be=be, nsec=nsec))
    with pcap.open_capture(path) as cap:
        batch = PacketBatch.concatenate(list(cap.batches()))
        assert cap.formats == [f"pcap {'BE' if be else 'LE'} {'nsec' if nsec else 'usec'}"]
        assert cap.link_types == ["EN10MB"]
    unit = 1 if nsec else 1000
    assert batch.ts_ns.tolist() == [
        1_700_000_000 * 10**9 + frames[0][1] * unit,
        1_700_000_001 * 10**9 + unit,
    ]
    assert_tcp4(batch.packet(0))
    assert_tcp6(batch.packet(1))


# --- pcapng ---------------------------------------------------------------------------------


def test_pcapng_sections_interfaces_resolutions(tmp_path: Path, twin_mode: str) -> None:
    f4, f6 = bytes(eth() / TCP4), bytes(TCP6)
    content = (
        shb()
        + idb(1)
        + idb(101, tsresol=9)
        + block(0x0BAD, b"custom" * 3)
        + block(5, b"isb!")
        + epb(0, 1_500_000_000_123_456, f4)
        + epb(1, 1_500_000_000_123_456_789, f6)
        + shb(be=True)
        + idb(101, tsresol=0x80 | 10, be=True)
        + idb(1, tsresol=3, tsoffset=100, be=True)
        + epb(0, 3 * 1024 + 512, f6, be=True)
        + epb(1, 2500, f4, be=True)
        + block(0x40000BAD, b"do not copy", be=True)
        + obsolete_pb(1, 7, f4, be=True)
        + shb()
        + idb(0, snaplen=30)
        + spb((struct.pack("<I", 2) + bytes(TCP4))[:30], orig=44)
    )
    path = tmp_path / "multi.pcapng"
    path.write_bytes(content)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pcap.open_capture(path) as cap:
            batch = PacketBatch.concatenate(list(cap.batches()))
            assert cap.formats == ["pcapng LE", "pcapng BE"]
            assert sorted(cap.link_types) == ["EN10MB", "NULL", "RAW"]
            assert not cap.damaged
    assert not caught
    assert len(batch) == 6
    assert batch.ts_ns.tolist() == [
        1_500_000_000_123_456_000,  # default 10^-6
        1_500_000_000_123_456_789,  # 10^-9
        3 * 10**9 + 500_000_000,  # 2^-10: 3.5 s
        2_500_000_000 + 100 * 10**9,  # 10^-3 plus if_tsoffset 100 s
        7_000_000 + 100 * 10**9,  # obsolete packet block on the same interface
        0,  # a simple packet block has no timestamp
    ]
    for i in (0, 3, 4):
        assert_tcp4(batch.packet(i))
    for i in (1, 2):
        assert_tcp6(batch.packet(i))
    # SPB: captured length is the original length cut to the interface's snaplen
    assert (int(batch.cap_len[5]), int(batch.wire_len[5])) == (30, 44)
    p = batch.packet(5)
    assert (p.status, str(p.src), p.sport, p.dport, p.tcp_flags) == (
        STATUS_OK,
        "10.0.0.1",
        1234,
        80,
        None,
    )


def test_pcapng_interface_ids_restart_per_section(tmp_path: Path, twin_mode: str) -> None:
    f4 = bytes(eth() / TCP4)
    content = shb() + idb(1) + idb(1) + epb(1, 1, f4) + shb() + idb(1) + epb(1, 2, f4)
    path = tmp_path / "x.pcapng"
    path.write_bytes(content)
    with pytest.warns(pcap.CaptureWarning, match="interface 1"):
        batch = pcap.read_all(path)
    assert len(batch) == 1


def test_pcapng_many_interfaces_grow_the_table(tmp_path: Path, twin_mode: str) -> None:
    f4 = bytes(eth() / TCP4)
    content = shb() + b"".join(idb(1) for _ in range(40)) + epb(39, 5, f4) + epb(0, 6, f4)
    batch = read(tmp_path, content, "x.pcapng")
    assert len(batch) == 2 and batch.ts_ns.tolist() == [5000, 6000]


# --- damage ---------------------------------------------------------------------------------

GOOD = bytes(eth() / TCP4)


def _damage_cases() -> dict[str, tuple[bytes, int, str]]:
    """name -> (file, byte offset of the damage, words of the warning)."""
    head = pcap_file([GOOD, GOOD])
    rec = 24 + 2 * (16 + len(GOOD))
    ng_head = shb() + idb(1) + epb(0, 1, GOOD) + epb(0, 2, GOOD)
    ng = len(ng_head)
    bad_trailer = block(
        6, struct.pack("<IIIII", 0, 0, 3, len(GOOD), len(GOOD)) + GOOD, trailer=999 * 4
    )
    return {
        "caplen-above-262144": (
            head + struct.pack("<IIII", 1, 0, 262145, 262145) + GOOD,
            rec,
            "262144",
        ),
        "caplen-above-orig": (
            head + struct.pack("<IIII", 1, 0, len(GOOD), 10) + GOOD,
            rec,
            "above the original length",
        ),
        "cut-in-record-header": (head + b"\1\0\0\0\0\0", rec, "inside a record header"),
        "cut-in-record-data": (
            head + struct.pack("<IIII", 1, 0, 60, 60) + GOOD[:30],
            rec,
            "inside a record",
        ),
        "block-lengths-disagree": (ng_head + bad_trailer, ng, "trailing length"),
        "block-length-not-multiple-of-4": (
            ng_head + struct.pack("<II", 6, 30) + b"\0" * 22,
            ng,
            "impossible",
        ),
        "cut-in-block": (ng_head + epb(0, 3, GOOD)[:40], ng, "inside a record"),
        "epb-caplen-beyond-block": (
            ng_head + epb(0, 3, GOOD, caplen=len(GOOD) + 8, orig=len(GOOD) + 8),
            ng,
            "past the end",
        ),
        "epb-caplen-above-262144": (
            ng_head + epb(0, 3, GOOD, caplen=300000, orig=300000),
            ng,
            "262144",
        ),
        "spb-longer-than-its-packet": (
            ng_head + spb(GOOD + b"\0" * 8, orig=len(GOOD)),
            ng,
            "simple packet block",
        ),
        "bad-byte-order-magic": (
            ng_head + block(0x0A0D0D0A, b"\x11\x22\x33\x44" + b"\0" * 12),
            ng,
            "byte-order magic",
        ),
    }


@pytest.mark.parametrize("name", sorted(_damage_cases()))
def test_damage_ends_the_read_and_keeps_what_came_before(
    tmp_path: Path, twin_mode: str, name: str
) -> None:
    content, offset, words = _damage_cases()[name]
    path = tmp_path / ("d.pcapng" if content[:4] == b"\n\r\r\n" else "d.pcap")
    path.write_bytes(content)
    with pytest.warns(pcap.CaptureWarning) as record:
        batches = list(pcap.read_batches(path))
    assert sum(len(b) for b in batches) == 2
    assert len(record) == 1
    message = str(record[0].message)
    assert f"byte offset {offset}" in message and "after 2 records" in message
    assert words in message
    with pcap.open_capture(path) as cap:
        list(cap.batches())
        assert cap.damaged and cap.damage_offset == offset and cap.records == 2


def test_caplen_above_snaplen_is_read_and_warned_once(tmp_path: Path, twin_mode: str) -> None:
    path = tmp_path / "snap.pcap"
    path.write_bytes(pcap_file([GOOD, GOOD, GOOD], snaplen=40))
    with pytest.warns(pcap.CaptureWarning, match="snap length") as record:
        batch = pcap.read_all(path)
    assert len(record) == 1 and "byte offset 24" in str(record[0].message)
    assert len(batch) == 3
    assert_tcp4(batch.packet(2))


# --- errors and empty files -----------------------------------------------------------------


def test_errors_name_the_file(tmp_path: Path, twin_mode: str) -> None:
    cases = {
        "missing.pcap": None,
        "empty.pcap": b"",
        "text.pcap": b"hello, this is not a capture\n",
        "short.pcap": struct.pack("<IHH", 0xA1B2C3D4, 2, 4),
    }
    for name, content in cases.items():
        path = tmp_path / name
        if content is not None:
            path.write_bytes(content)
        with pytest.raises(PcapError) as info:
            list(pcap.read_batches(path))
        message = str(info.value)
        assert str(path) in message and "\n" not in message
    with pytest.raises(PcapError, match="directory"):
        pcap.open_capture(tmp_path)


def test_header_only_files_have_no_packets(tmp_path: Path, twin_mode: str) -> None:
    assert len(read(tmp_path, pcap_file([]))) == 0
    assert len(read(tmp_path, shb() + idb(1), "e.pcapng")) == 0
    path = tmp_path / "e.pcapng"
    with pcap.open_capture(path) as cap:
        assert list(cap.batches()) == [] and cap.first_ts_ns is None and not cap.warnings


# --- the scapy path -------------------------------------------------------------------------


def test_other_link_types_go_through_scapy(tmp_path: Path, twin_mode: str) -> None:
    pflog = bytes(PFLog() / TCP4)
    path = tmp_path / "pflog.pcap"
    path.write_bytes(pcap_file([pflog, bytes(PFLog(addrfamily=99) / b"\x01\x01\x00\x04")], 117))
    with pcap.open_capture(path) as cap:
        batch = PacketBatch.concatenate(list(cap.batches()))
        assert cap.slow_path == 2 and cap.link_types == ["PFLOG"]
    assert_tcp4(batch.packet(0))
    assert batch.status[1] == STATUS_NOT_IP
    path.write_bytes(pcap_file([b"\0" * 30], 147))  # USER0: nobody decodes it
    with pcap.open_capture(path) as cap:
        batch = PacketBatch.concatenate(list(cap.batches()))
        assert cap.slow_path == 1
    assert (batch.status[0], batch.malformed_reason[0]) == (
        STATUS_MALFORMED,
        MALFORMED_UNSUPPORTED_LINK,
    )


def test_batches_split_anywhere(tmp_path: Path, twin_mode: str) -> None:
    frames = [bytes(eth() / TCP4), bytes(eth() / TCP6)] * 10
    path = tmp_path / "s.pcap"
    path.write_bytes(pcap_file(frames))
    whole = pcap.read_all(path)
    for size in (1, 3, 7, 64):
        parts = list(pcap.read_batches(path, batch_size=size))
        assert [len(b) for b in parts][:-1] == [size] * (len(parts) - 1)
        joined = PacketBatch.concatenate(parts)
        assert np.array_equal(joined.src, whole.src) and np.array_equal(joined.index, whole.index)
    with pytest.raises(ValueError):
        list(pcap.read_batches(path, batch_size=0))
