"""The fuzz targets (tests/fuzz/): every kept crash replays clean, and each target fuzzes for a
few seconds under atheris without a failure (`make fuzz` runs them for long).

In the pure pass of the test command (CLASSIFIER_NO_EXTENSIONS=1 for the whole run) the
targets that compare the compiled modules with their twins have nothing to compare: skipped.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fuzz import targets

ROOT = Path(__file__).resolve().parents[1]
REGRESSIONS = ROOT / "tests" / "fuzz" / "regressions"
SECONDS = int(os.environ.get("CLASSIFIER_FUZZ_SECONDS", "4"))
PURE_RUN = os.environ.get("CLASSIFIER_NO_EXTENSIONS") == "1"


def regressions() -> list[tuple[str, Path]]:
    return [
        (target.name, path)
        for target in sorted(REGRESSIONS.iterdir())
        if target.is_dir()
        for path in sorted(target.iterdir())
    ]


@pytest.mark.parametrize(("target", "path"), regressions(), ids=lambda x: getattr(x, "name", x))
def test_kept_crashes_replay_clean(target: str, path: Path) -> None:
    if PURE_RUN and target in ("pcap-twins", "differential"):
        pytest.skip("compares the compiled modules with the twins")
    targets.prepare()
    targets.TARGETS[target](path.read_bytes())


@pytest.mark.slow  # the compiled pass runs it; `make fuzz` runs the debug build for long
@pytest.mark.parametrize("target", sorted(targets.TARGETS))
def test_each_target_fuzzes_briefly(target: str, tmp_path: Path) -> None:
    pytest.importorskip("atheris", reason="the fuzz extra (atheris) is not installed")
    if PURE_RUN:
        pytest.skip("the compiled modules are off for this run")
    proc = subprocess.run(
        [sys.executable, "-m", "tests.fuzz", target, "--seconds", str(SECONDS),
         "--jobs-dir", str(tmp_path)],
        capture_output=True, text=True, check=False, timeout=SECONDS * 10 + 60,
        cwd=os.getcwd(),
    )  # fmt: skip
    tail = proc.stderr[-4000:]
    assert proc.returncode == 0, tail
    assert "Done " in proc.stderr and "ERROR" not in proc.stderr, tail
    assert not list((tmp_path / target).glob("crash-*")), tail
