"""The scale-out (issue 16): `classify --workers N` against one process on the same capture.

Writes the synthetic capture of benchmarks/end_to_end.py (default 5M packets among 100
instances and outside clients, its 500-rule policy), then times whole commands, alternated
round by round so the machine's noise falls on both alike:

- `sgclassify classify --policy P CAPTURE -q --json OUT` (one process);
- the same with `--workers N` (a local Dask cluster the command starts and stops: its start-up
  is in the figure), and with `--packets OUT.csv` too when --packets-out is given;
- both again on a one-record capture: their fixed start-up, which scale.md section 4 leaves
  out of its speed target (`net` = the figure minus it).

Checks that both runs wrote the same bytes (the contract, scale.md), and prints the medians,
their ratios (one process / cluster: above 1 the cluster is faster), gross and net of
start-up, the processor and the number of cores.
Usage: python benchmarks/bench_scale.py [--packets-out] [--count N] [--workers W] [--repeats R]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import end_to_end, synth  # noqa: E402

SGCLASSIFY = Path(sys.executable).with_name("sgclassify")


def processor() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def timed(argv: list[str], cpu: list[float]) -> float:
    """The command's wall time; appends to `cpu` the CPU seconds of it and every process it
    started (they are all reaped when it exits: a local cluster's nannies and workers too)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--count", type=int, default=5_000_000, help="packets in the capture")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--packets-out", action="store_true", help="write --packets CSVs too")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sg-bench-scale-") as tmp:
        directory = Path(tmp)
        policy, capture = directory / "policy.json", directory / "big.pcap"
        policy.write_text(json.dumps(end_to_end.build_policy_data()))
        clients, servers = end_to_end.clients_and_servers()
        synth.write_capture(str(capture), args.count, clients, servers, seed=16, flows=20_000)
        tiny = directory / "tiny.pcap"
        synth.write_capture(str(tiny), 1, clients, servers, seed=16)
        size = capture.stat().st_size

        def command(tag: str, path: Path, *extra: str) -> list[str]:
            argv = [str(SGCLASSIFY), "classify", "--policy", str(policy), str(path), "-q",
                    "--json", str(directory / f"{tag}.json"), *extra]  # fmt: skip
            if args.packets_out:
                argv += ["--packets", str(directory / f"{tag}.csv")]
            return argv

        workers = ("--workers", str(args.workers))
        commands = {
            "one": command("one", capture),
            "scaled": command("scaled", capture, *workers),
            "one-startup": command("tiny-one", tiny),
            "scaled-startup": command("tiny-scaled", tiny, *workers),
        }
        times: dict[str, list[float]] = {name: [] for name in commands}
        cpu: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.repeats):
            for name, argv in commands.items():
                times[name].append(timed(argv, cpu[name]))
        for ext in ("json", "csv") if args.packets_out else ("json",):
            a = (directory / f"one.{ext}").read_bytes()
            b = (directory / f"scaled.{ext}").read_bytes()
            assert a == b, f"the cluster's --{ext} differs from one process's"
    median = {name: statistics.median(values) for name, values in times.items()}
    print(f"processor: {processor()}, {os.cpu_count()} cores")
    print(
        f"capture: {args.count:,} packets, {size / 1e6:.0f} MB; "
        f"outputs: --json{' --packets (CSV)' if args.packets_out else ''}; "
        f"median of {args.repeats} runs, alternated"
    )
    print(f"{'command':34} {'median s':>9} {'min s':>7} {'max s':>7} {'CPU s':>7} {'Mpkt/s':>7}")
    labels = {
        "one": "classify (one process)",
        "scaled": f"classify --workers {args.workers}",
        "one-startup": "  start-up (one record)",
        "scaled-startup": f"  start-up --workers {args.workers} (one record)",
    }
    for name, label in labels.items():
        values = times[name]
        rate = f"{args.count / median[name] / 1e6:7.2f}" if "startup" not in name else ""
        work = statistics.median(cpu[name])
        print(
            f"{label:34} {median[name]:9.2f} {min(values):7.2f} {max(values):7.2f} "
            f"{work:7.2f} {rate}"
        )
    net_one = median["one"] - median["one-startup"]
    net_scaled = median["scaled"] - median["scaled-startup"]
    print(f"ratio one process / --workers {args.workers}: {median['one'] / median['scaled']:.2f}")
    print(
        f"net of start-up: {net_one:.2f} s / {net_scaled:.2f} s = {net_one / net_scaled:.2f} "
        "(scale.md section 4's target: at least 1.6 on 2 free cores)"
    )
    cpu_one = statistics.median(cpu["one"]) - statistics.median(cpu["one-startup"])
    cpu_scaled = statistics.median(cpu["scaled"]) - statistics.median(cpu["scaled-startup"])
    print(
        f"CPU seconds net of start-up: {cpu_one:.2f} s / {cpu_scaled:.2f} s; on {args.workers} "
        f"free cores the cluster could at best reach {args.workers * cpu_one / cpu_scaled:.2f}"
    )
    print("outputs byte-equal: yes")


if __name__ == "__main__":
    main()
