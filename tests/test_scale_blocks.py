"""Captures cut into blocks (`Capture.cut`) and read back block by block (`Capture.resume`,
`Capture.batches(end=)`) give exactly the rows, records, warnings and damage of one read.

The inputs are the fuzzer's seeds (every native link type, pcap and pcapng, several sections,
interfaces with their own snap lengths and time resolutions) and bounded random mutations of
them (damaged lengths, cut files, foreign bytes), the bundled samples and the dev captures;
block sizes from one byte (one record a block) up; batch sizes down to one record (the order
of the damage and snap-length warnings depends on them). Both twins.
"""

from __future__ import annotations

import os
import random
import shutil
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from benchmarks.synth import write_capture
from classifier._twins import Twin
from classifier.codes import STOP_DAMAGED, STOP_GROW_IFACES
from classifier.errors import PcapError
from classifier.packets import COLUMNS, PacketBatch
from classifier.pcap import Capture, open_capture
from classifier.pcap.reader import BlockCut
from classifier.scale import blocks
from classifier.scale.tasks import Block
from tests.conftest import PCAPS_DEV, SAMPLE_PCAPS
from tests.fuzz.seeds import capture_seeds, two_sections

BLOCKSIZES = (1, 37, 200, 1000, 1 << 30)
EDGES = (0, 1, 0x7F, 0x80, 0xFF, 0xFFFF, 0x10000, 0x7FFFFFFF, 0xFFFFFFFF)


def seeds() -> list[bytes]:
    """The fuzz targets' written captures, and the small dev captures."""
    out = capture_seeds()
    if PCAPS_DEV.is_dir():
        out += [p.read_bytes() for p in sorted(PCAPS_DEV.iterdir()) if p.stat().st_size <= 12_000]
    return out


def mutate(rng: random.Random, data: bytes) -> bytes:
    """A few random edits: bit flips, edge values in 32-bit fields, cuts, insertions."""
    buf = bytearray(data)
    for _ in range(rng.randint(1, 6)):
        op, n = rng.randrange(5), len(buf)
        if op == 0 and n:
            buf[rng.randrange(n)] ^= 1 << rng.randrange(8)
        elif op == 1 and n >= 4:
            i = rng.randrange(n - 3)
            buf[i : i + 4] = struct.pack(rng.choice("<>") + "I", rng.choice(EDGES))
        elif op == 2 and n:
            del buf[rng.randrange(n) :]
        elif op == 3:
            i = rng.randint(0, n)
            buf[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
        elif op == 4 and n > 1:
            i = rng.randrange(n)
            del buf[i : i + rng.randint(1, 16)]
    return bytes(buf)


def one_read(path: Path, batch_size: int) -> tuple[PacketBatch, list[str], bool, int]:
    with open_capture(path) as capture:
        batches = list(capture.batches(batch_size))
        return (
            PacketBatch.concatenate(batches),
            list(capture.warnings),
            capture.damaged,
            capture.slow_path,
        )


def block_read(
    path: Path, blocksize: int, batch_size: int
) -> tuple[PacketBatch, list[str], bool, int]:
    with open_capture(path) as capture:
        cuts = list(capture.cut(blocksize, batch_size))
        records, warnings, damaged = capture.records, list(capture.warnings), capture.damaged
    parts, slow_path, position, first = [], 0, None, 0
    for cut in cuts:
        assert cut.end - cut.start <= blocksize or cut.records == 1, cut
        # blocks follow each other (a stretch of pcapng blocks without packets in between is
        # in no block: what it defines is in the next block's state)
        assert position is None or cut.start >= position
        assert cut.first == first
        position, first = cut.end, first + cut.records
        with open_capture(path) as capture:
            capture.resume(cut.state)
            got = list(capture.batches(cut.records, end=cut.end))  # one batch, as the tasks
            slow_path += capture.slow_path
        assert sum(len(b) for b in got) == cut.records
        parts += got
    batch = PacketBatch.concatenate(parts)
    assert len(batch) == records
    return batch, warnings, damaged, slow_path


def assert_same_read(path: Path, blocksizes: tuple[int, ...], batch_sizes: tuple[int, ...]) -> None:
    for batch_size in batch_sizes:
        try:
            whole, warnings, damaged, slow_path = one_read(path, batch_size)
        except PcapError as error:
            with pytest.raises(PcapError, match="^" + str(error).split(":")[0]):
                block_read(path, blocksizes[0], batch_size)
            return
        for blocksize in blocksizes:
            batch, cut_warnings, cut_damaged, cut_slow = block_read(path, blocksize, batch_size)
            assert cut_warnings == warnings, (path, blocksize, batch_size)
            assert (cut_damaged, cut_slow) == (damaged, slow_path)
            for name in COLUMNS:
                assert np.array_equal(getattr(batch, name), getattr(whole, name)), name


def test_seeds_and_their_mutations(twin_mode: str, tmp_path: Path) -> None:
    pool = seeds()
    rng = random.Random(1616)
    inputs = list(pool)
    mutations = 6 if twin_mode == "compiled" else 2
    for data in pool:
        inputs += [mutate(rng, data) for _ in range(mutations)]
    batch_sizes = (1, 3, 65536) if twin_mode == "compiled" else (2, 65536)
    for number, data in enumerate(inputs):
        path = tmp_path / f"input-{number}.bin"
        path.write_bytes(data)
        assert_same_read(path, BLOCKSIZES, batch_sizes)


def test_samples_and_dev_captures() -> None:
    paths = sorted(SAMPLE_PCAPS.glob("*.pcap"))
    if PCAPS_DEV.is_dir():
        paths += sorted(PCAPS_DEV.iterdir())
    for path in paths:
        assert_same_read(path, (1000, 1 << 16, 1 << 26), (65536,))


def test_a_record_is_never_split_and_the_limit_holds(tmp_path: Path) -> None:
    """Blocks end at record boundaries at or before the limit; one record larger than the
    limit is a block of its own; a pcapng block between packets (an interface, a section)
    starts a block like any other."""
    data = two_sections()
    path = tmp_path / "two-sections.pcapng"
    path.write_bytes(data)
    for blocksize in (1, 64, 96, 128, 300):
        with open_capture(path) as capture:
            cuts = list(capture.cut(blocksize))
        assert all(c.end - c.start <= blocksize or c.records == 1 for c in cuts)
        assert sum(c.records for c in cuts) == capture.records > 0


def test_the_skip_twins_agree(tmp_path: Path) -> None:
    """The compiled framing and its twin stop at the same offsets with the same states."""
    compiled, twin = Twin("classifier.pcap._pcap").both()
    pool = seeds()
    rng = random.Random(7)
    for data in pool + [mutate(rng, d) for d in pool]:
        decoders = [compiled.Decoder(), twin.Decoder()]
        if {d.begin(data) for d in decoders} != {0}:
            continue
        for limit in range(0, len(data) + 64, 61):
            stops = [d.skip(data, limit) for d in decoders]
            while stops[0] == STOP_GROW_IFACES:  # grow and go on, as the facade does
                for d in decoders:
                    d.grow_interfaces()
                stops = [d.skip(data, limit) for d in decoders]
            assert stops[0] == stops[1]
            assert decoders[0].snapshot() == decoders[1].snapshot()
            assert [(d.records, d.damage, d.over_snaplen_record) for d in decoders][0] == (
                decoders[1].records,
                decoders[1].damage,
                decoders[1].over_snaplen_record,
            )
            if stops[0] == STOP_DAMAGED:  # nothing more to frame
                break


def test_plan_walks_every_capture_in_order(tmp_path: Path) -> None:
    paths = [str(p) for p in sorted(SAMPLE_PCAPS.glob("*.pcap"))]
    items = list(blocks.plan(paths, 500))
    numbers = [item.number for item in items if isinstance(item, Block)]
    assert numbers == list(range(len(numbers)))
    done = [item for item in items if isinstance(item, blocks.FileDone)]
    assert [d.path for d in done] == paths
    for d in done:
        mine = [i for i in items if isinstance(i, Block) and i.path == d.path]
        assert sum(b.records for b in mine) == d.packets
        assert all(b.location == str(Path(d.path).resolve()) for b in mine)


def cuts_of(path: Path, blocksize: int) -> tuple[list[tuple[Any, ...]], list[str], bool]:
    with open_capture(path) as capture:
        cuts = [(c.state, c.start, c.end, c.first, c.records) for c in capture.cut(blocksize)]
        return cuts, list(capture.warnings), capture.damaged


def test_the_pure_twin_frames_through_its_stream_buffer_as_the_map_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pure twin never maps a capture (it has no SIGBUS guard): it frames blocks with
    pread through the stream buffer, in several calls per block when the buffer is small, and
    reads them back from their first record. Its blocks are the compiled map's, byte for
    byte, even where a record that would end past the limit begins a later call; so are the
    compiled core's once it has left the map for pread."""
    pool = seeds()
    rng = random.Random(99)
    inputs = pool + [mutate(rng, data) for data in pool]
    for fmt in ("pcap", "pcapng"):
        big = tmp_path / f"synthetic.{fmt}"
        write_capture(big, 3000, fmt=fmt, seed=3)
        inputs.append(big.read_bytes())
    for number, data in enumerate(inputs):
        path = tmp_path / f"input-{number}.bin"
        path.write_bytes(data)
        monkeypatch.delenv("CLASSIFIER_NO_EXTENSIONS", raising=False)
        try:
            mapped = [cuts_of(path, size) for size in (1, 200, 1000, 4096)]
        except PcapError:
            continue
        monkeypatch.setenv("CLASSIFIER_NO_EXTENSIONS", "1")
        monkeypatch.setattr(Capture, "stream_max_block", 300)  # big blocks read through
        for buffer in (97, rng.randrange(24, 400)):  # many calls per block, refills anywhere
            monkeypatch.setattr(Capture, "stream_buffer", buffer)
            streamed = [cuts_of(path, size) for size in (1, 200, 1000, 4096)]
            assert streamed == mapped, (number, buffer)
        # the compiled core on pread as well (a file that seems to have shrunk: the map is
        # left at once; the warnings then say so, the blocks stay the same)
        monkeypatch.delenv("CLASSIFIER_NO_EXTENSIONS")
        monkeypatch.setattr(Capture, "_current_size", lambda self: self._size - 1)
        streamed = [cuts_of(path, size) for size in (1, 200, 1000, 4096)]
        assert [cuts for cuts, _, _ in streamed] == [cuts for cuts, _, _ in mapped], number
        monkeypatch.undo()
    monkeypatch.setenv("CLASSIFIER_NO_EXTENSIONS", "1")
    monkeypatch.setattr(Capture, "stream_buffer", 97)
    assert_same_read(tmp_path / "synthetic.pcapng", (1000, 1 << 20), (512,))


def shrink_while_cut(
    path: Path, blocksize: int, new_size: int
) -> tuple[list[BlockCut], int, list[str], bool]:
    """The capture cut into blocks, truncated to `new_size` once the first block is out."""
    with open_capture(path) as capture:
        cuts = capture.cut(blocksize)
        done = [next(cuts)]
        os.truncate(path, new_size)
        done += list(cuts)
        return done, capture.records, list(capture.warnings), capture.damaged


@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
@pytest.mark.parametrize("check", ["size check", "guard alone"])
def test_a_capture_that_shrinks_while_it_is_cut_is_framed_up_to_where_its_data_ends(
    twin_mode: str, check: str, fmt: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """robustness.md section 2 on the driver of a cluster run: a capture truncated while it
    is cut into blocks never kills the command (the compiled framing is guarded like the
    decoding; the pure twin frames with pread). The blocks go on up to where the data ends,
    read back as one read of what is left would give it, with the one warning of a read."""
    if check == "guard alone":
        if twin_mode == "python":
            pytest.skip("the pure twin reads no map: there is no guard to test")
        monkeypatch.setattr(Capture, "_current_size", lambda self: self._size)  # no size check
    monkeypatch.setattr(Capture, "stream_buffer", 4096)  # what pread read ahead is little
    pristine = tmp_path / f"pristine.{fmt}"
    write_capture(pristine, 20_000, fmt=fmt, seed=5)
    size = pristine.stat().st_size
    rng = random.Random(f"{check}{fmt}")
    for new_size in sorted({rng.randrange(size // 4, size) for _ in range(3)} | {size // 2}):
        victim = tmp_path / "victim.bin"
        shutil.copyfile(pristine, victim)
        cuts, records, warnings, damaged = shrink_while_cut(victim, 64 << 10, new_size)
        with open_capture(victim) as capture:  # one read of what is left
            whole = PacketBatch.concatenate(list(capture.batches()))
        assert sum(c.records for c in cuts) == records == len(whole), new_size
        assert damaged and len(warnings) == 1, warnings
        assert warnings[0].endswith(f"; read stopped after {records} records")
        if check == "size check":
            assert warnings[0].startswith(f"{victim}: the file shrank from {size} to ")
        else:  # the rest of the last page reads as zeros: a record cut there may be damage
            assert warnings[0].startswith(f"{victim}: ")
        parts = []
        for cut in cuts:
            with open_capture(victim) as capture:
                capture.resume(cut.state)
                parts += list(capture.batches(4096, end=cut.end))
        batch = PacketBatch.concatenate(parts)
        for name in COLUMNS:
            assert np.array_equal(getattr(batch, name), getattr(whole, name)), name


def test_a_capture_truncated_under_its_first_block_still_ends_with_one_warning(
    twin_mode: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Truncated below the block already handed out: what was read before counts (with
    pread, the few KiB read ahead too), then one warning."""
    monkeypatch.setattr(Capture, "stream_buffer", 4096)
    victim = tmp_path / "victim.pcap"
    write_capture(victim, 5_000, seed=6)
    for new_size in (0, 24, 1000):
        cuts, records, warnings, damaged = shrink_while_cut(victim, 64 << 10, new_size)
        assert records == sum(c.records for c in cuts) < 5_000
        assert cuts[-1].end <= cuts[0].end + 4096
        assert damaged and len(warnings) == 1, warnings
        assert warnings[0].startswith(f"{victim}: the file shrank from ")
        write_capture(victim, 5_000, seed=6)
