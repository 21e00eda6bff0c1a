"""`--filter EXPR` keeps exactly the records tcpdump keeps.

The oracle is tcpdump's own reading of the same filter: `tcpdump -r F -w - EXPR` writes the
records it accepts as a new capture, which `sgclassify packets -` reads from a pipe; its
rows must be those of `sgclassify packets --filter EXPR F`, in order (the `index` column
aside: ours keeps each record's index in F, tcpdump's file renumbers them). Every bundled
sample and ../shared dev capture, with filters on addresses, ports, protocols, VLAN, IPv6,
fragments, lengths and byte offsets. Then the twins' interpreters against each other on
random programs, and the summary's count of what was filtered out.
"""

from __future__ import annotations

import io
import json
import os
import random
import shutil
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pytest

from classifier.cli import main
from classifier.errors import UsageError
from classifier.pcap import CaptureFilter, _pcap_py, bpf
from classifier.pcap.dump import dump_packets
from classifier.pcap.kernels import reader_kernels
from tests.conftest import EXAMPLES, PCAPS_DEV, SAMPLE_PCAPS
from tests.foreign import foreign_env
from tests.test_pcap_streams import _marked, run_cli, stdin_pipe

FILTERS = (
    "tcp",
    "udp or icmp",
    "ip6",
    "tcp port 80 or tcp port 443",
    "net 10.0.0.0/8",
    "host 192.168.1.1 or host 2001:db8::1",
    "vlan",
    "not ip",
    "ip[6:2] & 0x1fff != 0 or ip[6] & 0x20 != 0",
    "greater 200",
    "less 80",
    "tcp[tcpflags] & (tcp-syn|tcp-fin) != 0",
    "icmp6 or (ip6 and udp)",
    "portrange 1-1023",
    "ether broadcast or ether multicast",
)

TCPDUMP = shutil.which("tcpdump")


def captures() -> list[Path]:
    found = sorted(SAMPLE_PCAPS.glob("*.pcap"))
    if PCAPS_DEV.is_dir():
        found += sorted(p for p in PCAPS_DEV.iterdir() if p.suffix in (".pcap", ".pcapng"))
    return found


def _rows(text: str) -> list[str]:
    """CSV rows without the header and without the index column."""
    return [line.split(",", 1)[1] for line in text.splitlines()[1:]]


@pytest.mark.skipif(TCPDUMP is None, reason="tcpdump is not installed (make tools)")
@pytest.mark.parametrize("path", _marked(captures()), ids=lambda p: p.name)
def test_filter_equals_tcpdump(path: Path, tmp_path: Path) -> None:
    assert TCPDUMP is not None
    size = path.stat().st_size
    if os.environ.get("CLASSIFIER_NO_EXTENSIONS") == "1" and size > 300_000:
        pytest.skip("a big capture: the compiled pass reads it")
    for expression in FILTERS if size < 100_000 else FILTERS[:6]:
        proc = subprocess.run(
            [TCPDUMP, "--time-stamp-precision=nano", "-r", str(path), "-w", "-", expression],
            capture_output=True,
            check=False,
            env=foreign_env(),
        )
        if not proc.stdout:  # tcpdump cannot read the file or compile this filter for it
            rc, _, err = run_cli(["packets", "--filter", expression, str(path)], tmp_path)
            assert rc == 2 or "damaged" in err or proc.returncode == 0, (expression, err)
            continue
        rc, ours, err = run_cli(["packets", "--filter", expression, str(path)], tmp_path)
        if rc != 0:
            assert "cannot" in err or "link type" in err, (expression, err)
            continue
        with stdin_pipe(proc.stdout):
            rc2, theirs, err2 = run_cli(["packets", "-"], tmp_path)
        assert rc2 == 0, err2
        if "damaged" in err or proc.returncode != 0:
            # tcpdump stops at the damage too: what it wrote is what we kept before it
            assert _rows(theirs) == _rows(ours)[: len(_rows(theirs))], expression
        else:
            assert _rows(theirs) == _rows(ours), expression
        indexes = [int(line.split(",", 1)[0]) for line in ours.splitlines()[1:]]
        assert indexes == sorted(set(indexes)), "indexes are the file's, increasing"


def test_the_summary_counts_what_the_filter_dropped(tmp_path: Path) -> None:
    sample = SAMPLE_PCAPS / "web.pcap"
    out = io.StringIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        everything = dump_packets([sample], io.StringIO()).records
        kept = dump_packets([sample], out, capture_filter=CaptureFilter("tcp port 80"))
    assert 0 < kept.records < everything
    assert kept.records + kept.filtered == everything
    rc, text, err = run_cli(
        ["classify", "--policy", str(EXAMPLES / "web-db.yaml"), str(sample), "--filter",
         "tcp port 80", "--json", "s.json", "-q"],
        tmp_path,
    )  # fmt: skip
    assert rc == 0, err
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["packets"] == kept.records
    assert summary["filter"] == {"expression": "tcp port 80", "filtered": kept.filtered}
    assert summary["files"][0]["filtered"] == kept.filtered
    assert sum(summary["verdicts"].values()) == kept.records
    assert "records filtered out (not part of this run)" in text


def test_a_bad_filter_is_bad_input_before_any_capture_is_read(tmp_path: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    rc = main(["packets", "--filter", "tcp prot 80", "/nonexistent.pcap"], out, err)
    assert rc == 2
    assert err.getvalue().startswith("error: --filter 'tcp prot 80': ")
    assert out.getvalue() == ""
    with pytest.raises(UsageError, match="link type 101"):
        CaptureFilter("ether host 01:02:03:04:05:06").program(101)


def _random_program(rng: random.Random) -> np.ndarray:
    """A valid program of random instructions (forward jumps, memory < 16, a return last)."""
    n = rng.randint(1, 40)
    classes = [bpf.LD, bpf.LDX, bpf.ST, bpf.STX, bpf.ALU, bpf.JMP, bpf.MISC]
    insns = np.zeros(n, bpf.INSN)
    for i in range(n - 1):
        cls = rng.choice(classes)
        code = cls | rng.choice((0x00, 0x08, 0x10)) | rng.choice((0, 0x20, 0x40, 0x60, 0x80, 0xA0))
        if cls in (bpf.ALU, bpf.JMP):
            code = cls | (rng.randrange(16) << 4) | rng.choice((bpf.K, bpf.X))
        if cls == bpf.MISC:
            code = cls | rng.choice((bpf.TAX, bpf.TXA, 0x40))
        k = rng.choice((0, 1, 2, 12, 14, 23, 255, 0xFFFF, 0xFFFFFFFF, rng.randrange(64)))
        room = n - i - 2
        if cls == bpf.JMP and code & 0xF0 == bpf.JA:
            k = rng.randint(0, room)
        if cls in (bpf.ST, bpf.STX) or code & 0xE0 == bpf.MEM:
            k %= 16
        insns[i] = (code, rng.randint(0, room), rng.randint(0, room), k)
    insns[n - 1] = (bpf.RET | rng.choice((bpf.K, bpf.A)), 0, 0, rng.choice((0, 1, 65535)))
    return insns


def test_the_interpreters_agree_on_random_programs() -> None:
    if not reader_kernels.GUARDED:
        pytest.skip("the compiled reader is not built")
    from classifier.pcap import _pcap

    rng = random.Random(5)
    for _ in range(3000):
        insns = _random_program(rng)
        if bpf.validate(insns):
            continue
        program = bpf.packed(insns)
        frame = bytes(rng.randrange(256) for _ in range(rng.randint(0, 80)))
        wire = len(frame) + rng.randint(0, 100)
        assert _pcap.bpf_run(program, frame, wire) == _pcap_py.bpf_run(program, frame, wire)


def test_validate_refuses_what_could_run_away() -> None:
    jump_out = np.array([(bpf.JMP | bpf.JA, 0, 0, 5), (bpf.RET, 0, 0, 1)], bpf.INSN)
    assert "jumps outside" in bpf.validate(jump_out)
    no_return = np.array([(bpf.LD | bpf.IMM, 0, 0, 1)], bpf.INSN)
    assert "does not return" in bpf.validate(no_return)
    memory = np.array([(bpf.ST, 0, 0, 16), (bpf.RET, 0, 0, 1)], bpf.INSN)
    assert "memory" in bpf.validate(memory)
    assert "instructions" in bpf.validate(np.zeros(0, bpf.INSN))
