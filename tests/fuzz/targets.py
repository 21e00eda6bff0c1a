"""The fuzz targets: one function per target, bytes in, an exception out only for a bug.

- `pcap`: the compiled reader core on the raw bytes (batch sizes 1, 3 and 64 by the input's
  length), the column contract checked on every row; then the facade three ways on the
  same bytes: the memory map, a gzip stream through a tiny stream buffer (256 bytes, blocks
  above 1 KiB read through: every STOP_MORE and big-block path), and the pure twin's stream.
  All three must give the same rows, warnings and damage offset, and only `PcapError` (one
  line naming the file) may come out.
- `pcap-twins`: the compiled `Decoder` and the pure `_pcap_py.Decoder` on the same bytes
  give the same columns and stop codes; `decode_into` of the input as one frame of a link
  type chosen by its first byte gives the same row on both.
- `policy`: `classifier.policy.syntax.parse` + `load_policy_data` on the bytes as a YAML or
  JSON file: a `Policy` or a `PolicyError` whose problems are one line each, nothing else.
- `differential`: the bytes as a capture, classified by the compiled engine and by the pure
  twins (stateful, the example policy): the same per-packet columns and the same summary;
  and conservation: `packets` reads the same number of records as `classify`, whose
  verdicts add up to its packets.

Each function is self-checking and keeps no state between inputs except files it rewrites.
"""

from __future__ import annotations

import gzip
import io
import os
import tempfile
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from classifier.codes import STOP_DAMAGED, STOP_EOF, STOP_GROW_IFACES
from classifier.errors import PcapError, PolicyError
from classifier.packets import COLUMNS, PacketBatch
from classifier.pcap import Capture, _pcap_py, open_capture
from classifier.pcap.kernels import reader_kernels

ROOT = Path(__file__).resolve().parents[2]
POLICY = ROOT / "examples" / "web-db.yaml"
LINKTYPES = (0, 1, 9, 12, 14, 50, 51, 101, 104, 105, 108, 113, 127, 228, 229, 276, 147)
_WORK = Path(tempfile.mkdtemp(prefix="sg-fuzz-"))
PURE_FACADE_BYTES = 2048  # the pcap target reads inputs up to this size with the pure twin too


@contextmanager
def twins(pure: bool) -> Iterator[None]:
    """Every kernel call in the block goes to the pure twins (pure=True) or the compiled."""
    old = os.environ.get("CLASSIFIER_NO_EXTENSIONS")
    if pure:
        os.environ["CLASSIFIER_NO_EXTENSIONS"] = "1"
    else:
        os.environ.pop("CLASSIFIER_NO_EXTENSIONS", None)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("CLASSIFIER_NO_EXTENSIONS", None)
        else:
            os.environ["CLASSIFIER_NO_EXTENSIONS"] = old


def _write(name: str, data: bytes) -> Path:
    path = _WORK / name
    path.write_bytes(data)
    return path


# --- the reader core -----------------------------------------------------------------------


def core_columns(core: Any, data: bytes, batch_size: int) -> tuple[list[PacketBatch], int]:
    """Every row the core reads from `data` as one mapped buffer; fails on a broken invariant
    or a read that does not end."""
    dec = core.Decoder()
    if dec.begin(data) != 0:
        return [], -1
    out: list[PacketBatch] = []
    stop = 0
    for _ in range(len(data) + 10):
        batch = PacketBatch.zeros(batch_size)
        stop, row = dec.run(data, batch, 0, dec.pos + 4096)
        while stop == STOP_GROW_IFACES:
            dec.grow_interfaces()
            stop, row = dec.run(data, batch, row, dec.pos + 4096)
        if row:
            out.append(batch.slice(0, row))
        if stop in (STOP_EOF, STOP_DAMAGED):
            break
    else:
        raise AssertionError("the read did not terminate")
    check_columns(out, len(data))
    return out, stop


def check_columns(batches: list[PacketBatch], size: int) -> None:
    """The column contract of classifier.packets on every row read."""
    if not batches:
        return
    b = PacketBatch.concatenate(batches)
    n = len(b)
    assert np.array_equal(b.index, np.arange(n)), "index"
    assert (b.cap_len <= b.wire_len).all() and (b.cap_len <= 262144).all(), "lengths"
    assert int(b.cap_len.sum()) <= size, "more captured bytes than the file has"
    assert (b.status <= 3).all() and (b.malformed_reason <= 8).all(), "status"
    assert ((b.status == 2) == (b.malformed_reason != 0)).all(), "reason"
    assert np.isin(b.ip_version, (0, 4, 6)).all(), "ip_version"
    assert ((b.ip_version != 0) == np.isin(b.status, (0, 3))).all(), "ip_version vs status"
    assert (b.fragment <= 2).all() and (b.l4 < 128).all(), "fragment/l4"
    assert ((b.l4 & 1) == 0)[b.fragment == 2].all(), "ports on a later fragment"


def same(a: list[PacketBatch], b: list[PacketBatch]) -> bool:
    x = PacketBatch.concatenate(a) if a else PacketBatch.zeros(0)
    y = PacketBatch.concatenate(b) if b else PacketBatch.zeros(0)
    return len(x) == len(y) and all(np.array_equal(getattr(x, c), getattr(y, c)) for c in COLUMNS)


# --- the facade ------------------------------------------------------------------------------


def facade(path: Path, batch_size: int) -> tuple[Any, ...]:
    """(rows as one batch, warnings without the path, damage offset, records) or the error."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            with open_capture(path) as cap:
                batches = []
                for batch in cap.batches(batch_size):
                    assert 0 < len(batch) <= batch_size
                    batches.append(batch)
                assert cap.records == sum(len(b) for b in batches)
                assert cap.damaged == (cap.damage_offset is not None)
                assert len(cap.warnings) <= 2  # damage/shrink once, snap length once
                for message in cap.warnings:
                    assert "\n" not in message and message.startswith(f"{path}: ")
                rows = PacketBatch.concatenate(batches) if batches else PacketBatch.zeros(0)
                return (
                    tuple(getattr(rows, c).tobytes() for c in COLUMNS),
                    tuple(m.split(": ", 1)[1] for m in cap.warnings),
                    cap.damage_offset,
                )
        except PcapError as exc:
            message = str(exc)
            assert "\n" not in message and message.startswith(f"{path}: "), message
            return ("error", message.split(": ", 1)[1].replace("gzip-compressed: ", ""))


def pcap_target(data: bytes) -> None:
    batch_size = (1, 3, 64)[len(data) % 3]
    if reader_kernels.GUARDED:  # the compiled core is there
        from classifier.pcap import _pcap

        core_columns(_pcap, data, batch_size)
    mapped = facade(_write("capture.pcap", data), batch_size)
    packed = facade(_write("capture.pcap.gz", gzip.compress(data, 1)), batch_size)
    if mapped[0] == "error":
        assert packed[0] == "error", (mapped, packed)
    else:
        assert packed == mapped, (packed[1:], mapped[1:])
    if len(data) <= PURE_FACADE_BYTES:
        with twins(pure=True):
            pure = facade(_write("capture.pcap", data), batch_size)
        assert pure == mapped, (pure[1:], mapped[1:])


def pcap_twins_target(data: bytes) -> None:
    from classifier.pcap import _pcap

    batch_size = (1, 3, 64)[len(data) % 3]
    ours, stop = core_columns(_pcap, data, batch_size)
    theirs, stop_twin = core_columns(_pcap_py, data, batch_size)
    assert stop == stop_twin and same(ours, theirs), "the reader twins differ"
    if data:
        link = LINKTYPES[data[0] % len(LINKTYPES)]
        a, b = PacketBatch.zeros(1), PacketBatch.zeros(1)
        done_a = _pcap.decode_into(a, 0, data[1:], link)
        done_b = _pcap_py.decode_into(b, 0, data[1:], link)
        assert done_a == done_b and same([a], [b]), f"decode_into differs (link {link})"


# --- the policy loader ---------------------------------------------------------------------


def policy_target(data: bytes) -> None:
    from classifier.policy.loader import load_policy_data
    from classifier.policy.syntax import parse

    suffix = ".json" if data[:1] in (b"{", b"[") and len(data) % 2 else ".yaml"
    try:
        load_policy_data(parse(data, "fuzz" + suffix, suffix), "fuzz" + suffix)
    except PolicyError as exc:
        assert exc.problems, "a PolicyError without problems"
        for line in str(exc).splitlines():
            assert line.startswith("fuzz"), line


# --- compiled engine against the pure twins ------------------------------------------------


_ENGINE: Any = None


def _engine() -> Any:
    global _ENGINE
    if _ENGINE is None:
        from classifier.engine import Engine
        from classifier.policy import load_policy

        _ENGINE = Engine(load_policy(POLICY))
    return _ENGINE


def _classify(path: Path, pure: bool) -> tuple[Any, ...]:
    from classifier.engine import classify_pcap

    with twins(pure), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            result = classify_pcap(_engine(), str(path), stateful=True, batch_size=61)
        except PcapError as exc:
            return ("error", str(exc))
    columns = tuple(result.columns[name].tobytes() for name in sorted(result.columns))
    summary = result.summary
    packets = int(summary["packets"])
    assert sum(summary["verdicts"].values()) == packets == len(result.columns["index"])
    return columns, repr(summary), packets


def differential_target(data: bytes) -> None:
    from classifier.pcap.dump import dump_packets

    path = _write("differential.pcap", data)
    compiled = _classify(path, pure=False)
    pure = _classify(path, pure=True)
    assert compiled == pure, "the compiled engine and the pure twins disagree"
    out = io.StringIO()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dumped = dump_packets([path], out).records
    except PcapError:
        assert compiled[0] == "error", "packets refused a file classify read"
        return
    assert compiled[0] != "error", "classify refused a file packets read"
    assert dumped == out.getvalue().count("\n") - 1 == compiled[2], "conservation"


TARGETS: dict[str, Callable[[bytes], None]] = {
    "pcap": pcap_target,
    "pcap-twins": pcap_twins_target,
    "policy": policy_target,
    "differential": differential_target,
}
# libFuzzer's -max_len per target: small inputs keep the pure twins' share fast
MAX_LEN = {"pcap": 16384, "pcap-twins": 4096, "policy": 8192, "differential": 4096}


def prepare() -> None:
    """Process-wide settings of the fuzz targets: tiny stream buffers (every refill path)."""
    Capture.stream_buffer = 256
    Capture.stream_max_block = 1024
