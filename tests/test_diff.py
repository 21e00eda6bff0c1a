"""`sgclassify diff`: the policy diff against the reference, and the command's contract.

The differential tests classify hypothesis scenarios (timeouts, FIN/RST, fragments, related
errors, batch boundaries) under a policy and a changed copy of it with `PolicyDiff`, and
compare the JSON document and the changed rows with what `reference.StatefulReference` says
packet by packet under each policy.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from classifier.cli import main
from classifier.codes import FRAGMENT_LATER
from classifier.engine import Engine
from classifier.engine.columns import Labels, decoded
from classifier.packets import Packet, PacketBatch
from classifier.policy import Policy
from classifier.reference import StatefulReference, Verdict
from classifier.report.diff import DIFF_PACKET_COLUMNS, PolicyDiff, changed_rows
from tests.conftest import EXAMPLES, ROOT, SAMPLE_PCAPS
from tests.strategies import changed_policies, policy_and_sequences

WEB_DB = str(EXAMPLES / "web-db.yaml")
SAMPLES = sorted(str(path) for path in SAMPLE_PCAPS.glob("*.pcap"))


def _row(v: Verdict) -> dict[str, str | None]:
    return {
        "verdict": v.verdict,
        "reason": v.reason or None,
        "group": v.group_id,
        "rule": v.rule_id,
    }


def _own(p: Packet) -> dict[str, Any]:
    has_ip = p.src is not None
    later = p.fragment == FRAGMENT_LATER
    return {
        "file": "capture",
        "index": p.index,
        "src": str(p.src) if has_ip else None,
        "dst": str(p.dst) if has_ip else None,
        "protocol": (p.frag_next_header if later else p.protocol) if has_ip else None,
        "sport": p.sport if has_ip and not later else None,
        "dport": p.dport if has_ip and not later else None,
    }


def expected_diff(
    old: Policy, new: Policy, packets: list[Packet], stateful: bool
) -> tuple[dict[str, Any], list[tuple[Any, ...]]]:
    """The spec's JSON document and the changed rows, from the reference, packet by packet."""
    a = StatefulReference(old, stateless=not stateful).run(packets)
    b = StatefulReference(new, stateless=not stateful).run(packets)
    changed = {"packets": 0, "bytes": 0, "connections": 0}
    transitions: dict[tuple[str, str], dict[str, int]] = {}
    groups: dict[str, dict[str, Any]] = {}
    rows = []
    for packet, x, y in zip(packets, a, b, strict=True):
        if x.verdict == y.verdict:
            continue
        counts = (1, packet.wire_len, int(x.created or y.created))
        for entry in (
            changed,
            transitions.setdefault((x.verdict, y.verdict), dict.fromkeys(changed, 0)),
        ):
            for key, value in zip(("packets", "bytes", "connections"), counts, strict=True):
                entry[key] += value
        key = json.dumps([_row(x), _row(y)])
        group = groups.setdefault(
            key,
            {
                "old": _row(x),
                "new": _row(y),
                "packets": 0,
                "bytes": 0,
                "connections": 0,
                "example": _own(packet),
            },
        )
        for name, value in zip(("packets", "bytes", "connections"), counts, strict=True):
            group[name] += value
        rows.append(
            (
                "capture",
                packet.index,
                *(
                    field or ""
                    for v in (x, y)
                    for field in (
                        v.verdict,
                        v.reason,
                        v.instance_id,
                        v.direction,
                        v.group_id,
                        v.rule_id,
                    )
                ),
            )
        )
    document = {
        "old": "old.yaml",
        "new": "new.yaml",
        "mode": "stateful" if stateful else "stateless",
        "packets": len(packets),
        "bytes": sum(p.wire_len for p in packets),
        "changed": changed,
        "transitions": [{"old": o, "new": n, **c} for (o, n), c in transitions.items()],
        "groups": list(groups.values()),
    }
    return document, rows


def run_diff(
    old: Policy, new: Policy, packets: list[Packet], cuts: list[int], stateful: bool
) -> tuple[dict[str, Any], list[tuple[Any, ...]]]:
    """PolicyDiff over the packets cut into batches at `cuts`."""
    old_engine, new_engine = Engine(old), Engine(new)
    labels = Labels.of_engine(old_engine), Labels.of_engine(new_engine)
    diff = PolicyDiff(old_engine, new_engine, stateful=stateful)
    rows: list[tuple[Any, ...]] = []
    bounds = [0, *sorted(c for c in cuts if 0 < c < len(packets)), len(packets)]
    for start, stop in zip(bounds, bounds[1:], strict=False):
        batch = PacketBatch.from_packets(packets[start:stop])
        step = diff.classify_batch(batch, "capture", 0)
        table = changed_rows(step.old, step.new, step.changed, *labels)
        columns = [decoded(table[name]).tolist() for name, _ in DIFF_PACKET_COLUMNS]
        rows += list(zip(*columns, strict=True))
    return diff.builder.document("old.yaml", "new.yaml", stateful), rows


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    scenario=policy_and_sequences(max_size=40),
    data=st.data(),
    stateful=st.booleans(),
)
def test_diff_equals_the_reference(
    twin_mode: str, scenario: tuple[Policy, list[Packet]], data: st.DataObject, stateful: bool
) -> None:
    old, packets = scenario
    new = data.draw(changed_policies(old))
    packets = [dataclasses.replace(p, wire_len=60 + i) for i, p in enumerate(packets)]
    cuts = data.draw(st.lists(st.integers(0, len(packets)), max_size=3))
    got_document, got_rows = run_diff(old, new, packets, cuts, stateful)
    want_document, want_rows = expected_diff(old, new, packets, stateful)
    assert got_document == want_document
    assert got_rows == want_rows


def test_the_same_policy_changes_nothing(twin_mode: str) -> None:
    code, out, err = cli("diff", "--old", WEB_DB, "--new", WEB_DB, "-q", *SAMPLES)
    assert code == 0, err
    assert "no packet changes verdict" in out


# --- the command ---------------------------------------------------------------------------


def cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out, err)
    return code, out.getvalue(), err.getvalue()


def candidate(tmp_path: Path) -> Path:
    """web-db.yaml with SSH closed and web-http turned to deny."""
    document = yaml.safe_load(Path(WEB_DB).read_text())
    for group in document["security_groups"]:
        rules = []
        for rule in group["rules"]:
            if rule["id"] == "web-ssh":
                continue
            if rule["id"] == "web-http":
                rule["action"] = "deny"
            rules.append(rule)
        group["rules"] = rules
    path = tmp_path / "candidate.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def test_diff_command_json_packets_and_exit_1(tmp_path: Path) -> None:
    new = candidate(tmp_path)
    outputs = {ext: tmp_path / f"changed.{ext}" for ext in ("csv", "jsonl", "parquet")}
    code, out, err = cli(
        "diff", "--old", WEB_DB, "--new", str(new), "-q", *SAMPLES,
        "--json", str(tmp_path / "diff.json"), "--packets", str(outputs["csv"]),
    )  # fmt: skip
    assert code == 1, err
    document = json.loads((tmp_path / "diff.json").read_text())
    assert list(document) == [
        "old", "new", "mode", "packets", "bytes", "changed", "transitions", "groups",
    ]  # fmt: skip
    assert document["old"] == WEB_DB and document["new"] == str(new)
    assert document["packets"] == 495 and document["mode"] == "stateful"
    assert {(t["old"], t["new"]) for t in document["transitions"]} == {("allow", "deny")}
    for group in document["groups"]:
        assert list(group) == ["old", "new", "packets", "bytes", "connections", "example"]
        assert list(group["example"]) == [
            "file", "index", "src", "dst", "protocol", "sport", "dport",
        ]  # fmt: skip
    first = document["groups"][0]
    assert first["old"]["rule"] == "web-ssh" and first["new"]["reason"] == "implicit-deny"
    assert "change verdict" in out and "web-ssh" in out
    with outputs["csv"].open(newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert list(rows[0]) == [name for name, _ in DIFF_PACKET_COLUMNS]
    assert len(rows) == document["changed"]["packets"]
    assert all(row["old_verdict"] != row["new_verdict"] for row in rows)
    # the same rows in JSON Lines (and Parquet, with pyarrow)
    for ext in ("jsonl", "parquet"):
        if ext == "parquet":
            pytest.importorskip("pyarrow", reason="Parquet outputs need the parquet extra")
        code, _, err = cli(
            "diff", "--old", WEB_DB, "--new", str(new), "-q", *SAMPLES,
            "--packets", str(outputs[ext]),
        )  # fmt: skip
        assert code == 1, err
        assert read_table(outputs[ext]) == [
            {k: (v if v != "" else None) for k, v in row.items()} | {"index": int(row["index"])}
            for row in rows
        ]


def read_table(path: Path) -> list[dict[str, Any]]:
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text().splitlines()]
    import pyarrow.parquet as pq

    return list(pq.read_table(path).to_pylist())


def test_diff_stdout_json_and_bad_input(tmp_path: Path) -> None:
    new = candidate(tmp_path)
    code, out, err = cli("diff", "--old", WEB_DB, "--new", str(new), "-q", "--json", "-", *SAMPLES)
    assert code == 1, err
    assert json.loads(out)["changed"]["packets"] > 0  # stdout holds exactly the document
    code, out, err = cli(
        "diff", "--old", WEB_DB, "--new", str(new), "--json", "-", "--packets", "-", *SAMPLES
    )
    assert code == 2 and out == "" and err.startswith("error: only one output may be '-'")
    broken = tmp_path / "broken.yaml"
    broken.write_text("security_groups: [ {id: g, rules: [ {direction: up} ] } ]\n")
    code, out, err = cli("diff", "--old", WEB_DB, "--new", str(broken), *SAMPLES)
    assert code == 2 and out == "" and str(broken) in err and "Traceback" not in err
    code, out, err = cli("diff", "--old", WEB_DB, "--new", str(new), str(tmp_path / "none.pcap"))
    assert code == 2 and "no such capture file" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.yaml", "candidate.yaml"]


def test_diff_stateless_and_fragments() -> None:
    """fragments.pcap: later fragments are joined separately under each policy."""
    fragments = str(SAMPLE_PCAPS / "fragments.pcap")
    code, out, err = cli("diff", "--old", WEB_DB, "--new", WEB_DB, "--stateless", fragments)
    assert code == 0 and "stateless" in out, err


def test_internal_failure_is_not_exit_1(tmp_path: Path) -> None:
    """Exit 1 means 'packets change': any failure of diff is 2. A capture that vanishes
    between the header check and the run is an ordinary failure."""
    code = subprocess.run(
        [sys.executable, "-m", "classifier", "diff", "--old", WEB_DB, "--new", WEB_DB,
         str(tmp_path / "missing.pcap")],
        capture_output=True, text=True, cwd=ROOT, check=False,
    ).returncode  # fmt: skip
    assert code == 2
