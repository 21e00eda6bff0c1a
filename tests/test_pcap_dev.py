"""The reader on the shared real captures: packet counts of the README table, damage
warnings on the two damaged files, and the two twins agreeing column by column."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest

from classifier import pcap
from classifier.packets import COLUMNS, PacketBatch
from tests.conftest import PCAPS_DEV, SHARED, require

README = SHARED / "pcaps" / "README.md"
# file -> (packets, damaged?) from the README table: "| `name` | link | format | N ... |"
TABLE = {
    name: (int(count), "⚠" in rest)
    for name, count, rest in re.findall(
        r"^\| `([^`]+)` \| [^|]+ \| [^|]+ \| (\d+)([^|]*)\|", README.read_text(), re.M
    )
} if README.exists() else {}  # fmt: skip


def _read(name: str) -> tuple[list[PacketBatch], list[str]]:
    path = require(PCAPS_DEV / name)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        batches = list(pcap.read_batches(path, batch_size=4096))
    return batches, [str(w.message) for w in caught if w.category is pcap.CaptureWarning]


@pytest.mark.parametrize("name", sorted(TABLE) or ["(no shared captures)"])
def test_dev_capture_count(name: str, twin_mode: str) -> None:
    require(README)
    expected, damaged = TABLE[name]
    batches, messages = _read(name)
    total = sum(len(b) for b in batches)
    assert total == expected
    if damaged:
        assert len(messages) == 1
        assert (
            "damaged at byte offset" in messages[0] and f"after {expected} records" in messages[0]
        )
    else:
        assert messages == []
    if batches:
        index = np.concatenate([b.index for b in batches])
        assert np.array_equal(index, np.arange(expected))


def test_damaged_offsets() -> None:
    require(README)
    with pcap.open_capture(require(PCAPS_DEV / "suricata_http-mime-truncated.pcap")) as cap:
        assert sum(len(b) for b in cap.batches()) == 2696
        assert cap.damaged and cap.damage_offset == 2715459
    with pcap.open_capture(require(PCAPS_DEV / "suricata_tls_DER-incomplete-header.pcap")) as cap:
        assert sum(len(b) for b in cap.batches()) == 6
        assert cap.damaged and "4325376" in cap.warnings[0]


@pytest.mark.parametrize("name", sorted(TABLE) or ["(no shared captures)"])
def test_twins_agree_on_dev_captures(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    require(README)
    results = []
    for switch in ("0", "1"):  # the compiled core, then its twin
        monkeypatch.setenv("CLASSIFIER_NO_EXTENSIONS", switch)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", pcap.CaptureWarning)
            with pcap.open_capture(PCAPS_DEV / name) as cap:
                expected = "classifier.pcap._pcap" + ("_py" if switch == "1" else "")
                assert type(cap._decoder).__module__ == expected
                batches = list(cap.batches(1000))
        results.append((batches, cap.records, cap.warnings, cap.formats, cap.link_types))
    (a, *rest_a), (b, *rest_b) = results
    assert rest_a == rest_b
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        for column in COLUMNS:
            assert np.array_equal(getattr(x, column), getattr(y, column)), column


def test_formats_and_link_types_seen() -> None:
    require(README)
    with pcap.open_capture(PCAPS_DEV / "pcapngtg_test202.pcapng") as cap:
        list(cap.batches())
        assert cap.formats == ["pcapng LE", "pcapng BE"]
        assert set(cap.link_types) == {"EN10MB", "NULL"}
    with pcap.open_capture(PCAPS_DEV / "ppp_nanosecs_big_endian.pcap") as cap:
        batches = list(cap.batches())
        assert cap.formats == ["pcap BE nsec"]
        assert cap.first_ts_ns == int(batches[0].ts_ns[0])
        assert cap.last_ts_ns == int(batches[-1].ts_ns[-1])
