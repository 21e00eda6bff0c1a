"""One small exception hierarchy.

Every error a user can cause is a ClassifierError. The CLI prints `str(error)` as one line
(or one line per problem for a PolicyError) and exits with `error.exit_code`; no traceback.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class ClassifierError(Exception):
    """Base of every error caused by user input (files, arguments)."""

    exit_code = 2


@dataclass(frozen=True)
class Problem:
    """One finding in a policy file: where it is and what is wrong.

    `obj` names the object ("group web", "group web rule web/3", "instance vm-1",
    "address group office", "rule #4 of security_group_rules"); `field` the field,
    or "" when the problem is the object as a whole.
    """

    file: str
    obj: str
    field: str
    message: str

    def __str__(self) -> str:
        where = ", ".join(
            part for part in (self.obj, f"field '{self.field}'" if self.field else "") if part
        )
        text = f"{self.file}: {where}: {self.message}" if where else f"{self.file}: {self.message}"
        return one_line(text)


def one_line(text: str) -> str:
    """`text` with its line breaks and other control characters escaped (an id or a value
    from the file may hold them): every problem is one line."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


class PolicyError(ClassifierError):
    """A policy file that cannot be loaded; carries every problem found, not just the first."""

    def __init__(self, problems: list[Problem], warnings: Sequence[str] = ()):
        self.problems = list(problems)
        self.warnings = tuple(warnings)  # what loaded with a warning, printed beside the errors
        super().__init__("\n".join(str(p) for p in self.problems))


class PcapError(ClassifierError):
    """A capture that cannot be read at all (missing, unreadable, not pcap/pcapng)."""


class UsageError(ClassifierError):
    """Arguments that do not make sense together (the CLI's argparse covers the rest)."""


class ClusterError(ClassifierError):
    """A classification on a Dask cluster failed for a reason one process would not have (a
    lost scheduler, no worker left, a task lost with its workers, a version mismatch): no
    partial result is written (scale.md section 5)."""

    exit_code = 1


class WorkerCaptureError(ClusterError):
    """A capture that a worker of the cluster cannot open or read (the command could)."""

    exit_code = 2


class SocketsFileError(ClassifierError):
    """A sockets file (saved netstat/ss output) that does not read: `FILE:N: message`."""

    def __init__(self, file: str, line: int, message: str):
        self.file, self.line, self.message = file, line, message
        super().__init__(f"{file}:{line}: {message}")
