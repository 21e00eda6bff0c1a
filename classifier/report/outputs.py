"""Output files of a run: opening them safely, and checking them before anything is read.

`open_output(path)` is how every output is written:
- `-` is standard output (the command's `out` stream), never a file named `-`;
- a path is written to a hidden temporary file beside it (`.NAME.XXXX.partial`) and renamed
  onto its name when the block completes, so a run that fails or is interrupted (Ctrl-C)
  leaves no partial file behind, and an earlier file of that name stays as it was;
- a path that is not a regular file (`/dev/null`, a named pipe) is written in place;
- errors name the path: `UsageError("OUT: cannot write: ...")`.

`check_outputs` refuses, before the run, an output that is an input or another output, more
than one output on standard output, and an output whose folder cannot be written.
"""

from __future__ import annotations

import io
import os
import stat
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import IO, Any

from classifier.errors import UsageError

STDOUT = "-"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def open_output(
    path: str | None, out: IO[str] | None = None, binary: bool = False
) -> Iterator[Any]:
    """The stream of one output (None for no output). Text streams are UTF-8 with `\\n` line
    ends; non-UTF-8 file names in the data pass through as the bytes they were
    (surrogateescape), as the shell gave them."""
    if path is None:
        yield None
        return
    if path == STDOUT:
        with _standard_output(out, binary) as stream:
            yield stream
        return
    try:
        mode = os.stat(path).st_mode
    except OSError:
        mode = None
    if mode is not None and not stat.S_ISREG(mode):  # /dev/null, a FIFO: write in place
        with _direct(path, binary) as stream:
            yield stream
        return
    folder = os.path.dirname(os.path.abspath(path))
    try:
        fd, temporary = tempfile.mkstemp(
            prefix=f".{os.path.basename(path)}.", suffix=".partial", dir=folder
        )
    except OSError as error:
        raise UsageError(f"{path}: cannot write: {error.strerror or error}") from None
    try:
        os.chmod(temporary, 0o666 & ~_umask())
        stream = (
            open(fd, "wb")  # noqa: SIM115 - closed below
            if binary
            else open(fd, "w", newline="", encoding="utf-8", errors="surrogateescape")  # noqa: SIM115
        )
        with stream:
            yield stream
        os.replace(temporary, path)
    except OSError as error:
        _remove(temporary)
        raise UsageError(f"{path}: cannot write: {error.strerror or error}") from None
    except BaseException:
        _remove(temporary)
        raise


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


@contextmanager
def _direct(path: str, binary: bool) -> Iterator[IO[Any]]:
    try:
        stream: IO[Any] = (
            open(path, "wb")  # noqa: SIM115
            if binary
            else open(path, "w", newline="", encoding="utf-8", errors="surrogateescape")  # noqa: SIM115
        )
    except OSError as error:
        raise UsageError(f"{path}: cannot write: {error.strerror or error}") from None
    try:
        with stream:
            yield stream
    except OSError as error:
        raise UsageError(f"{path}: cannot write: {error.strerror or error}") from None


@contextmanager
def _standard_output(out: IO[str] | None, binary: bool) -> Iterator[IO[Any]]:
    """Standard output as a UTF-8 text stream (or its bytes), left open afterwards."""
    target = out if out is not None else sys.stdout
    buffer = getattr(target, "buffer", None)
    if buffer is None:  # a StringIO (tests, embedding): write text to it as it is
        yield target
        return
    target.flush()
    if binary:
        yield buffer
        buffer.flush()
        return
    wrapper = io.TextIOWrapper(
        buffer, encoding="utf-8", errors="surrogateescape", newline="", write_through=True
    )
    try:
        yield wrapper
        wrapper.flush()
    finally:
        wrapper.detach()


def check_outputs(inputs: Sequence[str], outputs: Sequence[str | None]) -> None:
    """Refuse an output that is one of the inputs or another output (it would be truncated
    before it is read, or overwrite the other), `-` for more than one output, and an output
    in a folder that does not exist or cannot be written."""
    given = [output for output in outputs if output is not None]
    if given.count(STDOUT) > 1:
        raise UsageError(f"only one output may be '-' (standard output); {given.count(STDOUT)} are")
    seen: list[str] = []
    for output in given:
        if output == STDOUT:
            continue
        for other in [i for i in inputs if i != STDOUT] + seen:
            if _same_file(output, other):
                raise UsageError(
                    f"{output}: this output file is also {other!r}: choose another name"
                )
        seen.append(output)
        folder = os.path.dirname(os.path.abspath(output))
        if os.path.isdir(output):
            raise UsageError(f"{output}: is a directory: give a file name")
        if not os.path.isdir(folder):
            raise UsageError(f"{output}: cannot write: no such directory {folder!r}")
        if not os.access(folder, os.W_OK | os.X_OK) and not os.path.exists(output):
            raise UsageError(f"{output}: cannot write: permission denied in {folder!r}")


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:  # one does not exist yet
        return os.path.abspath(a) == os.path.abspath(b)
