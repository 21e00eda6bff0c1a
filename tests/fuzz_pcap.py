"""Mutation fuzzer for the capture reader (a plain-Python stand-in for atheris).

    python tests/fuzz_pcap.py --seconds 600 --build-debug [--seed N] [--out DIR]
    python tests/fuzz_pcap.py --seconds 600 --ext BUILD_DIR     # an existing debug build

Seeds: small shared dev captures (when ../shared is present) and hand-built files covering
every native link type, pcap byte orders and units, pcapng sections/IDBs/SPB/PB/custom blocks.
Each round mutates a seed (bit flips, interesting integers in length fields, truncation,
insertion, deletion, splicing two seeds) and drives the extension directly on the bytes:
`Decoder.begin` + `Decoder.run` into small batches, plus `decode_into` on raw frames of every
link type. Checked on every input: no crash (a DEBUG build, CLASSIFIER_DEBUG=1, asserts every
load of packet bytes, so an out-of-bounds read aborts), the read terminates, rows obey the
column contract; on a share of the inputs the pure-Python twin must produce the same columns.

`--build-debug` compiles the debug build first (from a copy of the sources, into
build/fuzz-debug, so the generated C next to the real .pyx is left alone); `--ext DIR` loads
`classifier/pcap/_pcap*.so` from DIR instead of the installed one. Before each input is run
it is written to OUT/current.bin, so the input of a crash (an abort kills the process) is on
disk; a mismatch is saved as OUT/mismatch-<n>.bin.
"""

from __future__ import annotations

import argparse
import glob
import importlib.util
import os
import random
import shutil
import struct
import subprocess
import sys
import time
import warnings
from pathlib import Path
from types import ModuleType

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from classifier import pcap  # noqa: E402
from classifier.errors import PcapError  # noqa: E402
from classifier.packets import COLUMNS, PacketBatch  # noqa: E402
from classifier.pcap import _pcap_py  # noqa: E402

DEV = ROOT.parent / "shared" / "pcaps" / "dev"
LINKTYPES = (0, 1, 9, 12, 14, 50, 51, 101, 104, 105, 108, 113, 127, 228, 229, 276, 147)
INTERESTING32 = (
    0,
    1,
    3,
    4,
    11,
    12,
    16,
    20,
    28,
    0x7F,
    0x80,
    0xFF,
    0x100,
    0xFFFF,
    0x10000,
    262143,
    262144,
    262145,
    0x7FFFFFFF,
    0x80000000,
    0xFFFFFFFE,
    0xFFFFFFFF,
)


def build_debug(dest: Path) -> Path:
    """Compile classifier/_pcap with CLASSIFIER_DEBUG=1 from a copy of the sources; returns
    the directory to pass as --ext."""
    src = dest / "src"
    shutil.rmtree(src, ignore_errors=True)
    (src / "classifier" / "pcap").mkdir(parents=True)
    shutil.copy(ROOT / "setup.py", src)
    for name in ("__init__.py", "_codes.pxd"):
        (src / "classifier" / name).write_bytes((ROOT / "classifier" / name).read_bytes())
    (src / "classifier" / "pcap" / "__init__.py").write_text("")
    for name in ("_pcap.pyx", "pcap_core.h", "pcap_guard.h", "pcap_layout.h"):
        shutil.copy(ROOT / "classifier" / "pcap" / name, src / "classifier" / "pcap")
    shutil.copytree(ROOT / "classifier" / "csrc", src / "classifier" / "csrc")
    lib = dest / "lib"
    env = dict(os.environ, CLASSIFIER_DEBUG="1", CLASSIFIER_ONLY="_pcap")
    proc = subprocess.run(
        [sys.executable, "setup.py", "-q", "build_ext", "--build-lib", str(lib),
         "--build-temp", str(dest / "tmp")],
        cwd=src, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        raise SystemExit(f"debug build failed:\n{proc.stderr[-3000:]}")
    return lib


def load_core(ext_dir: str | None) -> ModuleType:
    if not ext_dir:
        from classifier.pcap import _pcap

        return _pcap
    paths = glob.glob(os.path.join(ext_dir, "classifier", "pcap", "_pcap*.so"))
    if not paths:
        raise SystemExit(f"no classifier/pcap/_pcap*.so under {ext_dir}")
    spec = importlib.util.spec_from_file_location("classifier.pcap._pcap", paths[0])
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules["classifier.pcap._pcap"] = module  # the facade (classifier.pcap) uses it too
    return module


# --- seeds -------------------------------------------------------------------------------------


def _frames() -> list[tuple[int, bytes]]:
    """(link type, frame) pairs: one or two per native link type, with tags and ICMP errors."""
    mac = b"\x02" * 12
    ip4 = bytes.fromhex("45000028000140004006000a0a0000010a000002") + bytes.fromhex(
        "04d2005000000001000000005002ffff00000000"
    )
    ip6 = (
        bytes.fromhex("6000000000143a40")
        + b"\x20\x01\x0d\xb8"
        + b"\0" * 11
        + b"\x01"
        + b"\x20\x01\x0d\xb8"
        + b"\0" * 11
        + b"\x02"
        + bytes.fromhex("8000000000070001")
        + b"\0" * 12
    )
    quoted = bytes.fromhex("4500001c00010000401100000a0000020a0000090fa0003500080000")
    icmp_err = bytes.fromhex("4500003800010000400100000a0000010a0000020303000000000000") + quoted
    hbh_frag = (
        bytes.fromhex("6000000000180040")
        + b"\0" * 32
        + bytes.fromhex("2c000000000000001100000100000005")
        + bytes.fromhex("0001000200080000")
    )
    return [
        (1, mac + b"\x08\x00" + ip4),
        (1, mac + b"\x86\xdd" + ip6),
        (1, mac + b"\x88\xa8\x00\x01\x81\x00\x00\x02\x08\x00" + icmp_err),
        (1, mac + b"\x88\x47\x00\x01\x00\x40\x00\x02\x01\x40" + ip4),
        (1, mac + b"\x86\xdd" + hbh_frag),
        (113, b"\x00\x00\x00\x01\x00\x06" + b"\x02" * 8 + b"\x08\x00" + ip4),
        (276, b"\x86\xdd\x00\x00" + b"\0\0\0\2\0\1\0\6" + b"\x02" * 8 + ip6),
        (101, ip4),
        (12, ip6),
        (14, icmp_err),
        (228, ip4),
        (229, hbh_frag),
        (0, struct.pack("<I", 2) + ip4),
        (0, struct.pack(">I", 30) + ip6),
        (108, struct.pack(">I", 24) + ip6),
        # PPP (framed, compressed protocol field), Cisco HDLC, PPPoE, LLC/SNAP, 802.11
        (9, b"\xff\x03\x00\x21" + ip4),
        (9, b"\x57" + ip6),
        (50, b"\x8f\x00\x08\x00" + icmp_err),
        (104, b"\x0f\x00\x86\xdd" + hbh_frag),
        (51, b"\x11\x00\x00\x07\x00\x2a\x00\x21" + ip4),
        (1, mac + b"\x88\x64\x11\x00\x00\x07\x00\x3e\x00\x57" + ip6),
        (1, mac + b"\x00\x30\xaa\xaa\x03\x00\x00\x00\x08\x00" + ip4),
        (
            105,
            b"\x88\x03" + b"\x02" * 26 + b"\x00\x00\x00\x00\xaa\xaa\x03\x00\x00\x00\x86\xdd" + ip6,
        ),
        (
            127,
            b"\x00\x00\x12\x00\x03\x00\x00\x00"
            + b"\x00" * 8
            + b"\x20\x00"
            + b"\x88\x00"
            + b"\x02" * 22
            + b"\x00\x00\x00\x00\xaa\xaa\x03\x00\x00\x00\x08\x00"
            + ip4,
        ),
    ]


def _pcap(records: list[tuple[int, bytes]], link: int, be: bool, nsec: bool) -> bytes:
    e = ">" if be else "<"
    out = struct.pack(e + "IHHiIII", 0xA1B23C4D if nsec else 0xA1B2C3D4, 2, 4, 0, 0, 96, link)
    for k, (_, frame) in enumerate(records):
        out += struct.pack(e + "IIII", k, k * 7, len(frame), len(frame) + k % 3) + frame
    return out


def _block(btype: int, body: bytes, e: str) -> bytes:
    body += b"\0" * (-len(body) % 4)
    return (
        struct.pack(e + "II", btype, len(body) + 12) + body + struct.pack(e + "I", len(body) + 12)
    )


def _pcapng(frames: list[tuple[int, bytes]], be: bool) -> bytes:
    e = ">" if be else "<"
    out = _block(0x0A0D0D0A, struct.pack(e + "IHHq", 0x1A2B3C4D, 1, 0, -1), e)
    links = sorted({link for link, _ in frames})
    for k, link in enumerate(links):
        opts = struct.pack(e + "HH", 9, 1) + bytes([9 if k % 2 else 0x8A]) + b"\0\0\0"
        opts += struct.pack(e + "HHq", 14, 8, k) + struct.pack(e + "HH", 0, 0)
        out += _block(1, struct.pack(e + "HHI", link, 0, 0 if k else 64) + opts, e)
    for k, (link, frame) in enumerate(frames):
        iface = links.index(link)
        kind = k % 4
        if kind == 0 and iface == 0:  # interface 0 has snaplen 64: the SPB holds that much
            out += _block(3, struct.pack(e + "I", len(frame)) + frame[:64], e)
        elif kind == 1:
            out += _block(
                2, struct.pack(e + "HHIIII", iface, 0, 0, k, len(frame), len(frame)) + frame, e
            )
        elif kind == 2:
            out += _block(0x40000BAD, b"custom", e)
            out += _block(
                6, struct.pack(e + "IIIII", iface, 1, k, len(frame), len(frame)) + frame, e
            )
        else:
            out += _block(
                6, struct.pack(e + "IIIII", iface, 1, k, len(frame), len(frame) + 4) + frame, e
            )
    return out


def seeds() -> list[bytes]:
    frames = _frames()
    out: list[bytes] = []
    by_link: dict[int, list[tuple[int, bytes]]] = {}
    for link, frame in frames:
        by_link.setdefault(link, []).append((link, frame))
    for link, group in by_link.items():
        out.append(_pcap(group, link, be=link % 2 == 0, nsec=link > 100))
    out.append(_pcapng(frames, be=False))
    out.append(_pcapng(frames[:6], be=True) + _pcapng(frames[6:], be=False))
    if DEV.is_dir():
        for path in sorted(DEV.iterdir()):
            if path.stat().st_size <= 12_000:
                out.append(path.read_bytes())
    return out


# --- mutation ------------------------------------------------------------------------------------


def mutate(rng: random.Random, data: bytes, pool: list[bytes]) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 6)):
        op = rng.randrange(8)
        n = len(buf)
        if op == 0 and n:
            i = rng.randrange(n)
            buf[i] ^= 1 << rng.randrange(8)
        elif op == 1 and n:
            buf[rng.randrange(n)] = rng.choice((0, 1, 0x7F, 0x80, 0xFF, 0x40, 0x60, 0x45))
        elif op == 2 and n >= 4:
            i = rng.randrange(n - 3)
            buf[i : i + 4] = struct.pack(rng.choice("<>") + "I", rng.choice(INTERESTING32))
        elif op == 3 and n:
            del buf[rng.randrange(n) :]
        elif op == 4:
            i = rng.randint(0, n)
            buf[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
        elif op == 5 and n > 1:
            i = rng.randrange(n)
            del buf[i : i + rng.randint(1, 16)]
        elif op == 6:
            other = rng.choice(pool)
            if other:
                i = rng.randrange(len(other))
                buf += other[i : i + rng.randint(1, 256)]
        elif op == 7 and n >= 2:
            i = rng.randrange(n - 1)
            buf[i : i + 2] = struct.pack(
                "!H", rng.choice((0x0800, 0x86DD, 0x8100, 0x88A8, 0x8847, 0, 0xFFFF, 44, 0x2C00))
            )
    return bytes(buf)


# --- one input -----------------------------------------------------------------------------------


def read_columns(core: ModuleType, data: bytes, batch_size: int) -> tuple[list[PacketBatch], int]:
    """Every row the core reads from `data`; fails on a broken invariant."""
    dec = core.Decoder()
    buf = data
    if dec.begin(buf) != 0:
        return [], -1
    out: list[PacketBatch] = []
    stop = 0
    for _ in range(len(data) + 10):
        batch = PacketBatch.zeros(batch_size)
        stop, row = dec.run(buf, batch, 0, dec.pos + 4096)
        while stop == 4:  # interface table full
            dec.grow_interfaces()
            stop, row = dec.run(buf, batch, row, dec.pos + 4096)
        if row:
            out.append(batch.slice(0, row))
        if stop in (1, 3):
            break
    else:
        raise AssertionError("the read did not terminate")
    check(out, len(data))
    return out, stop


def check(batches: list[PacketBatch], size: int) -> None:
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
    if len(a) != len(b):
        return False
    return all(
        np.array_equal(getattr(x, c), getattr(y, c))
        for x, y in zip(a, b, strict=True)
        for c in COLUMNS
    )


def fuzz_frames(
    core: ModuleType, rng: random.Random, frames: list[tuple[int, bytes]], pool: list[bytes]
) -> None:
    link, frame = rng.choice(frames)
    data = mutate(rng, frame, pool)
    link = rng.choice((link, link, rng.choice(LINKTYPES)))
    a, b = PacketBatch.zeros(1), PacketBatch.zeros(1)
    done_a = core.decode_into(a, 0, data, link)
    done_b = _pcap_py.decode_into(b, 0, data, link)
    assert done_a == done_b and same([a], [b]), f"decode_into differs (link {link})"


def through_facade(path: Path, data: bytes) -> None:
    """The Python facade on the same bytes: only PcapError may come out, never a traceback."""
    path.write_bytes(data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", pcap.CaptureWarning)
        try:
            with pcap.open_capture(path) as cap:
                rows = 0
                for batch in cap.batches(5):
                    assert 0 < len(batch) <= 5
                    rows += len(batch)
                assert cap.records == rows and cap.damaged == (cap.damage_offset is not None)
        except PcapError as exc:
            assert "\n" not in str(exc) and str(path) in str(exc)


def run(seconds: float, seed: int, out_dir: Path, core: ModuleType, twin_every: int) -> int:
    rng = random.Random(seed)
    pool = seeds()
    frames = _frames()
    out_dir.mkdir(parents=True, exist_ok=True)
    current = out_dir / "current.bin"
    deadline = time.monotonic() + seconds
    count = mismatches = 0
    while time.monotonic() < deadline:
        data = mutate(rng, rng.choice(pool), pool)
        current.write_bytes(data)
        batch_size = rng.choice((1, 3, 64))
        ours, stop = read_columns(core, data, batch_size)
        if count % twin_every == 0:
            theirs, stop_twin = read_columns(_pcap_py, data, batch_size)
            if stop != stop_twin or not same(ours, theirs):
                mismatches += 1
                (out_dir / f"mismatch-{mismatches}.bin").write_bytes(data)
            fuzz_frames(core, rng, frames, pool)
        if count % (4 * twin_every) == 0:
            through_facade(out_dir / "facade.pcap", data)
        if stop in (0, 1, 2) and len(pool) < 400 and rng.random() < 0.02:
            pool.append(data)  # a readable mutant becomes a seed: deeper inputs
        count += 1
    current.unlink(missing_ok=True)
    (out_dir / "facade.pcap").unlink(missing_ok=True)
    print(f"{count} inputs, {mismatches} twin mismatches, debug build: {core.DEBUG_BUILD}")
    return 1 if mismatches else 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=600)
    ap.add_argument("--seed", type=int, default=int(time.time()))
    ap.add_argument(
        "--ext",
        default=os.environ.get("CLASSIFIER_FUZZ_EXT"),
        help="directory holding a (debug) build of classifier/_pcap*.so",
    )
    ap.add_argument(
        "--build-debug",
        action="store_true",
        help="compile the CLASSIFIER_DEBUG=1 extension first (into build/fuzz-debug)",
    )
    ap.add_argument("--out", default=str(ROOT / "build" / "fuzz-pcap"))
    ap.add_argument("--twin-every", type=int, default=4)
    ap.add_argument("--require-debug", action="store_true")
    args = ap.parse_args(argv)
    if args.build_debug:
        args.ext = str(build_debug(ROOT / "build" / "fuzz-debug"))
        args.require_debug = True
    core = load_core(args.ext)
    if args.require_debug and not core.DEBUG_BUILD:
        raise SystemExit("the extension is not a CLASSIFIER_DEBUG=1 build")
    print(f"seed {args.seed}")
    return run(args.seconds, args.seed, Path(args.out), core, args.twin_every)


if __name__ == "__main__":
    sys.exit(main())
