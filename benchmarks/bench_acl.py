"""pytest-benchmark: build and match of the first-match core, grouped by size.

Small on purpose (the full table with rte_acl side by side is benchmarks/classbench.py); the
test command runs these once with --benchmark-disable so they cannot rot.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from classifier import acl

CLASSBENCH = Path(__file__).resolve().parents[2] / "shared" / "classbench" / "lyxocs_ruleSet"


def _classbench(name: str, trace: str) -> tuple[acl.RuleSet, np.ndarray]:
    rules_path = CLASSBENCH / name
    if not rules_path.exists():
        pytest.skip(f"{rules_path} is absent")
    return acl.read_classbench_rules(rules_path), acl.read_classbench_trace(CLASSBENCH / trace)


def _security_group(n_rules: int, seed: int = 1) -> np.ndarray:
    """A security-group-like list: address ranges, exact ports, ICMP types, wildcards."""
    rng = np.random.default_rng(seed)
    rules = acl.wildcard_rules(n_rules)
    base = rng.integers(0x0A000000, 0x0AFFFFFF, n_rules, dtype=np.uint32)
    width = rng.choice([0, 255, 4095, 0xFFFFFF], n_rules).astype(np.uint32)
    rules["src_lo"], rules["src_hi"] = (
        base,
        np.minimum(base.astype(np.uint64) + width, 0xFFFFFFFF).astype(np.uint32),
    )
    ports = rng.choice([22, 80, 443, 3306, 5432, 8080], n_rules)
    rules["dport_lo"] = rules["dport_hi"] = ports
    rules["proto"], rules["proto_mask"] = 6, 0xFF
    return rules


def _packets(n: int, seed: int = 2) -> np.ndarray:
    rng = np.random.default_rng(seed)
    packets = np.zeros(n, acl.PACKET_V4_DTYPE)
    packets["src"] = rng.integers(0x0A000000, 0x0AFFFFFF, n, dtype=np.uint32)
    packets["dst"] = rng.integers(0, 0xFFFFFFFF, n, dtype=np.uint32)
    packets["sport"] = rng.integers(1024, 65536, n)
    packets["dport"] = rng.choice([22, 80, 443, 3306, 5432, 8080, 9999, acl.PORT_UNKNOWN], n)
    packets["proto"] = rng.choice([6, 17], n)
    return packets


@pytest.mark.benchmark(group="acl-build")
@pytest.mark.parametrize("n_rules", [10, 500])
def test_build_security_group(benchmark, n_rules: int) -> None:  # type: ignore[no-untyped-def]
    rules = _security_group(n_rules)
    matcher = benchmark(acl.compile, rules)
    assert len(matcher) == n_rules


@pytest.mark.benchmark(group="acl-build")
def test_build_acl1_1k(benchmark) -> None:  # type: ignore[no-untyped-def]
    rules, _ = _classbench("acl1_1k", "acl1_1k_trace")
    assert len(benchmark(acl.compile, rules)) == len(rules)


@pytest.mark.benchmark(group="acl-match")
def test_match_security_group_500(benchmark) -> None:  # type: ignore[no-untyped-def]
    matcher = acl.compile(_security_group(500))
    packets = _packets(100_000)
    hits = benchmark(matcher.match, packets)
    assert hits.shape == (100_000,) and (hits >= -1).all()


@pytest.mark.benchmark(group="acl-match")
def test_match_acl1_1k(benchmark) -> None:  # type: ignore[no-untyped-def]
    rules, trace = _classbench("acl1_1k", "acl1_1k_trace")
    matcher = acl.compile(rules)
    hits = benchmark(matcher.match, trace)
    assert (hits >= 0).all()
