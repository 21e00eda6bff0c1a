"""Capture reader facade: pcap/pcapng files in, PacketBatch columns out.

Design note. The file is memory-mapped and handed whole to the decoder core (`_pcap`, or its
twin `_pcap_py`: `classifier.pcap.kernels`). The core frames records and decodes their
headers in one pass straight into the columns of a preallocated batch; it stops at least
every `WINDOW` bytes so that this layer can tell the kernel to drop the pages already read
(`MADV_DONTNEED` on a read-only file mapping only unmaps them: the page cache keeps them).
Resident memory is therefore one window plus one batch, whatever the file size.

The format is chosen by the magic number, never by the file name. What this layer adds to the
core:
- errors: a missing, unreadable, empty or non-capture file is a `PcapError` with one line;
- damage: the core stops at the first impossible record and reports what and where; the
  records before it are kept, and one warning says where the read ended and how much was read;
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
import warnings
from collections.abc import Iterable, Iterator
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
    STOP_FULL,
    STOP_GROW_IFACES,
    STOP_LIMIT,
)
from classifier.errors import PcapError
from classifier.packets import PacketBatch
from classifier.pcap.kernels import reader_kernels

__all__ = [
    "BlockCut",
    "Capture",
    "CaptureWarning",
    "DEFAULT_BATCH_SIZE",
    "LINKTYPE_NAMES",
    "open_capture",
    "read_batches",
]

DEFAULT_BATCH_SIZE = 65536
WINDOW = 32 << 20  # bytes read between two page drops

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


def linktype_name(linktype: int) -> str:
    name = LINKTYPE_NAMES.get(linktype, f"LINKTYPE_{linktype}")
    return f"{name}({linktype})" if name == "RAW" and linktype != 101 else name


class Capture:
    """One open capture file. Use as a context manager; iterate `batches()` once.

    After (or during) the iteration: `records` read, `warnings` (one-line strings),
    `damaged` and `damage_offset`, `slow_path` (records decoded through scapy), `formats`
    and `link_types` seen, `first_ts_ns` / `last_ts_ns` (None before the first record),
    `position` / `size` in bytes for progress.
    """

    def __init__(self, path: str | os.PathLike[str]):
        self.path = str(path)
        self.records = 0
        self.warnings: list[str] = []
        self.damaged = False
        self.damage_offset: int | None = None
        self.slow_path = 0
        self.first_ts_ns: int | None = None
        self.last_ts_ns: int | None = None
        self._snap_warned = False
        self._decoder = reader_kernels.Decoder()
        self._file: Any = None
        self._map: mmap.mmap | None = None
        self._size = 0
        self._open()

    # --- opening -----------------------------------------------------------------------
    def _open(self) -> None:
        path = self.path
        if os.path.isdir(path):
            raise PcapError(f"{path}: is a directory, not a capture file")
        try:
            mode = os.stat(path).st_mode
        except OSError as exc:
            raise PcapError(f"{path}: cannot open: {exc.strerror or exc}") from None
        if not stat.S_ISREG(mode):  # a FIFO would block in open() and cannot be mapped
            raise PcapError(
                f"{path}: not a regular file (a pipe, device or socket): give a capture file"
            )
        try:
            self._file = open(path, "rb")  # noqa: SIM115 - closed by close()
            self._size = os.fstat(self._file.fileno()).st_size
        except OSError as exc:
            raise PcapError(f"{path}: cannot open: {exc.strerror or exc}") from None
        if self._size == 0:
            self.close()
            raise PcapError(f"{path}: empty file (0 bytes), not a pcap or pcapng capture")
        try:
            self._map = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ)
        except (OSError, ValueError) as exc:
            self.close()
            raise PcapError(f"{path}: cannot map the file: {exc}") from None
        if hasattr(mmap, "MADV_SEQUENTIAL"):
            self._map.madvise(mmap.MADV_SEQUENTIAL)
        rc = self._decoder.begin(self._map)
        if rc == -1:
            magic = bytes(self._map[:4]).hex()
            self.close()
            raise PcapError(f"{path}: not a pcap or pcapng file (magic number {magic})")
        if rc == -2:
            self.close()
            raise PcapError(f"{path}: {self._size} bytes, too short for a pcap file header")

    def close(self) -> None:
        if self._map is not None:
            self._map.close()
            self._map = None
        if self._file is not None:
            self._file.close()
            self._file = None

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
        if self._map is None:
            raise ValueError(f"{self.path}: capture is closed")
        mm = self._map
        dec = self._decoder
        dropped = 0
        page = mmap.PAGESIZE
        stop = STOP_FULL
        while stop not in (STOP_EOF, STOP_DAMAGED):
            batch = PacketBatch.zeros(batch_size)
            row = 0
            while True:
                if self._shrunk():
                    stop = STOP_DAMAGED
                    break
                limit = dec.pos + WINDOW if end is None else min(dec.pos + WINDOW, end)
                stop, row = dec.run(mm, batch, row, limit)
                self._slow_path(batch, dec.fallback())
                done = (dec.pos // page) * page
                if done - dropped >= WINDOW and hasattr(mmap, "MADV_DONTNEED"):
                    mm.madvise(mmap.MADV_DONTNEED, dropped, done - dropped)
                    dropped = done
                if stop == STOP_GROW_IFACES:
                    dec.grow_interfaces()
                elif stop != STOP_LIMIT:
                    break
                elif end is not None and dec.pos >= end:
                    stop = STOP_EOF  # the end of the block
                    break
            if stop == STOP_DAMAGED and not self.damaged:
                self._note_damage()
            if dec.over_snaplen and not self._snap_warned:
                self._note_snaplen()
            if row:
                out = batch if row == batch_size else batch.slice(0, row)
                if self.first_ts_ns is None:
                    self.first_ts_ns = int(out.ts_ns[0])
                self.last_ts_ns = int(out.ts_ns[row - 1])
                self.records += row
                yield out

    def _shrunk(self) -> bool:
        """The file got shorter than when it was mapped (truncated or rotated while being read):
        reading the lost pages would kill the process with SIGBUS, so stop here, with a warning.
        Checked before each window of the map; a truncation inside a window is not caught."""
        assert self._file is not None
        size = os.fstat(self._file.fileno()).st_size
        if size >= self._size:
            return False
        if not self.damaged:
            self.damaged = True
            self.damage_offset = int(self._decoder.pos)
            self.warnings.append(
                f"{self.path}: the file shrank from {self._size} to {size} bytes while being read; "
                f"read stopped after {self._decoder.records} records"
            )
        return True

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

    def _slow_path(self, batch: PacketBatch, records: list[tuple[int, int, int, int]]) -> None:
        if not records:
            return
        assert self._map is not None
        for row, offset, length, linktype in records:
            decode_with_scapy(batch, row, bytes(self._map[offset : offset + length]), linktype)
        self.slow_path += len(records)

    # --- blocks (the scale-out, classifier.scale) -------------------------------------
    def cut(self, blocksize: int, batch_size: int = DEFAULT_BATCH_SIZE) -> Iterator[BlockCut]:
        """Frame the file without decoding it and yield its blocks (`BlockCut`), in file
        order. A block is whole records (pcapng: blocks) of at most `blocksize` bytes, or one
        larger record. Afterwards `records`, `damaged` and `warnings` are what
        `batches(batch_size)` would have left (warnings in its order)."""
        if blocksize < 1:
            raise ValueError("blocksize must be at least 1")
        if self._map is None:
            raise ValueError(f"{self.path}: capture is closed")
        mm, dec, dropped, page = self._map, self._decoder, 0, mmap.PAGESIZE
        stop = STOP_LIMIT
        while stop == STOP_LIMIT and dec.pos < self._size:
            state, first, start = dec.snapshot(), int(dec.records), int(dec.pos)
            if self._shrunk():
                break
            stop = dec.skip(mm, start + blocksize)
            while stop == STOP_GROW_IFACES:
                dec.grow_interfaces()
                stop = dec.skip(mm, start + blocksize)
            done = (dec.pos // page) * page
            if done - dropped >= WINDOW and hasattr(mmap, "MADV_DONTNEED"):
                mm.madvise(mmap.MADV_DONTNEED, dropped, done - dropped)
                dropped = done
            if dec.records > first:
                yield BlockCut(state, start, int(dec.pos), first, int(dec.records) - first)
        self.records = int(dec.records)
        # the warnings in the order a read by batches of `batch_size` records appends them:
        # after each batch, damage first, then the first record above the snap length
        notes = []
        if stop == STOP_DAMAGED and not self.damaged:
            notes.append((dec.records // batch_size, 0, self._note_damage))
        if dec.over_snaplen and not self._snap_warned:
            notes.append((dec.over_snaplen_record // batch_size, 1, self._note_snaplen))
        for _, _, note in sorted(notes, key=lambda item: item[:2]):
            note()

    def resume(self, state: tuple[Any, ...]) -> None:
        """Go on reading from a block's first record (`cut` gave its state)."""
        self._decoder.restore(state)

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
        """Bytes of the file read so far (for progress reports)."""
        return int(self._decoder.pos)

    @property
    def size(self) -> int:
        """The file's size in bytes."""
        return self._size


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


def open_capture(path: str | os.PathLike[str]) -> Capture:
    """Open a pcap or pcapng file (by magic number). Raises PcapError."""
    return Capture(path)


def read_batches(
    path: str | os.PathLike[str], batch_size: int = DEFAULT_BATCH_SIZE
) -> Iterator[PacketBatch]:
    """Yield the capture's records as PacketBatch columns; problems as CaptureWarning."""
    with open_capture(path) as cap:
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
