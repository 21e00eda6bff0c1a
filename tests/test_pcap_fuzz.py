"""Bounded fuzzing of the reader against a DEBUG build of the extension (about 20 s).

The debug build (CLASSIFIER_DEBUG=1: -O0, asserts on every load of packet bytes, Cython
bounds checks) is compiled from a copy of the sources in a temporary directory, so the
generated C next to the real .pyx is never replaced by the debug one. The fuzzer runs in a
subprocess: an out-of-bounds read aborts it, which this test sees as a non-zero exit.
The long-running entry point is `python tests/fuzz_pcap.py --seconds 600`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fuzz_pcap import build_debug

ROOT = Path(__file__).resolve().parents[1]
SECONDS = float(os.environ.get("CLASSIFIER_FUZZ_SECONDS", "20"))


@pytest.fixture(scope="module")
def debug_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("cc") is None and shutil.which("gcc") is None:
        pytest.skip("no C compiler")
    return build_debug(tmp_path_factory.mktemp("debug"))


@pytest.mark.slow  # the extension-less pass of `make test` skips it: it needs the build
def test_fuzz_debug_build(debug_build: Path, tmp_path: Path) -> None:
    out = tmp_path / "fuzz"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "fuzz_pcap.py"), "--seconds", str(SECONDS),
         "--seed", "12345", "--ext", str(debug_build), "--out", str(out), "--require-debug"],
        capture_output=True, text=True, check=False, timeout=SECONDS * 6 + 60,
    )  # fmt: skip
    current = out / "current.bin"
    assert proc.returncode == 0, (
        f"fuzzer failed (exit {proc.returncode}); last input: {current}\n"
        f"{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    )
    assert "0 twin mismatches" in proc.stdout and "debug build: True" in proc.stdout
