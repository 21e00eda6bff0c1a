"""Peak memory of `classify` under a SYN flood (robustness contract, section 4).

Writes a capture of N bare TCP SYNs (default 3,000,000), each from a distinct IPv4 source
(11.0.0.0 upward, 10 µs apart, so every connection is still alive at the end), to a port
the policy allows on one instance; the policy is the end-to-end benchmark's with 100
instances and 1,000 rules (20 groups of 50). Then runs `sgclassify classify --json` on it in
a fresh process and prints its peak resident memory (the child's ru_maxrss), `total` and
`evicted`, which must be N and max(0, N - limit).

Usage: python benchmarks/flood.py [--packets N] [--max-connections L]
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import resource
import struct
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import classbench, end_to_end, synth  # noqa: E402

CHUNK = 1 << 16
FIRST_SOURCE = int(ipaddress.IPv4Address("11.0.0.0"))


def syn_template() -> tuple[bytes, int]:
    """An Ethernet + IPv4 + TCP frame (bare SYN) and the offset of its IPv4 header."""
    kind = synth.Kind("ipv4-tcp", 4, 6, False, 0, 1.0)
    frame = bytearray(kind.template())
    frame[kind.l4 + 13] = 0x02  # flags: SYN only
    return bytes(frame), kind.l3


def write_syn_flood(
    path: str | os.PathLike[str],
    n: int,
    dst: str,
    dport: int,
    start_ts_us: int = 1_700_000_000_000_000,
) -> int:
    """`n` SYNs from distinct sources to dst:dport, classic pcap; returns the file size."""
    frame, l3 = syn_template()
    record = 16 + len(frame)
    template = np.frombuffer(struct.pack("<IIII", 0, 0, len(frame), len(frame)) + frame, np.uint8)
    dst_bytes = np.frombuffer(ipaddress.IPv4Address(dst).packed, np.uint8)
    with open(path, "wb") as f:
        f.write(synth.file_header("pcap"))
        for start in range(0, n, CHUNK):
            m = min(CHUNK, n - start)
            rec = np.tile(template, (m, 1))
            number = start + np.arange(m, dtype=np.int64)
            ts = start_ts_us + number * 10
            head = np.zeros((m, 2), "<u4")
            head[:, 0] = ts // 1_000_000
            head[:, 1] = ts % 1_000_000
            rec[:, :8] = head.view(np.uint8)
            ip = 16 + l3
            source = (FIRST_SOURCE + number).astype(">u4").view(np.uint8).reshape(m, 4)
            rec[:, ip + 12 : ip + 16] = source
            rec[:, ip + 16 : ip + 20] = dst_bytes
            l4 = ip + 20
            rec[:, l4 : l4 + 2] = np.full(m, 40000, ">u2").view(np.uint8).reshape(m, 2)
            rec[:, l4 + 2 : l4 + 4] = np.full(m, dport, ">u2").view(np.uint8).reshape(m, 2)
            f.write(rec.tobytes())
            assert rec.shape[1] == record
        return f.tell()


def flood_policy() -> tuple[dict[str, Any], str, int]:
    """The 100-instance, 1,000-rule policy, and an (instance address, port) it lets any
    source open a TCP connection to."""
    from classifier import reference
    from classifier.packets import Packet
    from classifier.policy import load_policy_data

    data = end_to_end.build_policy_data(end_to_end.N_INSTANCES, 20, 50)
    policy = load_policy_data(data, "flood-policy")
    dst = end_to_end.instance_ip(0)
    for port in (22, 25, 53, 80, 123, 443, 3389, 8080, 5432, 6379):
        probe = Packet(
            ip_version=4,
            src=ipaddress.ip_address("11.0.0.1"),
            dst=ipaddress.ip_address(dst),
            protocol=6,
            sport=40000,
            dport=port,
            tcp_flags=0x02,
        )
        if reference.evaluate(policy, probe).verdict == "allow":
            return data, dst, port
    raise RuntimeError("the benchmark policy allows no port of instance 0 from anywhere")


def run_flood(packets: int, max_connections: int | None, workdir: str) -> dict[str, Any]:
    """Write the flood and classify it in a fresh process; its peak RSS and connections."""
    data, dst, port = flood_policy()
    policy_path = Path(workdir) / "flood-policy.json"
    policy_path.write_text(json.dumps(data))
    capture = Path(workdir) / "flood.pcap"
    write_syn_flood(capture, packets, dst, port)
    summary_path = Path(workdir) / "flood.json"
    command = [
        sys.executable,
        "-m",
        "classifier",
        "classify",
        "--policy",
        str(policy_path),
        str(capture),
        "--json",
        str(summary_path),
        "-q",
    ]
    if max_connections is not None:
        command += ["--max-connections", str(max_connections)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    connections = json.loads(summary_path.read_text())["connections"]
    return {
        "packets": packets,
        "peak_rss_mib": peak_kib / 1024,
        "peak_is_this_run": peak_kib > before,
        "capture_mib": capture.stat().st_size / 2**20,
        **connections,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, default=3_000_000)
    parser.add_argument("--max-connections", type=int, default=None)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as workdir:
        result = run_flood(args.packets, args.max_connections, workdir)
    limit = result["limit"]
    expected_evicted = max(0, args.packets - limit)
    print(f"processor: {classbench.processor()}")
    print(
        f"SYN flood of {args.packets:,} sources ({result['capture_mib']:.0f} MiB capture), "
        f"limit {limit:,}: peak RSS {result['peak_rss_mib']:.0f} MiB, "
        f"total {result['total']:,}, evicted {result['evicted']:,} "
        f"(expected {args.packets:,} and {expected_evicted:,})"
    )
    ok = result["total"] == args.packets and result["evicted"] == expected_evicted
    return 0 if ok and result["peak_rss_mib"] < 1024 else 1


if __name__ == "__main__":
    sys.exit(main())
