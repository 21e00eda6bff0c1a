"""The scale-out (issue 16): `classify --workers N` against one process on the same capture.

Writes the synthetic capture of benchmarks/end_to_end.py (default 5M packets among 100
instances and outside clients, its 500-rule policy), then times whole commands, alternated
round by round (each round in another order) so the machine's noise falls on all alike:

- `sgclassify classify --policy P CAPTURE -q --json OUT` (one process);
- the same with `--workers N` (a local Dask cluster the command starts and stops: its start-up
  is in the figure), and with `--packets OUT.csv` too when --packets-out is given;
- both again on a one-record capture: their fixed start-up, which scale.md section 4 leaves
  out of its speed target (`net` = the figure minus it).

Checks that both runs wrote the same bytes (the contract, scale.md), and prints the medians,
their ratios (one process / cluster: above 1 the cluster is faster), gross and net of
start-up, the net ratio round by round (its median and range: how far one figure can be
trusted on a noisy host), the processor and the number of cores.

With --parts, what bounds the cluster instead (the model of classifier/scale's design note: a
lane costs a + b / W, one process a + b), in CPU seconds, medians of R rounds:
- in this process, a lane's chain of steps (`tasks.lane_step`, what a worker runs) for every
  lane of W and for one lane of 1 (one process's work), and the read of every block alone;
  hence b = (lane of 1 - lane of W) x W / (W - 1), a = lane of 1 - b, and the bound
  (a + b) / (a + b / W) with no cluster and no machine cost;
- the machine: W processes each running lane k of W at once, against the same lanes one at
  a time (a factor above 1: what W busy cores cost each other; shared vCPUs, memory).
Usage: python benchmarks/bench_scale.py [--packets-out] [--count N] [--workers W] [--repeats R]
       [--parts]
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
# as in the command and its workers (classifier/cli/__init__.py): numpy's idle BLAS threads
# would add their spinning to the CPU time of the lanes measured here (8 % of a lane's samples)
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from benchmarks import end_to_end, synth  # noqa: E402
from classifier.scale.tasks import Block  # noqa: E402

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


def lane_cpu(policy: Path, capture: Path, lane: int, lanes: int) -> float:
    """CPU seconds of one lane's chain of steps over the capture, as a worker runs it."""
    from classifier.engine import Engine
    from classifier.policy import load_policy
    from classifier.scale import blocks, tasks
    from classifier.scale.options import DEFAULT_BLOCKSIZE

    engine = Engine(load_policy(str(policy)))
    engine.fused_policy()  # built on first use: not the lane's work
    plan = [b for b in blocks.plan([str(capture)], DEFAULT_BLOCKSIZE) if isinstance(b, Block)]
    start = time.process_time()
    previous = None
    for step, block in enumerate(plan):
        previous = tasks.lane_step(engine, block, previous, lane, lanes, step)
    return time.process_time() - start


def read_cpu(capture: Path) -> float:
    """CPU seconds of reading every block, as each lane reads it (decoding only)."""
    from classifier.pcap import open_capture
    from classifier.scale import blocks
    from classifier.scale.options import DEFAULT_BLOCKSIZE

    plan = [b for b in blocks.plan([str(capture)], DEFAULT_BLOCKSIZE) if isinstance(b, Block)]
    start = time.process_time()
    for block in plan:
        with open_capture(block.location) as reader:
            reader.resume(block.state)
            for _ in reader.batches(end=block.end):
                pass
    return time.process_time() - start


def parts(policy: Path, capture: Path, workers: int, repeats: int) -> None:
    """The --parts report (the module's docstring)."""
    lanes: list[list[float]] = [[] for _ in range(workers)]
    whole: list[float] = []
    read: list[float] = []
    alone: list[float] = []
    together: list[float] = []

    def started(lane: int) -> subprocess.Popen[str]:
        argv = [sys.executable, __file__, "--policy", str(policy), "--capture", str(capture),
                "--lane", str(lane), "--of", str(workers)]  # fmt: skip
        return subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)

    lane_cpu(policy, capture, 0, 1)  # warm: the first run's fresh pages are not the lane's
    for _ in range(repeats):
        read.append(read_cpu(capture))
        whole.append(lane_cpu(policy, capture, 0, 1))
        for lane in range(workers):
            lanes[lane].append(lane_cpu(policy, capture, lane, workers))
        # the machine: fresh processes, one at a time, then all at once
        alone.extend(float(started(lane).communicate()[0]) for lane in range(workers))
        running = [started(lane) for lane in range(workers)]
        together.extend(float(process.communicate()[0]) for process in running)
    one = statistics.median(whole)
    lane_w = statistics.median([cpu for share in lanes for cpu in share])
    b = (one - lane_w) * workers / (workers - 1)
    a = one - b
    factor = statistics.median(together) / statistics.median(alone)
    print(f"processor: {processor()}, {os.cpu_count()} cores; CPU s, median of {repeats}")
    rows = [("read every block (decoding only)", statistics.median(read))]
    rows.append(("one lane of 1 (one process's work)", one))
    rows += [(f"lane {k} of {workers}", statistics.median(share)) for k, share in enumerate(lanes)]
    for label, cpu in rows:
        print(f"{label:36} {cpu:7.3f}")
    print(f"a (every lane) {a:.3f} s, b (split) {b:.3f} s")
    bound = f"(a + b) / (a + b / {workers}) = {one / lane_w:.2f}"
    print(f"bound with no cluster or machine cost: {bound}")
    print(
        f"{workers} lanes in fresh processes: {statistics.median(alone):.3f} s each one at a "
        f"time, {statistics.median(together):.3f} s at once ({factor:.2f} x); bound with that: "
        f"{one / (lane_w * factor):.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--count", type=int, default=5_000_000, help="packets in the capture")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--packets-out", action="store_true", help="write --packets CSVs too")
    parser.add_argument("--parts", action="store_true", help="what bounds the cluster")
    # one lane's CPU time, for --parts' processes run at once
    parser.add_argument("--lane", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--of", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--policy", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--capture", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.lane is not None:
        print(lane_cpu(args.policy, args.capture, args.lane, args.of))
        return
    with tempfile.TemporaryDirectory(prefix="sg-bench-scale-") as tmp:
        directory = Path(tmp)
        policy, capture = directory / "policy.json", directory / "big.pcap"
        policy.write_text(json.dumps(end_to_end.build_policy_data()))
        clients, servers = end_to_end.clients_and_servers()
        synth.write_capture(str(capture), args.count, clients, servers, seed=16, flows=20_000)
        if args.parts:
            parts(policy, capture, args.workers, args.repeats)
            return
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
        names = list(commands)
        for round_ in range(args.repeats):
            # each round in another order, so that no command always follows the same one
            turn = round_ % len(names)
            for name in names[turn:] + names[:turn]:
                times[name].append(timed(commands[name], cpu[name]))
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
    # the same ratio round by round, each round's start-ups taken from its own figures
    rounds = [
        (one - one_start) / (scaled - scaled_start)
        for one, one_start, scaled, scaled_start in zip(
            times["one"], times["one-startup"], times["scaled"], times["scaled-startup"],
            strict=True,
        )
        if scaled > scaled_start
    ]  # fmt: skip
    if rounds:
        print(
            f"  round by round: median {statistics.median(rounds):.2f}, "
            f"range {min(rounds):.2f}-{max(rounds):.2f} over {len(rounds)} rounds"
        )
    else:  # a capture so small that the cluster's run took no longer than its start-up
        print("  round by round: no round whose cluster run outlasted its start-up")
    cpu_one = statistics.median(cpu["one"]) - statistics.median(cpu["one-startup"])
    cpu_scaled = statistics.median(cpu["scaled"]) - statistics.median(cpu["scaled-startup"])
    print(
        f"CPU seconds net of start-up: {cpu_one:.2f} s / {cpu_scaled:.2f} s; on {args.workers} "
        f"free cores the cluster could at best reach {args.workers * cpu_one / cpu_scaled:.2f}"
    )
    print("outputs byte-equal: yes")


if __name__ == "__main__":
    main()
