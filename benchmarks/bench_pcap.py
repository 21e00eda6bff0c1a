"""pytest-benchmark: the capture reader on small synthetic captures, grouped by format.

    .venv/bin/python -m pytest benchmarks/bench_pcap.py              # measure
    .venv/bin/python -m pytest benchmarks/bench_pcap.py --benchmark-disable   # smoke run

Sizes are small so the smoke run is quick; benchmarks/pcap_throughput.py is the big,
side-by-side measurement (numbers in benchmarks/RESULTS.md).
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import synth  # noqa: E402
from classifier import pcap  # noqa: E402
from classifier.pcap.dump import dump_packets  # noqa: E402

PACKETS = 20_000


@pytest.fixture(scope="module", params=["pcap", "pcapng"])
def capture(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bench") / f"synth.{request.param}"
    synth.write_capture(path, PACKETS, fmt=request.param)
    return path


def _count(path: Path) -> int:
    return sum(len(batch) for batch in pcap.read_batches(path))


@pytest.mark.benchmark(group="pcap-read")
def test_read_batches(benchmark, capture: Path) -> None:  # type: ignore[no-untyped-def]
    assert benchmark(_count, capture) == PACKETS


@pytest.mark.benchmark(group="pcap-dump")
def test_dump_csv(benchmark, capture: Path) -> None:  # type: ignore[no-untyped-def]
    def dump() -> int:
        return dump_packets([capture], io.StringIO()).records

    assert benchmark(dump) == PACKETS


@pytest.mark.benchmark(group="pcap-synth")
def test_synth_write(benchmark, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    size = benchmark(synth.write_capture, tmp_path / "w.pcap", PACKETS)
    assert size > PACKETS * 50
