"""`sgclassify manpage`: the man page, in roff, written from the argument parser.

sgclassify manpage > ~/.local/share/man/man1/sgclassify.1 && man sgclassify
"""

from __future__ import annotations

import argparse
from typing import Any, TextIO

from classifier.cli.common import EXIT_OK


def add_parser(commands: Any) -> None:
    commands.add_parser(
        "manpage",
        help="print the man page (roff), written from the argument parser",
        description="Print sgclassify(1) in roff: every command with its options, the exit "
        "codes. Save it as ~/.local/share/man/man1/sgclassify.1, or read it with "
        "'sgclassify manpage | man -l -'.",
    )


def run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from classifier import __version__
    from classifier.cli.completion import man_page

    out.write(man_page(args.root_parser, __version__))  # set by classifier.cli.main
    return EXIT_OK
