"""What every command shares: exit codes, the parser class, argument types.

A command module (`validate`, `check`, `packets`, `classify`, ...) defines `add_parser(commands)`
and `run(args, out, err) -> int`; `classifier.cli.main` assembles them. Errors are raised as
`ClassifierError`s; `main` prints them as one line each and returns the exit code. A command
module imports its heavy parts (numpy, the engine) inside `run`: building the parser imports
every command module and must stay cheap.
"""

from __future__ import annotations

import argparse
from typing import Any, Protocol, TextIO

from classifier.errors import UsageError

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


class Command(Protocol):
    """A command module: how its arguments are parsed, and what it does."""

    def add_parser(self, commands: Any) -> None: ...

    def run(self, args: argparse.Namespace, out: TextIO, err: TextIO) -> int: ...


class Parser(argparse.ArgumentParser):
    """argparse that raises instead of exiting, so every bad argument takes the same road."""

    def error(self, message: str) -> Any:  # noqa: D401 - argparse's hook
        raise UsageError(f"{self.prog}: {message} (see --help)")


def port(text: str) -> int:
    return bounded_int(text, 0, 65535, "a port")


def count(text: str) -> int:
    return bounded_int(text, 0, 1_000_000, "a count")


def byte(text: str) -> int:
    return bounded_int(text, 0, 255, "a value")


def bounded_int(text: str, lo: int, hi: int, what: str) -> int:
    try:
        if not (text.isascii() and len(text) <= 12):
            raise ValueError
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {what} ({lo}..{hi})") from None
    if not lo <= value <= hi:
        raise argparse.ArgumentTypeError(f"{value} is not {what} ({lo}..{hi})")
    return value


def capture_paths(paths: list[str]) -> list[str]:
    """The capture arguments as the reader takes them: `-` is standard input (the reader's
    `STDIN`), allowed once; every other path as given."""
    from classifier.pcap import STDIN

    if paths.count("-") > 1:
        raise UsageError("-: standard input can be read once: give `-` as one capture only")
    return [STDIN if path == "-" else path for path in paths]


def file_inputs(paths: list[str]) -> list[str]:
    """The inputs that are files (for the check that no output overwrites one)."""
    from classifier.pcap import StandardInput

    return [path for path in paths if not isinstance(path, StandardInput)]


def add_filter_option(parser: Any) -> None:
    parser.add_argument(
        "--filter",
        metavar="EXPR",
        help="read only the records this tcpdump/BPF filter accepts (libpcap's compiler, e.g. "
        "'tcp port 443 or icmp'); the others are not part of the run, only counted",
    )


def capture_filter(args: argparse.Namespace) -> Any:
    """The compiled --filter of the command line, or None (UsageError for a bad one)."""
    if not getattr(args, "filter", None):
        return None
    from classifier.pcap import CaptureFilter

    return CaptureFilter(args.filter)


def print_warnings(warnings: Any, err: Any) -> None:
    for warning in warnings:
        print(f"warning: {warning}", file=err)
