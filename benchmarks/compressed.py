"""Compressed captures and pipes against the plain file, with the decompressors beside them.

    .venv/bin/python benchmarks/compressed.py [--packets 1000000] [--repeats 3]

Writes a synthetic Ethernet capture (benchmarks/synth.py, with flows) and its gzip (level 6,
as `gzip` makes it), bzip2, xz and zstd copies, then measures, each the median of --repeats
runs, files in the page cache:

- `read`: the reader alone in this process (`classifier.pcap.read_batches`, every column);
- `classify`: `sgclassify classify --policy examples/web-db.yaml F --json out -q` as a fresh
  process (start-up included, as a user runs it), and for `-` the plain bytes piped in;
- `zcat` / `bzcat` / `xzcat` / `zstdcat` `F > /dev/null`: what decompression alone costs, the
  bound a compressed read cannot beat.

Prints a table (seconds, packets/s, ratio to the plain file) and the issue's ratio: gzip
`classify` against plain `classify`, and against `zcat` alone.
"""

from __future__ import annotations

import argparse
import functools
import gzip
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import synth  # noqa: E402
from classifier import pcap  # noqa: E402

TOOLS = {"gzip": "zcat", "bzip2": "bzcat", "xz": "xzcat", "zstd": "zstdcat"}
SUFFIX = {"gzip": ".gz", "bzip2": ".bz2", "xz": ".xz", "zstd": ".zst"}
COMPRESS = {
    "gzip": ["gzip", "-6", "-c"],
    "bzip2": ["bzip2", "-9", "-c"],
    "xz": ["xz", "-3", "-T1", "-c"],
    "zstd": ["zstd", "-3", "-q", "-c"],
}


def timed(fn: Callable[[], object], repeats: int) -> float:
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - start)
    return statistics.median(runs)


def read(path: Path) -> int:
    return sum(len(batch) for batch in pcap.read_batches(path))


def classify(path: Path | None, out: Path, stdin: Path | None = None) -> None:
    exe = Path(sys.executable).with_name("sgclassify")
    argv = [str(exe), "classify", "--policy", str(ROOT / "examples" / "web-db.yaml"),
            str(path) if path else "-", "--json", str(out), "-q"]  # fmt: skip
    with open(stdin or os.devnull, "rb") as feed:
        subprocess.run(argv, stdin=feed if stdin else None, check=True, stdout=subprocess.DEVNULL)


def decompress(tool: str, path: Path) -> None:
    with open(os.devnull, "wb") as sink:
        subprocess.run([tool, str(path)], stdout=sink, check=True)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--packets", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--formats", default="gzip,bzip2,xz,zstd")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        plain = work / "capture.pcap"
        synth.write_capture(plain, args.packets, flows=20_000, seed=3)
        files = {"plain": plain}
        for kind in args.formats.split(","):
            if shutil.which(COMPRESS[kind][0]) is None:
                continue
            packed = work / f"capture.pcap{SUFFIX[kind]}"
            with open(packed, "wb") as f:
                subprocess.run([*COMPRESS[kind], str(plain)], stdout=f, check=True)
            files[kind] = packed
        if "gzip" not in files:  # gzip is the target: Python's own if the tool is absent
            files["gzip"] = work / "capture.pcap.gz"
            files["gzip"].write_bytes(gzip.compress(plain.read_bytes()))
        out = work / "summary.json"
        rows = []
        base = {}
        for kind, path in files.items():
            t_read = timed(functools.partial(read, path), args.repeats)
            t_cls = timed(functools.partial(classify, path, out), args.repeats)
            tool = TOOLS.get(kind)
            t_tool = (
                timed(functools.partial(decompress, tool, path), args.repeats)
                if tool and shutil.which(tool)
                else None
            )
            if kind == "plain":
                base = {"read": t_read, "classify": t_cls}
            rows.append((kind, path.stat().st_size, t_read, t_cls, t_tool))
        t_pipe = timed(functools.partial(classify, None, out, stdin=plain), args.repeats)
        n = args.packets
        print(
            f"{n:,} packets, {plain.stat().st_size / 1e6:.0f} MB plain; medians of {args.repeats}"
        )
        print()
        print("| input | MB | read s | read Mpps | x plain | classify s | x plain | "
              "decompressor alone s |")  # fmt: skip
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        for kind, size, t_read, t_cls, t_tool in rows:
            print(
                f"| {kind} | {size / 1e6:.1f} | {t_read:.2f} | {n / t_read / 1e6:.2f} | "
                f"{base['read'] / t_read:.2f} | {t_cls:.2f} | {base['classify'] / t_cls:.2f} | "
                f"{'-' if t_tool is None else f'{t_tool:.2f}'} |"
            )
        print(
            f"| plain on stdin (`-`) | - | - | - | - | {t_pipe:.2f} | "
            f"{base['classify'] / t_pipe:.2f} | - |"
        )
        gz = next(r for r in rows if r[0] == "gzip")
        print()
        print(
            f"gzip classify / plain classify speed: {base['classify'] / gz[3]:.2f}x (target 0.5x)"
        )
        if gz[4] is not None:
            print(f"gzip classify time / zcat alone: {gz[3] / gz[4]:.2f}")


if __name__ == "__main__":
    main()
