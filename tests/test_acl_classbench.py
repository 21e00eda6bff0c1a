"""Golden answers: every ClassBench rule/trace pair of ../shared against its .firstmatch file.

The compiled lookup runs every pair in full (27 standard pairs and the three 100k stress sets);
the pure-Python twin runs the 1k pairs and three large sets (deeper trees, more summary words)
on a sample of packets.  Skipped without ../shared.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from classifier import acl
from tests.conftest import CLASSBENCH, require

STANDARD = CLASSBENCH / "lyxocs_ruleSet"
STRESS = CLASSBENCH / "nonstandard_fighternan"
SETS = [
    f"{kind}{i}" for kind, count in (("acl", 5), ("fw", 5), ("ipc", 2)) for i in range(1, count + 1)
]


def _trace(rules: Path) -> Path:
    """ClassBench's own trace where it is here, else our generated one."""
    own = rules.with_name(rules.name + "_trace")
    return own if own.exists() else rules.with_name(rules.name + "_trace_gen")


PAIRS = [STANDARD / f"{s}_{size}" for size in ("1k", "10k") for s in SETS] + [
    STRESS / name for name in ("acl1_100k", "fw1_100k", "ipc1_50k")
]


def _check(rules_path: Path, sample: int | None) -> None:
    rules = acl.read_classbench_rules(require(rules_path))
    trace_path = _trace(rules_path)
    trace = acl.read_classbench_trace(require(trace_path))
    expected = acl.read_firstmatch(trace_path.with_name(trace_path.name + ".firstmatch"))
    assert len(trace) == len(expected)
    if sample is not None:
        pick = np.random.default_rng(7).choice(len(trace), size=sample, replace=False)
        trace, expected = trace[pick], expected[pick]
    hits = acl.compile(rules).match(trace)
    bad = np.flatnonzero(hits != expected)
    assert bad.size == 0, f"{bad.size} of {len(trace)} differ, first at packet {bad[:5]}"


@pytest.mark.slow
@pytest.mark.parametrize("rules_path", PAIRS, ids=lambda p: p.name)
def test_compiled_agrees_with_firstmatch(rules_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CLASSIFIER_NO_EXTENSIONS", raising=False)
    _check(rules_path, sample=None)


@pytest.mark.parametrize(
    "rules_path",
    [STANDARD / f"{s}_1k" for s in SETS]
    + [STANDARD / "acl1_10k", STANDARD / "fw1_10k", STRESS / "fw1_100k"],
    ids=lambda p: p.name,
)
def test_python_twin_agrees_on_a_sample(rules_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLASSIFIER_NO_EXTENSIONS", "1")
    _check(rules_path, sample=150)


@pytest.mark.slow
@pytest.mark.parametrize("isa", ["generic", "x86-64-v3"])
def test_every_kernel_agrees_on_a_10k_set(isa: str, monkeypatch: pytest.MonkeyPatch) -> None:
    lookup = pytest.importorskip("classifier.acl._lookup")
    monkeypatch.delenv("CLASSIFIER_NO_EXTENSIONS", raising=False)
    lookup.cap_isa(isa)
    try:
        _check(STANDARD / "fw1_10k", sample=None)
    finally:
        lookup.cap_isa(None)


def test_rule_counts_are_line_counts() -> None:
    for path in (STANDARD / "acl1_10k", STANDARD / "fw1_1k"):
        lines = sum(1 for line in require(path).read_text().splitlines() if line.strip())
        assert len(acl.read_classbench_rules(path)) == lines


def test_bundled_sample_agrees_with_a_linear_scan() -> None:
    """The README's snippet, on the set the package carries (no ../shared needed)."""
    rules = acl.read_classbench_rules(acl.SAMPLE_RULES)
    trace = acl.read_classbench_trace(acl.SAMPLE_TRACE)
    assert len(rules) == 500 and len(trace) == 5000
    hits = acl.compile(rules).match(trace)
    r = rules.rules
    for packet, hit in zip(trace[:400], hits[:400], strict=True):
        matches = (
            (r["src_lo"] <= packet["src"]) & (packet["src"] <= r["src_hi"])
            & (r["dst_lo"] <= packet["dst"]) & (packet["dst"] <= r["dst_hi"])
            & (r["sport_lo"] <= packet["sport"]) & (packet["sport"] <= r["sport_hi"])
            & (r["dport_lo"] <= packet["dport"]) & (packet["dport"] <= r["dport_hi"])
            & ((packet["proto"] & r["proto_mask"]) == (r["proto"] & r["proto_mask"]))
        )  # fmt: skip
        first = np.flatnonzero(matches)
        assert hit == (first[0] if len(first) else -1)
    assert (hits >= 0).all()  # the set ends with a catch-all
