"""Compressed captures and standard input read exactly as the plain file.

Every bundled sample and every ../shared dev capture, compressed with gzip, bzip2, xz and
zstd (by the real tools' libraries, and a gzip of several members, an xz of several streams,
a zstd of several frames) and piped through a real pipe on standard input, gives byte for byte
the `packets` CSV and the `classify --json` / `--packets` outputs of the plain file (the
compressed copy has the plain file's name in another directory, so even the `file` column
and the JSON's paths are the same; standard input is `-` there, so those are compared with
`-` put back). Then the damage cases: a compressed stream that is corrupt or cut is damage at
that point, with the records before it; names never matter; one layer only; zstd without
its package is bad input naming the extra; a pipe's reads and a big pcapng block.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import io
import json
import lzma
import os
import struct
import subprocess
import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from classifier import pcap
from classifier.cli import main
from classifier.errors import PcapError
from classifier.pcap import Capture
from classifier.pcap.dump import dump_packets
from tests.conftest import EXAMPLES, PCAPS_DEV, SAMPLE_PCAPS

zstandard = pytest.importorskip("zstandard", reason="the zstd extra (zstandard) is not installed")

POLICY = EXAMPLES / "web-db.yaml"


def _zstd(data: bytes) -> bytes:
    return bytes(zstandard.ZstdCompressor().compress(data))


def _bzip2(data: bytes) -> bytes:
    return bz2.compress(data, 1)  # 100 kB blocks: a cut stream still holds whole blocks


COMPRESSORS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": gzip.compress,
    "bzip2": _bzip2,
    "xz": lambda data: lzma.compress(data, preset=1),
    "zstd": _zstd,
}


def _split(data: bytes, parts: int = 3) -> list[bytes]:
    step = max(1, len(data) // parts)
    return [data[k : k + step] for k in range(0, len(data), step)] or [b""]


def _multi(kind: str, data: bytes) -> bytes:
    """Several members/streams/frames, as `cat a.gz b.gz` makes (and xz stream padding)."""
    pieces = [COMPRESSORS[kind](piece) for piece in _split(data)]
    return (bytes(4) if kind == "xz" else b"").join(pieces)


def captures() -> list[Path]:
    found = sorted(SAMPLE_PCAPS.glob("*.pcap"))
    if PCAPS_DEV.is_dir():
        found += sorted(p for p in PCAPS_DEV.iterdir() if p.is_file() and p.suffix != ".md")
    return found


@contextlib.contextmanager
def stdin_pipe(data: bytes) -> Iterator[None]:
    """Standard input (fd 0) is a real pipe fed `data` by a thread, for the block."""
    read_end, write_end = os.pipe()

    def feed() -> None:
        with contextlib.suppress(BrokenPipeError), os.fdopen(write_end, "wb") as w:
            w.write(data)

    saved = os.dup(0)
    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    os.dup2(read_end, 0)
    os.close(read_end)
    try:
        yield
    finally:
        os.dup2(saved, 0)
        os.close(saved)
        feeder.join(10)


def run_cli(argv: list[str], cwd: Path) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    old = os.getcwd()
    os.chdir(cwd)
    try:
        rc = main(argv, out, err)
    finally:
        os.chdir(old)
    return rc, out.getvalue(), err.getvalue()


def outputs(cwd: Path, name: str) -> tuple[int, str, str, str, str]:
    """(exit code, stderr, packets CSV, classify --json, classify --packets) for `name`."""
    rc, csv_out, err = run_cli(["packets", name], cwd)
    crc, _, cerr = run_cli(
        ["classify", "--policy", str(POLICY), name, "--json", "s.json", "--packets", "p.csv", "-q"],
        cwd,
    )
    assert crc == rc, (crc, rc, cerr)
    summary = (cwd / "s.json").read_text() if (cwd / "s.json").exists() else ""
    per_packet = (cwd / "p.csv").read_text() if (cwd / "p.csv").exists() else ""
    return rc, err + cerr, csv_out, summary, per_packet


def _marked(paths: list[Path]) -> list[Any]:
    """Captures above 1 MB are `slow`: the debug and twins' passes of `make test` skip them."""
    return [
        pytest.param(p, marks=pytest.mark.slow) if p.stat().st_size > 1 << 20 else p for p in paths
    ]


@pytest.mark.parametrize("path", _marked(captures()), ids=lambda p: p.name)
def test_every_format_and_stdin_equal_the_plain_file(path: Path, tmp_path: Path) -> None:
    data = path.read_bytes()
    if os.environ.get("CLASSIFIER_NO_EXTENSIONS") == "1" and len(data) > 300_000:
        pytest.skip("a big capture: the compiled pass reads it (the twins' pass: small ones)")
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / path.name).write_bytes(data)
    expected = outputs(plain, path.name)
    variants = {kind: compress(data) for kind, compress in COMPRESSORS.items()}
    if len(data) < 1 << 20:  # several members/streams/frames (the big ones: one is enough)
        variants.update({f"{kind}-multi": _multi(kind, data) for kind in COMPRESSORS})
    for kind, packed in variants.items():
        where = tmp_path / kind
        where.mkdir()
        (where / path.name).write_bytes(packed)  # the plain file's name: names never matter
        assert outputs(where, path.name) == expected, kind
    # standard input: a real pipe, the plain bytes and the gzip bytes
    for kind, fed in (("stdin", data), ("stdin-gzip", variants["gzip"])):
        where = tmp_path / kind
        where.mkdir()
        with stdin_pipe(fed):
            rc, csv_out, err = run_cli(["packets", "-"], where)
        with stdin_pipe(fed):
            run_cli(
                ["classify", "--policy", str(POLICY), "-", "--json", "s.json", "--packets",
                 "p.csv", "-q"],
                where,
            )  # fmt: skip
        summary = (where / "s.json").read_text() if (where / "s.json").exists() else ""
        per_packet = (where / "p.csv").read_text() if (where / "p.csv").exists() else ""
        assert (rc, csv_out) == expected[:1] + expected[2:3], kind
        assert (
            err.replace("-: ", f"{path.name}: ")
            == expected[1].split("\n", 1)[0] + ("\n" if expected[1] else "")
            or err.replace("-: ", f"{path.name}: ") in expected[1]
        ), kind
        assert summary == expected[3].replace(json.dumps(path.name), json.dumps("-")).replace(
            f"{path.name}: ", "-: "
        ), kind
        assert per_packet == expected[4].replace(f"\n{path.name},", "\n-,"), kind


def _pcap(frames: list[bytes]) -> bytes:
    out = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    for k, frame in enumerate(frames):
        out += struct.pack("<IIII", 1700000000 + k, 0, len(frame), len(frame)) + frame
    return out


FRAME = bytes(12) + b"\x08\x00" + bytes.fromhex("450000140001000040060000c0000201c6336401")
SMALL = _pcap([FRAME] * 200)
BIG = _pcap([FRAME[:-1] + bytes([k % 251]) for k in range(20000)])  # 1 MB, 10 bzip2 blocks


def read(path: str | Path) -> tuple[int, list[str], int | None]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pcap.open_capture(path) as cap:
            rows = sum(len(b) for b in cap.batches(64))
            return rows, cap.warnings, cap.damage_offset


@pytest.mark.parametrize("kind", sorted(COMPRESSORS))
def test_a_cut_compressed_stream_is_damage_at_that_point(kind: str, tmp_path: Path) -> None:
    packed = COMPRESSORS[kind](BIG)
    path = tmp_path / "cut.pcap"
    path.write_bytes(packed[: len(packed) * 2 // 3])
    rows, messages, offset = read(path)
    assert 0 < rows < 20000
    assert len(messages) == 1 and "damaged at byte offset" in messages[0]
    assert "ends early" in messages[0] or "corrupt" in messages[0], messages
    record = 16 + len(FRAME)
    assert offset == 24 + rows * record  # the first record not read
    assert f"read stopped after {rows} records" in messages[0]


@pytest.mark.parametrize("kind", sorted(COMPRESSORS))
def test_trailing_garbage_and_corrupt_data_are_damage(kind: str, tmp_path: Path) -> None:
    packed = COMPRESSORS[kind](SMALL)
    path = tmp_path / "garbage.pcap"
    path.write_bytes(packed + b"this is not compressed data")
    rows, messages, _ = read(path)
    assert rows == 200  # every record came before the garbage
    assert len(messages) == 1 and "trailing garbage" in messages[0], messages
    broken = bytearray(COMPRESSORS[kind](SMALL * 1))
    for k in range(len(broken) // 2, len(broken) // 2 + 8):
        broken[k] ^= 0x55
    path.write_bytes(bytes(broken))
    try:
        rows, messages, _ = read(path)
    except PcapError as error:  # nothing before the damage: not a capture at all
        assert "corrupt" in str(error) or "not a pcap" in str(error)
    else:
        assert rows <= 200 and len(messages) <= 1  # never another exception, one warning


def test_zero_padding_after_gzip_members_is_the_end(tmp_path: Path) -> None:
    path = tmp_path / "padded.gz"
    path.write_bytes(gzip.compress(SMALL) + bytes(1000))
    assert read(path) == (200, [], None)


def test_a_plain_capture_named_gz_and_a_gzip_named_pcap(tmp_path: Path) -> None:
    (tmp_path / "plain.gz").write_bytes(SMALL)
    (tmp_path / "packed.pcap").write_bytes(gzip.compress(SMALL))
    assert read(tmp_path / "plain.gz")[0] == read(tmp_path / "packed.pcap")[0] == 200
    with pcap.open_capture(tmp_path / "plain.gz") as cap:
        assert cap.compression is None
    with pcap.open_capture(tmp_path / "packed.pcap") as cap:
        assert cap.compression == "gzip"


def test_one_layer_only(tmp_path: Path) -> None:
    path = tmp_path / "twice.pcap.gz.gz"
    path.write_bytes(gzip.compress(gzip.compress(SMALL)))
    with pytest.raises(PcapError, match="gzip inside gzip: one layer only"):
        pcap.open_capture(path)


def test_compressed_nothing_and_compressed_garbage_are_bad_input(tmp_path: Path) -> None:
    path = tmp_path / "x.pcap"
    path.write_bytes(gzip.compress(b""))
    with pytest.raises(PcapError, match="decompresses to nothing"):
        pcap.open_capture(path)
    path.write_bytes(gzip.compress(b"hello, world: not a capture at all"))
    with pytest.raises(PcapError, match="gzip-compressed: not a pcap or pcapng file"):
        pcap.open_capture(path)
    path.write_bytes(b"\x1f\x8b" + bytes(30))
    with pytest.raises(PcapError, match="no capture could be read"):
        pcap.open_capture(path)


def test_zstd_without_its_package_names_the_extra(tmp_path: Path) -> None:
    path = tmp_path / "x.pcap.zst"
    path.write_bytes(_zstd(SMALL))
    code = (
        "import sys; sys.modules['zstandard'] = None\n"
        "from classifier.cli import main\n"
        f"raise SystemExit(main(['packets', {str(path)!r}]))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        f"error: {path}: a zstd-compressed capture needs the zstandard package: "
        "pip install 'sg-classifier[zstd]'"
    )


def test_stdin_twice_is_bad_input(tmp_path: Path) -> None:
    rc, _, err = run_cli(["classify", "--policy", str(POLICY), "-", "-"], tmp_path)
    assert rc == 2 and err.startswith("error: -: standard input can be read once")


def test_a_real_pipe_into_the_command(tmp_path: Path) -> None:
    """`zcat x.gz | sgclassify classify --policy P -` and `cat x.gz | ... -`, as a user types."""
    sample = SAMPLE_PCAPS / "web.pcap"
    (tmp_path / "web.pcap.gz").write_bytes(gzip.compress(sample.read_bytes()))
    exe = Path(sys.executable).with_name("sgclassify")
    base = [str(exe), "classify", "--policy", str(POLICY), "--json", "-q"]
    runs = {}
    for name, command in {
        "file": [*base[:-2], "--json", "f.json", "-q", str(sample)],
        "zcat": ["sh", "-c", f"zcat web.pcap.gz | {' '.join(base[:-2])} --json z.json -q -"],
        "cat": ["sh", "-c", f"cat web.pcap.gz | {' '.join(base[:-2])} --json c.json -q -"],
    }.items():
        proc = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, check=False)
        assert proc.returncode == 0, proc.stderr
        runs[name] = json.loads((tmp_path / f"{name[0]}.json").read_text())
    for name in ("zcat", "cat"):
        assert runs[name]["verdicts"] == runs["file"]["verdicts"]
        assert runs[name]["packets"] == runs["file"]["packets"] > 0


def test_a_fifo_is_read_and_a_fifo_without_writer_does_not_block(tmp_path: Path) -> None:
    fifo = tmp_path / "cap.fifo"
    os.mkfifo(fifo)
    with pytest.raises(PcapError, match="no writer"):
        pcap.open_capture(fifo)
    result: list[int] = []

    def write() -> None:
        with open(fifo, "wb") as w:
            w.write(gzip.compress(SMALL))

    writer = threading.Thread(target=write)
    writer.start()
    # the writer opens the FIFO before we read: wait until it is connected
    for _ in range(200):
        if writer.is_alive():
            break
    import time

    time.sleep(0.2)
    result.append(read(fifo)[0])
    writer.join(10)
    assert result == [200]


def test_a_device_is_refused() -> None:
    with pytest.raises(PcapError, match="not a regular file or a pipe"):
        pcap.open_capture("/dev/null")


def _pcapng_with_big_blocks() -> bytes:
    """A pcapng file with an interface block of many options and an enhanced packet block
    padded with a long option, a custom block of 300 KiB, and small packets between."""

    def block(btype: int, body: bytes) -> bytes:
        body += bytes(-len(body) % 4)
        return struct.pack("<II", btype, len(body) + 12) + body + struct.pack("<I", len(body) + 12)

    out = block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    options = b"".join(struct.pack("<HH", 2, 4) + b"name" for _ in range(20000))
    options += struct.pack("<HH", 9, 1) + b"\x09\0\0\0" + struct.pack("<HH", 14, 8)
    options += struct.pack("<q", 12) + struct.pack("<HH", 0, 0)
    out += block(1, struct.pack("<HHI", 1, 0, 0) + options)
    epb = struct.pack("<IIIII", 0, 0, 7, len(FRAME), len(FRAME)) + FRAME
    out += block(6, epb)
    out += block(6, epb + bytes(-len(epb) % 4) + struct.pack("<HH", 1, 60000) + bytes(60000))
    out += block(0x40000BAD, bytes(300_000))
    out += block(3, struct.pack("<I", len(FRAME)) + FRAME)
    out += block(6, epb)
    return out


@pytest.mark.parametrize("cut", [None, 100, 100_000, 150_000, 450_000])
def test_blocks_larger_than_the_stream_buffer(
    cut: int | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, twin_mode: str
) -> None:
    """A pcapng block above `stream_max_block` is read through, not buffered, with the rows
    and damage of the plain file (cut anywhere, or a wrong trailing length)."""
    data = _pcapng_with_big_blocks()
    if cut is not None:
        data = data[: len(data) - cut]
    plain = tmp_path / "plain.pcapng"
    plain.write_bytes(data)
    packed = tmp_path / "packed.pcapng"
    packed.write_bytes(gzip.compress(data))
    monkeypatch.setattr(Capture, "stream_buffer", 4096)
    monkeypatch.setattr(Capture, "stream_max_block", 8192)
    assert _rows_and_warnings(packed) == _rows_and_warnings(plain)


def test_a_wrong_trailing_length_of_a_big_block(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = bytearray(_pcapng_with_big_blocks())
    idb = 28  # the interface block starts after the section header
    length = struct.unpack_from("<I", data, idb + 4)[0]
    struct.pack_into("<I", data, idb + length - 4, length + 4)
    plain = tmp_path / "plain.pcapng"
    plain.write_bytes(bytes(data))
    packed = tmp_path / "packed.pcapng"
    packed.write_bytes(gzip.compress(bytes(data)))
    monkeypatch.setattr(Capture, "stream_max_block", 8192)
    got = _rows_and_warnings(packed)
    assert got == _rows_and_warnings(plain) and "disagrees" in got[1]


def _rows_and_warnings(path: Path) -> tuple[str, str]:
    out = io.StringIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        summary = dump_packets([path], out)
    return out.getvalue(), "\n".join(w.split(": ", 1)[1] for w in summary.warnings)
