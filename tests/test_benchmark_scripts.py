"""The side-by-side benchmark scripts, run once each on a tiny budget so they cannot rot.

Their real runs (`make bench`) are too long for the test command; here they must finish,
exit 0 and print their tables. The numbers they print are not checked: speed is measured by
the benchmarks, never by timed tests.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cluster import dask_or_skip
from tests.conftest import CLASSBENCH, ROOT, require

pytestmark = pytest.mark.slow


def run_script(*argv: str) -> str:
    done = subprocess.run(
        [sys.executable, *argv], capture_output=True, text=True, cwd=ROOT, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_classbench_script() -> None:
    require(CLASSBENCH)
    out = run_script(
        "benchmarks/classbench.py", "--sets", "acl1_1k,fw1_1k", "--repeat", "1", "--no-dpdk"
    )
    assert "acl1_1k" in out and "100.00" in out


def test_end_to_end_script() -> None:
    out = run_script(
        "benchmarks/end_to_end.py",
        "--packets",
        "20000",
        "--repeats",
        "1",
        "--reference-packets",
        "300",
    )
    assert "classify (stateful)" in out


def test_pcap_throughput_script() -> None:
    out = run_script(
        "benchmarks/pcap_throughput.py",
        "--packets",
        "20000",
        "--peer-packets",
        "2000",
        "--repeats",
        "1",
    )
    assert "dpkt" in out


def test_lint_scale_script(tmp_path: Path) -> None:
    out = run_script(
        "benchmarks/lint_scale.py", "--rules", "200", "--instances", "20", "--repeat", "1"
    )
    assert "| fleet | 200 | 20 |" in out and "| flat |" in out
    policy = tmp_path / "fleet.json"
    run_script(
        "benchmarks/lint_scale.py", "--rules", "200", "--instances", "20", "--write", str(policy)
    )
    done = subprocess.run(
        [sys.executable, "-m", "classifier", "lint", str(policy), "--json", "-"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout)["findings"]


def test_bench_check_script() -> None:
    out = run_script(
        "benchmarks/bench_check.py",
        "--packets",
        "20000",
        "--rounds",
        "1",
        "--report-only",
        "--no-dpdk",
    )
    assert "e2e_over_decode" in out and "numpy_over_startup" in out
    assert "processor: " in out and "baseline: " in out


def test_bench_check_baseline_per_processor(tmp_path: Path) -> None:
    from benchmarks import bench_check

    path = tmp_path / "baseline.json"
    assert bench_check.read_baseline(path) == {}
    assert bench_check.baseline_for({}, "any")[0] == {}
    entries = {
        "A": {"packets": 1, "ratios": {"e2e": 0.2, "start": 0.4}},
        "B": {"packets": 1, "ratios": {"e2e": 0.1, "start": 0.6, "core": 0.9}},
    }
    bench_check.write_baseline(entries, path)
    assert bench_check.read_baseline(path) == entries
    own, source = bench_check.baseline_for(entries, "B")
    assert own == entries["B"]["ratios"] and source == "this processor's entry"
    # a processor nobody measured: the lowest known value of each ratio, and it says so
    lowest, source = bench_check.baseline_for(entries, "C")
    assert lowest == {"e2e": 0.1, "start": 0.4, "core": 0.9}
    assert "no entry for this processor" in source and "A, B" in source
    # the format before entries per processor: one processor's ratios
    path.write_text(json.dumps({"processor": "A", "packets": 1, "ratios": {"e2e": 0.2}}))
    assert bench_check.read_baseline(path) == {"A": {"packets": 1, "ratios": {"e2e": 0.2}}}
    # the file on main has the processors it was measured on
    assert bench_check.read_baseline(), "benchmarks/baseline.json has no entry"


def test_flood_script() -> None:
    out = run_script("benchmarks/flood.py", "--packets", "30000", "--max-connections", "7000")
    assert "total 30,000, evicted 23,000" in out


def test_bench_scale_script() -> None:
    dask_or_skip()
    out = run_script(
        "benchmarks/bench_scale.py", "--count", "20000", "--repeats", "1", "--packets-out"
    )
    assert "ratio one process / --workers 2" in out and "outputs byte-equal: yes" in out
    assert "  round by round: " in out


def test_bench_scale_parts() -> None:
    out = run_script("benchmarks/bench_scale.py", "--parts", "--count", "20000", "--repeats", "1")
    assert "lane 1 of 2" in out and "bound with no cluster or machine cost" in out
    assert "2 lanes in fresh processes" in out


def test_compressed_script() -> None:
    out = run_script("benchmarks/compressed.py", "--packets", "20000", "--repeats", "1")
    assert "gzip classify / plain classify speed" in out and "| zstd |" in out
