"""The environment of programs that are not this project's (groff, zsh, bash, tshark, tcpdump,
chromedriver and Chromium) when the tests run on the sanitizer build.

`make test-sanitize` preloads ASan and UBSan into the test process (Python is not
instrumented, the extensions are), and subprocesses inherit that: what runs this project's
code needs it, a foreign program does not and may not survive it (Chromium's driver cannot
map ASan's shadow memory; Debian's troff frees with `delete[]` what it got from `malloc`, which
ASan reports and aborts on). Outside that build the environment is passed on unchanged.
"""

from __future__ import annotations

import os

SANITIZER_VARIABLES = ("LD_PRELOAD", "ASAN_OPTIONS", "UBSAN_OPTIONS")


def foreign_env() -> dict[str, str]:
    """os.environ, without the sanitizer runtimes when the suite runs on the sanitizer build."""
    if not os.environ.get("CLASSIFIER_EXPECT_SANITIZERS"):
        return dict(os.environ)
    return {k: v for k, v in os.environ.items() if k not in SANITIZER_VARIABLES}
