"""The `sgclassify` command: the parser of every command, and the one road out of errors.

Every command turns a ClassifierError into one line per problem on stderr and its exit code
(2 for bad input); nothing the user types or feeds in produces a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import TextIO

from classifier.cli import check, classify, exposure, lint, packets, validate
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
    "lint": lint,
    "exposure": exposure,
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
  sgclassify lint examples/web-db.yaml --fail-on warning
  sgclassify exposure --policy examples/web-db.yaml --instance web-1 listening.txt

exit codes: 0 ok, 2 bad input (policy, capture or arguments), 1 internal error.
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
    try:
        args = build_parser().parse_args(argv)
        if args.command is None:
            build_parser().print_help(out)
            return EXIT_OK
        return COMMANDS[args.command].run(args, out, err)
    except ClassifierError as error:
        for line in str(error).splitlines() or [type(error).__name__]:
            print(f"error: {line}", file=err)
        return error.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=err)
        return EXIT_INTERRUPTED
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
        return EXIT_INTERNAL


if __name__ == "__main__":
    raise SystemExit(main())
