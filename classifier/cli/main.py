"""The `sgclassify` command: the parser of every command, and the one road out of errors.

Every command turns a ClassifierError into one line per problem on stderr and its exit code
(2 for bad input); nothing the user types or feeds in produces a traceback.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from classifier.cli import (
    check,
    classify,
    completion,
    diff,
    exposure,
    lint,
    manpage,
    packets,
    validate,
)
from classifier.cli.common import (
    EXIT_BAD_INPUT,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_OK,
    Command,
    Parser,
)
from classifier.errors import ClassifierError

# the commands, in the order `--help` lists them: each module has add_parser() and run()
COMMANDS: dict[str, Command] = {
    "validate": validate,
    "check": check,
    "packets": packets,
    "classify": classify,
    "diff": diff,
    "lint": lint,
    "exposure": exposure,
    "completion": completion,
    "manpage": manpage,
}

DESCRIPTION = """\
What would these security-group rules have done to this traffic?

Load a policy of security groups, IP address groups and instances (YAML or JSON, the cloud
API's field names), then ask about one packet (check) or classify whole captures (classify).
"""

EPILOG = """\
examples:
  sgclassify validate examples/web-db.yaml
  sgclassify check --policy examples/web-db.yaml --src 203.0.113.7 --dst 10.0.1.10 \
      --proto tcp --dport 443
  sgclassify packets pcaps/web.pcap --csv web-packets.csv
  sgclassify classify --policy examples/web-db.yaml pcaps/*.pcap --json summary.json
  sgclassify classify --policy examples/web-db.yaml pcaps/*.pcap --report report.html
  sgclassify diff --old examples/web-db.yaml --new candidate.yaml pcaps/*.pcap
  sgclassify lint examples/web-db.yaml --fail-on warning --strict
  sgclassify exposure --policy examples/web-db.yaml --instance web-1 listening.txt

An output given as '-' is standard output. --strict (every command that loads a policy)
turns warnings into errors: use it in CI.

exit codes: 0 ok, 2 bad input (policy, capture or arguments), 1 internal error (diff: 1 means
packets change, and every failure is 2; lint --fail-on: 1 means findings), 130 interrupted.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="sgclassify",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    from classifier import __version__

    parser.add_argument("--version", action="version", version=f"sgclassify {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for module in COMMANDS.values():
        module.add_parser(commands)
    return parser


def main(
    argv: Sequence[str] | None = None, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    # a closed stdout/stderr (`sgclassify ... >&-`) leaves None: write nowhere, not crash
    out = out or sys.stdout or open(os.devnull, "w")  # noqa: SIM115
    err = err or sys.stderr or open(os.devnull, "w")  # noqa: SIM115
    previous = _interrupt_once()
    dropped: list[BaseException] = []
    hook = sys.unraisablehook
    sys.unraisablehook = _keep_interrupts(dropped, hook)
    try:
        code = _main(argv, out, err)
        if dropped and code == EXIT_OK:  # a Ctrl-C that a destructor swallowed
            return interrupted(err)
        return code
    finally:
        sys.unraisablehook = hook
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


def _keep_interrupts(dropped: list[BaseException], hook: Any) -> Any:
    """A Ctrl-C that lands in a destructor or callback is one Python cannot raise: it
    prints "Exception ignored in ..." with a traceback and goes on. Kept here instead, it
    ends the command as any Ctrl-C does (`interrupted`, exit 130) once the command returns;
    every other unraisable error goes to the hook in place."""

    def keep(unraisable: Any) -> None:
        if isinstance(unraisable.exc_value, KeyboardInterrupt):
            dropped.append(unraisable.exc_value)
        else:
            hook(unraisable)

    return keep


def _interrupt_once() -> Any:
    """The first Ctrl-C raises KeyboardInterrupt and the next ones are ignored, so the way
    out (removing partial outputs, printing one line) cannot itself be interrupted. Returns
    the handler to restore (None off the main thread, where signals cannot be handled)."""

    def handler(number: int, frame: Any) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        raise KeyboardInterrupt

    try:
        return signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main thread
        return None


def _main(argv: Sequence[str] | None, out: TextIO, err: TextIO) -> int:
    command: str | None = None
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        command = args.command
        if command is None:
            parser.print_usage(err)
            print("error: give a command (sgclassify --help lists them)", file=err)
            return EXIT_BAD_INPUT
        args.root_parser = parser  # for the commands that describe the command line
        return COMMANDS[command].run(args, out, err)
    except ClassifierError as error:
        for line in str(error).splitlines() or [type(error).__name__]:
            print(f"error: {line}", file=err)
        return error.exit_code
    except KeyboardInterrupt:
        return interrupted(err)
    except BrokenPipeError:
        # `sgclassify packets x.pcap | head`: the reader went away; that is not an error.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    except OSError as error:  # writing the results failed: a full disk, a vanished device
        where = error.filename or "output"
        print(f"error: {where}: cannot write: {error.strerror or error}", file=err)
        return EXIT_BAD_INPUT
    except Exception as error:  # noqa: BLE001 - the last line of defence against tracebacks
        if os.environ.get("SGCLASSIFY_DEBUG") == "1":
            raise
        print(
            f"internal error: {type(error).__name__}: {error} "
            "(please report it; SGCLASSIFY_DEBUG=1 shows the traceback)",
            file=err,
        )
        module = COMMANDS.get(command or "")
        return int(getattr(module, "EXIT_ON_INTERNAL_ERROR", EXIT_INTERNAL))


def interrupted(err: TextIO) -> int:
    """Ctrl-C: one line and exit 130, never a traceback. Outputs being written were removed
    on the way out (`classifier.report.outputs.open_output`); a second Ctrl-C now is ignored."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        print("interrupted", file=err)
    except (OSError, ValueError):
        pass
    return EXIT_INTERRUPTED


if __name__ == "__main__":
    raise SystemExit(main())
