"""Under `make test-sanitize` (and its subset in `make test`) the extensions really are the
ASan + UBSan build with the runtimes loaded: otherwise a clean run would prove nothing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import classifier.pcap._pcap as core

EXPECTED = os.environ.get("CLASSIFIER_EXPECT_SANITIZERS") == "1"


@pytest.mark.skipif(not EXPECTED, reason="not a sanitizer run (make test-sanitize)")
def test_the_sanitizer_build_is_the_one_loaded() -> None:
    maps = Path("/proc/self/maps").read_text()
    assert "libasan" in maps and "libubsan" in maps
    assert "/build/sanitize/" in str(core.__file__) and core.DEBUG_BUILD
    assert b"__asan_report" in Path(str(core.__file__)).read_bytes()
