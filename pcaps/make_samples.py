"""Write the sample captures that go with examples/web-db.yaml.

Run as ``python pcaps/make_samples.py [OUTDIR]`` (default: the folder this script is in).
``--expected`` prints, instead, one CSV line per packet with the verdict a person works out by
hand from the policy and the semantics contract; ``--table`` prints the per-file counts that
pcaps/README.md shows.

Design notes
------------
* The captures are data for tests and demos, so they must be byte-for-byte reproducible: every
  timestamp is set explicitly (microseconds from a fixed epoch), every "random" field (ISNs,
  ephemeral ports, IP ids, payload bytes) comes from a ``random.Random`` seeded per file, and every
  field scapy would otherwise fill from the host (MAC addresses above all) is given.
* Each scenario builds its own packets at absolute times; a capture then merges them in time order
  (ties keep insertion order). Flows therefore interleave as they would on a real link, while each
  scenario stays readable from top to bottom.
* The capture point is the cloud side of the virtual switch: instance NICs have their own MACs,
  everything routed from or to the outside carries the gateway's MAC.
* Every packet carries the verdict expected in stateful mode (``Expect``), worked out by hand
  from examples/web-db.yaml and the semantics contract, and written next to the packet that
  earns it. The script only tallies those labels; it never evaluates a rule. ``rule`` is the id
  of the deciding rule (web-http, db-deny-scan, ...), empty for state and implicit deny.
"""

from __future__ import annotations

import argparse
import random
import socket
import struct
import sys
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from scapy.layers.dns import DNS, DNSQR, DNSRR, DNSRROPT
from scapy.layers.inet import ICMP, IP, TCP, UDP, fragment
from scapy.layers.inet6 import (
    ICMPv6ND_NA,
    ICMPv6ND_NS,
    ICMPv6NDOptDstLLAddr,
    ICMPv6NDOptSrcLLAddr,
    IPv6,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    PadN,
    fragment6,
)
from scapy.layers.l2 import ARP, GRE, Dot1AD, Dot1Q, Ether
from scapy.packet import Packet, Raw
from scapy.utils import PcapWriter

HERE = Path(__file__).resolve().parent

# 2025-11-28 09:00:00 UTC. Each file starts a whole hour after the previous one in
# alphabetical order, so `pcaps/*.pcap` read as one capture runs forward in time and no
# connection of one file is still alive in the next.
EPOCH_S = 1764320400

VERDICTS = ("allow", "deny", "unmanaged", "not-ip", "malformed")

# --- hosts ---------------------------------------------------------------------------------
WEB1, WEB2, DB1 = "10.0.1.10", "10.0.1.11", "10.0.2.20"
WEB1_V6 = "2001:db8:1::10"
GW_V6 = "2001:db8:1::1"
ROUTER = "192.0.2.1"
SCANNER = "203.0.113.66"

GW_MAC = "fa:16:3e:00:00:01"
NIC_MAC = {
    WEB1: "fa:16:3e:0a:01:0a",
    WEB1_V6: "fa:16:3e:0a:01:0a",
    WEB2: "fa:16:3e:0a:01:0b",
    DB1: "fa:16:3e:0a:02:14",
}


def mac_of(addr: str) -> str:
    """The MAC a frame to or from `addr` carries at the capture point."""
    if addr in NIC_MAC:
        return NIC_MAC[addr]
    if addr.lower().startswith("ff02:"):
        # IPv6 multicast maps onto 33:33 + the low 32 bits of the group address.
        return "33:33:" + ":".join(f"{b:02x}" for b in socket.inet_pton(socket.AF_INET6, addr)[-4:])
    return GW_MAC


def eth(src: str, dst: str) -> Ether:
    return Ether(src=mac_of(src), dst=mac_of(dst))


def ip_layer(src: str, dst: str, *, ttl: int, ip_id: int, df: bool = True) -> Packet:
    if ":" in src:
        return IPv6(src=src, dst=dst, hlim=ttl)
    return IP(src=src, dst=dst, ttl=ttl, id=ip_id & 0xFFFF, flags="DF" if df else 0)


# --- expected verdicts ---------------------------------------------------------------------
@dataclass(frozen=True)
class Expect:
    verdict: str
    reason: str = ""
    rule: str = ""


def by_rule(rule: str) -> Expect:
    return Expect("allow", "rule", rule)


def denied_by(rule: str) -> Expect:
    return Expect("deny", "rule", rule)


ESTABLISHED = Expect("allow", "established")
RELATED = Expect("allow", "related")
IMPLICIT_DENY = Expect("deny", "implicit-deny")
UNMANAGED = Expect("unmanaged")
NOT_IP = Expect("not-ip")
MALFORMED = Expect("malformed")


# --- a capture under construction ----------------------------------------------------------
class Capture:
    """Packets at absolute times (µs from the file's start), merged in time order on output."""

    def __init__(self, name: str, start_s: int) -> None:
        self.name = name
        self.start_us = (EPOCH_S + start_s) * 1_000_000
        self.rng = random.Random(zlib.crc32(name.encode()))
        self._events: list[tuple[int, int, Packet, Expect]] = []

    def add(self, t_us: int, frame: Packet, expect: Expect) -> None:
        self._events.append((t_us, len(self._events), frame, expect))

    def records(self) -> list[tuple[Packet, Expect]]:
        out = []
        for t_us, _, frame, expect in sorted(self._events, key=lambda e: (e[0], e[1])):
            frame.time = Decimal(self.start_us + t_us) / 1_000_000
            out.append((frame, expect))
        return out

    def payload(self, n: int) -> bytes:
        return self.rng.randbytes(n)

    def eport(self) -> int:
        """An ephemeral port in Linux's default range."""
        return self.rng.randrange(32768, 60999)


def tls(cap: Capture, content_type: int, n: int) -> bytes:
    """A TLS record of `n` bytes in all (the body looks encrypted, which is the point)."""
    return struct.pack("!BHH", content_type, 0x0303, n - 5) + cap.payload(n - 5)


class TcpFlow:
    """One TCP connection: tracks sequence numbers, timestamps options, IP ids and the clock.

    `first` is the verdict of the flow's first packet. When it allows, the connection exists and
    everything after is `established`; when it denies, nothing is created and every later packet
    (retransmitted SYNs) is judged by the same rule again.
    """

    MSS = 1448  # 1460 minus the 12-byte timestamps option carried on every segment

    def __init__(
        self,
        cap: Capture,
        client: str,
        server: str,
        dport: int,
        *,
        t_us: int,
        rtt_us: int,
        first: Expect,
        client_ttl: int = 64,
    ) -> None:
        self.cap = cap
        self.ends = {True: (client, cap.eport()), False: (server, dport)}
        self.t = t_us
        self.rtt = rtt_us
        self.first = first
        self.started = False
        self.live = False
        rng = cap.rng
        self.nxt = {True: rng.getrandbits(32), False: rng.getrandbits(32)}
        self.ip_id = {True: rng.getrandbits(16), False: rng.getrandbits(16)}
        self.ts = {True: rng.getrandbits(31), False: rng.getrandbits(31)}
        self.ttl = {True: client_ttl, False: 64}
        self.last_ts = {True: 0, False: 0}
        self.window = {True: 502, False: 509}

    def _label(self) -> Expect:
        if self.live:
            return ESTABLISHED
        if not self.started:
            self.started = True
            self.live = self.first.verdict == "allow"
        return self.first

    def seg(
        self,
        from_client: bool,
        flags: str,
        data: bytes = b"",
        *,
        dt_us: int = 0,
        ttl: int | None = None,
        ext: Packet | None = None,
    ) -> Packet:
        """Emit one segment `dt_us` after the flow's previous one and return it.

        `ext` is an IPv6 extension header to put between the IP and TCP headers.
        """
        self.t += dt_us
        src, sport = self.ends[from_client]
        dst, dport = self.ends[not from_client]
        tsval = self.ts[from_client] + self.t // 1000
        self.last_ts[from_client] = tsval
        tsecr = self.last_ts[not from_client]
        if "S" in flags:
            opts: list[tuple[str, object]] = [
                ("MSS", 1460),
                ("SAckOK", b""),
                ("Timestamp", (tsval, tsecr)),
                ("NOP", None),
                ("WScale", 7),
            ]
            window = 64240 if from_client else 65160
        else:
            opts = [("NOP", None), ("NOP", None), ("Timestamp", (tsval, tsecr))]
            window = self.window[from_client]
        ack = self.nxt[not from_client] if "A" in flags else 0
        ip = ip_layer(src, dst, ttl=ttl or self.ttl[from_client], ip_id=self.ip_id[from_client])
        self.ip_id[from_client] += 1
        tcp = TCP(
            sport=sport,
            dport=dport,
            seq=self.nxt[from_client] & 0xFFFFFFFF,
            ack=ack & 0xFFFFFFFF,
            flags=flags,
            window=window,
            options=opts,
        )
        frame = eth(src, dst) / ip / ext / tcp if ext is not None else eth(src, dst) / ip / tcp
        if data:
            frame = frame / Raw(data)
        self.nxt[from_client] += len(data) + ("S" in flags) + ("F" in flags)
        self.cap.add(self.t, frame, self._label())
        return frame

    # Conveniences for the usual shapes of a conversation.
    def handshake(self) -> None:
        self.seg(True, "S")
        self.seg(False, "SA", dt_us=self._think())
        self.seg(True, "A", dt_us=self.rtt)

    def send(self, from_client: bool, data: bytes, *, dt_us: int) -> None:
        """Send `data` in MSS-sized segments back to back, then the peer's (delayed) ACK."""
        chunks = [data[i : i + self.MSS] for i in range(0, len(data), self.MSS)]
        for n, chunk in enumerate(chunks):
            last = n == len(chunks) - 1
            self.seg(from_client, "PA" if last else "A", chunk, dt_us=dt_us if n == 0 else 12)
        # The capture point is next to the server: the client's ACK of server data shows up a
        # round trip later, the server's ACK of client data right away.
        self.seg(not from_client, "A", dt_us=self._think() if from_client else self.rtt)

    def close(self, *, client_first: bool = True, dt_us: int = 20_000) -> None:
        self.seg(client_first, "FA", dt_us=dt_us)
        self.seg(not client_first, "FA", dt_us=self._think() if client_first else self.rtt)
        self.seg(client_first, "A", dt_us=self.rtt if client_first else self._think())

    def _think(self) -> int:
        """The server's turnaround: tens to hundreds of microseconds."""
        return self.cap.rng.randrange(40, 400)


def udp_frame(
    src: str, sport: int, dst: str, dport: int, payload: Packet | bytes, *, ttl: int, ip_id: int
) -> Packet:
    body = payload if isinstance(payload, Packet) else Raw(payload)
    return (
        eth(src, dst)
        / ip_layer(src, dst, ttl=ttl, ip_id=ip_id, df=False)
        / UDP(sport=sport, dport=dport)
        / body
    )


def icmp_error(
    src: str,
    dst: str,
    icmp_type: int,
    code: int,
    quoted: Packet,
    *,
    ttl: int,
    ip_id: int,
    quote_bytes: int | None = None,
    mtu: int = 0,
) -> Packet:
    """An ICMP error from `src` quoting the IP packet `quoted` (its IP header on)."""
    raw = bytes(quoted)
    if quote_bytes is not None:
        raw = raw[:quote_bytes]
    icmp = (
        ICMP(type=icmp_type, code=code, nexthopmtu=mtu) if mtu else ICMP(type=icmp_type, code=code)
    )
    return eth(src, dst) / IP(src=src, dst=dst, ttl=ttl, id=ip_id, tos=0xC0) / icmp / Raw(raw)


def ip_of(frame: Packet) -> Packet:
    """The IP packet inside an Ethernet frame, as bytes would quote it."""
    return frame[IP].copy()


# --- web.pcap ------------------------------------------------------------------------------
def web() -> Capture:
    """The web tier serving the internet; everything here is allowed."""
    cap = Capture("web.pcap", 21_600)

    # HTTPS to web-1 from 203.0.113.7 (RTT 38 ms): new connection, allowed by web-http at
    # web-1's ingress; the rest rides on the connection.
    f = TcpFlow(
        cap,
        "203.0.113.7",
        WEB1,
        443,
        t_us=120_000,
        rtt_us=38_000,
        first=by_rule("web-http"),
        client_ttl=51,
    )
    f.handshake()
    f.send(True, tls(cap, 0x16, 517), dt_us=300)  # ClientHello
    f.send(False, tls(cap, 0x16, 3960), dt_us=900)  # ServerHello..Finished
    f.send(True, tls(cap, 0x14, 6) + tls(cap, 0x17, 74), dt_us=1_200)  # CCS + Finished
    f.send(True, tls(cap, 0x17, 412), dt_us=150)  # GET /index.html
    f.send(False, tls(cap, 0x17, 5120), dt_us=2_100)  # the page
    f.close(dt_us=180_000)

    # HTTPS to web-1 from 203.0.113.140 (RTT 72 ms), overlapping the first one in time.
    f = TcpFlow(
        cap,
        "203.0.113.140",
        WEB1,
        443,
        t_us=210_000,
        rtt_us=72_000,
        first=by_rule("web-http"),
        client_ttl=47,
    )
    f.handshake()
    f.send(True, tls(cap, 0x16, 583), dt_us=250)
    f.send(False, tls(cap, 0x16, 262), dt_us=700)  # resumed session
    f.send(True, tls(cap, 0x17, 380), dt_us=900)
    f.send(False, tls(cap, 0x17, 1830), dt_us=1_600)
    f.close(client_first=False, dt_us=5_000)

    # Plain HTTP to web-2 from 203.0.113.25 (RTT 21 ms): two requests on one keep-alive
    # connection, then the client closes.
    f = TcpFlow(
        cap,
        "203.0.113.25",
        WEB2,
        80,
        t_us=400_000,
        rtt_us=21_000,
        first=by_rule("web-http"),
        client_ttl=57,
    )
    f.handshake()
    for path, size in (("/", 2310), ("/static/app.css", 1804)):
        req = (
            f"GET {path} HTTP/1.1\r\nHost: www.example.com\r\nUser-Agent: curl/8.5.0\r\n"
            "Accept: */*\r\n\r\n"
        ).encode()
        f.send(True, req, dt_us=400)
        head = (
            f"HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Length: {size}\r\n"
            "Connection: keep-alive\r\n\r\n"
        ).encode()
        f.send(
            False,
            head + bytes(cap.rng.choice(b"abcdefghij <>/=\n") for _ in range(size)),
            dt_us=700,
        )
    f.close(dt_us=60_000)

    # Picked up mid-stream: the capture starts inside a long HTTPS download from 203.0.113.88
    # to web-1. Its first packet is a client ACK carrying data, judged as new: web-http allows
    # it (dport 443), which creates the connection for the rest.
    f = TcpFlow(
        cap,
        "203.0.113.88",
        WEB1,
        443,
        t_us=5_000,
        rtt_us=45_000,
        first=by_rule("web-http"),
        client_ttl=52,
    )
    f.seg(True, "PA", tls(cap, 0x17, 96))
    f.seg(False, "A", tls(cap, 0x17, 1448), dt_us=240)
    f.seg(False, "PA", tls(cap, 0x17, 1448), dt_us=12)
    f.seg(True, "A", dt_us=45_000)
    f.send(False, tls(cap, 0x17, 2900), dt_us=200)
    f.close(dt_us=30_000)

    # Another visitor of web-2 from 203.0.113.201: a request answered by a redirect.
    f = TcpFlow(
        cap,
        "203.0.113.201",
        WEB2,
        80,
        t_us=820_000,
        rtt_us=64_000,
        first=by_rule("web-http"),
        client_ttl=49,
    )
    f.handshake()
    f.send(True, b"GET /login HTTP/1.1\r\nHost: www.example.com\r\n\r\n", dt_us=300)
    f.send(
        False,
        b"HTTP/1.1 301 Moved Permanently\r\nLocation: https://www.example.com/login"
        b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        dt_us=500,
    )
    f.close(client_first=False, dt_us=100)

    # web-1 resolves a name through 8.8.8.8: A and AAAA from one socket (as glibc does).
    # The A query is new (egress of web-1, web-out); the AAAA query and both answers use
    # the connection it created.
    sport = cap.eport()
    qid = cap.rng.getrandbits(16)
    t = 300_000
    for n, qtype in enumerate(("A", "AAAA")):
        q = DNS(
            id=(qid + n) & 0xFFFF,
            rd=1,
            qd=DNSQR(qname="api.example.com", qtype=qtype),
            ar=DNSRROPT(rclass=1232),
        )
        cap.add(
            t + 40 * n,
            udp_frame(WEB1, sport, "8.8.8.8", 53, q, ttl=64, ip_id=0x3A10 + n),
            by_rule("web-out") if n == 0 else ESTABLISHED,
        )
    answers = {"A": "203.0.113.45", "AAAA": "2001:db8:ff::45"}
    for n, qtype in enumerate(("A", "AAAA")):
        r = DNS(
            id=(qid + n) & 0xFFFF,
            qr=1,
            rd=1,
            ra=1,
            qd=DNSQR(qname="api.example.com", qtype=qtype),
            an=DNSRR(rrname="api.example.com", type=qtype, ttl=300, rdata=answers[qtype]),
            ar=DNSRROPT(rclass=512),
        )
        cap.add(
            t + 9_800 + 150 * n,
            udp_frame("8.8.8.8", 53, WEB1, sport, r, ttl=117, ip_id=0x71C2 + n),
            ESTABLISHED,
        )
    return cap


def ssh_session(cap: Capture, client: str, t_us: int, rtt_us: int, ttl: int) -> None:
    """An interactive SSH login to web-1:22, allowed by web-ssh (client in ag-office)."""
    f = TcpFlow(
        cap, client, WEB1, 22, t_us=t_us, rtt_us=rtt_us, first=by_rule("web-ssh"), client_ttl=ttl
    )
    f.handshake()
    f.send(False, b"SSH-2.0-OpenSSH_9.6p1 Ubuntu-3ubuntu13.5\r\n", dt_us=2_000)
    f.send(True, b"SSH-2.0-OpenSSH_9.7\r\n", dt_us=300)
    f.send(True, struct.pack("!I", 1532) + cap.payload(1532), dt_us=200)  # KEXINIT
    f.send(False, struct.pack("!I", 1076) + cap.payload(1076), dt_us=150)
    f.send(True, cap.payload(1240), dt_us=600)  # KEX (mlkem)
    f.send(False, cap.payload(1604), dt_us=3_100)
    for _ in range(6):  # auth + keystrokes
        f.send(True, cap.payload(cap.rng.choice((36, 52, 68, 100))), dt_us=rtt_us * 4)
        f.send(False, cap.payload(cap.rng.choice((36, 52, 100, 420))), dt_us=800)
    f.close(dt_us=1_500_000)


# --- admin.pcap ----------------------------------------------------------------------------
def admin() -> Capture:
    cap = Capture("admin.pcap", 0)

    ssh_session(cap, "198.51.100.7", 50_000, 9_000, 61)  # office /24
    ssh_session(cap, "192.0.2.15", 4_200_000, 14_000, 58)  # office range 192.0.2.10-20

    # SSH from 203.0.113.99, outside ag-office: nothing in web-1's ingress allows tcp/22 from
    # there, so implicit deny; the client retries its SYN after 1 s and 3 s, judged the same.
    f = TcpFlow(
        cap,
        "203.0.113.99",
        WEB1,
        22,
        t_us=2_500_000,
        rtt_us=80_000,
        first=IMPLICIT_DENY,
        client_ttl=44,
    )
    f.seg(True, "S")
    for backoff in (1_000_000, 2_000_000):
        f.nxt[True] -= 1  # a retransmission repeats the SYN's sequence number
        f.seg(True, "S", dt_us=backoff)

    # db-1 pings web-1 three times. The first request is new: db-1's egress (db-out) allows
    # it, and web-1's ingress decides: web-icmp, since sg-web comes before sg-base in web-1's
    # sequence. Replies and later requests share the (icmp, pair, id) connection.
    ping(cap, DB1, WEB1, t_us=6_000_000, ident=0x2B1F, count=3, first=by_rule("web-icmp"))
    # web-1 pings db-1 once: here sg-db has no icmp rule, so sg-base's base-ping decides.
    ping(cap, WEB1, DB1, t_us=9_500_000, ident=0x4C07, count=1, first=by_rule("base-ping"))
    return cap


def ping(
    cap: Capture, src: str, dst: str, *, t_us: int, ident: int, count: int, first: Expect
) -> None:
    ip_id = cap.rng.getrandbits(16)
    data = struct.pack("!Q", EPOCH_S + t_us // 1_000_000) + bytes(range(0x10, 0x38))
    for seq in range(1, count + 1):
        t = t_us + (seq - 1) * 1_000_000
        req = (
            eth(src, dst)
            / IP(src=src, dst=dst, ttl=64, id=(ip_id + seq) & 0xFFFF, flags="DF")
            / ICMP(type=8, code=0, id=ident, seq=seq)
            / Raw(data)
        )
        cap.add(t, req, first if seq == 1 else ESTABLISHED)
        rep = (
            eth(dst, src)
            / IP(src=dst, dst=src, ttl=64, id=(ip_id + 0x5000 + seq) & 0xFFFF)
            / ICMP(type=0, code=0, id=ident, seq=seq)
            / Raw(data)
        )
        cap.add(t + 180, rep, ESTABLISHED)


# --- db-scan.pcap --------------------------------------------------------------------------
def pg_msg(tag: bytes, body: bytes) -> bytes:
    return tag + struct.pack("!I", len(body) + 4) + body


def pg_session(cap: Capture, client: str, t_us: int, queries: int) -> None:
    """A PostgreSQL session from a web instance: db-pg allows it (client is in sg-web)."""
    f = TcpFlow(cap, client, DB1, 5432, t_us=t_us, rtt_us=180, first=by_rule("db-pg"))
    f.handshake()
    startup = b"user\0app\0database\0shop\0application_name\0web\0\0"
    f.send(True, struct.pack("!II", len(startup) + 8, 196608) + startup, dt_us=60)
    params = b"".join(
        pg_msg(b"S", k + b"\0" + v + b"\0")
        for k, v in (
            (b"server_version", b"16.4"),
            (b"server_encoding", b"UTF8"),
            (b"TimeZone", b"UTC"),
        )
    )
    f.send(
        False,
        pg_msg(b"R", struct.pack("!I", 0))
        + params
        + pg_msg(b"K", cap.payload(8))
        + pg_msg(b"Z", b"I"),
        dt_us=900,
    )
    # Field name, table oid, column number, type oid, type size, type modifier, format.
    row_description = struct.pack("!H", 3) + b"".join(
        name + struct.pack("!IhIhih", 16_403, col, oid, size, -1, 0)
        for col, (name, oid, size) in enumerate(
            ((b"id\0", 23, 4), (b"name\0", 25, -1), (b"price\0", 1700, -1)), start=1
        )
    )
    for n in range(queries):
        sql = f"SELECT id, name, price FROM products WHERE id = {40 + n};".encode() + b"\0"
        f.send(True, pg_msg(b"Q", sql), dt_us=3_000)
        row = pg_msg(
            b"D",
            struct.pack("!H", 3)
            + b"".join(
                struct.pack("!I", len(v)) + v for v in (str(40 + n).encode(), b"lamp", b"19.90")
            ),
        )
        f.send(
            False,
            pg_msg(b"T", row_description) + row + pg_msg(b"C", b"SELECT 1\0") + pg_msg(b"Z", b"I"),
            dt_us=450,
        )
    f.send(True, pg_msg(b"X", b""), dt_us=2_000)
    f.close(dt_us=30)


def db_scan() -> Capture:
    cap = Capture("db-scan.pcap", 3_600)

    pg_session(cap, WEB1, 10_000, 3)
    pg_session(cap, WEB2, 35_000, 1)

    # db-1's own traffic out. To the VPC resolver 10.0.0.2 (not an instance): only db-1's
    # egress is evaluated, db-out allows, the answer is established.
    sport = cap.eport()
    q = DNS(id=0x2F31, rd=1, qd=DNSQR(qname="mirror.example.org", qtype="A"))
    cap.add(
        60_000, udp_frame(DB1, sport, "10.0.0.2", 53, q, ttl=64, ip_id=0x5A00), by_rule("db-out")
    )
    r = DNS(
        id=0x2F31,
        qr=1,
        rd=1,
        ra=1,
        qd=DNSQR(qname="mirror.example.org", qtype="A"),
        an=DNSRR(rrname="mirror.example.org", type="A", ttl=60, rdata="203.0.113.180"),
    )
    cap.add(60_420, udp_frame("10.0.0.2", 53, DB1, sport, r, ttl=64, ip_id=0x0C11), ESTABLISHED)
    # ... then to the mirror itself on the internet: db-out covers 10.0.0.0/8 only, so db-1's
    # egress denies (implicit deny, reported on the egress side), the SYN and its retry.
    f = TcpFlow(cap, DB1, "203.0.113.180", 80, t_us=61_000, rtt_us=50_000, first=IMPLICIT_DENY)
    f.seg(True, "S")
    f.nxt[True] -= 1
    f.seg(True, "S", dt_us=1_000_000)

    # nmap -sS from 203.0.113.66 against db-1, ports 1-200 in random order, one source port,
    # window 1024, MSS only. db-deny-scan (priority 50) is the first of db-1's rules to match
    # tcp from outside: deny by rule. db-1 never sees them, so nothing comes back.
    sport = 61_337
    ports = list(range(1, 201))
    cap.rng.shuffle(ports)
    t = 20_000
    for port in ports:
        t += cap.rng.randrange(150, 450)
        syn = (
            eth(SCANNER, DB1)
            / IP(src=SCANNER, dst=DB1, ttl=cap.rng.randrange(37, 59), id=cap.rng.getrandbits(16))
            / TCP(
                sport=sport,
                dport=port,
                seq=cap.rng.getrandbits(32),
                flags="S",
                window=1024,
                options=[("MSS", 1460)],
            )
        )
        cap.add(t, syn, denied_by("db-deny-scan"))

    # nmap -sU probes: no udp rule anywhere in db-1's groups, so implicit deny.
    probes = {
        53: bytes(DNS(id=0x1234, rd=0, qd=DNSQR(qname=".", qtype="NS"))),
        123: b"\xe3" + bytes(47),
        137: bytes.fromhex(
            "80f00010000100000000000020434b4141414141414141414141414141414141"
            "414141414141414141414141410000210001"
        ),
        161: bytes.fromhex("302602010104067075626c6963a1190204")
        + cap.payload(4)
        + bytes.fromhex("020100020100300b300906052b060102010500"),
        500: cap.payload(8) + bytes(8) + bytes.fromhex("01100200000000000000001c"),
    }
    t += 250_000
    for port, body in probes.items():
        t += cap.rng.randrange(800, 1600)
        cap.add(
            t,
            udp_frame(SCANNER, 61_338, DB1, port, body, ttl=45, ip_id=cap.rng.getrandbits(16)),
            IMPLICIT_DENY,
        )
    return cap


# --- ipv6.pcap -----------------------------------------------------------------------------
def ipv6() -> Capture:
    cap = Capture("ipv6.pcap", 14_400)
    client = "2001:db8:ff::5"

    # web-1 finds its router: the solicitation goes to a multicast group (not an instance), so
    # only web-1's egress is evaluated: web-out6 allows. The advertisement comes back to
    # web-1: neighbour discovery has no connection key, so it is judged by the rules, and
    # web-1's IPv6 ingress allows only tcp 80/443 (web-v6): implicit deny.
    ns = (
        eth(WEB1_V6, "ff02::1:ff00:1")
        / IPv6(src=WEB1_V6, dst="ff02::1:ff00:1", hlim=255)
        / ICMPv6ND_NS(tgt=GW_V6)
        / ICMPv6NDOptSrcLLAddr(lladdr=NIC_MAC[WEB1_V6])
    )
    cap.add(10_000, ns, by_rule("web-out6"))
    na = (
        eth(GW_V6, WEB1_V6)
        / IPv6(src=GW_V6, dst=WEB1_V6, hlim=255)
        / ICMPv6ND_NA(tgt=GW_V6, R=1, S=1, O=1)
        / ICMPv6NDOptDstLLAddr(lladdr=GW_MAC)
    )
    cap.add(10_450, na, IMPLICIT_DENY)

    # HTTPS over IPv6: web-v6 allows the SYN, the connection carries the rest.
    f = TcpFlow(
        cap,
        client,
        WEB1_V6,
        443,
        t_us=50_000,
        rtt_us=33_000,
        first=by_rule("web-v6"),
        client_ttl=55,
    )
    f.handshake()
    f.send(True, tls(cap, 0x16, 517), dt_us=300)
    f.send(False, tls(cap, 0x16, 3100), dt_us=800)
    f.send(True, tls(cap, 0x14, 6) + tls(cap, 0x17, 74), dt_us=1_000)
    f.send(True, tls(cap, 0x17, 390), dt_us=100)
    f.send(False, tls(cap, 0x17, 2200), dt_us=1_900)
    f.close(dt_us=400_000)

    # The same client tries port 8080: web-v6 covers 80 and 443 only, implicit deny, for the
    # SYN and its two retransmissions.
    f = TcpFlow(
        cap, client, WEB1_V6, 8080, t_us=200_000, rtt_us=33_000, first=IMPLICIT_DENY, client_ttl=55
    )
    f.seg(True, "S")
    for backoff in (1_000_000, 2_000_000):
        f.nxt[True] -= 1
        f.seg(True, "S", dt_us=backoff)

    # A SYN to port 80 behind a hop-by-hop header (PadN): the upper layer is still tcp/80, so
    # web-v6 allows; the reply and the client's ACK are established.
    f = TcpFlow(
        cap,
        "2001:db8:ff::9",
        WEB1_V6,
        80,
        t_us=4_000_000,
        rtt_us=27_000,
        first=by_rule("web-v6"),
        client_ttl=58,
    )
    f.seg(True, "S", ext=IPv6ExtHdrHopByHop(options=[PadN(optdata=bytes(4))]))
    f.seg(False, "SA", dt_us=150)
    f.seg(True, "A", dt_us=27_000)
    return cap


# --- icmp-errors.pcap ----------------------------------------------------------------------
def icmp_errors() -> Capture:
    cap = Capture("icmp-errors.pcap", 10_800)

    # web-1 sends UDP to 203.0.113.20:5000 where nothing listens. The first datagram is new
    # (web-1's egress, web-out), the second rides the connection; each earns a port
    # unreachable quoting it, which belongs to the live connection: related.
    sport = cap.eport()
    for n in range(2):
        t = 100_000 + n * 1_000_000
        dgram = udp_frame(WEB1, sport, "203.0.113.20", 5000, b"status?\n", ttl=64, ip_id=0x1E00 + n)
        cap.add(t, dgram, by_rule("web-out") if n == 0 else ESTABLISHED)
        err = icmp_error("203.0.113.20", WEB1, 3, 3, ip_of(dgram), ttl=52, ip_id=0x6100 + n)
        cap.add(t + 31_000, err, RELATED)

    # A TCP traceroute from web-1: a SYN with TTL 1 (new, web-out) dies at router 192.0.2.1,
    # whose time exceeded quotes the IP header and 8 bytes: related.
    f = TcpFlow(
        cap, WEB1, "203.0.113.30", 443, t_us=2_500_000, rtt_us=30_000, first=by_rule("web-out")
    )
    syn = f.seg(True, "S", ttl=1)
    te = icmp_error(ROUTER, WEB1, 11, 0, ip_of(syn), ttl=255, ip_id=0x0, quote_bytes=28)
    cap.add(f.t + 1_100, te, RELATED)

    # Path MTU discovery: a client downloads from web-1:443 and the router cannot forward
    # web-1's full-size segment; its "fragmentation needed" quotes web-1's packet: related.
    # web-1 resends the data in smaller segments, which are established.
    f = TcpFlow(
        cap,
        "203.0.113.21",
        WEB1,
        443,
        t_us=3_000_000,
        rtt_us=41_000,
        first=by_rule("web-http"),
        client_ttl=50,
    )
    f.handshake()
    f.send(True, tls(cap, 0x17, 300), dt_us=400)
    big = f.seg(False, "PA", tls(cap, 0x17, 1448), dt_us=600)
    cap.add(
        f.t + 900,
        icmp_error(ROUTER, WEB1, 3, 4, ip_of(big), ttl=255, ip_id=0x0, quote_bytes=28, mtu=1400),
        RELATED,
    )
    f.nxt[False] -= 1448
    f.MSS = 1348
    f.send(False, bytes(big[Raw].load), dt_us=1_000)

    # Errors that quote a flow that never existed are judged by the rules. To web-1:
    # web-icmp allows any icmp from anywhere. To db-1: no rule of sg-db or sg-base takes an
    # icmp type 3 from 192.0.2.1 (base-ping wants echo from 10/8): implicit deny.
    ghost = IP(src=WEB1, dst="203.0.113.200", ttl=63, id=0x2222, flags="DF") / TCP(
        sport=33_012, dport=443, flags="S", seq=0x1F2E3D4C, window=64240
    )
    cap.add(
        5_000_000,
        icmp_error(ROUTER, WEB1, 3, 1, ghost, ttl=255, ip_id=0x0, quote_bytes=28),
        by_rule("web-icmp"),
    )
    ghost = IP(src=DB1, dst="203.0.113.201", ttl=63, id=0x3333, flags="DF") / TCP(
        sport=41_000, dport=80, flags="S", seq=0x0A0B0C0D, window=64240
    )
    cap.add(
        5_400_000,
        icmp_error(ROUTER, DB1, 3, 1, ghost, ttl=255, ip_id=0x0, quote_bytes=28),
        IMPLICIT_DENY,
    )
    return cap


# --- fragments.pcap ------------------------------------------------------------------------
def ether_frags(frags: list[Packet], src: str, dst: str) -> list[Packet]:
    return [eth(src, dst) / f for f in frags]


def big_txt(name: str, records: int) -> list[Packet]:
    return [
        DNSRR(
            rrname=name, type="TXT", ttl=300, rdata=[f"v=spf1 part{n:02d} ".encode() + b"x" * 230]
        )
        for n in range(records)
    ]


def fragments() -> Capture:
    cap = Capture("fragments.pcap", 7_200)
    dns_server = "203.0.113.53"

    # web-1 asks an outside DNS server for a big TXT record (new, web-out); the 3-fragment
    # answer is established: the first fragment by its ports, the other two because they
    # take the first fragment's ports (they would be implicit-deny with ports unknown).
    sport = cap.eport()
    q = DNS(
        id=0x5D21, rd=1, qd=DNSQR(qname="big.example.net", qtype="TXT"), ar=DNSRROPT(rclass=4096)
    )
    cap.add(
        100_000, udp_frame(WEB1, sport, dns_server, 53, q, ttl=64, ip_id=0x0A01), by_rule("web-out")
    )
    r = DNS(
        id=0x5D21,
        qr=1,
        aa=1,
        rd=1,
        qd=DNSQR(qname="big.example.net", qtype="TXT"),
        an=big_txt("big.example.net", 13),
        ar=DNSRROPT(rclass=4096),
    )
    whole = IP(src=dns_server, dst=WEB1, ttl=54, id=0x8E10) / UDP(sport=53, dport=sport) / r
    frags = ether_frags(fragment(whole, 1480), dns_server, WEB1)
    assert len(frags) == 3
    for n, fr in enumerate(frags):
        cap.add(128_000 + 12 * n, fr, ESTABLISHED)

    # A 3-fragment UDP datagram from a client to web-1 port 443 (QUIC-sized Initial padded
    # past the MTU): web-1 allows tcp 80/443 only, so implicit deny, all three fragments.
    whole = (
        IP(src="203.0.113.40", dst=WEB1, ttl=49, id=0x4431)
        / UDP(sport=cap.eport(), dport=443)
        / Raw(b"\xc3\x00\x00\x00\x01" + cap.payload(3200))
    )
    for n, fr in enumerate(ether_frags(fragment(whole, 1480), "203.0.113.40", WEB1)):
        cap.add(600_000 + 12 * n, fr, IMPLICIT_DENY)

    # A big ping (ping -s 3000) from 203.0.113.50 to web-1: the first fragment is an echo
    # request, new, allowed by web-icmp; the later fragments take its type and identifier and
    # are established. web-1's 3-fragment reply is established too.
    data = bytes(i & 0xFF for i in range(3000))
    req = (
        IP(src="203.0.113.50", dst=WEB1, ttl=50, id=0x61A0)
        / ICMP(type=8, id=0x0F3D, seq=1)
        / Raw(data)
    )
    for n, fr in enumerate(ether_frags(fragment(req, 1480), "203.0.113.50", WEB1)):
        cap.add(1_200_000 + 12 * n, fr, by_rule("web-icmp") if n == 0 else ESTABLISHED)
    rep = (
        IP(src=WEB1, dst="203.0.113.50", ttl=64, id=0xD203)
        / ICMP(type=0, id=0x0F3D, seq=1)
        / Raw(data)
    )
    for n, fr in enumerate(ether_frags(fragment(rep, 1480), WEB1, "203.0.113.50")):
        cap.add(1_200_300 + 12 * n, fr, ESTABLISHED)

    # A lone non-first TCP fragment from 203.0.113.70 to web-1 whose first fragment never
    # showed up: its ports are unknown, so web-http (ports 80,443) cannot match it, and
    # nothing port-less in web-1's ingress allows tcp: implicit deny.
    orphan = (
        eth("203.0.113.70", WEB1)
        / IP(src="203.0.113.70", dst=WEB1, ttl=51, id=0x7B7B, proto=6, frag=185, flags=0)
        / Raw(cap.payload(520))
    )
    cap.add(2_000_000, orphan, IMPLICIT_DENY)

    # The IPv6 flavour of the DNS case: web-1 (new, web-out6) asks over IPv6, the answer
    # comes back in two fragments (fragment header, 1280-byte MTU); both are established.
    v6_server = "2001:db8:ff::53"
    sport = cap.eport()
    q = DNS(
        id=0x6E02, rd=1, qd=DNSQR(qname="big6.example.net", qtype="TXT"), ar=DNSRROPT(rclass=4096)
    )
    cap.add(
        3_000_000, udp_frame(WEB1_V6, sport, v6_server, 53, q, ttl=64, ip_id=0), by_rule("web-out6")
    )
    r = DNS(
        id=0x6E02,
        qr=1,
        aa=1,
        rd=1,
        qd=DNSQR(qname="big6.example.net", qtype="TXT"),
        an=big_txt("big6.example.net", 6),
        ar=DNSRROPT(rclass=4096),
    )
    whole6 = (
        IPv6(src=v6_server, dst=WEB1_V6, hlim=57)
        / IPv6ExtHdrFragment(id=0x9ABCDEF0)
        / UDP(sport=53, dport=sport)
        / r
    )
    frags = ether_frags(fragment6(whole6, 1280), v6_server, WEB1_V6)
    assert len(frags) == 2
    for n, fr in enumerate(frags):
        cap.add(3_019_000 + 10 * n, fr, ESTABLISHED)
    return cap


# --- misc.pcap -----------------------------------------------------------------------------
def misc() -> Capture:
    cap = Capture("misc.pcap", 18_000)

    # web-1 looks up its gateway: ARP carries no IP, not-ip both ways.
    who = Ether(src=NIC_MAC[WEB1], dst="ff:ff:ff:ff:ff:ff") / ARP(
        op=1, hwsrc=NIC_MAC[WEB1], psrc=WEB1, hwdst="00:00:00:00:00:00", pdst="10.0.1.1"
    )
    cap.add(1_000, who, NOT_IP)
    cap.add(
        1_210,
        Ether(src=GW_MAC, dst=NIC_MAC[WEB1])
        / ARP(op=2, hwsrc=GW_MAC, psrc="10.0.1.1", hwdst=NIC_MAC[WEB1], pdst=WEB1),
        NOT_IP,
    )

    # An 802.1Q-tagged SYN to web-2:80: the tag is skipped, web-http allows.
    syn = IP(src="203.0.113.12", dst=WEB2, ttl=53, id=0x1111, flags="DF") / TCP(
        sport=50_505, dport=80, flags="S", seq=0x0BADCAFE, window=64240, options=[("MSS", 1460)]
    )
    cap.add(100_000, eth("203.0.113.12", WEB2) / Dot1Q(vlan=100, prio=0) / syn, by_rule("web-http"))

    # Double-tagged (802.1ad outer, 802.1Q inner) DNS query to db-1: both tags skipped; db-1
    # allows no udp: implicit deny.
    q = (
        IP(src="203.0.113.12", dst=DB1, ttl=53, id=0x1112)
        / UDP(sport=50_506, dport=53)
        / DNS(id=7, rd=1, qd=DNSQR(qname="db.internal", qtype="A"))
    )
    cap.add(
        200_000, eth("203.0.113.12", DB1) / Dot1AD(vlan=300) / Dot1Q(vlan=100) / q, IMPLICIT_DENY
    )

    # IPv4 with IHL 4 (a 16-byte header cannot be): malformed, though the addresses and the
    # bytes after would read as an allowed https SYN to web-1.
    good = bytearray(
        bytes(
            IP(src="203.0.113.13", dst=WEB1, ttl=50, id=0x2020, flags="DF")
            / TCP(sport=40_404, dport=443, flags="S", seq=1, window=64240)
        )
    )
    good[0] = 0x44
    cap.add(
        300_000, Ether(src=GW_MAC, dst=NIC_MAC[WEB1], type=0x0800) / Raw(bytes(good)), MALFORMED
    )

    # Ethertype IPv4 carrying an IPv6 packet: the version nibble contradicts the link layer.
    v6 = bytes(
        IPv6(src="2001:db8:ff::5", dst=WEB1_V6, hlim=55)
        / TCP(sport=40_405, dport=443, flags="S", seq=1, window=64240)
    )
    cap.add(400_000, Ether(src=GW_MAC, dst=NIC_MAC[WEB1], type=0x0800) / Raw(v6), MALFORMED)

    # Two outside hosts: no instance at either end, unmanaged.
    cap.add(
        500_000,
        eth("203.0.113.5", "198.51.100.20")
        / IP(src="203.0.113.5", dst="198.51.100.20", ttl=60, id=0x3030, flags="DF")
        / TCP(sport=45_454, dport=443, flags="S", seq=7, window=64240),
        UNMANAGED,
    )

    # GRE from 203.0.113.80 to web-1 carrying an https SYN: only the outer header counts, and
    # web-1 has no rule for protocol 47: implicit deny.
    inner = IP(src="172.16.0.1", dst="172.16.0.2", ttl=64, id=0x4040) / TCP(
        sport=41_414, dport=443, flags="S", seq=9, window=64240
    )
    cap.add(
        600_000,
        eth("203.0.113.80", WEB1)
        / IP(src="203.0.113.80", dst=WEB1, ttl=52, id=0x5050, proto=47)
        / GRE(proto=0x0800)
        / inner,
        IMPLICIT_DENY,
    )
    return cap


CAPTURES: dict[str, Callable[[], Capture]] = {
    "web.pcap": web,
    "admin.pcap": admin,
    "db-scan.pcap": db_scan,
    "ipv6.pcap": ipv6,
    "icmp-errors.pcap": icmp_errors,
    "fragments.pcap": fragments,
    "misc.pcap": misc,
}


def build_all() -> Iterator[tuple[str, list[tuple[Packet, Expect]]]]:
    for name, build in CAPTURES.items():
        yield name, build().records()


def write(outdir: Path) -> list[Path]:
    outdir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, records in build_all():
        path = outdir / name
        with PcapWriter(str(path), linktype=1, sync=False) as out:
            for frame, _ in records:
                out.write(frame)
        written.append(path)
    return written


def counts(records: list[tuple[Packet, Expect]]) -> Counter[str]:
    return Counter(expect.verdict for _, expect in records)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("outdir", nargs="?", type=Path, default=HERE)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--expected",
        action="store_true",
        help="print the hand-worked verdict of every packet as CSV",
    )
    mode.add_argument(
        "--table",
        action="store_true",
        help="print the expected verdict counts per file (README table)",
    )
    args = parser.parse_args(argv)
    if args.expected:
        print("file,index,verdict,reason,rule")
        for name, records in build_all():
            for i, (_, e) in enumerate(records):
                print(f"{name},{i},{e.verdict},{e.reason},{e.rule}")
    elif args.table:
        print("| file | " + " | ".join(VERDICTS) + " | total |")
        print("|---" * (len(VERDICTS) + 2) + "|")
        for name, records in build_all():
            c = counts(records)
            print(f"| {name} | " + " | ".join(str(c[v]) for v in VERDICTS) + f" | {len(records)} |")
    else:
        for path in write(args.outdir):
            print(f"{path} ({path.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
