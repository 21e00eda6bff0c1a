"""`classify --flows out.parquet` beside `classify --json` alone (issue 11's target: >= 0.8x).

Writes the end-to-end benchmark's capture (default 5M packets, 20,000 conversations per
packet kind; benchmarks/synth.py) and its 500-rule, 100-instance policy, then runs both
commands in fresh processes, alternating, `--repeats` times each, and prints the medians of
wall time and of CPU time (user + system of the child: a busy machine's waits for a core are
not the code's) and the speed ratio, with the number of connection records written.

Usage: python benchmarks/flows_speed.py [--packets N] [--repeats R]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import classbench, end_to_end, synth  # noqa: E402


def timed(command: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one run of `command` in a fresh process."""
    start = time.perf_counter()
    before = os.times()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    after = os.times()
    cpu = (after.children_user - before.children_user) + (
        after.children_system - before.children_system
    )
    return time.perf_counter() - start, cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, default=5_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as workdir:
        policy = Path(workdir) / "policy.json"
        policy.write_text(json.dumps(end_to_end.build_policy_data()))
        capture = Path(workdir) / "capture.pcap"
        clients, servers = end_to_end.clients_and_servers()
        synth.write_capture(capture, args.packets, clients, servers, seed=1, flows=20_000)
        base = [sys.executable, "-m", "classifier", "classify", "--policy", str(policy)]
        base += [str(capture), "-q", "--json", str(Path(workdir) / "summary.json")]
        flows_out = Path(workdir) / "flows.parquet"
        commands = {
            "--json": base,
            "--json --flows out.parquet": [*base, "--flows", str(flows_out)],
        }
        runs: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
        for _ in range(args.repeats):
            for name, command in commands.items():
                runs[name].append(timed(command))
        import pyarrow.parquet as pq

        records = pq.read_metadata(flows_out).num_rows
    print(f"processor: {classbench.processor()}; {args.packets:,} packets, {records:,} records")
    print(f"{'command':30} {'wall s':>8} {'cpu s':>8}")
    medians = {}
    for name, times in runs.items():
        wall = statistics.median(t[0] for t in times)
        cpu = statistics.median(t[1] for t in times)
        medians[name] = (wall, cpu)
        print(f"{name:30} {wall:8.2f} {cpu:8.2f}")
    (wall_json, cpu_json), (wall_flows, cpu_flows) = medians.values()
    print(
        f"speed of --flows vs --json alone: {wall_json / wall_flows:.2f}x wall, "
        f"{cpu_json / cpu_flows:.2f}x CPU (target >= 0.8x)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
