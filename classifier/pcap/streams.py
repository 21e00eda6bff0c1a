"""Byte sources of the capture reader: files, pipes and decompressors, read into a buffer.

A source has `readinto(view) -> int` (0 at the end; never more than `len(view)`), `consumed`
(bytes of the underlying file or pipe read so far, for progress) and `close()`. What the
reader decodes is always a pcap or pcapng stream; these classes only deliver its bytes.

- `FdSource`: a file descriptor read in order (a pipe, standard input, a FIFO, or a regular
  file read without a map), after the bytes already peeked from it; `PreadSource` reads a
  regular file from an offset with pread up to a limit (the reader's way on after a mapped
  file shrank under it).
- `Decompressed`: gzip, bzip2, xz or zstd, chosen by `compression(first_bytes)`, never by a
  name. Several gzip members, bzip2 or xz streams, or zstd frames are read to the end, one
  after the other, as zcat/bzcat/xzcat/zstdcat do (xz stream padding and NUL bytes after the
  last gzip member included). Output per call is bounded by the view, so memory stays flat
  whatever the ratio (a zstd frame is fed 8 KiB of input at a time, since its decompressor
  has no output bound: 8 KiB of RLE blocks can hold 256 MiB, the bound of one step). Data
  that is corrupt, trailing garbage, or a stream that ends early raises `CorruptStream` with
  one line saying what; the reader turns that into damage at the point the decoded bytes end.

zstd needs the `zstandard` package (the `zstd` extra); without it `Decompressed` raises
`PcapError` naming the extra. gzip, bzip2 and xz are Python's own zlib, bz2 and lzma.

- `Prefetched`: a source read ahead by a thread, a few chunks deep (memory: PREFETCH_DEPTH x
  PREFETCH_CHUNK). The decompressors release the GIL, so decompression overlaps with the
  decoding and classifying of the bytes before: a compressed capture is read about as fast
  as the slower of the two, not their sum.
"""

from __future__ import annotations

import os
import queue
import threading
import zlib
from typing import Any

from classifier.errors import PcapError

__all__ = [
    "COMPRESSION_MAGIC",
    "CorruptStream",
    "Decompressed",
    "FdSource",
    "Prefetched",
    "PreadSource",
    "Source",
    "compression",
]

# the first bytes of each format (flows.md section 1), longest first is not needed: no
# magic is a prefix of another
COMPRESSION_MAGIC = {
    "gzip": b"\x1f\x8b",
    "bzip2": b"BZh",
    "xz": b"\xfd7zXZ\x00",
    "zstd": b"\x28\xb5\x2f\xfd",
}
MAGIC_BYTES = max(len(m) for m in COMPRESSION_MAGIC.values())
INPUT_CHUNK = 1 << 20  # compressed bytes read from the file at a time
PREFETCH_CHUNK = 4 << 20  # decompressed bytes per chunk read ahead
PREFETCH_DEPTH = 3  # chunks read ahead at most
ZSTD_FEED = 8 << 10  # compressed bytes fed to zstd at a time: its output is at most 256 MiB
ZSTD_EXTRA = "pip install 'sg-classifier[zstd]'"


class CorruptStream(Exception):
    """Compressed data that cannot be decompressed further (the message says why)."""


def compression(head: bytes) -> str | None:
    """The compression format whose magic `head` starts with, or None."""
    for name, magic in COMPRESSION_MAGIC.items():
        if head.startswith(magic):
            return name
    return None


class Source:
    """The interface (and a null source): bytes in order, into a caller's buffer."""

    consumed = 0

    def readinto(self, view: memoryview) -> int:
        return 0

    def close(self) -> None:
        pass


class FdSource(Source):
    """A descriptor read in order, after `prefix` (bytes already read from it)."""

    def __init__(self, fd: int, prefix: bytes = b""):
        self.fd = fd
        self.prefix = prefix
        self.consumed = 0

    def readinto(self, view: memoryview) -> int:
        if not len(view):
            return 0
        if self.prefix:
            n = min(len(self.prefix), len(view))
            view[:n] = self.prefix[:n]
            self.prefix = self.prefix[n:]
            self.consumed += n
            return n
        n = os.readv(self.fd, [view])
        self.consumed += n
        return n


class PreadSource(Source):
    """A regular file read with pread from `offset` up to `stop` (pread never faults, even if
    the file shrank: it returns short, then nothing)."""

    def __init__(self, fd: int, offset: int, stop: int):
        self.fd = fd
        self.offset = offset
        self.stop = stop
        self.consumed = offset

    def readinto(self, view: memoryview) -> int:
        n = min(len(view), self.stop - self.offset)
        if n <= 0:
            return 0
        got = os.preadv(self.fd, [view[:n]], self.offset)
        self.offset += got
        self.consumed = self.offset
        return got


class Decompressed(Source):
    """The decompressed bytes of `raw` (a Source holding `kind` data: see the module doc)."""

    def __init__(self, raw: Source, kind: str, name: str):
        self.raw = raw
        self.kind = kind
        self.name = name
        self._zstd: Any = None
        if kind == "zstd":
            try:
                import zstandard
            except ImportError:
                raise PcapError(
                    f"{name}: a zstd-compressed capture needs the zstandard package: {ZSTD_EXTRA}"
                ) from None
            self._zstd = zstandard
        self._pending = b""  # compressed input not yet given to the decompressor
        self._zpos = 0  # zstd: how much of _pending was fed already
        self.consumed = 0
        self._out = b""  # decompressed output not yet handed out (zstd only)
        self._raw_eof = False
        self._decoder: Any = None  # the current member's / stream's / frame's decompressor
        # what the decompressors raise on corrupt data (lzma's error joins when xz is read)
        self._corrupt: tuple[type[BaseException], ...] = (zlib.error, OSError, EOFError, ValueError)
        self._done = False
        self._buf = bytearray(INPUT_CHUNK)

    def close(self) -> None:
        self.raw.close()

    # --- input ---------------------------------------------------------------------------
    def _more_input(self) -> bool:
        """Append raw bytes to the pending input; False at the end of the raw source."""
        if self._raw_eof:
            return False
        n = self.raw.readinto(memoryview(self._buf))
        if n == 0:
            self._raw_eof = True
            return False
        self._pending += bytes(self._buf[:n])
        self.consumed = self.raw.consumed
        return True

    def _new_decoder(self) -> bool:
        """Start the next member/stream/frame at the pending input, or find the end: True when
        a decoder was started, False at a clean end. Raises CorruptStream for garbage."""
        if self._zpos:
            self._pending, self._zpos = self._pending[self._zpos :], 0
        while len(self._pending) < MAGIC_BYTES and self._more_input():
            pass
        data = self._pending
        if not data:
            return False
        if self.kind in ("gzip", "xz") and not data.strip(b"\0"):
            # NULs after the last member (gzip) / stream padding (xz): read to the end
            while self._more_input():
                if self._pending.strip(b"\0"):
                    break
                self._pending = b""
            data = self._pending
            if not data.strip(b"\0"):
                if self.kind == "xz" and len(data) % 4:
                    raise CorruptStream("xz stream padding is not a multiple of 4 bytes")
                self._pending = b""
                return False
        if self.kind == "xz" and data[:1] == b"\0":
            pad = len(data) - len(data.lstrip(b"\0"))
            if pad % 4:
                raise CorruptStream("xz stream padding is not a multiple of 4 bytes")
            data = self._pending = data[pad:]
            while len(self._pending) < MAGIC_BYTES and self._more_input():
                pass
            data = self._pending
        if compression(data) != self.kind:
            raise CorruptStream(f"{len(data)} bytes after the end of the {self.kind} data are not "
                                f"{self.kind} data (trailing garbage)")  # fmt: skip
        if self.kind == "gzip":
            self._decoder = zlib.decompressobj(wbits=31)
        elif self.kind == "bzip2":
            import bz2  # bz2 and lzma only when a capture needs them (start-up time)

            self._decoder = bz2.BZ2Decompressor()
        elif self.kind == "xz":
            import lzma

            self._decoder = lzma.LZMADecompressor(format=lzma.FORMAT_XZ)
            self._corrupt = (*self._corrupt, lzma.LZMAError)
        else:
            self._decoder = self._zstd.ZstdDecompressor().decompressobj()
        return True

    # --- output --------------------------------------------------------------------------
    def readinto(self, view: memoryview) -> int:
        want = len(view)
        if want == 0 or self._done:
            return 0
        while True:
            if self._out:
                n = min(want, len(self._out))
                view[:n] = self._out[:n]
                self._out = self._out[n:]
                return n
            if self._decoder is None:
                if not self._new_decoder():
                    self._done = True
                    return 0
            out = self._step(want)
            if out:
                if len(out) <= want:
                    view[: len(out)] = out
                    return len(out)
                self._out = out  # zstd: more than asked for
                continue

    def _take_input(self) -> bytes | None:
        """The pending input (reading more when there is none); None at the raw end."""
        if self._zpos:
            self._pending, self._zpos = self._pending[self._zpos :], 0
        if not self._pending and not self._more_input():
            return None
        data, self._pending = self._pending, b""
        return data

    def _step(self, want: int) -> bytes:
        """Decompress some input (reading more when needed). Every step consumes input,
        produces output or ends the decoder; b"" is a step that produced nothing."""
        d = self._decoder
        try:
            if self.kind == "gzip":
                data = d.unconsumed_tail or self._take_input()
                out: bytes = d.decompress(data or b"", want)
                if d.eof:
                    self._pending = d.unused_data + self._pending
                    self._decoder = None
                elif data is None and not out and not d.unconsumed_tail:
                    raise CorruptStream("the gzip data ends early (a member is cut off)")
                return out
            if self.kind in ("bzip2", "xz"):
                data = self._take_input() if d.needs_input else b""
                out = d.decompress(data or b"", want)
                if d.eof:
                    self._pending = d.unused_data + self._pending
                    self._decoder = None
                elif data is None and not out:
                    raise CorruptStream(f"the {self.kind} data ends early (a stream is cut off)")
                return out
            # zstd: fed ZSTD_FEED bytes at a time from _pending[_zpos:]
            if self._zpos >= len(self._pending):
                self._pending, self._zpos = b"", 0
                if not self._more_input():
                    raise CorruptStream("the zstd data ends early (a frame is cut off)")
            data = self._pending[self._zpos : self._zpos + ZSTD_FEED]
            self._zpos += len(data)
            out = d.decompress(data)
            if d.eof:
                self._pending = d.unused_data + self._pending[self._zpos :]
                self._zpos = 0
                self._decoder = None
            return out
        except CorruptStream:
            raise
        except Exception as exc:
            if isinstance(exc, self._corrupt):
                raise CorruptStream(f"the {self.kind} data is corrupt ({exc})") from None
            if self._zstd is not None and isinstance(exc, self._zstd.ZstdError):
                raise CorruptStream(f"the zstd data is corrupt ({exc})") from None
            raise


class Prefetched(Source):
    """`source` read ahead by a daemon thread (see the module doc). Errors of the source
    (CorruptStream, OSError) come out of `readinto` in order, after the bytes before them."""

    def __init__(self, source: Source):
        self.source = source
        self.consumed = 0
        self._queue: queue.Queue[tuple[bytearray, int] | BaseException | None] = queue.Queue(
            PREFETCH_DEPTH
        )
        self._stop = threading.Event()
        self._chunk = memoryview(b"")
        self._done = False
        self._thread = threading.Thread(target=self._work, name="capture-prefetch", daemon=True)
        self._thread.start()

    def _work(self) -> None:
        try:
            while not self._stop.is_set():
                buf = bytearray(PREFETCH_CHUNK)
                n = self.source.readinto(memoryview(buf))
                if not self._put(None if n == 0 else (buf, n)) or n == 0:
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to the reading thread
            self._put(exc)

    def _put(self, item: tuple[bytearray, int] | BaseException | None) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def readinto(self, view: memoryview) -> int:
        if not len(view) or self._done:
            return 0
        if not len(self._chunk):
            item = self._queue.get()
            if item is None:
                self._done = True
                return 0
            if isinstance(item, BaseException):
                self._done = True
                raise item
            buf, n = item
            self._chunk = memoryview(buf)[:n]
        k = min(len(view), len(self._chunk))
        view[:k] = self._chunk[:k]
        self._chunk = self._chunk[k:]
        self.consumed = self.source.consumed
        return k

    def close(self) -> None:
        """Stop the thread; True unless it is stuck in a read (of a pipe) and lives on."""
        self._stop.set()
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        self._thread.join(timeout=2)
        if not self._thread.is_alive():
            self.source.close()

    @property
    def stopped(self) -> bool:
        return not self._thread.is_alive()
