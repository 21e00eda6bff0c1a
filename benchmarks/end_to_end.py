"""End-to-end throughput of `classify`: decode, classify, connection state, statistics.

Writes a synthetic capture (default 5M packets; benchmarks/synth.py) among 100 instances and
outside clients, builds a 500-rule policy over them, and measures side by side in one run:

- decode only (`pcap.read_batches`), the floor under everything else;
- stateless classification (decode + engine + statistics);
- stateful classification (decode + fragment joining + engine + conntrack + statistics);
- the plain-Python reference matcher on a small slice, as the "what else could a Python
  user run" peer.

Prints medians of --repeats runs in packets per second, the ratios, and peak RSS.
Usage: python benchmarks/end_to_end.py [--packets N] [--repeats R]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import synth  # noqa: E402
from classifier import pcap, reference  # noqa: E402
from classifier.engine import (
    Classification,  # noqa: E402
    Engine,  # noqa: E402
)
from classifier.policy import load_policy_data  # noqa: E402

N_INSTANCES = 100
N_GROUPS = 10
RULES_PER_GROUP = 50  # 10 x 50 = 500 rules


def instance_ip(i: int) -> str:
    return f"10.{i // 200}.{(i % 200) // 50 + 1}.{i % 50 + 10}"


def build_policy_data(
    n_instances: int = N_INSTANCES,
    n_groups: int = N_GROUPS,
    rules_per_group: int = RULES_PER_GROUP,
) -> dict[str, Any]:
    """A policy a large tenant could have: tiers of groups, ports, ranges, CIDRs, remote groups.

    The issue-15 workloads: 100 instances, 15 groups of 35 rules (525 rules); 400 instances,
    100 groups of 50 rules (5,000 rules)."""
    groups = []
    ports = [22, 25, 53, 80, 123, 443, 3389, 8080, 5432, 6379]
    for g in range(n_groups):
        rules: list[dict[str, Any]] = []
        for r in range(rules_per_group - 2):
            kind = r % 6
            rule: dict[str, Any] = {
                "id": f"sg{g}-r{r}",
                "direction": "ingress" if r % 5 else "egress",
                "priority": 1 + (r * 7 + g) % 100,
                "action": "deny" if r % 9 == 4 else "allow",
            }
            if kind == 0:
                rule |= {"protocol": "tcp", "multiport": str(ports[(r + g) % len(ports)])}
            elif kind == 1:
                rule |= {
                    "protocol": "tcp",
                    "multiport": f"{1000 + r * 100}-{1050 + r * 100},{ports[r % 10]}",
                }
            elif kind == 2:
                rule |= {
                    "protocol": "udp",
                    "multiport": str(ports[(r * 3) % len(ports)]),
                    "remote_ip_prefix": f"{(r * 37) % 223 + 1}.{g}.0.0/16",
                }
            elif kind == 3:
                rule |= {"protocol": "tcp", "remote_group_id": f"sg{(g + 1) % n_groups}"}
            elif kind == 4:
                rule |= {"protocol": "icmp", "icmp_type": 8, "remote_ip_prefix": "0.0.0.0/0"}
            else:
                rule |= {
                    "protocol": "tcp",
                    "multiport": "443",
                    "remote_address_group_id": "ag-partners",
                }
            rules.append(rule)
        rules.append(
            {
                "id": f"sg{g}-v6",
                "direction": "ingress",
                "ethertype": "IPv6",
                "protocol": "tcp",
                "multiport": "80,443",
            }
        )
        rules.append({"id": f"sg{g}-out", "direction": "egress", "priority": 100})
        groups.append({"id": f"sg{g}", "rules": rules})
    instances = [
        {
            "id": f"vm{i}",
            "ips": [instance_ip(i)] + ([f"2001:db8:1::{i + 16:x}"] if i % 4 == 0 else []),
            "security_groups": [f"sg{i % n_groups}", f"sg{(i + 3) % n_groups}"],
        }
        for i in range(n_instances)
    ]
    address_groups = [
        {
            "id": "ag-partners",
            "ip_version": 4,
            "ip_set": ["198.51.100.0/24", "192.0.2.10-192.0.2.200", "203.0.113.0/25"],
        }
    ]
    return {"security_groups": groups, "address_groups": address_groups, "instances": instances}


def clients_and_servers(n_instances: int = N_INSTANCES) -> tuple[list[str], list[str]]:
    servers = [instance_ip(i) for i in range(n_instances)]
    servers += [f"2001:db8:1::{i + 16:x}" for i in range(0, n_instances, 4)]
    clients = [f"198.51.100.{i}" for i in range(1, 200)] + [f"203.0.113.{i}" for i in range(1, 250)]
    clients += [f"{(i * 53) % 223 + 1}.{i % 10}.{i % 250}.7" for i in range(500)]
    clients += [f"2001:db8:ff::{i:x}" for i in range(1, 100)]
    clients += servers[: n_instances // 4]  # east-west traffic: both sides evaluated
    return clients, servers


def decode_only(path: str) -> int:
    n = 0
    for batch in pcap.read_batches(path):
        n += len(batch)
    return n


def classify(engine: Engine, path: str, stateful: bool) -> int:
    run = Classification(engine, stateful=stateful)
    n = 0
    for result in run.run([path]):
        n += len(result.batch)
    summary = run.summary()
    assert summary["packets"] == n == sum(summary["verdicts"].values())
    return n


def changed_policy_data() -> dict[str, Any]:
    """The benchmark policy with a change someone could make: every seventh rule's action
    flipped (the diff benchmark's NEW policy)."""
    data = build_policy_data()
    for group in data["security_groups"]:
        for number, rule in enumerate(group["rules"]):
            if number % 7 == 3:
                rule["action"] = "allow" if rule.get("action") == "deny" else "deny"
    return data


def diff(old: Engine, new: Engine, path: str) -> int:
    """`sgclassify diff` without printing: both classifications of one decoding."""
    from classifier.report.diff import PolicyDiff

    run = PolicyDiff(old, new)
    n = 0
    for step in run.run([path]):
        n += len(step.old.batch)
    assert run.builder.packets == n
    return n


def reference_rate(policy: Any, path: str, limit: int) -> float:
    packets = []
    for batch in pcap.read_batches(path, batch_size=limit):
        packets = list(batch)[:limit]
        break
    oracle = reference.StatefulReference(policy)
    start = time.perf_counter()
    for packet in packets:
        oracle.process(packet)
    return len(packets) / (time.perf_counter() - start)


def peak_rss_mb(path: str, stateful: bool = True) -> float:
    """Peak resident memory (VmHWM) of a fresh process that classifies `path` end to end."""
    code = (
        "import sys\n"
        f"sys.path.insert(0, {str(Path(__file__).resolve().parents[1])!r})\n"
        "from benchmarks import end_to_end as e\n"
        "from classifier.engine import Engine\n"
        "from classifier.policy import load_policy_data\n"
        "engine = Engine(load_policy_data(e.build_policy_data(), 'benchmark-policy'))\n"
        f"e.classify(engine, sys.argv[1], {stateful})\n"
        "print([l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, path], capture_output=True, text=True, check=True
    )
    return int(done.stdout.split()[-1]) / 1024


def median_rate(fn: Any, repeats: int) -> tuple[float, int]:
    times = []
    n = 0
    for _ in range(repeats):
        start = time.perf_counter()
        n = fn()
        times.append(time.perf_counter() - start)
    return n / statistics.median(times), n


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--packets", type=int, default=5_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--flows",
        type=int,
        default=20_000,
        help="distinct conversations per packet kind (0: a fresh 5-tuple per packet)",
    )
    parser.add_argument("--reference-packets", type=int, default=20_000)
    parser.add_argument(
        "--rss-packets",
        type=int,
        default=0,
        help="also classify a capture of this many packets (25M ~ 2 GB) in a "
        "fresh process and report its peak RSS",
    )
    args = parser.parse_args(argv)

    policy = load_policy_data(build_policy_data(), "benchmark-policy")
    build_start = time.perf_counter()
    engine = Engine(policy)
    build_seconds = time.perf_counter() - build_start
    clients, servers = clients_and_servers()
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "synthetic.pcap")
        write_start = time.perf_counter()
        size = synth.write_capture(
            path, args.packets, clients, servers, fmt="pcap", seed=1, flows=args.flows
        )
        write_seconds = time.perf_counter() - write_start
        print(
            f"policy: {len(policy.instances)} instances, {policy.rule_count} rules, "
            f"{len(engine.tables)} side tables, built in {build_seconds:.3f} s"
        )
        print(
            f"capture: {args.packets:,} packets, {size / 1e6:.0f} MB, "
            f"{args.flows or 'no'} flows per packet kind, written in {write_seconds:.1f} s"
        )
        decode_only(path)  # warm the page cache
        rows = [
            ("decode only", *median_rate(lambda: decode_only(path), args.repeats)),
            (
                "classify --stateless",
                *median_rate(lambda: classify(engine, path, False), args.repeats),
            ),
            (
                "classify (stateful)",
                *median_rate(lambda: classify(engine, path, True), args.repeats),
            ),
        ]
        changed = Engine(load_policy_data(changed_policy_data(), "changed-policy"))
        rows.append(
            ("diff (stateful)", *median_rate(lambda: diff(engine, changed, path), args.repeats))
        )
        ref = reference_rate(policy, path, args.reference_packets)
        rss = [(args.packets, size, peak_rss_mb(path))]
        if args.rss_packets:
            big = str(Path(tmp) / "big.pcap")
            big_size = synth.write_capture(
                big, args.rss_packets, clients, servers, fmt="pcap", seed=2, flows=args.flows
            )
            rss.append((args.rss_packets, big_size, peak_rss_mb(big)))
    decode_rate = rows[0][1]
    print(f"\n{'stage':<24}{'Mpkt/s':>10}{'vs decode':>12}{'vs reference':>14}")
    for name, rate, _ in rows:
        print(f"{name:<24}{rate / 1e6:>10.2f}{rate / decode_rate:>12.2f}{rate / ref:>14.0f}x")
    print(f"{'reference (Python)':<24}{ref / 1e6:>10.4f}")
    print(f"diff / classify (stateful): {rows[3][1] / rows[2][1]:.2f}x (target: >= 0.6x)")
    print()
    for packets, file_size, peak in rss:
        print(
            f"peak RSS of a fresh process classifying {packets:,} packets "
            f"({file_size / 1e6:.0f} MB, stateful): {peak:.0f} MB"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
