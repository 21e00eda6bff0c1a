"""Write the ClassBench-format sample bundled with the package (`classifier/acl/data/`).

    python examples/make_classbench_sample.py [OUTDIR]

`sample_rules` holds 500 filters in ClassBench's format (source and destination prefixes,
port ranges, protocol/mask, flags), shaped like an ACL set: a few hundred address blocks,
well-known and ephemeral ports, TCP-heavy, a catch-all last; `sample_trace` 5,000 packets, most
drawn inside a filter (so that first-match order matters), the rest anywhere. Fixed seed: every
run writes the same bytes. Made here, from nothing but `random`, so the package can carry it;
the field's standard sets (`../shared/classbench`) are for the tests and benchmarks.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

RULES, PACKETS = 500, 5000
WELL_KNOWN = [(22, 22), (25, 25), (53, 53), (80, 80), (443, 443), (1024, 65535), (0, 65535)]


def _ip(value: int) -> str:
    return ".".join(str((value >> s) & 255) for s in (24, 16, 8, 0))


def rules(
    rng: random.Random,
) -> list[tuple[int, int, int, int, tuple[int, int], tuple[int, int], int]]:
    blocks = [rng.getrandbits(32) for _ in range(60)]
    out = []
    for _ in range(RULES - 1):
        src_len = rng.choice((0, 8, 16, 24, 24, 32))
        dst_len = rng.choice((16, 24, 28, 32, 32))
        src = rng.choice(blocks) & (~((1 << (32 - src_len)) - 1) & 0xFFFFFFFF)
        dst = rng.choice(blocks) ^ rng.getrandbits(8)
        dst &= ~((1 << (32 - dst_len)) - 1) & 0xFFFFFFFF
        sport = (0, 65535) if rng.random() < 0.9 else rng.choice(WELL_KNOWN)
        dport = rng.choice(WELL_KNOWN)
        if rng.random() < 0.2:
            lo = rng.randrange(1024, 60000)
            dport = (lo, lo + rng.randrange(0, 2000))
        proto = rng.choice((6, 6, 6, 17, 17, 1, 0))
        out.append((src, src_len, dst, dst_len, sport, dport, proto))
    out.append((0, 0, 0, 0, (0, 65535), (0, 65535), 0))  # the catch-all
    return out


def main(argv: list[str]) -> int:
    folder = (
        Path(argv[1])
        if len(argv) > 1
        else Path(__file__).resolve().parents[1] / "classifier" / "acl" / "data"
    )
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(20261201)
    table = rules(rng)
    lines = []
    for src, src_len, dst, dst_len, sport, dport, proto in table:
        mask = "0xFF" if proto else "0x00"
        lines.append(
            f"@{_ip(src)}/{src_len}\t{_ip(dst)}/{dst_len}\t{sport[0]} : {sport[1]}\t"
            f"{dport[0]} : {dport[1]}\t0x{proto:02X}/{mask}\t0x0000/0x0000\t"
        )
    (folder / "sample_rules").write_text("\n".join(lines) + "\n")
    trace = []
    for _ in range(PACKETS):
        if rng.random() < 0.8:
            src, src_len, dst, dst_len, sport, dport, proto = rng.choice(table)
            s = src | (rng.getrandbits(32 - src_len) if src_len < 32 else 0)
            d = dst | (rng.getrandbits(32 - dst_len) if dst_len < 32 else 0)
            sp, dp = rng.randint(*sport), rng.randint(*dport)
            p = proto or rng.choice((6, 17, 1))
        else:
            s, d = rng.getrandbits(32), rng.getrandbits(32)
            sp, dp, p = rng.randrange(65536), rng.randrange(65536), rng.choice((6, 17, 1))
        trace.append(f"{s}\t{d}\t{sp}\t{dp}\t{p}")
    (folder / "sample_trace").write_text("\n".join(trace) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
