"""ClassBench benchmark of the first-match core, side by side with DPDK's rte_acl.

For every rule set: rules, build seconds, memory, million lookups per second (one core, the
batch API on the whole trace, median of --repeat calls before and after the peer) and
agreement with the `.firstmatch` answers.
When `dpdk-test-acl` is installed it runs on the same files in the same run (scalar and the
SIMD builds it accepts) and the table gives our speed as a ratio to its scalar and best SIMD.

    .venv/bin/python benchmarks/classbench.py                  # 1k, 10k and stress sets
    .venv/bin/python benchmarks/classbench.py --sizes 10k --no-dpdk
    .venv/bin/python benchmarks/classbench.py --markdown out.md   # also write the tables

Numbers from a shared machine are noisy: the ratios (both sides measured minutes apart at most,
same files) are the meaningful part.
"""

from __future__ import annotations

import argparse
import math
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from classifier import acl  # noqa: E402
from classifier.acl.kernels import lookup_kernels  # noqa: E402

DATA = ROOT.parent / "shared" / "classbench"
SETS = [
    f"{kind}{i}" for kind, count in (("acl", 5), ("fw", 5), ("ipc", 2)) for i in range(1, count + 1)
]
STRESS = ["acl1_100k", "fw1_100k", "ipc1_50k"]
DPDK = "/usr/bin/dpdk-test-acl"
# EAL: no hugepages or devices, one lcore, room for rte_acl's large fw tries, AVX-512 allowed.
DPDK_EAL = [
    "--no-huge",
    "--no-pci",
    "-l",
    "0",
    "-m",
    "1024",
    "--force-max-simd-bitwidth=512",
    "--log-level=lib.acl:debug",
    "--log-level=eal:error",
]
DPDK_SIMD = ("avx2", "avx512x16", "avx512x32")


@dataclass
class Row:
    name: str
    rules: int
    packets: int
    build_s: float
    memory: int
    mpps: float
    agree: float
    dpdk: dict[str, tuple[float, int]]  # alg -> (Mpps, bytes)


def processor() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def trace_of(rules: Path) -> Path:
    own = rules.with_name(rules.name + "_trace")
    return own if own.exists() else rules.with_name(rules.name + "_trace_gen")


def run_dpdk(
    rules: Path, trace: Path, packets: int, alg: str, iters: int
) -> tuple[float, int] | None:
    """(Mpps, runtime bytes) of one dpdk-test-acl run, None when the build is refused."""
    cmd = [
        DPDK,
        *DPDK_EAL,
        "--",
        f"--rulesf={rules}",
        f"--tracef={trace}",
        f"--tracenum={packets}",
        f"--iter={iters}",
        "--verbose=1",
        f"--alg={alg}",
    ]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = done.stdout + done.stderr
    speed = re.search(r"([\d.]+) pkt/sec", text)
    memory = re.search(r"total: (\d+) bytes", text)
    if done.returncode != 0 or speed is None:
        return None
    return float(speed.group(1)) / 1e6, int(memory.group(1)) if memory else 0


def measure(rules_path: Path, repeat: int, dpdk_algs: list[str], iters: int) -> Row:
    trace_path = trace_of(rules_path)
    rules = acl.read_classbench_rules(rules_path)
    trace = acl.read_classbench_trace(trace_path)
    expected = acl.read_firstmatch(trace_path.with_name(trace_path.name + ".firstmatch"))
    start = time.perf_counter()
    matcher = acl.compile(rules)
    build = time.perf_counter() - start
    hits = matcher.match(trace)

    def timed() -> list[float]:
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            matcher.match(trace)
            times.append(time.perf_counter() - start)
        return times

    times = timed()
    dpdk = {}
    for alg in dpdk_algs:
        result = run_dpdk(rules_path, trace_path, len(trace), alg, iters)
        if result is not None:
            dpdk[alg] = result
    if dpdk:  # the machine may be shared: time ours on both sides of the peer's runs
        times += timed()
    return Row(
        rules_path.name,
        len(rules),
        len(trace),
        build,
        matcher.memory_bytes,
        len(trace) / statistics.median(times) / 1e6,
        float(np.mean(hits == expected)),
        dpdk,
    )


def geomean(values: list[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else math.nan


def table(rows: list[Row]) -> list[str]:
    head = (
        "| set | rules | build s | memory MB | Mpps | agree % | dpdk scalar Mpps | "
        "dpdk avx2 Mpps | dpdk best SIMD Mpps (alg) | dpdk MB | x scalar | x avx2 | x best |"
    )
    out = [head, "|" + "---|" * 13]

    def ratio(ours: float, peer: tuple[float, object] | None) -> str:
        return f"{ours / peer[0]:.2f}" if peer else "-"

    for r in rows:
        scalar, avx2 = r.dpdk.get("scalar"), r.dpdk.get("avx2")
        simd = max(((v[0], alg) for alg, v in r.dpdk.items() if alg != "scalar"), default=None)
        mem = max((v[1] for v in r.dpdk.values()), default=0)
        out.append(
            f"| {r.name} | {r.rules} | {r.build_s:.3f} | {r.memory / 1e6:.1f} | {r.mpps:.2f} | "
            f"{100 * r.agree:.2f} | {f'{scalar[0]:.2f}' if scalar else '-'} | "
            f"{f'{avx2[0]:.2f}' if avx2 else '-'} | "
            f"{f'{simd[0]:.2f} ({simd[1]})' if simd else '-'} | "
            f"{f'{mem / 1e6:.0f}' if mem else '-'} | {ratio(r.mpps, scalar)} | "
            f"{ratio(r.mpps, avx2)} | {ratio(r.mpps, simd)} |"
        )
    return out


def scaling(rows: list[Row]) -> list[str]:
    """acl1, fw1, ipc1 at 1k, 10k and the stress size: build, memory, speed as rules grow."""
    by_name = {r.name: r for r in rows}
    out = [
        "| family | rules 1k / 10k / stress | build s | memory MB | Mpps |",
        "|---|---|---|---|---|",
    ]
    for family, stress in (("acl1", "acl1_100k"), ("fw1", "fw1_100k"), ("ipc1", "ipc1_50k")):
        sized = [by_name.get(n) for n in (f"{family}_1k", f"{family}_10k", stress)]
        if not any(sized):
            continue

        def cells(fmt: str, value: str, sized: list[Row | None] = sized) -> str:
            return " / ".join(fmt.format(getattr(r, value)) if r else "-" for r in sized)

        out.append(
            f"| {family} | {cells('{}', 'rules')} | {cells('{:.3f}', 'build_s')} | "
            + " / ".join(f"{r.memory / 1e6:.2f}" if r else "-" for r in sized)
            + f" | {cells('{:.1f}', 'mpps')} |"
        )
    return out if len(out) > 2 else []


def summary(rows: list[Row]) -> list[str]:
    ten = [r for r in rows if r.name.endswith("_10k")]
    lines = []
    if ten:
        lines.append(
            f"10k sets: geometric mean {geomean([r.mpps for r in ten]):.2f} Mpps, "
            f"max build {max(r.build_s for r in ten):.3f} s, "
            f"max memory {max(r.memory for r in ten) / 1e6:.1f} MB"
        )
        both = [r for r in ten if "scalar" in r.dpdk]
        if both:
            lines.append(
                f"10k sets: geometric mean ratio to dpdk scalar "
                f"{geomean([r.mpps / r.dpdk['scalar'][0] for r in both]):.2f}"
            )
        avx2 = [r for r in ten if "avx2" in r.dpdk]
        if avx2:
            lines.append(
                f"10k sets: geometric mean ratio to dpdk avx2 "
                f"{geomean([r.mpps / r.dpdk['avx2'][0] for r in avx2]):.2f}"
            )
        simd = [r for r in ten if any(a != "scalar" for a in r.dpdk)]
        if simd:
            best = [max(v[0] for a, v in r.dpdk.items() if a != "scalar") for r in simd]
            lines.append(
                f"10k sets: geometric mean ratio to dpdk best SIMD "
                f"{geomean([r.mpps / b for r, b in zip(simd, best, strict=True)]):.2f}"
            )
    lines.append(
        f"agreement with .firstmatch: {sum(r.agree == 1.0 for r in rows)} of "
        f"{len(rows)} sets at 100%"
    )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--sizes", default="1k,10k,stress", help="comma list of 1k,10k,stress")
    parser.add_argument("--sets", default="", help="only these names (e.g. acl1_10k,fw1_10k)")
    parser.add_argument(
        "--repeat",
        type=int,
        default=5,
        help="timed match() calls (x2 with dpdk); the median is reported",
    )
    parser.add_argument("--no-dpdk", action="store_true")
    parser.add_argument("--dpdk-sizes", default="10k", help="sizes also run through dpdk")
    parser.add_argument("--dpdk-iter", type=int, default=10)
    parser.add_argument("--markdown", type=Path, help="also write the tables to this file")
    args = parser.parse_args(argv)

    sizes = set(args.sizes.split(","))
    paths = [
        args.data / "lyxocs_ruleSet" / f"{s}_{size}"
        for size in ("1k", "10k")
        if size in sizes
        for s in SETS
    ]
    if "stress" in sizes:
        paths += [args.data / "nonstandard_fighternan" / s for s in STRESS]
    if args.sets:
        wanted = set(args.sets.split(","))
        paths = [p for p in paths if p.name in wanted]
    paths = [p for p in paths if p.exists()]
    if not paths:
        print(f"no ClassBench data under {args.data}", file=sys.stderr)
        return 1
    have_dpdk = not args.no_dpdk and shutil.which(DPDK) is not None
    dpdk_sizes = set(args.dpdk_sizes.split(","))

    started = time.perf_counter()
    header = [
        f"processor: {processor()} (one core of {platform.node() or 'this machine'})",
        f"python {platform.python_version()}, numpy {np.__version__}, "
        f"kernel {lookup_kernels.isa()}, "
        f"dpdk-test-acl: {'yes' if have_dpdk else 'not run'}",
    ]
    print("\n".join(header), flush=True)
    rows = []
    for path in paths:
        size = "stress" if path.parent.name == "nonstandard_fighternan" else path.name.split("_")[1]
        algs = ["scalar", *DPDK_SIMD] if have_dpdk and size in dpdk_sizes else []
        rows.append(measure(path, args.repeat, algs, args.dpdk_iter))
        print(table(rows[-1:])[-1], flush=True)
    grow = scaling(rows)
    lines = header + [""] + table(rows) + [""] + grow + ([""] if grow else []) + summary(rows)
    lines.append(f"benchmark wall time {time.perf_counter() - started:.0f} s")
    print()
    print("\n".join(lines))
    if args.markdown:
        args.markdown.write_text("\n".join(lines) + "\n")
    return 0 if all(r.agree == 1.0 for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
