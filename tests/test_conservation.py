"""Conservation for any file (robustness.md section 2): `packets` and `classify` read the same
records. On hypothesis-mutated captures (the written fuzz seeds and the bundled samples, with
bytes overwritten, inserted, cut), either both refuse the file (exit 2), or both read it and
the CSV has one row per record, the JSON's verdicts add up to its packets, which equal the
rows; `read_batches` and `classify_pcap` agree with both. The fuzz target `differential`
checks the same on coverage-guided inputs (and the twins against each other).
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from classifier import pcap
from classifier.engine import Engine
from classifier.errors import PcapError
from classifier.policy import load_policy
from tests.conftest import EXAMPLES, SAMPLE_PCAPS
from tests.fuzz.seeds import capture_seeds
from tests.test_pcap_streams import run_cli

SEEDS = capture_seeds() + [p.read_bytes()[:6000] for p in sorted(SAMPLE_PCAPS.glob("*.pcap"))]
POLICY = EXAMPLES / "web-db.yaml"
ENGINE = Engine(load_policy(POLICY))


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(0, 6))):
        at = draw(st.integers(0, max(0, len(data) - 1)))
        kind = draw(st.sampled_from(("set", "insert", "cut", "word")))
        if kind == "set" and data:
            data[at] = draw(st.integers(0, 255))
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "cut":
            del data[at:]
        elif len(data) >= at + 4:
            data[at : at + 4] = draw(st.sampled_from((0, 12, 16, 0xFFFF, 0x7FFFFFFF))).to_bytes(
                4, draw(st.sampled_from(("little", "big")))
            )
    return bytes(data)


EXAMPLES_RUN = 60 if os.environ.get("CLASSIFIER_NO_EXTENSIONS") == "1" else 150


@settings(
    max_examples=EXAMPLES_RUN,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data=mutated())
def test_packets_and_classify_read_the_same_records(data: bytes, tmp_path: Path) -> None:
    path = tmp_path / "fuzzed.pcap"
    path.write_bytes(data)
    (tmp_path / "s.json").unlink(missing_ok=True)
    rc_packets, csv_text, _ = run_cli(["packets", str(path)], tmp_path)
    rc_classify, _, err = run_cli(
        ["classify", "--policy", str(POLICY), str(path), "--json", "s.json", "-q"], tmp_path
    )
    assert rc_packets == rc_classify, err
    assert rc_packets in (0, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            api_rows = sum(len(b) for b in pcap.read_batches(path))
            result = ENGINE.classify_pcap(str(path))
        except PcapError:
            assert rc_packets == 2
            return
    assert rc_packets == 0
    rows = csv_text.count("\n") - 1
    summary = json.loads((tmp_path / "s.json").read_text())
    assert sum(summary["verdicts"].values()) == summary["packets"] == rows == api_rows
    assert len(result.columns["index"]) == result.summary["packets"] == rows
