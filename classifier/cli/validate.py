"""`sgclassify validate POLICY`: load a policy, report every problem or count what it holds."""

from __future__ import annotations

import argparse
from typing import Any, TextIO

from classifier.cli.common import EXIT_OK, add_strict, load_policy, plural


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "validate",
        help="check a policy file and count what it holds",
        description="Load POLICY and report every problem in it (file, object, field), "
        "or print 'ok: N groups, M rules, K instances'. Warnings (unknown fields, duplicate "
        "rules) go to stderr and do not fail the command, unless --strict.",
    )
    parser.add_argument("policy", metavar="POLICY", help="policy file (YAML or JSON)")
    add_strict(parser)


def run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from classifier.policy import policy_summary

    policy = load_policy(args.policy, err, args.strict)
    groups, rules, instances = policy_summary(policy)
    print(
        f"ok: {plural(groups, 'group')}, {plural(rules, 'rule')}, {plural(instances, 'instance')}",
        file=out,
    )
    return EXIT_OK
