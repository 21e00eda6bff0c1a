"""Run one fuzz target under atheris (libFuzzer, coverage-guided over the Python code).

    python -m tests.fuzz TARGET [--seconds S | --runs N] [--jobs-dir DIR] [libFuzzer flags]
    python -m tests.fuzz TARGET --replay FILE...     # run inputs once each, no fuzzing

TARGET is one of tests/fuzz/targets.py's TARGETS. The classifier package is imported under
atheris's instrumentation, so coverage guides the fuzzer through the facade, the stream
readers, the pure twins (the pcap-twins and differential targets run the twin of every C
kernel: the same branches), the policy syntax and the loader; the compiled modules run beside
them (a CLASSIFIER_DEBUG=1 build asserts every load of packet bytes; see `make fuzz`).

Corpus directories, in libFuzzer's order: DIR/TARGET/corpus (written: new inputs go there),
then the seeds read in place, never copied: written edge cases (tests/fuzz/seeds.py, put in
DIR/TARGET/seeds), the bundled samples and ../shared/pcaps/dev for the capture targets, the
examples and tests/policies for the policy target. A crash is written to DIR/TARGET/crash-*;
keep it as tests/fuzz/regressions/TARGET/NAME (the test suite replays every one).
libFuzzer's last lines ("Done N runs in S second(s)") give the executions run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import atheris

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # after a debug/sanitizer build first on the path, if any
    sys.path.append(str(ROOT))

# The pure twins load when a kernel is first called (classifier._twins), after this block
# would have ended: imported in it, they are instrumented too, and their branches (the C
# kernels' own, written again) guide the fuzzer.
with atheris.instrument_imports(include=["classifier"]):
    import classifier.acl._lookup_py  # noqa: F401
    import classifier.engine  # noqa: F401
    import classifier.engine._conntrack_py  # noqa: F401
    import classifier.engine._engine_py  # noqa: F401
    import classifier.engine._fused_py  # noqa: F401
    import classifier.pcap  # noqa: F401
    import classifier.pcap._pcap_py  # noqa: F401
    import classifier.pcap.dump  # noqa: F401
    import classifier.policy  # noqa: F401

from tests.fuzz import seeds, targets  # noqa: E402

CAPTURE_SEEDS = (ROOT / "pcaps", ROOT.parent / "shared" / "pcaps" / "dev")
POLICY_SEEDS = (ROOT / "examples", ROOT / "tests" / "policies" / "broken")


def corpus_dirs(target: str, work: Path) -> list[str]:
    corpus = work / target / "corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    written = work / target / "seeds"
    written.mkdir(parents=True, exist_ok=True)
    inputs = seeds.policy_seeds() if target == "policy" else seeds.capture_seeds()
    for k, data in enumerate(inputs):
        (written / f"seed-{k:03d}").write_bytes(data)
    extra = POLICY_SEEDS if target == "policy" else CAPTURE_SEEDS
    return [str(corpus), str(written), *(str(p) for p in extra if p.is_dir())]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("target", choices=sorted(targets.TARGETS))
    ap.add_argument("--seconds", type=int, help="libFuzzer -max_total_time")
    ap.add_argument("--runs", type=int, help="libFuzzer -runs")
    ap.add_argument("--jobs-dir", default=str(ROOT / "build" / "fuzz"))
    ap.add_argument(
        "--timeout",
        type=int,
        default=60,
        help="seconds one input may take before it counts as a hang (wall time: a niced run "
        "on a busy machine can stall for many seconds; every input here takes milliseconds)",
    )
    ap.add_argument("--replay", nargs="+", metavar="FILE", help="run these inputs once each")
    args, rest = ap.parse_known_args()
    targets.prepare()
    fn = targets.TARGETS[args.target]
    if args.replay:
        for name in args.replay:
            fn(Path(name).read_bytes())
        print(f"{len(args.replay)} inputs replayed: no failure")
        return
    work = Path(args.jobs_dir)
    flags = [
        f"-max_len={targets.MAX_LEN[args.target]}",
        f"-artifact_prefix={work / args.target}/",
        f"-timeout={args.timeout}",
        "-rss_limit_mb=2048",
        "-print_final_stats=1",
    ]
    if args.seconds is not None:
        flags.append(f"-max_total_time={args.seconds}")
    if args.runs is not None:
        flags.append(f"-runs={args.runs}")
    argv = [sys.argv[0], *flags, *rest, *corpus_dirs(args.target, work)]
    atheris.Setup(argv, fn)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
