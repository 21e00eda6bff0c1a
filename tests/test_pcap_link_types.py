"""Link layers the reader frames (spec section 3): every one yields its IP packets as IP.

Native ones: PPP (9) with and without HDLC-like framing, PPP_HDLC (50), Cisco HDLC (104 and
inside 9/50), PPPoE sessions (51, and EtherType 0x8864), 802.11 (105) and 802.11 behind
radiotap (127), IEEE 802.2 LLC/SNAP inside Ethernet, VLAN tags and Linux cooked captures.
Those still handed to scapy (PPI 192, pflog 117) are checked in a fresh interpreter, where
nothing but the reader itself can have imported scapy's layers. Every capture is built with
scapy (or by hand where scapy cannot build the shape), read on both twins, and compared with
Wireshark where it is installed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from scapy.layers.dot11 import Dot11, Dot11Beacon, Dot11QoS, RadioTap
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import LLC, SNAP, STP, CookedLinux, Dot3, Ether
from scapy.layers.pflog import PFLog
from scapy.layers.ppi import PPI
from scapy.layers.ppp import HDLC, PPP, PPPoE, PPPoED

from classifier import pcap
from classifier.codes import (
    MALFORMED_LINK_TRUNCATED,
    STATUS_MALFORMED,
    STATUS_NOT_IP,
    STATUS_OK,
)
from classifier.packets import (
    PacketBatch,
)
from tests.conftest import ROOT
from tests.test_pcap_tshark import TSHARK, compare
from tests.test_pcap_unit import pcap_file

TCP4 = IP(src="10.0.0.1", dst="10.0.0.2", id=7) / TCP(sport=1234, dport=80, flags="S")
UDP6 = IPv6(src="2001:db8::1", dst="2001:db8::2") / UDP(sport=5353, dport=53)
MACS = {"src": "02:00:00:00:00:01", "dst": "02:00:00:00:00:02"}
SNAP_IP4 = bytes(LLC() / SNAP() / TCP4)
SNAP_IP6 = bytes(LLC() / SNAP() / UDP6)
WLAN = {"addr1": "02:00:00:00:00:02", "addr2": "02:00:00:00:00:01", "addr3": "02:00:00:00:00:03"}

IP4 = ("ip", 4)
IP6 = ("ip", 6)
NOT_IP = ("not-ip", 0)
CUT = ("cut", 0)  # malformed: the frame ends inside the link-layer header

# link type -> [(frame, expected)]
CASES: dict[int, list[tuple[bytes, tuple[str, int]]]] = {
    9: [  # PPP
        (bytes(PPP() / TCP4), IP4),  # no framing: the protocol field first
        (bytes(HDLC() / PPP() / TCP4), IP4),  # HDLC-like framing: ff 03 first
        (b"\x21" + bytes(TCP4), IP4),  # protocol-field compression: one byte
        (b"\xff\x03\x57" + bytes(UDP6), IP6),
        (bytes(PPP(proto=0x0057) / UDP6), IP6),
        (b"\x0f\x00\x08\x00" + bytes(TCP4), IP4),  # Cisco HDLC framing
        (b"\x02\x81\x00\x01\x01\x40" + bytes(TCP4), IP4),  # MPLS unicast, one label
        (bytes(PPP(proto=0xC021) / b"\x01\x01\x00\x04"), NOT_IP),  # LCP
        (b"\xff", CUT),
        (b"\xff\x03\x00", CUT),
    ],
    50: [  # PPP_HDLC
        (bytes(HDLC() / PPP() / TCP4), IP4),
        (b"\x8f\x00\x86\xdd" + bytes(UDP6), IP6),
        (bytes(HDLC() / PPP(proto=0x8021) / b"\x01\x01\x00\x04"), NOT_IP),  # IPCP
    ],
    104: [  # Cisco HDLC
        (b"\x0f\x00\x08\x00" + bytes(TCP4), IP4),
        (b"\x8f\x00\x86\xdd" + bytes(UDP6), IP6),
        (b"\x8f\x00\x20\x00" + b"\x00" * 20, NOT_IP),  # CDP
        (b"\x0f\x00\x08", CUT),
    ],
    51: [  # PPPoE as the link layer
        (bytes(PPPoE(sessionid=1) / PPP() / TCP4), IP4),
        (bytes(PPPoE(sessionid=1) / PPP(proto=0x0057) / UDP6), IP6),
        (bytes(PPPoED(code=0x09)), NOT_IP),  # discovery (PADI)
        (b"\x11\x00\x00\x01", CUT),
    ],
    1: [  # Ethernet: PPPoE sessions and 802.3 frames with LLC/SNAP
        (bytes(Ether(type=0x8864, **MACS) / PPPoE(sessionid=9) / PPP() / TCP4), IP4),
        (bytes(Ether(type=0x8863, **MACS) / PPPoED(code=0x09)), NOT_IP),
        (bytes(Dot3(**MACS) / SNAP_IP4), IP4),
        (bytes(Dot3(**MACS) / SNAP_IP6), IP6),
        # a VLAN tag whose inner type field is a length, then SNAP
        (
            bytes(Ether(type=0x8100, **MACS))
            + b"\x00\x05"
            + len(SNAP_IP4).to_bytes(2, "big")
            + SNAP_IP4,
            IP4,
        ),
        (bytes(Dot3(**MACS) / LLC(dsap=0x42, ssap=0x42, ctrl=3) / STP()), NOT_IP),  # STP
        (bytes(Dot3(**MACS) / LLC() / SNAP(OUI=0x00000C, code=0x2000) / (b"\x00" * 30)), NOT_IP),
        (bytes(Dot3(**MACS, len=4)) + b"\xaa\xaa\x03\x00", CUT),  # cut inside SNAP
    ],
    113: [  # Linux cooked: protocol 4 means an LLC header follows
        (bytes(CookedLinux(proto=4)) + SNAP_IP4, IP4),
        (bytes(CookedLinux(proto=1)) + b"\xff\xff" + b"\x00" * 28, NOT_IP),  # Novell 802.3
        (bytes(CookedLinux(proto=0x8864)) + bytes(PPPoE(sessionid=2) / PPP() / TCP4), IP4),
    ],
    105: [  # 802.11
        (bytes(Dot11(type=2, **WLAN)) + SNAP_IP4, IP4),  # data
        (bytes(Dot11(type=2, subtype=8, FCfield=1, **WLAN) / Dot11QoS()) + SNAP_IP6, IP6),
        (
            bytes(
                Dot11(type=2, subtype=8, FCfield=3, addr4="02:00:00:00:00:04", **WLAN) / Dot11QoS()
            )
            + SNAP_IP4,
            IP4,
        ),  # four addresses (WDS)
        # QoS data with the order bit: an HT control field follows the QoS control
        (
            bytes(Dot11(type=2, subtype=8, FCfield=0x80, **WLAN) / Dot11QoS())
            + b"\0" * 4
            + SNAP_IP4,
            IP4,
        ),
        # an A-MSDU: the first subframe (DA, SA, length) carries the packet
        (
            bytes(Dot11(type=2, subtype=8, **WLAN) / Dot11QoS(A_MSDU_Present=1))
            + b"\x02" * 12
            + len(SNAP_IP4).to_bytes(2, "big")
            + SNAP_IP4,
            IP4,
        ),
        (bytes(Dot11(type=2, FCfield=0x40, **WLAN)) + b"\x00" * 8 + SNAP_IP4, NOT_IP),  # WEP
        (bytes(Dot11(type=2, subtype=4, **WLAN)), NOT_IP),  # null function: no data
        (bytes(Dot11(type=0, subtype=8, **WLAN) / Dot11Beacon()), NOT_IP),
        (bytes(Dot11(type=2, **WLAN))[:20], CUT),
    ],
    127: [  # radiotap + 802.11
        (bytes(RadioTap() / Dot11(type=2, **WLAN)) + SNAP_IP4, IP4),
        # flags with FCS at the end: the IP length bounds the packet, the FCS is ignored
        (
            bytes(RadioTap(present="Flags", Flags="FCS") / Dot11(type=2, **WLAN))
            + SNAP_IP6
            + b"\x11\x22\x33\x44",
            IP6,
        ),
        # TSFT then flags (aligned), data padding after the 26-byte QoS header
        (
            bytes(
                RadioTap(present="TSFT+Flags", mac_timestamp=5, Flags=0x20)
                / Dot11(type=2, subtype=8, **WLAN)
                / Dot11QoS()
            )
            + b"\0\0"
            + SNAP_IP4,
            IP4,
        ),
        # two present words (bit 31 of the first: another follows), then flags
        (
            b"\x00\x00\x10\x00\x02\x00\x00\x80\x00\x00\x00\x00\x00\x00\x00\x00"
            + bytes(Dot11(type=2, **WLAN))
            + SNAP_IP4,
            IP4,
        ),
        (bytes(RadioTap() / Dot11(type=2, FCfield=0x40, **WLAN)) + SNAP_IP4, NOT_IP),
        (b"\x00\x00\x20\x00\x00\x00\x00\x00", CUT),  # radiotap length beyond the frame
    ],
}


def _status(batch: PacketBatch, i: int) -> tuple[str, int]:
    status = int(batch.status[i])
    if status == STATUS_OK:
        return "ip", int(batch.ip_version[i])
    if status == STATUS_NOT_IP:
        return NOT_IP
    if status == STATUS_MALFORMED and int(batch.malformed_reason[i]) == MALFORMED_LINK_TRUNCATED:
        return CUT
    return f"status {status}/{int(batch.malformed_reason[i])}", 0


@pytest.mark.parametrize("link", sorted(CASES))
def test_link_types_decode_their_ip_packets_natively(
    tmp_path: Path, twin_mode: str, link: int
) -> None:
    frames = [frame for frame, _ in CASES[link]]
    path = tmp_path / f"link{link}.pcap"
    path.write_bytes(pcap_file(frames, link))
    with pcap.open_capture(path) as cap:
        batch = PacketBatch.concatenate(list(cap.batches()))
        assert cap.slow_path == 0  # none of these needs scapy
    got = [_status(batch, i) for i in range(len(batch))]
    assert got == [expected for _, expected in CASES[link]]
    for i, (_, expected) in enumerate(CASES[link]):
        if expected == IP4:
            p = batch.packet(i)
            assert (str(p.src), str(p.dst), p.protocol, p.sport, p.dport, p.ip_id) == (
                "10.0.0.1",
                "10.0.0.2",
                6,
                1234,
                80,
                7,
            ), (link, i)
        elif expected == IP6:
            p = batch.packet(i)
            assert (str(p.src), str(p.dst), p.protocol, p.dport) == (
                "2001:db8::1",
                "2001:db8::2",
                17,
                53,
            ), (link, i)


@pytest.mark.skipif(TSHARK is None, reason="tshark is not installed")
@pytest.mark.parametrize("link", sorted(CASES))
def test_link_types_equal_wireshark(tmp_path: Path, twin_mode: str, link: int) -> None:
    """Every frame above against Wireshark: same status (IP or not), addresses, protocol,
    ports. Wireshark shows no IP in the frames we call cut or not-ip."""
    path = tmp_path / f"link{link}.pcap"
    path.write_bytes(pcap_file([frame for frame, _ in CASES[link]], link))
    batch = pcap.read_all(path)
    problems = compare(path, batch)
    assert not problems, "\n".join(problems)


def _fresh(code: str, *args: str) -> str:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


READ_AND_REPORT = """
import sys, warnings
from classifier import pcap
from classifier.packets import PacketBatch
with pcap.open_capture(sys.argv[1]) as cap:
    batch = PacketBatch.concatenate(list(cap.batches()))
    print(cap.slow_path, 'scapy' in sys.modules)
for i in range(len(batch)):
    p = batch.packet(i)
    print(p.status, p.ip_version, p.src, p.dst, p.protocol, p.dport)
"""


def test_scapy_link_types_decode_ip_in_a_fresh_interpreter(tmp_path: Path, twin_mode: str) -> None:
    """PPI (192) and pflog (117) go through scapy: the slow path imports the dissectors it
    needs itself (before, a plain run had none registered and every packet was malformed)."""
    cases = {
        192: [
            bytes(PPI() / Dot11(type=2, **WLAN) / LLC() / SNAP() / TCP4),
            bytes(PPI() / Dot11(type=0, subtype=8, **WLAN) / Dot11Beacon()),
        ],
        117: [bytes(PFLog() / TCP4), bytes(PFLog(addrfamily=24) / UDP6)],
    }
    expected = {
        192: ["0 4 10.0.0.1 10.0.0.2 6 80", "1 0 None None 0 None"],
        117: ["0 4 10.0.0.1 10.0.0.2 6 80", "0 6 2001:db8::1 2001:db8::2 17 53"],
    }
    for link, frames in cases.items():
        path = tmp_path / f"link{link}.pcap"
        path.write_bytes(pcap_file(frames, link))
        lines = _fresh(READ_AND_REPORT, str(path)).splitlines()
        assert lines[0] == f"{len(frames)} True"
        assert lines[1:] == expected[link], link


def test_native_link_types_never_import_scapy(tmp_path: Path, twin_mode: str) -> None:
    """The slow path costs nothing for captures the core decodes alone: scapy is not even
    imported."""
    path = tmp_path / "ppp.pcap"
    path.write_bytes(pcap_file([bytes(PPP() / TCP4), bytes(HDLC() / PPP() / TCP4)], 9))
    lines = _fresh(READ_AND_REPORT, str(path)).splitlines()
    assert lines[0] == "0 False"
    assert lines[1:] == ["0 4 10.0.0.1 10.0.0.2 6 80"] * 2


def test_link_type_names(tmp_path: Path) -> None:
    path = tmp_path / "w.pcap"
    path.write_bytes(pcap_file([bytes(RadioTap() / Dot11(type=2, **WLAN)) + SNAP_IP4], 127))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pcap.open_capture(path) as cap:
            list(cap.batches())
            assert cap.link_types == ["IEEE802_11_RADIOTAP"]
