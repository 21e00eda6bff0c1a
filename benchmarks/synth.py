"""Synthetic captures for benchmarks, written with numpy (millions of packets in seconds).

`write_capture(path, n, clients, servers)` writes `n` Ethernet packets exchanged between
addresses of `clients` and `servers` (IPv4 and/or IPv6 strings) as classic pcap or pcapng.
Packets are a fixed mix of kinds (TCP/UDP/ICMP echo over IPv4 and IPv6, some 802.1Q-tagged),
each kind a byte template whose address, port, identifier and timestamp fields are filled
column-wise for a chunk of packets at a time; records of different kinds are interleaved in
packet order. Checksums are left zero: readers that classify do not verify them.

The layout constants are the same header offsets the reader uses (Ethernet 14 bytes, IPv4 20,
IPv6 40, ...), written out here in the templates.
"""

from __future__ import annotations

import ipaddress
import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

CHUNK = 1 << 16
SERVER_PORTS = np.array([80, 443, 22, 53, 3389, 8080, 25, 123], dtype=np.uint16)


@dataclass(frozen=True)
class Kind:
    """One packet shape: a frame template and where its variable fields are."""

    name: str
    version: int
    proto: int
    vlan: bool
    payload: int
    weight: float

    @property
    def l3(self) -> int:
        return 18 if self.vlan else 14

    @property
    def l4(self) -> int:
        return self.l3 + (20 if self.version == 4 else 40)

    @property
    def l4_len(self) -> int:
        return {6: 20, 17: 8, 1: 8, 58: 8}[self.proto]

    @property
    def frame_len(self) -> int:
        return self.l4 + self.l4_len + self.payload

    def template(self) -> bytes:
        eth = bytes.fromhex("020000000002020000000001")
        if self.vlan:
            eth += struct.pack("!HH", 0x8100, 100)
        eth += struct.pack("!H", 0x0800 if self.version == 4 else 0x86DD)
        l4_total = self.l4_len + self.payload
        if self.version == 4:
            ip = struct.pack(
                "!BBHHHBBH4s4s",
                0x45,
                0,
                20 + l4_total,
                0,
                0x4000,
                64,
                self.proto,
                0,
                b"\0" * 4,
                b"\0" * 4,
            )
        else:
            ip = struct.pack(
                "!IHBB16s16s", 0x60000000, l4_total, self.proto, 64, b"\0" * 16, b"\0" * 16
            )
        if self.proto == 6:
            l4 = struct.pack("!HHIIBBHHH", 0, 0, 1, 0, 0x50, 0x18, 65535, 0, 0)
        elif self.proto == 17:
            l4 = struct.pack("!HHHH", 0, 0, l4_total, 0)
        else:  # echo request (ICMP 8, ICMPv6 128)
            l4 = struct.pack("!BBHHH", 8 if self.proto == 1 else 128, 0, 0, 0, 1)
        return eth + ip + l4 + b"\xab" * self.payload


KINDS = (
    Kind("ipv4-tcp", 4, 6, False, 0, 0.40),
    Kind("ipv4-udp", 4, 17, False, 20, 0.15),
    Kind("ipv4-icmp", 4, 1, False, 32, 0.05),
    Kind("vlan-ipv4-tcp", 4, 6, True, 0, 0.10),
    Kind("ipv6-tcp", 6, 6, False, 0, 0.15),
    Kind("ipv6-udp", 6, 17, False, 20, 0.10),
    Kind("ipv6-icmp", 6, 58, False, 32, 0.05),
)


def _packed(addresses: Sequence[str], version: int) -> np.ndarray:
    raw = [
        ipaddress.ip_address(a).packed
        for a in addresses
        if ipaddress.ip_address(a).version == version
    ]
    width = 4 if version == 4 else 16
    return np.frombuffer(b"".join(raw), np.uint8).reshape(-1, width)


def _record_overhead(fmt: str, frame_len: int) -> tuple[int, int]:
    """(record header length, total record length) for a frame in this format."""
    if fmt == "pcap":
        return 16, 16 + frame_len
    return 28, 28 + ((frame_len + 3) & ~3) + 4


def file_header(fmt: str) -> bytes:
    if fmt == "pcap":
        return struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1)
    shb = struct.pack("<IIIHHqI", 0x0A0D0D0A, 28, 0x1A2B3C4D, 1, 0, -1, 28)
    idb = struct.pack("<IIHHII", 1, 20, 1, 0, 0, 20)
    return shb + idb


def _fill_chunk(
    kind: Kind,
    fmt: str,
    m: int,
    ts_us: np.ndarray,
    src: np.ndarray,
    dst: np.ndarray,
    sport: np.ndarray,
    dport: np.ndarray,
) -> np.ndarray:
    hdr, total = _record_overhead(fmt, kind.frame_len)
    rec = np.zeros((m, total), np.uint8)
    frame = np.frombuffer(kind.template(), np.uint8)
    rec[:, hdr : hdr + len(frame)] = frame
    if fmt == "pcap":
        head = np.zeros((m, 4), "<u4")
        head[:, 0] = ts_us // 1_000_000
        head[:, 1] = ts_us % 1_000_000
        head[:, 2] = head[:, 3] = kind.frame_len
        rec[:, :16] = head.view(np.uint8)
    else:
        head = np.zeros((m, 7), "<u4")
        head[:, 0] = 6
        head[:, 1] = total
        head[:, 3] = (ts_us >> 32).astype(np.uint32)
        head[:, 4] = (ts_us & 0xFFFFFFFF).astype(np.uint32)
        head[:, 5] = head[:, 6] = kind.frame_len
        rec[:, :28] = head.view(np.uint8)
        rec[:, -4:] = np.full((m, 1), total, "<u4").view(np.uint8)
    ip = hdr + kind.l3
    if kind.version == 4:
        rec[:, ip + 12 : ip + 16] = src
        rec[:, ip + 16 : ip + 20] = dst
    else:
        rec[:, ip + 8 : ip + 24] = src
        rec[:, ip + 24 : ip + 40] = dst
    l4 = hdr + kind.l4
    if kind.proto in (6, 17):
        rec[:, l4 : l4 + 2] = sport.astype(">u2").view(np.uint8).reshape(m, 2)
        rec[:, l4 + 2 : l4 + 4] = dport.astype(">u2").view(np.uint8).reshape(m, 2)
    else:  # echo identifier
        rec[:, l4 + 4 : l4 + 6] = sport.astype(">u2").view(np.uint8).reshape(m, 2)
    return rec


def write_capture(
    path: str | os.PathLike[str],
    n: int,
    clients: Sequence[str] = ("10.0.0.1", "10.0.0.2", "2001:db8::1"),
    servers: Sequence[str] = ("10.0.1.10", "10.0.1.11", "2001:db8:1::10"),
    fmt: str = "pcap",
    seed: int = 0,
    start_ts_us: int = 1_700_000_000_000_000,
    flows: int | None = None,
) -> int:
    """Write `n` packets between `clients` and `servers` to `path`; returns the file size.

    Each packet goes client -> server or back (half each), on a random server port from
    SERVER_PORTS and a random ephemeral client port. Kinds whose IP version has no address
    on both sides are left out of the mix. With `flows`, packets are drawn from that many
    fixed (client, server, ports) conversations per kind instead of a fresh 5-tuple each,
    as real traffic is: connection tracking then sees established flows, not only new ones.
    """
    if fmt not in ("pcap", "pcapng"):
        raise ValueError("fmt must be 'pcap' or 'pcapng'")
    rng = np.random.default_rng(seed)
    addrs = {v: (_packed(clients, v), _packed(servers, v)) for v in (4, 6)}
    kinds = [k for k in KINDS if len(addrs[k.version][0]) and len(addrs[k.version][1])]
    if not kinds:
        raise ValueError("clients and servers share no IP version")
    weights = np.array([k.weight for k in kinds])
    weights /= weights.sum()
    sizes = np.array([_record_overhead(fmt, k.frame_len)[1] for k in kinds])
    flow_table = (
        [
            (
                addrs[kind.version][0][rng.integers(0, len(addrs[kind.version][0]), flows)],
                addrs[kind.version][1][rng.integers(0, len(addrs[kind.version][1]), flows)],
                rng.integers(1024, 65536, flows).astype(np.uint16),
                SERVER_PORTS[rng.integers(0, len(SERVER_PORTS), flows)],
            )
            for kind in kinds
        ]
        if flows
        else []
    )
    with open(path, "wb") as f:
        f.write(file_header(fmt))
        for start in range(0, n, CHUNK):
            m = min(CHUNK, n - start)
            which = rng.choice(len(kinds), size=m, p=weights)
            offsets = np.concatenate(([0], np.cumsum(sizes[which])[:-1]))
            out = np.zeros(int(sizes[which].sum()), np.uint8)
            ts = start_ts_us + (start + np.arange(m, dtype=np.int64)) * 10
            for k, kind in enumerate(kinds):
                sel = np.nonzero(which == k)[0]
                if not len(sel):
                    continue
                cl, sv = addrs[kind.version]
                if flows:
                    pick = rng.integers(0, flows, len(sel))
                    c, s, cport, sport_ = (column[pick] for column in flow_table[k])
                else:
                    c = cl[rng.integers(0, len(cl), len(sel))]
                    s = sv[rng.integers(0, len(sv), len(sel))]
                    cport = rng.integers(1024, 65536, len(sel)).astype(np.uint16)
                    sport_ = SERVER_PORTS[rng.integers(0, len(SERVER_PORTS), len(sel))]
                reply = rng.random(len(sel)) < 0.5
                src = np.where(reply[:, None], s, c)
                dst = np.where(reply[:, None], c, s)
                sp = np.where(reply, sport_, cport)
                dp = np.where(reply, cport, sport_)
                rec = _fill_chunk(kind, fmt, len(sel), ts[sel], src, dst, sp, dp)
                idx = offsets[sel][:, None] + np.arange(rec.shape[1])
                out[idx] = rec
            f.write(out.tobytes())
        return f.tell()
