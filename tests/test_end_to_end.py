"""`sgclassify classify` on the bundled samples and on real captures: verdicts, conservation.

The expected per-packet answers of the samples come from `pcaps/make_samples.py --expected`,
where each packet is labelled by hand from the policy and the spec (and the labels agree with
the reference matcher: see test_samples.py).
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from classifier.cli import main
from classifier.engine import Engine
from classifier.engine.columns import PACKET_COLUMNS
from classifier.policy import load_policy
from tests.conftest import EXAMPLES, PCAPS_DEV, ROOT, SAMPLE_PCAPS, require

WEB_DB = str(EXAMPLES / "web-db.yaml")
SAMPLES = sorted(str(path) for path in SAMPLE_PCAPS.glob("*.pcap"))
VERDICTS = ("allow", "deny", "unmanaged", "not-ip", "malformed")


def expected_rows() -> dict[tuple[str, int], tuple[str, str, str]]:
    done = subprocess.run(
        [sys.executable, str(SAMPLE_PCAPS / "make_samples.py"), "--expected"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    return {
        (row["file"], int(row["index"])): (row["verdict"], row["reason"], row["rule"])
        for row in csv.DictReader(io.StringIO(done.stdout))
    }


def classify(
    tmp_path: Path, *extra: str, pcaps: list[str] = SAMPLES, policy: str = WEB_DB
) -> tuple[int, str, str, Path, Path]:
    packets_csv = tmp_path / "packets.csv"
    summary_json = tmp_path / "summary.json"
    out, err = io.StringIO(), io.StringIO()
    code = main(
        [
            "classify",
            "--policy",
            policy,
            "--packets",
            str(packets_csv),
            "--json",
            str(summary_json),
            "-q",
            *extra,
            *pcaps,
        ],
        out,
        err,
    )
    return code, out.getvalue(), err.getvalue(), packets_csv, summary_json


def test_samples_match_the_hand_labels(twin_mode: str, tmp_path: Path) -> None:
    code, out, err, packets_csv, summary_json = classify(tmp_path)
    assert code == 0, err
    expected = expected_rows()
    with packets_csv.open() as stream:
        rows = list(csv.DictReader(stream))
    assert list(rows[0]) == [name for name, _ in PACKET_COLUMNS]
    got = {
        (Path(r["file"]).name, int(r["index"])): (r["verdict"], r["reason"], r["rule"])
        for r in rows
    }
    assert got == expected
    summary = json.loads(summary_json.read_text())
    assert summary["packets"] == len(expected) == sum(summary["verdicts"][v] for v in VERDICTS)
    policy_rules = [rule.id for rule in load_policy(WEB_DB).rules()]
    assert [rule["id"] for rule in summary["rules"]] == policy_rules
    assert summary["never_hit"] == ["base-deny-telnet"]
    assert "never hit" in out


def test_stateless_mode_judges_every_packet_by_rules(tmp_path: Path) -> None:
    code, _, err, _, summary_json = classify(tmp_path, "--stateless")
    assert code == 0, err
    summary = json.loads(summary_json.read_text())
    assert summary["reasons"]["established"] == 0 and summary["reasons"]["related"] == 0
    assert summary["packets"] == sum(summary["verdicts"][v] for v in VERDICTS)


def test_python_api_columns_equal_the_csv(tmp_path: Path) -> None:
    engine = Engine(load_policy(WEB_DB))
    result = engine.classify_pcap(SAMPLES, stateful=True)
    assert len(result.columns["verdict"]) == result.summary["packets"]
    named = result.named()
    _, _, _, packets_csv, _ = classify(tmp_path)
    with packets_csv.open() as stream:
        rows = list(csv.DictReader(stream))
    assert len(rows) == len(named["index"])
    assert list(named) == [name for name, _ in PACKET_COLUMNS]
    for name, kind in PACKET_COLUMNS:
        text = [str(v) if kind == "text" or v >= 0 else "" for v in named[name]]
        assert text == [row[name] for row in rows], name
    frame = result.to_pandas()
    assert list(frame.columns) == list(named) and len(frame) == len(rows)


@pytest.mark.parametrize(
    "name", sorted(p.name for p in PCAPS_DEV.glob("*")) if PCAPS_DEV.exists() else []
)
def test_conservation_on_real_captures(name: str, tmp_path: Path) -> None:
    path = require(PCAPS_DEV / name)
    code, _, err, packets_csv, summary_json = classify(tmp_path, pcaps=[str(path)])
    assert code == 0, err
    summary = json.loads(summary_json.read_text())
    assert summary["packets"] == sum(summary["verdicts"][v] for v in VERDICTS)
    with packets_csv.open() as stream:
        assert sum(1 for _ in stream) - 1 == summary["packets"]


def test_damaged_capture_keeps_the_results_before_the_damage(tmp_path: Path) -> None:
    cut = tmp_path / "cut.pcap"
    data = (SAMPLE_PCAPS / "web.pcap").read_bytes()
    cut.write_bytes(data[: len(data) - 30])  # cut inside the last record
    code, out, err, _, summary_json = classify(tmp_path, pcaps=[str(cut)])
    assert code == 0
    assert "warning" in err
    summary = json.loads(summary_json.read_text())
    assert 0 < summary["packets"] < 77
    assert summary["files"][0]["damaged"] is True


def test_empty_capture_and_policy_errors(tmp_path: Path) -> None:
    empty = tmp_path / "empty.pcap"
    empty.write_bytes(bytes.fromhex("d4c3b2a1020004000000000000000000ffff000001000000"))
    code, _, err, _, summary_json = classify(tmp_path, pcaps=[str(empty)])
    assert code == 0, err
    assert json.loads(summary_json.read_text())["packets"] == 0
    broken = tmp_path / "broken.yaml"
    broken.write_text("security_groups: [ {id: g, rules: [ {direction: up} ] } ]\n")
    code, _, err, _, _ = classify(tmp_path, policy=str(broken))
    assert code == 2 and "direction" in err and "Traceback" not in err


def test_unreadable_second_capture_stops_before_the_run(tmp_path: Path) -> None:
    """Every capture's header is read before any record is classified: no summary of zeros,
    no output file."""
    garbage = tmp_path / "garbage.pcap"
    garbage.write_bytes(b"not a capture" * 20)
    code, out, err, packets_csv, summary_json = classify(
        tmp_path, pcaps=[str(SAMPLE_PCAPS / "web.pcap"), str(garbage)]
    )
    assert code == 2 and out == ""
    assert err.startswith(f"error: {garbage}: not a pcap or pcapng file") and "Traceback" not in err
    assert not summary_json.exists() and not packets_csv.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["garbage.pcap"]


def test_user_text_in_ids_stays_text(tmp_path: Path) -> None:
    """Ids with commas, quotes, line breaks and rich markup: valid CSV, verbatim summary."""
    import yaml

    document = yaml.safe_load((EXAMPLES / "web-db.yaml").read_text())
    weird_rule, weird_instance = 'web,"http"\r\n[/x]', "web\n[bold]1"
    for group in document["security_groups"]:
        for rule in group["rules"]:
            if rule["id"] == "web-http":
                rule["id"] = weird_rule
    for instance in document["instances"]:
        if instance["id"] == "web-1":
            instance["id"] = weird_instance
    policy = tmp_path / "weird.json"
    policy.write_text(json.dumps(document))
    code, out, err, packets_csv, _ = classify(
        tmp_path, pcaps=[str(SAMPLE_PCAPS / "web.pcap")], policy=str(policy)
    )
    assert code == 0, err
    with packets_csv.open(newline="") as stream:
        rows = list(csv.reader(stream))
    assert len(rows) == 1 + 77 and {len(row) for row in rows} == {len(PACKET_COLUMNS)}
    assert any(row[17] == weird_rule and row[14] == weird_instance for row in rows)
    assert "[/x]" in out


def test_outputs_may_not_overwrite_inputs(tmp_path: Path) -> None:
    capture = tmp_path / "web.pcap"
    capture.write_bytes((SAMPLE_PCAPS / "web.pcap").read_bytes())
    before = capture.read_bytes()
    for extra in (["--packets", str(capture)], ["--json", WEB_DB]):
        out, err = io.StringIO(), io.StringIO()
        code = main(["classify", "--policy", WEB_DB, "-q", *extra, str(capture)], out, err)
        assert code == 2 and "also" in err.getvalue()
    assert capture.read_bytes() == before
