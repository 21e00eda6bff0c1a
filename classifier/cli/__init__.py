"""The command-line room: `sgclassify`, argument parsing and printing only.

One module per command (`validate`, `check`, `packets`, `classify`, `diff`, `lint`,
`exposure`, `completion`, `manpage`), each with `add_parser` and `run`; `main` assembles the
parser and turns every `ClassifierError` into one line and an exit code. May import every
other room; nothing imports this but `classifier.__main__` and the `sgclassify` script.

`main` here is the entry point: it imports the command modules itself, so a Ctrl-C while
they load (start-up) is the same one line and exit code 130 as a Ctrl-C later, never a
traceback.
"""

from __future__ import annotations

import signal
import sys
from typing import Any


def _quit_at_start_up(number: int, frame: Any) -> None:
    """Ctrl-C while this module loads: one line and exit 130 (SystemExit prints nothing)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    print("interrupted", file=sys.stderr)
    raise SystemExit(130)


try:  # restored at the end of this module: importing it changes no handler for good
    _PREVIOUS_HANDLER: Any = signal.signal(signal.SIGINT, _quit_at_start_up)
except ValueError:  # not the main thread
    _PREVIOUS_HANDLER = None

from collections.abc import Sequence  # noqa: E402
from typing import TYPE_CHECKING, TextIO  # noqa: E402

if TYPE_CHECKING:
    import argparse

EXIT_INTERRUPTED = 130


def main(
    argv: Sequence[str] | None = None, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    """Run `sgclassify` with `argv` (default: the command line); returns the exit code."""
    try:
        from classifier.cli.main import main as run
    except KeyboardInterrupt:
        print("interrupted", file=err or sys.stderr)
        return EXIT_INTERRUPTED
    return run(argv, out, err)


def build_parser() -> argparse.ArgumentParser:
    from classifier.cli.main import build_parser as build

    return build()


__all__ = ["build_parser", "main"]

if _PREVIOUS_HANDLER is not None:
    signal.signal(signal.SIGINT, _PREVIOUS_HANDLER)
