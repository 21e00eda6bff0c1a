"""A capture truncated while `classify` reads it never kills the process (robustness.md §2).

A real `sgclassify classify` subprocess reads a 40 MB capture through its memory map; once
the file shows in the process's maps, this test truncates it to a random size at a random
moment, again and again. Each run must exit 0 (never a signal: a SIGBUS shows as a negative
return code), write its JSON summary with verdicts adding up to its packets, and, when the
truncation came before the read ended, say so in one warning naming the file. In-process,
the same with the guard alone (the size check before each window disabled): the core meets
the lost pages, survives the SIGBUS and reads on with pread.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest

from benchmarks.synth import write_capture
from classifier import pcap
from classifier.pcap import Capture
from classifier.pcap.kernels import reader_kernels
from tests.conftest import EXAMPLES

PACKETS = 500_000
RUNS = int(os.environ.get("TRUNCATION_RUNS", "6"))


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("truncation") / "big.pcap"
    write_capture(path, PACKETS, seed=7)
    return path


def _mapped(pid: int, path: Path) -> bool:
    try:
        return str(path) in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False


@pytest.mark.skipif(
    not reader_kernels.GUARDED,
    reason="the map is the compiled reader's (the twin reads with pread)",
)
def test_truncating_while_classify_reads_never_kills_it(pristine: Path, tmp_path: Path) -> None:
    rng = random.Random(11)
    exe = Path(sys.executable).with_name("sgclassify")
    size = pristine.stat().st_size
    hit = 0
    for run in range(RUNS):
        victim = tmp_path / f"victim-{run}.pcap"
        shutil.copyfile(pristine, victim)
        summary = tmp_path / f"summary-{run}.json"
        proc = subprocess.Popen(
            [str(exe), "classify", "--policy", str(EXAMPLES / "web-db.yaml"), str(victim),
             "--json", str(summary), "-q"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while not _mapped(proc.pid, victim) and proc.poll() is None:
            assert time.monotonic() < deadline
            time.sleep(0.001)
        time.sleep(rng.uniform(0, 0.15))
        new_size = rng.choice([0, 1, 24, rng.randrange(size), rng.randrange(size // 2)])
        os.truncate(victim, new_size)
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, (proc.returncode, err)  # never a signal, never exit 1
        assert "Traceback" not in err
        data = json.loads(summary.read_text())
        assert sum(data["verdicts"].values()) == data["packets"] <= PACKETS
        shrank = [line for line in err.splitlines() if "shrank" in line]
        if data["packets"] < PACKETS:
            hit += 1
            assert len(shrank) == 1, err
            assert shrank[0].startswith(f"warning: {victim}: the file shrank from {size} to")
            assert f"read stopped after {data['packets']} records" in shrank[0]
        else:
            assert len(shrank) <= 1
    assert hit >= 1  # at least one truncation landed inside the read


@pytest.mark.skipif(not reader_kernels.GUARDED, reason="the compiled reader (the guarded map)")
def test_the_guard_alone_survives_sigbus(
    pristine: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the size check before each window, the truncation is met inside the map."""
    victim = tmp_path / "victim.pcap"
    shutil.copyfile(pristine, victim)
    monkeypatch.setattr(Capture, "_current_size", lambda self: self._size)  # no size check
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pcap.open_capture(victim) as cap:
            batches = cap.batches(4096)
            first = next(batches)
            os.truncate(victim, 10_000_000)
            rows = len(first) + sum(len(b) for b in batches)
            assert cap._shrank and cap.damaged
        expected = sum(len(b) for b in pcap.read_batches(victim))  # the 10 MB left, read whole
    assert rows == expected
    assert len(cap.warnings) == 1 and "shrank" in cap.warnings[0]
