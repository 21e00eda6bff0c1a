"""What every command shares: exit codes, the parser class, argument types.

A command module (`validate`, `check`, `packets`, `classify`, ...) defines `add_parser(commands)`
and `run(args, out, err) -> int`; `classifier.cli.main` assembles them. Errors are raised as
`ClassifierError`s; `main` prints them as one line each and returns the exit code. A command
module imports its heavy parts (numpy, the engine) inside `run`: building the parser imports
every command module and must stay cheap.
"""

from __future__ import annotations

import argparse
import os
import re
import stat
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Protocol, TextIO

from classifier.errors import ClassifierError, PolicyError, UsageError

if TYPE_CHECKING:
    from classifier.policy import Policy

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
        # one format for every argument error: `OPTION: message`, as the commands raise them
        match = re.fullmatch(r"argument ([^:]+): (.*)", message, re.DOTALL)
        if match is not None and match.group(1).startswith("-"):
            raise UsageError(f"{match.group(1).split('/')[-1]}: {match.group(2)}")
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
        raise argparse.ArgumentTypeError(f"{text!r} is not {what} ({lo}..{hi})")
    return value


def capture_path(text: str) -> str:
    """A capture argument as the reader takes it: `-` is standard input (the reader's
    `STDIN`, allowed once: `check_captures`), every other path as given."""
    from classifier.pcap import STDIN

    return STDIN if text == "-" else text


def file_inputs(paths: Sequence[str]) -> list[str]:
    """The inputs that are files (for the check that no output overwrites one)."""
    from classifier.pcap import StandardInput

    return [path for path in paths if not isinstance(path, StandardInput)]


def _is_regular(path: str) -> bool:
    """A regular file on disk: not standard input, a pipe or a device."""
    if not file_inputs([path]):
        return False
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


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


def plural(count: int, word: str, words: str | None = None) -> str:
    """`1 group`, `3 groups`, `0 groups` (`words` where the plural is not word + s)."""
    return f"{count:,} {word if count == 1 else (words or word + 's')}"


# --- policies ------------------------------------------------------------------------------


def add_strict(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--strict",
        action="store_true",
        help="treat warnings as errors (exit 2): unknown fields, duplicate rules; and for "
        "captures, every capture warning. Use it in CI",
    )


def load_policy(path: str, err: TextIO, strict: bool = False) -> Policy:
    """Load a policy; print its warnings, or with `strict` fail on them (exit 2)."""
    from classifier.policy import load_policy as load

    try:
        policy = load(path)
    except PolicyError as error:
        for warning in error.warnings:  # the errors are main's to print; these go with them
            print(f"warning: {warning}", file=err)
        raise
    if strict and policy.warnings:
        raise StrictError(policy.warnings)
    print_warnings(policy.warnings, err)
    return policy


class StrictError(ClassifierError):
    """Warnings under --strict: each printed as an error line."""

    def __init__(self, warnings: Sequence[str]):
        super().__init__("\n".join(f"{w} (--strict: warnings are errors)" for w in warnings))


# --- captures ------------------------------------------------------------------------------

DAY_NS = 86_400 * 1_000_000_000


def add_captures(parser: argparse.ArgumentParser, metavar: str = "CAPTURE") -> None:
    parser.add_argument(
        "pcaps",
        nargs="+",
        type=capture_path,
        metavar=metavar,
        help="capture files (pcap, pcapng; plain or gzip/bzip2/xz/zstd), read in the order "
        "given as one continuous capture; - reads standard input (once)",
    )


def check_captures(paths: Sequence[str]) -> dict[int, str]:
    """Before any record is classified: `-` (standard input) is given at most once, every
    capture file exists and its header reads (a PcapError names the first that does not;
    pipes are left unread, their bytes are read once), and the warnings of the combination:
    a path given twice, or two paths holding the same bytes (each would be counted twice), by
    the position of the later one."""
    from classifier.pcap import open_capture

    files = file_inputs(paths)
    if len(files) < len(paths) - 1:
        raise UsageError("-: standard input can be read once: give `-` as one capture only")
    for path in files:
        if not os.path.exists(path):
            raise UsageError(f"{path}: no such capture file")
        if os.path.isdir(path):
            raise UsageError(f"{path}: is a directory, not a capture file")
        mode = os.stat(path).st_mode
        if stat.S_ISFIFO(mode):
            continue
        if not stat.S_ISREG(mode):
            raise UsageError(
                f"{path}: not a regular file or a pipe (a device): give a capture file"
            )
        with open_capture(path):
            pass
    return repeated_captures(paths)


def repeated_captures(paths: Sequence[str]) -> dict[int, str]:
    """Warnings for a capture given twice: the same path, the same file under another path,
    or a copy (equal size and equal bytes; only files of equal size are hashed)."""
    import hashlib

    warnings: dict[int, str] = {}
    seen: list[tuple[str, os.stat_result]] = []
    digests: dict[str, bytes] = {}

    def digest(path: str) -> bytes:
        if path not in digests:
            hasher = hashlib.sha256()
            with open(path, "rb") as stream:
                while chunk := stream.read(1 << 20):
                    hasher.update(chunk)
            digests[path] = hasher.digest()
        return digests[path]

    for position, path in enumerate(paths):
        if not _is_regular(path):
            continue  # standard input or a pipe: read once, never hashed here
        info = os.stat(path)
        for other, other_info in seen:
            if path == other:
                what = "the same path"
            elif os.path.samestat(info, other_info):
                what = "the same file"
            elif info.st_size == other_info.st_size and digest(path) == digest(other):
                what = "a copy (the same bytes)"
            else:
                continue
            warnings[position] = (
                f"{path}: {what} as {other!r}, given earlier: its packets are counted twice"
            )
            break
        seen.append((path, info))
    return warnings


def capture_gaps(files: Sequence[dict[str, Any]]) -> dict[int, str]:
    """Warnings for captures that are not one continuous capture: a file that starts more
    than a day after the one before it ends (the time span counts the gap), by position."""
    warnings: dict[int, str] = {}
    previous: dict[str, Any] | None = None
    for position, file in enumerate(files):
        first = file.get("first_ns")
        if first is None:
            continue
        if previous is not None and first - previous["last_ns"] > DAY_NS:
            gap = (first - previous["last_ns"]) / DAY_NS
            warnings[position] = (
                f"{file['path']}: starts {gap:,.1f} days after {previous['path']!r} ends: "
                "the captures are read as one continuous capture (the time span includes the "
                "gap; connections time out across it)"
            )
        previous = file
    return warnings


@contextmanager
def progress_bar(paths: Sequence[str], quiet: bool, err: TextIO) -> Iterator[Any]:
    """A progress bar by bytes read, on a terminal only, and never with -q."""
    if quiet or not err.isatty():
        yield None
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

    sizes = {path: _progress_size(path) for path in paths}
    total = sum(sizes.values())
    offsets: dict[str, int] = {}
    running = 0
    for path in paths:
        offsets[path] = running
        running += sizes[path]
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        console=Console(file=err),
        transient=True,
    ) as bar:
        task = bar.add_task("classifying", total=total)

        def update(path: str, position: int, size: int) -> None:
            bar.update(
                task,
                completed=offsets.get(path, 0) + position,
                description=escape(os.path.basename(path)),
            )

        yield update


def _progress_size(path: str) -> int:
    """A capture's size for the progress bar: 0 for standard input or a pipe."""
    if not _is_regular(path):
        return 0
    return os.path.getsize(path)
