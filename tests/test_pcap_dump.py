"""`dump_packets`: the CSV of decoded headers, exact on a hand-built capture and equal to a
row-by-row rendering (from `Packet` objects) on the shared captures."""

from __future__ import annotations

import csv
import io
import warnings
from pathlib import Path

import pytest
from scapy.layers.inet import ICMP, IP, TCP
from scapy.layers.inet6 import IPv6, IPv6ExtHdrFragment
from scapy.layers.l2 import ARP, Ether

from classifier import pcap
from classifier.codes import (
    FRAGMENT_NAMES,
    MALFORMED_REASONS,
    STATUS_MALFORMED,
    STATUS_NAMES,
    STATUS_OK,
)
from classifier.errors import PcapError
from classifier.packets import Packet
from classifier.pcap.dump import CSV_COLUMNS, dump_packets
from tests.conftest import PCAPS_DEV, require
from tests.test_pcap_unit import pcap_file


def _eth(**fields: int) -> Ether:
    return Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02", **fields)


def test_csv_exact(tmp_path: Path) -> None:
    frames = [
        (1, 5, bytes(_eth() / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=1, dport=80))),
        (
            2,
            0,
            bytes(
                _eth()
                / IPv6(src="2001:db8::1", dst="2001:db8:0:0:1::2")
                / IPv6ExtHdrFragment(offset=2, nh=17)
                / b"12345678"
            ),
        ),
        (3, 0, bytes(_eth() / IP(src="10.0.0.2", dst="10.0.0.1") / ICMP(type=3, code=1))),
        (4, 0, bytes(_eth() / ARP())),
        (5, 0, bytes(_eth(type=0x0800)) + b"\x44" + b"\0" * 19),
    ]
    path = tmp_path / "d.pcap"
    path.write_bytes(pcap_file(frames))
    out = io.StringIO()
    summary = dump_packets([path], out)
    assert summary.records == 5 and summary.files == 1 and not summary.warnings
    assert out.getvalue().splitlines() == [
        ",".join(CSV_COLUMNS),
        "0,1000005000,54,4,10.0.0.1,10.0.0.2,6,1,80,,,none,ok,",
        "1,2000000000,70,6,2001:db8::1,2001:db8::1:0:0:2,17,,,,,later,ok,",
        "2,3000000000,42,4,10.0.0.2,10.0.0.1,1,,,3,1,none,ok,",
        "3,4000000000,42,,,,,,,,,,not-ip,",
        "4,5000000000,34,,,,,,,,,,malformed,IPv4 header length below 20 bytes",
    ]


def _reference_row(p: Packet) -> list[str]:
    ip = p.status in (STATUS_OK, 3)

    def text(value: object) -> str:
        return "" if value is None else str(value)

    return [
        str(p.index), str(p.ts_ns), str(p.wire_len),
        str(p.ip_version) if ip else "", text(p.src) if ip else "", text(p.dst) if ip else "",
        str(p.protocol) if ip else "", text(p.sport), text(p.dport), text(p.icmp_type),
        text(p.icmp_code), FRAGMENT_NAMES[p.fragment] if ip else "", STATUS_NAMES[p.status],
        MALFORMED_REASONS[p.malformed_reason] if p.status == STATUS_MALFORMED else "",
    ]  # fmt: skip


@pytest.mark.parametrize(
    "name",
    [
        "ppp_ip6_fragments.pcap",
        "zeek_attr.pcap",
        "zeek_mixed-vlan-mpls.pcap",
        "ppp_ipv4-malformed.pcap",
        "zeek_linux_dlt_sll2.pcap",
        "zeek_icmp6-nd-options.pcap",
    ],
)
def test_csv_equals_row_by_row_rendering(name: str, twin_mode: str) -> None:
    path = require(PCAPS_DEV / name)
    out = io.StringIO()
    dump_packets([path], out, batch_size=7)
    rows = list(csv.reader(io.StringIO(out.getvalue())))
    assert rows[0] == list(CSV_COLUMNS)
    batch = pcap.read_all(path)
    assert len(rows) == len(batch) + 1
    for i, row in enumerate(rows[1:]):
        assert row == _reference_row(batch.packet(i)), i


def test_several_files_and_damage(tmp_path: Path) -> None:
    good = tmp_path / "a.pcap"
    good.write_bytes(pcap_file([bytes(_eth() / IP(src="1.1.1.1", dst="2.2.2.2"))]))
    cut = tmp_path / "b.pcap"
    cut.write_bytes(pcap_file([bytes(_eth() / IP(src="1.1.1.1", dst="2.2.2.2"))] * 2)[:-5])
    out = io.StringIO()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the summary carries damage; nothing is warned
        summary = dump_packets([good, cut], out)
    lines = out.getvalue().splitlines()
    assert [line.split(",")[0] for line in lines[1:]] == ["0", "0"]  # index per file
    assert summary.records == 2 and summary.damaged == [str(cut)]
    assert len(summary.warnings) == 1 and "byte offset" in summary.warnings[0]
    with pytest.raises(PcapError):
        dump_packets([tmp_path / "missing.pcap"], io.StringIO())
