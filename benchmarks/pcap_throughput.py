"""Capture decoding throughput: our read_batches against scapy and dpkt, side by side.

    .venv/bin/python benchmarks/pcap_throughput.py [--packets 5000000] [--peer-packets 200000]

Writes a synthetic Ethernet capture (benchmarks/synth.py: TCP/UDP/ICMP over IPv4 and IPv6,
some 802.1Q) as pcap and as pcapng into a temporary directory, then for each format measures
packets per second (median of --repeats runs, file in the page cache, one core):

- ours: `classifier.pcap.read_batches` over the whole file (every PacketBatch column filled);
- scapy: `RawPcapReader` / `RawPcapNgReader` + struct unpacking of the 5-tuple;
- dpkt: `dpkt.pcap.UniversalReader` + `dpkt.ethernet.Ethernet` dissection of the 5-tuple.

The peers run on the first --peer-packets packets only (they are 1-2 orders of magnitude
slower); packets/s is comparable across sizes. Finally the peak RSS of a fresh process that
reads the big pcap with read_batches (flat memory: it should not grow with the file).
"""

from __future__ import annotations

import argparse
import os
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import synth  # noqa: E402
from classifier import pcap  # noqa: E402


def ours(path: str) -> int:
    n = 0
    for batch in pcap.read_batches(path):
        n += len(batch)
    return n


_ETH = struct.Struct("!H")
_PORTS = struct.Struct("!HH")


def _five_tuple(data: bytes) -> tuple[bytes, bytes, int, int, int] | None:
    """The 5-tuple by hand with struct, as a scapy-raw-reader user would write it."""
    (et,) = _ETH.unpack_from(data, 12)
    off = 14
    while et in (0x8100, 0x88A8):
        (et,) = _ETH.unpack_from(data, off + 2)
        off += 4
    if et == 0x0800:
        ihl = (data[off] & 15) * 4
        proto = data[off + 9]
        src, dst = data[off + 12 : off + 16], data[off + 16 : off + 20]
        l4 = off + ihl
    elif et == 0x86DD:
        proto = data[off + 6]
        src, dst = data[off + 8 : off + 24], data[off + 24 : off + 40]
        l4 = off + 40
    else:
        return None
    sport = dport = 0
    if proto in (6, 17) and len(data) >= l4 + 4:
        sport, dport = _PORTS.unpack_from(data, l4)
    return src, dst, proto, sport, dport


def scapy_raw(path: str) -> int:
    from scapy.utils import RawPcapNgReader, RawPcapReader

    reader_cls = RawPcapNgReader if path.endswith(".pcapng") else RawPcapReader
    n = 0
    with reader_cls(path) as reader:
        for data, _meta in reader:
            _five_tuple(data)
            n += 1
    return n


def dpkt_reader(path: str) -> int:
    import dpkt

    n = 0
    with open(path, "rb") as f:
        for _ts, buf in dpkt.pcap.UniversalReader(f):
            eth = dpkt.ethernet.Ethernet(buf)
            ip = eth.data
            if isinstance(ip, dpkt.ip.IP | dpkt.ip6.IP6):
                l4 = ip.data
                (
                    ip.src,
                    ip.dst,
                    ip.p if isinstance(ip, dpkt.ip.IP) else ip.nxt,
                    getattr(l4, "sport", 0),
                    getattr(l4, "dport", 0),
                )
            n += 1
    return n


def measure(fn: Callable[[str], int], path: str, repeats: int) -> tuple[float, int]:
    rates = []
    n = 0
    for _ in range(repeats):
        t0 = time.perf_counter()
        n = fn(path)
        rates.append(n / (time.perf_counter() - t0))
    return statistics.median(rates), n


def peak_rss_mb(path: str) -> float:
    # VmHWM, not ru_maxrss: a child's ru_maxrss starts at its parent's peak (kept across exec)
    code = (
        "import sys\n"
        "from classifier import pcap\n"
        "n = sum(len(b) for b in pcap.read_batches(sys.argv[1]))\n"
        "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]\n"
        "print(n, hwm)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, path], capture_output=True, text=True, check=True
    ).stdout.split()
    return int(out[1]) / 1024


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--packets", type=int, default=5_000_000)
    ap.add_argument("--peer-packets", type=int, default=200_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument(
        "--rss-packets",
        type=int,
        default=0,
        help="also measure peak RSS on a capture of this many packets (25M ~ 2 GB)",
    )
    ap.add_argument("--dir", default=None, help="where to write the captures (default: a temp dir)")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        print(f"{'format':8} {'reader':10} {'packets':>10} {'packets/s':>14} {'ours / it':>10}")
        big_pcap = ""
        for fmt in ("pcap", "pcapng"):
            big = os.path.join(tmp, f"big.{fmt}")
            small = os.path.join(tmp, f"small.{fmt}")
            t0 = time.perf_counter()
            size = synth.write_capture(big, args.packets, fmt=fmt)
            synth.write_capture(small, min(args.peer_packets, args.packets), fmt=fmt)
            print(
                f"# {fmt}: wrote {args.packets} packets, {size / 1e6:.0f} MB in "
                f"{time.perf_counter() - t0:.1f} s"
            )
            if fmt == "pcap":
                big_pcap = big
            ours(big)  # warm the page cache
            rate, n = measure(ours, big, args.repeats)
            print(f"{fmt:8} {'ours':10} {n:>10} {rate:>14,.0f} {1.0:>10.1f}")
            for name, fn in (("scapy", scapy_raw), ("dpkt", dpkt_reader)):
                peer, m = measure(fn, small, args.repeats)
                print(f"{fmt:8} {name:10} {m:>10} {peer:>14,.0f} {rate / peer:>10.1f}")
        rss = peak_rss_mb(big_pcap)
        print(
            f"# peak RSS of a fresh process reading the "
            f"{os.path.getsize(big_pcap) / 1e6:.0f} MB pcap: {rss:.0f} MB"
        )
        if args.rss_packets:
            huge = os.path.join(tmp, "huge.pcap")
            synth.write_capture(huge, args.rss_packets)
            print(
                f"# peak RSS of a fresh process reading the "
                f"{os.path.getsize(huge) / 1e6:.0f} MB pcap: {peak_rss_mb(huge):.0f} MB"
            )


if __name__ == "__main__":
    main()
