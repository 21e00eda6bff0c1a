"""The sample captures in pcaps/: reproducible, readable, and documented truthfully.

The committed .pcap files are data that the README's main command and the end-to-end tests run
on, so they must be exactly what `pcaps/make_samples.py` writes (a hand edit or a generator
change that was not followed by a regeneration shows up here), every file must parse as an
Ethernet capture with its time running forward, and the expected-verdict tables in
pcaps/README.md must agree with the per-packet labels in the generator.
"""

from __future__ import annotations

import csv
import io
import struct
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from scapy.layers.l2 import Ether
from scapy.utils import rdpcap

from tests.conftest import SAMPLE_PCAPS

GENERATOR = SAMPLE_PCAPS / "make_samples.py"
README = SAMPLE_PCAPS / "README.md"
VERDICT_COLUMNS = ("allow", "deny", "unmanaged", "not-ip", "malformed", "total")
REASON_COLUMNS = (
    "allow: rule",
    "allow: established",
    "allow: related",
    "deny: rule",
    "deny: implicit-deny",
)
LINKTYPE_ETHERNET = 1


def readme_tables() -> dict[tuple[str, ...], dict[str, dict[str, int]]]:
    """Every markdown table of the README whose rows name a .pcap: header -> file -> counts."""
    tables: dict[tuple[str, ...], dict[str, dict[str, int]]] = {}
    header: tuple[str, ...] = ()
    for line in README.read_text().splitlines():
        if not line.startswith("|"):
            header = ()
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[0] == "file":
            header = tuple(cells[1:])
            tables[header] = {}
        elif header and cells[0].endswith(".pcap`"):
            counts = dict(zip(header, map(int, cells[1:]), strict=True))
            tables[header][cells[0].strip("`")] = counts
    return tables


def verdict_table() -> dict[str, dict[str, int]]:
    return readme_tables()[VERDICT_COLUMNS]


def run_generator(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, str(GENERATOR), *args], capture_output=True, text=True, check=True
    )
    return done.stdout


SAMPLES = sorted(verdict_table())


def test_readme_documents_every_committed_capture() -> None:
    assert SAMPLES == sorted(p.name for p in SAMPLE_PCAPS.glob("*.pcap"))
    assert len(SAMPLES) == 7


def test_regenerating_gives_the_committed_bytes(tmp_path: Path) -> None:
    run_generator(str(tmp_path))
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == SAMPLES
    for name in SAMPLES:
        assert (tmp_path / name).read_bytes() == (SAMPLE_PCAPS / name).read_bytes(), name


@pytest.mark.parametrize("name", SAMPLES)
def test_committed_capture_parses(name: str) -> None:
    path = SAMPLE_PCAPS / name
    linktype = struct.unpack("<I", path.read_bytes()[20:24])[0]
    assert linktype == LINKTYPE_ETHERNET
    packets = rdpcap(str(path))
    assert len(packets) == verdict_table()[name]["total"]
    assert all(isinstance(p, Ether) for p in packets)
    times = [float(p.time) for p in packets]
    assert times == sorted(times), "timestamps must never go back"
    assert len(set(times)) == len(times), "every packet has its own timestamp"


def test_total_size_stays_small() -> None:
    assert sum((SAMPLE_PCAPS / n).stat().st_size for n in SAMPLES) < 300_000


def test_readme_tables_match_the_labelled_packets() -> None:
    rows = list(csv.DictReader(io.StringIO(run_generator("--expected"))))
    verdicts: dict[str, Counter[str]] = {name: Counter() for name in SAMPLES}
    reasons: dict[str, Counter[str]] = {name: Counter() for name in SAMPLES}
    for row in rows:
        verdicts[row["file"]][row["verdict"]] += 1
        verdicts[row["file"]]["total"] += 1
        if row["reason"]:
            reasons[row["file"]][f"{row['verdict']}: {row['reason']}"] += 1
    # Labels are numbered per file from 0, one per record, in capture order.
    for name in SAMPLES:
        indexes = [int(r["index"]) for r in rows if r["file"] == name]
        assert indexes == list(range(len(indexes)))
    tables = readme_tables()
    for name in SAMPLES:
        assert {c: verdicts[name][c] for c in VERDICT_COLUMNS} == tables[VERDICT_COLUMNS][name]
        assert {c: reasons[name][c] for c in REASON_COLUMNS} == tables[REASON_COLUMNS][name]
