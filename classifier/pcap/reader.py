"""Capture reader facade: pcap/pcapng files in, PacketBatch columns out.

Design note. A plain capture file is memory-mapped and handed whole to the decoder core
(`_pcap`, or its twin `_pcap_py`: `classifier.pcap.kernels`). The core frames records and
decodes their headers in one pass straight into the columns of a preallocated batch; it
stops at least every `WINDOW` bytes so that this layer can tell the kernel to drop the pages
already read (`MADV_DONTNEED` on a read-only file mapping only unmaps them: the page cache
keeps them). Resident memory is therefore one window plus one batch, whatever the file size.

Everything else is a stream, read in order into one reusable buffer (`stream_buffer` bytes,
grown only for a pcapng block larger than it, up to `stream_max_block`): a compressed file
(gzip, bzip2, xz, zstd: `classifier.pcap.streams`), standard input (`STDIN`, the command
line's `-`), a FIFO, and every file in the pure-Python mode (the twin reads no map). The core
runs on the buffer with `more` set and stops with STOP_MORE at a record that runs past it;
this layer moves the unread tail to the front, reads on and calls again. So a stream gives
exactly the rows, damage and offsets of the same bytes in a file. A block above
`stream_max_block` is read through without being kept (`_big_block`): its head and trailer
are what the core needs, and it gets them as a small block of the same meaning.

A file that shrinks while it is mapped (truncated, rotated or rewritten by another process)
would kill the process with SIGBUS on the first page past its new end. The compiled core runs
under a guard that survives that signal (pcap_guard.h) and returns STOP_FAULT with the state
of its call's entry; the size is also checked before each window. Either way this layer drops
the map and reads on with pread from where the core stood, up to the size the file had when
opened: the read ends where the data ends, with one warning. Framing blocks for the scale-out
(`cut`) is guarded and goes on with pread the same way; the pure twin frames and reads blocks
through the stream buffer, never a map.

The format is chosen by the first bytes, never by the file name. What this layer adds to the
core:
- errors: a missing, unreadable, empty or non-capture file is a `PcapError` with one line;
- damage: the core stops at the first impossible record and reports what and where; the
  records before it are kept, and one warning says where the read ended and how much was read.
  Compressed data that is corrupt or ends early is damage at the point where the decompressed
  bytes end (one warning saying so);
- the slow path: records of link types the core does not decode (802.11 with or without
  radiotap, PPI, pflog, ...) are handed to scapy's dissectors; the IP layer scapy finds is
  decoded by the core as raw IP, so those rows follow exactly the same rules. scapy and the
  layer modules that register those link types are imported the first time a record needs
  them (`_scapy_layers`), never for captures the core decodes alone;
- bookkeeping for the summary: formats and link types seen, first and last timestamp.
"""

from __future__ import annotations

import functools
import mmap
import os
import stat
import struct
import warnings
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple

from classifier.codes import (
    DAMAGE_BAD_BOM,
    DAMAGE_BAD_INTERFACE,
    DAMAGE_BLOCK_LEN,
    DAMAGE_BLOCK_LEN_MISMATCH,
    DAMAGE_BLOCK_TOO_SHORT,
    DAMAGE_CAPLEN_ABOVE_ORIG,
    DAMAGE_CAPLEN_BEYOND_BLOCK,
    DAMAGE_CAPLEN_TOO_BIG,
    DAMAGE_CUT_DATA,
    DAMAGE_CUT_HEADER,
    DAMAGE_SPB_LENGTH,
    FORMAT_PCAP_BE_NSEC,
    FORMAT_PCAP_BE_USEC,
    FORMAT_PCAP_LE_NSEC,
    FORMAT_PCAP_LE_USEC,
    FORMAT_PCAPNG_BE,
    FORMAT_PCAPNG_LE,
    LINKTYPE_IPV4,
    LINKTYPE_IPV6,
    MALFORMED_NONE,
    STATUS_NOT_IP,
    STATUS_OK,
    STOP_DAMAGED,
    STOP_EOF,
    STOP_FAULT,
    STOP_FILTER,
    STOP_FULL,
    STOP_GROW_IFACES,
    STOP_LIMIT,
    STOP_MORE,
)
from classifier.errors import PcapError
from classifier.packets import PacketBatch
from classifier.pcap.bpf import CaptureFilter
from classifier.pcap.kernels import reader_kernels
from classifier.pcap.layout import LAYOUT
from classifier.pcap.streams import (
    MAGIC_BYTES,
    CorruptStream,
    Decompressed,
    FdSource,
    PreadSource,
    Prefetched,
    Source,
    compression,
)

__all__ = [
    "BlockCut",
    "Capture",
    "CaptureWarning",
    "DEFAULT_BATCH_SIZE",
    "LINKTYPE_NAMES",
    "STDIN",
    "StandardInput",
    "open_capture",
    "read_batches",
]

DEFAULT_BATCH_SIZE = 65536
WINDOW = 32 << 20  # bytes read between two page drops
NO_LIMIT = (1 << 64) - 1  # a stream's run stops at the buffer's end, not at a byte limit
PCAP_HEADER_BYTES = LAYOUT["PCAP_FILE_LEN"]  # what `begin` reads (pcapng: the first 4)
MAX_CAPLEN = LAYOUT["PC_MAX_CAPLEN"]
NG_TYPE_IDB = 1
NG_BLOCK = LAYOUT["NG_BLOCK_BODY"]  # type and length
NG_IDB_FIXED = LAYOUT["NG_IDB_OPTIONS"]  # link type, reserved, snap length
NG_PACKET_FIXED = LAYOUT["NG_EPB_DATA"]  # the longest fixed part of a packet block
NG_OPT_HEADER = LAYOUT["NG_OPT_VALUE"]

# the names of link types, for the summary (the native ones are in codes.LINKTYPE_*; the
# others go through scapy)
LINKTYPE_NAMES = {
    0: "NULL",
    1: "EN10MB",
    9: "PPP",
    12: "RAW",
    14: "RAW",
    50: "PPP_HDLC",
    51: "PPP_ETHER",
    101: "RAW",
    104: "C_HDLC",
    105: "IEEE802_11",
    108: "LOOP",
    113: "LINUX_SLL",
    117: "PFLOG",
    119: "IEEE802_11_PRISM",
    127: "IEEE802_11_RADIOTAP",
    192: "PPI",
    228: "IPV4",
    229: "IPV6",
    276: "LINUX_SLL2",
}

FORMAT_NAMES = {
    FORMAT_PCAP_LE_USEC: "pcap LE usec",
    FORMAT_PCAP_LE_NSEC: "pcap LE nsec",
    FORMAT_PCAP_BE_USEC: "pcap BE usec",
    FORMAT_PCAP_BE_NSEC: "pcap BE nsec",
    FORMAT_PCAPNG_LE: "pcapng LE",
    FORMAT_PCAPNG_BE: "pcapng BE",
}

DAMAGE_REASONS = {
    DAMAGE_CUT_HEADER: "the file ends inside a record header ({value} bytes left)",
    DAMAGE_CUT_DATA: "the file ends inside a record (it needs {value} bytes)",
    DAMAGE_CAPLEN_TOO_BIG: "captured length {value} is above 262144",
    DAMAGE_CAPLEN_ABOVE_ORIG: "captured length {value} is above the original length",
    DAMAGE_BLOCK_LEN: "block length {value} is impossible (below 12 or not a multiple of 4)",
    DAMAGE_BLOCK_LEN_MISMATCH: "block length {value} disagrees with the block's trailing length",
    DAMAGE_BLOCK_TOO_SHORT: "block of length {value} is too short for its type",
    DAMAGE_BAD_BOM: "section header byte-order magic 0x{value:08x} is unknown",
    DAMAGE_BAD_INTERFACE: "packet refers to interface {value}, which the section does not define",
    DAMAGE_CAPLEN_BEYOND_BLOCK: "captured length {value} runs past the end of its block",
    DAMAGE_SPB_LENGTH: "simple packet block length {value} disagrees with its packet's length "
    "(the original length cut to the snaplen)",
}


class BlockCut(NamedTuple):
    """One block of a capture (`Capture.cut`): whole records from `start` to `end`."""

    state: tuple[Any, ...]  # the reader's state at the first record, for `Capture.resume`
    start: int  # byte offset of the first record
    end: int  # byte offset where the block ends (a record boundary)
    first: int  # index of the first record in the file
    records: int


class CaptureWarning(UserWarning):
    """A capture was read only in part (damage) or has records that bend its own header."""


class StandardInput(str):
    """The capture path that means standard input (the command line's `-`): a `str` equal to
    "-" (its name in every output), recognised by its type. A plain "-" is a file named -."""

    __slots__ = ()


STDIN = StandardInput("-")


def linktype_name(linktype: int) -> str:
    name = LINKTYPE_NAMES.get(linktype, f"LINKTYPE_{linktype}")
    return f"{name}({linktype})" if name == "RAW" and linktype != 101 else name


class Capture:
    """One open capture (a file, or `STDIN`). Use as a context manager; iterate `batches()`
    once.

    After (or during) the iteration: `records` read, `warnings` (one-line strings),
    `damaged` and `damage_offset`, `slow_path` (records decoded through scapy), `formats`
    and `link_types` seen, `first_ts_ns` / `last_ts_ns` (None before the first record),
    `position` / `size` in bytes of the file itself for progress (compressed bytes for a
    compressed file; `size` is 0 for a pipe), `compression` ("gzip", ... or None), `filtered`
    (records a `capture_filter` dropped: never rows; `records` counts the rows only).
    """

    stream_buffer = 8 << 20  # the stream buffer's size
    stream_max_block = 16 << 20  # larger pcapng blocks are read through, not buffered

    def __init__(self, path: str | os.PathLike[str], capture_filter: CaptureFilter | None = None):
        self.path = str(path)
        self.capture_filter = capture_filter
        self.records = 0
        self.warnings: list[str] = []
        self.damaged = False
        self.damage_offset: int | None = None
        self.slow_path = 0
        self.first_ts_ns: int | None = None
        self.last_ts_ns: int | None = None
        self.compression: str | None = None
        self._snap_warned = False
        self._decoder = reader_kernels.Decoder()
        self._fd: int | None = None
        self._owns_fd = True
        self._map: mmap.mmap | None = None
        self._size = 0  # the file's size when opened (0 for a pipe)
        # stream state: the buffer holds the decoded stream from offset _base, _end bytes
        self._source: Source | None = None
        self._buf = bytearray()
        self._view = memoryview(self._buf)
        self._base = 0
        self._end = 0
        self._start = 0  # a cursor, while a big block is read through
        self._eof = False
        self._corrupt: str | None = None  # why a compressed stream stopped early
        self._shrank = False  # the mapped file shrank under the reader
        try:
            self._open(path)
        except BaseException:
            self.close()
            raise
        if capture_filter is not None:  # Ethernet's program now; others when met
            self._decoder.add_filter(1, capture_filter.program(1))

    # --- opening -----------------------------------------------------------------------
    def _open(self, path: str | os.PathLike[str]) -> None:
        name = self.path
        if isinstance(path, StandardInput):
            self._fd, self._owns_fd = 0, False
            try:
                mode = os.fstat(0).st_mode
            except OSError:
                raise PcapError(f"{name}: standard input is closed: pipe a capture in") from None
            if os.isatty(0):
                raise PcapError(
                    f"{name}: standard input is a terminal: pipe a capture into it "
                    "(... | sgclassify ... -)"
                )
            self._open_stream(stat.S_ISREG(mode))
            return
        if os.path.isdir(path):
            raise PcapError(f"{name}: is a directory, not a capture file")
        try:
            mode = os.stat(path).st_mode
        except OSError as exc:
            raise PcapError(f"{name}: cannot open: {exc.strerror or exc}") from None
        regular = stat.S_ISREG(mode)
        if not (regular or stat.S_ISFIFO(mode)):
            raise PcapError(
                f"{name}: not a regular file or a pipe (a device or socket): give a capture file"
            )
        try:
            # a FIFO: O_NONBLOCK so that open() does not wait for a writer (none: empty)
            self._fd = os.open(path, os.O_RDONLY | (0 if regular else os.O_NONBLOCK))
            if not regular:
                os.set_blocking(self._fd, True)
            self._size = os.fstat(self._fd).st_size if regular else 0
        except OSError as exc:
            raise PcapError(f"{name}: cannot open: {exc.strerror or exc}") from None
        if not regular:
            self._open_stream(False)
            return
        if self._size == 0:
            raise PcapError(f"{name}: empty file (0 bytes), not a pcap or pcapng capture")
        head = self._pread(0, PCAP_HEADER_BYTES)
        self.compression = compression(head)
        if self.compression is not None or not reader_kernels.GUARDED:
            self._open_stream(True)
            return
        try:
            self._map = mmap.mmap(self._fd, 0, access=mmap.ACCESS_READ)
        except (OSError, ValueError) as exc:
            raise PcapError(f"{name}: cannot map the file: {exc}") from None
        if hasattr(mmap, "MADV_SEQUENTIAL"):
            self._map.madvise(mmap.MADV_SEQUENTIAL)
        self._begin(head, len(head) if len(head) < PCAP_HEADER_BYTES else self._size)

    def _pread(self, offset: int, n: int) -> bytes:
        assert self._fd is not None
        try:
            return os.pread(self._fd, n, offset)
        except OSError as exc:
            raise PcapError(f"{self.path}: cannot read: {exc.strerror or exc}") from None

    def _open_stream(self, regular: bool) -> None:
        """Read the file/pipe in order (decompressing it when its first bytes say so)."""
        assert self._fd is not None
        raw: Source
        if regular and self._fd != 0:
            raw = PreadSource(self._fd, 0, self._size)
        else:
            raw = FdSource(self._fd)
            head = b""
            while len(head) < MAGIC_BYTES:  # peek, keeping what was read
                got = self._read_raw(raw, MAGIC_BYTES - len(head))
                if not got:
                    break
                head += got
            raw = FdSource(self._fd, head)
            if not head and self._fd != 0:
                raise PcapError(f"{self.path}: empty (0 bytes, no writer), not a capture")
            if regular:  # standard input redirected from a file
                self._size = os.fstat(self._fd).st_size
            self.compression = compression(head)
        self._source = (
            Prefetched(Decompressed(raw, self.compression, self.path)) if self.compression else raw
        )
        self._buf = bytearray(self.stream_buffer)
        self._view = memoryview(self._buf)
        self._fill(PCAP_HEADER_BYTES)
        if self._end == 0:
            if self._corrupt is not None:
                raise PcapError(f"{self.path}: {self._corrupt}: no capture could be read")
            what = f"{self.compression} data decompresses to nothing" if self.compression else (
                "empty (0 bytes)")  # fmt: skip
            raise PcapError(f"{self.path}: {what}, not a pcap or pcapng capture")
        self._begin(bytes(self._view[: self._end]), self._end)

    def _read_raw(self, raw: Source, n: int) -> bytes:
        scratch = bytearray(n)
        try:
            got = raw.readinto(memoryview(scratch))
        except OSError as exc:
            raise PcapError(f"{self.path}: cannot read: {exc.strerror or exc}") from None
        return bytes(scratch[:got])

    def _begin(self, head: bytes, available: int) -> None:
        rc = self._decoder.begin(head)
        inner = f"{self.compression}-compressed: " if self.compression else ""
        if rc == -1:
            nested = compression(head)
            hint = f" ({nested} inside {self.compression}: one layer only)" if nested else ""
            raise PcapError(
                f"{self.path}: {inner}not a pcap or pcapng file (magic number {head[:4].hex()})"
                f"{hint}"
            )
        if rc == -2:
            raise PcapError(
                f"{self.path}: {inner}{available} bytes, too short for a pcap file header"
            )

    def close(self) -> None:
        if self._map is not None:
            self._map.close()
            self._map = None
        stuck = False
        if self._source is not None:
            self._source.close()
            stuck = isinstance(self._source, Prefetched) and not self._source.stopped
            self._source = None
        if self._fd is not None:
            if self._owns_fd and not stuck:  # a thread still in a read keeps its descriptor
                os.close(self._fd)
            self._fd = None
        self._view.release()
        self._buf = bytearray()
        self._view = memoryview(self._buf)

    def __enter__(self) -> Capture:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- reading -----------------------------------------------------------------------
    def batches(
        self, batch_size: int = DEFAULT_BATCH_SIZE, end: int | None = None
    ) -> Iterator[PacketBatch]:
        """Yield PacketBatch objects of up to `batch_size` consecutive records; with `end` (a
        record boundary, as `cut` gives), stop there."""
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if self._fd is None:
            raise ValueError(f"{self.path}: capture is closed")
        dec = self._decoder
        stop = STOP_FULL
        while stop not in (STOP_EOF, STOP_DAMAGED):
            batch = PacketBatch.zeros(batch_size)
            row = 0
            while True:
                if self._map is not None:
                    stop, row = self._run_map(batch, row, end)
                else:
                    stop, row = self._run_stream(batch, row, end)
                if stop == STOP_GROW_IFACES:
                    dec.grow_interfaces()
                elif stop == STOP_FILTER:
                    self._add_filter()
                elif stop not in (STOP_LIMIT, STOP_MORE, STOP_FAULT):
                    break
                elif end is not None and dec.pos >= end:
                    stop = STOP_EOF  # the end of the block
                    break
            if stop in (STOP_EOF, STOP_DAMAGED):
                self._finish(stop)
            if dec.over_snaplen and not self._snap_warned:
                self._note_snaplen()
            if row:
                out = batch if row == batch_size else batch.slice(0, row)
                if self.first_ts_ns is None:
                    self.first_ts_ns = int(out.ts_ns[0])
                self.last_ts_ns = int(out.ts_ns[row - 1])
                self.records += row
                yield out

    def _run_map(self, batch: PacketBatch, row: int, end: int | None = None) -> tuple[int, int]:
        """One window of the map (up to `end` at most); on to pread when the file shrank
        (checked, or SIGBUS)."""
        mm = self._map
        assert mm is not None
        dec = self._decoder
        if self._current_size() < self._size:
            self._leave_map()
            return STOP_LIMIT, row
        before = dec.pos
        limit = before + WINDOW if end is None else min(before + WINDOW, end)
        stop, row = dec.run(mm, batch, row, limit)
        if stop == STOP_FAULT:
            _zero_rows(batch, row)
            self._leave_map()
            return STOP_LIMIT, row
        for r, offset, length, linktype in dec.fallback():
            data = self._pread(offset, length)  # pread: the map may be gone under us
            if len(data) < length:
                data = bytes(length)  # shrank now: this row is kept as the core saw it
            decode_with_scapy(batch, r, data, linktype)
            self.slow_path += 1
        page = mmap.PAGESIZE
        start, done = (before // page) * page, (dec.pos // page) * page
        if done > start and hasattr(mmap, "MADV_DONTNEED"):
            mm.madvise(mmap.MADV_DONTNEED, start, done - start)
        return stop, row

    def _current_size(self) -> int:
        assert self._fd is not None
        return os.fstat(self._fd).st_size

    def _leave_map(self) -> None:
        """The mapped file shrank: drop the map, read on with pread up to the size it had."""
        assert self._fd is not None and self._map is not None
        self._shrank = True
        self._map.close()
        self._map = None
        self._buf = bytearray(self.stream_buffer)
        self._view = memoryview(self._buf)
        self._pread_from_here()

    def _pread_from_here(self) -> None:
        """The stream buffer empty, the stream read with pread from the decoder's position on,
        up to the size the file had when opened."""
        assert self._fd is not None
        pos = int(self._decoder.pos)
        self._source = PreadSource(self._fd, pos, self._size)
        self._base, self._end, self._eof = pos, 0, False

    def _run_stream(self, batch: PacketBatch, row: int, end: int | None = None) -> tuple[int, int]:
        dec = self._decoder
        dec.base = self._base
        dec.more = not self._eof
        stop, row = dec.run(self._view[: self._end], batch, row, NO_LIMIT if end is None else end)
        for r, offset, length, linktype in dec.fallback():
            decode_with_scapy(batch, r, bytes(self._view[offset : offset + length]), linktype)
            self.slow_path += 1
        if stop == STOP_MORE:
            need = int(dec.need)
            if need > self.stream_max_block and dec.pcapng:  # a pcap record is <= 256 KiB
                return self._big_block(batch, row, need)
            self._fill(need)
        return stop, row

    def _fill(self, need: int) -> None:
        """Move the unread tail to the front of the buffer (growing it to `need` bytes when
        smaller) and read until it is full or the stream ends."""
        rel = int(self._decoder.pos) - self._base
        if rel > 0:
            tail = self._end - rel
            self._view[:tail] = self._view[rel : self._end]
            self._base += rel
            self._end = tail
        if need > len(self._buf):
            size = len(self._buf)
            while size < need:
                size *= 2
            self._view.release()
            self._buf.extend(bytes(min(size, max(need, self.stream_max_block)) - len(self._buf)))
            self._view = memoryview(self._buf)
        while self._end < len(self._buf) and not self._eof:
            self._end += self._read(self._view[self._end :])

    def _read(self, view: memoryview) -> int:
        """One read from the source: 0 (and _eof) at its end, or when it turns out corrupt."""
        assert self._source is not None
        try:
            n = self._source.readinto(view)
        except CorruptStream as exc:
            self._corrupt = str(exc)
            n = 0
        except OSError as exc:
            raise PcapError(f"{self.path}: cannot read: {exc.strerror or exc}") from None
        if n == 0:
            self._eof = True
        return n

    def _big_block(self, batch: PacketBatch, row: int, blen: int) -> tuple[int, int]:
        """A pcapng block longer than `stream_max_block` (the core checked its type and length
        fields): read it through keeping its head (the fixed fields and up to MAX_CAPLEN bytes
        of packet data: all the core reads of such a block), or, for an interface block, the
        last value of each option the core uses; check its trailing length; then hand the core
        a small block of the same meaning at the same offset, and go on after the real one."""
        dec = self._decoder
        start = int(dec.pos)
        swap = ">" if dec.swap else "<"  # set from this block's own BOM if it is a section
        self._start = start - self._base  # a cursor over the buffer, from the block on
        head = self._take(NG_BLOCK)
        btype = struct.unpack(swap + "I", head[:4])[0]
        blim = blen - 4  # the body ends here (offsets in the block)
        if btype == NG_TYPE_IDB:
            fixed = self._take(NG_IDB_FIXED)
            body, got = self._idb_options(fixed, blim, swap)
        else:
            body = self._take(min(blim - NG_BLOCK, NG_PACKET_FIXED + MAX_CAPLEN))
            got = NG_BLOCK + len(body)
            got += self._skip(blim - got)
        trailer = self._take(4) if got == blim else b""
        if len(trailer) < 4:
            dec.fail(DAMAGE_CUT_DATA, start, blen)
            return STOP_DAMAGED, row
        if struct.unpack(swap + "I", trailer)[0] != blen:
            dec.fail(DAMAGE_BLOCK_LEN_MISMATCH, start, blen)
            return STOP_DAMAGED, row
        body += bytes(-len(body) % 4)
        small = len(body) + 12
        block = head[:4] + struct.pack(swap + "I", small) + body + struct.pack(swap + "I", small)
        # the core reads the small block as the real one, at the real one's offset
        dec.base, dec.pos, dec.more = start, start, False
        stop, row = dec.run(block, batch, row, NO_LIMIT)
        while stop in (STOP_GROW_IFACES, STOP_FILTER):
            if stop == STOP_FILTER:
                self._add_filter()
            else:
                dec.grow_interfaces()
            stop, row = dec.run(block, batch, row, NO_LIMIT)
        for r, offset, length, linktype in dec.fallback():
            decode_with_scapy(batch, r, block[offset : offset + length], linktype)
            self.slow_path += 1
        if stop == STOP_DAMAGED:
            if dec.damage == DAMAGE_SPB_LENGTH:  # the value is the block's length: the real one
                dec.fail(DAMAGE_SPB_LENGTH, start, blen)
            return stop, row
        # what the buffer holds past the block is the stream from start + blen on
        dec.pos = start + blen
        self._base = start + blen - self._start
        return STOP_LIMIT if stop == STOP_EOF else stop, row

    def _add_filter(self) -> None:
        """The core met a link type the filter has no program for yet: compile one."""
        assert self.capture_filter is not None
        link = int(self._decoder.need)
        self._decoder.add_filter(link, self.capture_filter.program(link))

    def _take(self, n: int) -> bytes:
        """The next n bytes at the cursor (fewer at the stream's end), consumed."""
        out = b""
        while len(out) < n and self._available():
            k = min(n - len(out), self._end - self._start)
            out += bytes(self._view[self._start : self._start + k])
            self._start += k
        return out

    def _skip(self, n: int) -> int:
        """Consume up to n bytes at the cursor without keeping them; returns how many."""
        done = 0
        while done < n and self._available():
            k = min(n - done, self._end - self._start)
            self._start += k
            done += k
        return done

    def _available(self) -> bool:
        """Bytes at the cursor: read on (from the buffer's front) when it is used up."""
        if self._start < self._end:
            return True
        self._base += self._end
        self._start = self._end = 0
        while self._end < len(self._buf) and not self._eof:
            self._end += self._read(self._view[self._end :])
        return self._end > 0

    def _idb_options(self, fixed: bytes, blim: int, swap: str) -> tuple[bytes, int]:
        """Walk an interface block's options from the stream as the core does
        (pcap_core.h pc_idb_options), keeping the last if_tsresol and if_tsoffset; returns the
        small block's body (the fixed fields and those options) and the bytes consumed."""
        got = 16
        options = b""
        res: bytes | None = None
        offset: bytes | None = None
        while got + NG_OPT_HEADER <= blim:
            opt = self._take(NG_OPT_HEADER)
            got += len(opt)
            if len(opt) < NG_OPT_HEADER:
                return fixed, got
            code, olen = struct.unpack(swap + "HH", opt)
            if code == LAYOUT["NG_OPT_END"] or got + olen > blim:
                break
            value = self._take(min(olen, 8))
            got += len(value)
            if code == LAYOUT["NG_OPT_IF_TSRESOL"] and len(value) >= 1:
                res = value[:1]
            if code == LAYOUT["NG_OPT_IF_TSOFFSET"] and len(value) >= 8:
                offset = value[:8]
            pad = ((olen + 3) & ~3) - len(value)
            step = min(pad, blim - got)
            got += self._skip(step)
            if step < pad:
                break
        got += self._skip(blim - got)
        if res is not None:
            options += struct.pack(swap + "HH", LAYOUT["NG_OPT_IF_TSRESOL"], 1) + res + bytes(3)
        if offset is not None:
            options += struct.pack(swap + "HH", LAYOUT["NG_OPT_IF_TSOFFSET"], 8) + offset
        return fixed + options + struct.pack(swap + "HH", LAYOUT["NG_OPT_END"], 0), got

    def _finish(self, stop: int) -> None:
        """The read ended: note damage, a corrupt compressed stream or a shrunk file, once."""
        dec = self._decoder
        if self.damaged:
            return
        cut = stop == STOP_EOF or dec.damage in (DAMAGE_CUT_HEADER, DAMAGE_CUT_DATA)
        # a file read with pread from the start (the pure twin's) shrank just as a map does
        shrank = self._shrank or (
            isinstance(self._source, PreadSource) and self._current_size() < self._size
        )
        if shrank and cut:
            self.damaged = True
            self.damage_offset = int(dec.pos)
            self.warnings.append(
                f"{self.path}: the file shrank from {self._size} to {self._current_size()} "
                f"bytes while being read; read stopped after {dec.records} records"
            )
        elif self._corrupt is not None and cut:
            self.damaged = True
            self.damage_offset = int(dec.pos)
            self.warnings.append(
                f"{self.path}: damaged at byte offset {dec.pos}: {self._corrupt}; "
                f"read stopped after {dec.records} records"
            )
        elif stop == STOP_DAMAGED:
            self._note_damage()

    def _note_snaplen(self) -> None:
        self._snap_warned = True
        self.warnings.append(
            f"{self.path}: record at byte offset {self._decoder.over_snaplen_offset} has a "
            f"captured length above the snap length of its file/interface; "
            f"read anyway (warned once)"
        )

    def _note_damage(self) -> None:
        dec = self._decoder
        self.damaged = True
        self.damage_offset = int(dec.damage_offset)
        reason = DAMAGE_REASONS.get(dec.damage, "damaged record").format(value=dec.damage_value)
        self.warnings.append(
            f"{self.path}: damaged at byte offset {dec.damage_offset}: {reason}; "
            f"read stopped after {dec.records} records"
        )

    # --- blocks (the scale-out, classifier.scale) -------------------------------------
    def cut(self, blocksize: int, batch_size: int = DEFAULT_BATCH_SIZE) -> Iterator[BlockCut]:
        """Frame the file without decoding it and yield its blocks (`BlockCut`), in file
        order. A block is whole records (pcapng: blocks) of at most `blocksize` bytes, or one
        larger record. Afterwards `records`, `damaged` and `warnings` are what
        `batches(batch_size)` would have left (warnings in its order): a file that shrinks
        meanwhile is framed on with pread up to where its data ends, as a read goes on, and
        noted the same way."""
        if blocksize < 1:
            raise ValueError("blocksize must be at least 1")
        self._for_blocks()
        dec, dropped, page = self._decoder, 0, mmap.PAGESIZE
        stop = STOP_LIMIT
        while stop == STOP_LIMIT and dec.pos < self._size:
            state, first, start = dec.snapshot(), int(dec.records), int(dec.pos)
            stop = self._frame(start, start + blocksize)
            done = (dec.pos // page) * page
            if (
                self._map is not None
                and done - dropped >= WINDOW
                and hasattr(mmap, "MADV_DONTNEED")
            ):
                self._map.madvise(mmap.MADV_DONTNEED, dropped, done - dropped)
                dropped = done
            if dec.records > first:
                yield BlockCut(state, start, int(dec.pos), first, int(dec.records) - first)
        self.records = int(dec.records)
        # the warnings in the order a read by batches of `batch_size` records appends them:
        # after each batch, the end (damage, a shrunk file) first, then the first record above
        # the snap length
        notes: list[tuple[int, int, Callable[[], None]]] = []
        if stop in (STOP_EOF, STOP_DAMAGED) and not self.damaged:
            notes.append((dec.records // batch_size, 0, functools.partial(self._finish, stop)))
        if dec.over_snaplen and not self._snap_warned:
            notes.append((dec.over_snaplen_record // batch_size, 1, self._note_snaplen))
        for _, _, note in sorted(notes, key=lambda item: item[:2]):
            note()

    def resume(self, state: tuple[Any, ...]) -> None:
        """Go on reading from a block's first record (`cut` gave its state)."""
        self._for_blocks()
        self._decoder.restore(state)
        if self._map is None:  # the pure twin's stream: from the block on
            self._pread_from_here()

    def _for_blocks(self) -> None:
        """Blocks are framed and read at positions of a regular uncompressed file, opened and
        not read yet: through the map (the compiled core, guarded), or with pread (the pure
        twin, which has no SIGBUS guard and so never reads a map; a file that shrank)."""
        if self._fd is None or self.compression is not None or self._size == 0:
            raise ValueError(f"{self.path}: not a file read at positions (closed, or a stream)")
        if not stat.S_ISREG(os.fstat(self._fd).st_mode) or self.records:
            raise ValueError(f"{self.path}: not a file read at positions (a pipe, or read already)")

    def _frame(self, first: int, limit: int) -> int:
        """Frame records from the decoder's position on, up to `limit` (`Decoder.skip`), for
        the block whose first record is at `first`; returns the stop code (STOP_LIMIT,
        STOP_EOF or STOP_DAMAGED).

        The core takes the first record of each call whatever its size (that is how one
        larger than the block size is a block of its own). A block framed in several calls
        (the stream buffer ran out, the interface table grew) must not take a record past
        `limit` at the start of a later call, so a later call is handed the bytes up to
        `limit` only, with `more` set: a record that would end past it stops short
        (STOP_MORE), and the block ends there, exactly where one call over the whole file
        would have ended it."""
        dec = self._decoder
        while True:
            pos = int(dec.pos)
            if pos != first and pos >= limit:
                return STOP_LIMIT  # a first record past the limit, then a refill or growth
            if self._map is not None and self._current_size() < self._size:
                self._leave_map()
            if self._map is not None:
                base, more, end = 0, False, self._size
            else:
                base, more, end = self._base, not self._eof, self._base + self._end
            clipped = pos != first and limit < end
            dec.base, dec.more = base, more or clipped
            with memoryview(self._map if self._map is not None else self._buf) as whole:
                with whole[: (limit if clipped else end) - base] as data:
                    stop = dec.skip(data, limit)
            if stop == STOP_FAULT:  # the map lost pages under the core: state as on entry
                self._leave_map()
            elif stop == STOP_GROW_IFACES:
                dec.grow_interfaces()
            elif stop == STOP_MORE and clipped:
                return STOP_LIMIT  # the record at dec.pos would end past the limit
            elif stop == STOP_MORE:
                need = int(dec.need)
                if need > self.stream_max_block and dec.pcapng:
                    if int(dec.pos) != first and int(dec.pos) + need > limit:
                        return STOP_LIMIT
                    stop, _ = self._big_block(PacketBatch.zeros(1), 0, need)
                    if stop == STOP_DAMAGED:
                        return stop
                else:
                    self._fill(need)
            else:
                return stop

    # --- summary -----------------------------------------------------------------------
    @property
    def formats(self) -> list[str]:
        bits = int(self._decoder.formats)
        return [name for bit, name in FORMAT_NAMES.items() if bits & bit]

    @property
    def link_types(self) -> list[str]:
        return [linktype_name(int(lt)) for lt in self._decoder.linktypes]

    @property
    def position(self) -> int:
        """Bytes of the file read so far (for progress reports): compressed bytes for a
        compressed file."""
        if self._source is not None and (self.compression or self._map is None):
            return int(self._source.consumed)
        return int(self._decoder.pos)

    @property
    def size(self) -> int:
        """The file's size in bytes (0 for a pipe)."""
        return self._size

    @property
    def filtered(self) -> int:
        """Records the capture filter dropped so far."""
        return int(self._decoder.filtered)


def _zero_rows(batch: PacketBatch, row: int) -> None:
    """Zero rows row.. of every column (the core writes into zeroed rows only)."""
    for column in batch.columns().values():
        column[row:] = 0


# scapy's modules whose import registers dissectors for link types (conf.l2types) that carry
# IP and that the core does not decode: 802.11 (105), Prism (119), radiotap (127), PPI (192),
# pflog (117); l2 for LLC/SNAP inside them, inet/inet6 for the IP layers themselves.
SCAPY_LAYER_MODULES = (
    "scapy.layers.l2",
    "scapy.layers.inet",
    "scapy.layers.inet6",
    "scapy.layers.dot11",
    "scapy.layers.ppi",
    "scapy.layers.pflog",
    "scapy.layers.ppp",
)


@functools.cache
def _scapy_layers() -> tuple[Any, Any, Any]:
    """scapy's link-type table with every module above registered, and its IP classes.
    Imported once, on the first record that needs the slow path."""
    import importlib

    for name in SCAPY_LAYER_MODULES:
        try:
            importlib.import_module(name)
        except ImportError:  # an older scapy without it: its link types stay undecoded
            pass
    from scapy.config import conf
    from scapy.layers.inet import IP
    from scapy.layers.inet6 import IPv6

    return conf.l2types.num2layer, IP, IPv6


def decode_with_scapy(batch: PacketBatch, row: int, data: bytes, linktype: int) -> None:
    """The slow path: let scapy find the IP layer of a frame the core cannot frame, then
    decode that layer with the core as raw IPv4/IPv6. No IP layer: not-ip. scapy does not
    know the link type or fails: the row stays malformed (link type not decoded)."""
    num2layer, IP, IPv6 = _scapy_layers()
    cls = num2layer.get(linktype)
    if cls is None:
        return
    try:
        layer: Any = cls(data)
    except Exception:  # noqa: BLE001 - any dissector failure leaves the row malformed
        return
    while layer is not None and layer.__class__.__name__ != "NoPayload":
        if isinstance(layer, IP | IPv6):
            batch.status[row] = STATUS_OK
            batch.malformed_reason[row] = MALFORMED_NONE
            version = LINKTYPE_IPV4 if isinstance(layer, IP) else LINKTYPE_IPV6
            reader_kernels.decode_into(batch, row, bytes(layer.original), version)
            return
        layer = layer.payload
    batch.status[row] = STATUS_NOT_IP
    batch.malformed_reason[row] = MALFORMED_NONE


def open_capture(
    path: str | os.PathLike[str], capture_filter: CaptureFilter | None = None
) -> Capture:
    """Open a pcap or pcapng capture, plain or compressed (by its first bytes), or `STDIN`;
    with `capture_filter`, only the records it accepts. Raises PcapError."""
    return Capture(path, capture_filter)


def read_batches(
    path: str | os.PathLike[str],
    batch_size: int = DEFAULT_BATCH_SIZE,
    capture_filter: CaptureFilter | None = None,
) -> Iterator[PacketBatch]:
    """Yield the capture's records as PacketBatch columns; problems as CaptureWarning."""
    with open_capture(path, capture_filter) as cap:
        shown = 0
        for batch in cap.batches(batch_size):
            shown = _emit(cap.warnings, shown)
            yield batch
        _emit(cap.warnings, shown)


def _emit(messages: list[str], shown: int) -> int:
    for message in messages[shown:]:
        warnings.warn(message, CaptureWarning, stacklevel=3)
    return len(messages)


def read_all(paths: Iterable[str | os.PathLike[str]] | str | Path) -> PacketBatch:
    """Every record of one or more captures in one batch (tests, small files)."""
    if isinstance(paths, str | Path):
        paths = [paths]
    batches = [b for p in paths for b in read_batches(p)]
    return PacketBatch.concatenate(batches) if batches else PacketBatch.zeros(0)
