"""Bounded memory (robustness contract, section 4): `classify --max-connections` and the
connection limit's counters in the summary, on a small SYN flood (the 3-million-source one
is `benchmarks/flood.py`, its peak RSS in benchmarks/RESULTS.md)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from benchmarks import flood
from classifier.cli import main
from classifier.limits import DEFAULT_MAX_CONNECTIONS, DENIED_TUPLES_LIMIT, MAX_FRAGMENTS


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out, err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def small_flood(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """20,000 SYNs from distinct sources, all allowed, and the policy."""
    workdir = tmp_path_factory.mktemp("flood")
    data, dst, port = flood.flood_policy()
    policy = workdir / "policy.json"
    policy.write_text(json.dumps(data))
    capture = workdir / "flood.pcap"
    flood.write_syn_flood(capture, 20_000, dst, port)
    return policy, capture


@pytest.mark.parametrize("limit", [1, 5_000, 20_000, 10**9])
def test_a_flood_evicts_what_exceeds_the_limit(
    small_flood: tuple[Path, Path], tmp_path: Path, limit: int
) -> None:
    policy, capture = small_flood
    summary_path = tmp_path / "s.json"
    code, out, _ = run(
        "classify", "--policy", str(policy), str(capture), "--json", str(summary_path),
        "-q", "--max-connections", str(limit),
    )  # fmt: skip
    assert code == 0
    summary = json.loads(summary_path.read_text())
    connections = summary["connections"]
    assert summary["verdicts"]["allow"] == 20_000
    evicted = max(0, 20_000 - limit)
    assert (connections["total"], connections["limit"], connections["evicted"]) == (
        20_000,
        limit,
        evicted,
    )
    if evicted:
        assert f"{evicted:,} evicted (at most {limit:,} tracked at once" in out
    else:
        assert "evicted" not in out


def test_the_default_limit_and_stateless(small_flood: tuple[Path, Path], tmp_path: Path) -> None:
    policy, capture = small_flood
    for extra, limit in (((), DEFAULT_MAX_CONNECTIONS), (("--stateless",), 0)):
        summary_path = tmp_path / "s.json"
        code, _, _ = run(
            "classify", "--policy", str(policy), str(capture), "--json", str(summary_path),
            "-q", *extra,
        )  # fmt: skip
        assert code == 0
        connections = json.loads(summary_path.read_text())["connections"]
        assert (connections["limit"], connections["evicted"]) == (limit, 0)


@pytest.mark.parametrize("bad", ["0", "-1", "1000000001", "many", "1e6", ""])
def test_a_bad_limit_is_bad_input(small_flood: tuple[Path, Path], bad: str) -> None:
    policy, capture = small_flood
    code, _, err = run("classify", "--policy", str(policy), str(capture), "--max-connections", bad)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("error: --max-connections: ")


def test_help_states_every_bound(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        run("classify", "--help")
    text = " ".join(capsys.readouterr().out.split())
    assert f"default {DEFAULT_MAX_CONNECTIONS:,}" in text
    assert f"{MAX_FRAGMENTS:,} first fragments" in text
    assert f"{DENIED_TUPLES_LIMIT:,} distinct denied tuples" in text
