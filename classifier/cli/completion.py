"""`sgclassify completion bash|zsh` and `sgclassify manpage`: written from the argument parser.

Nothing here is written by hand: the commands, their options, which options take a value
and their choices are read off `classifier.cli.main.build_parser()`, so the completions and
the man page cannot fall behind the parser. Install:

    sgclassify completion bash > ~/.local/share/bash-completion/completions/sgclassify
    sgclassify completion zsh > ~/.zfunc/_sgclassify      # a folder in $fpath
    sgclassify manpage > ~/.local/share/man/man1/sgclassify.1
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from datetime import date
from typing import Any, TextIO

from classifier.cli.common import EXIT_OK


@dataclass(frozen=True)
class Option:
    flags: tuple[str, ...]
    help: str
    takes_value: bool
    choices: tuple[str, ...]
    metavar: str


@dataclass(frozen=True)
class CommandSpec:
    name: str
    help: str
    parser: argparse.ArgumentParser
    options: tuple[Option, ...]
    positionals: tuple[str, ...]  # metavars


def _help(action: argparse.Action) -> str:
    text = action.help or ""
    if "%(" in text:
        text = text % {"default": action.default, "prog": "sgclassify"}
    return " ".join(text.split())


def commands(parser: argparse.ArgumentParser) -> list[CommandSpec]:
    """The parser's commands, in the order --help lists them."""
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    helps = {choice.dest: choice.help or "" for choice in sub._choices_actions}
    out = []
    for name, command in sub.choices.items():
        options, positionals = [], []
        for action in command._actions:
            if action.option_strings:
                options.append(
                    Option(
                        tuple(action.option_strings),
                        _help(action),
                        action.nargs != 0,
                        tuple(str(c) for c in action.choices or ()),
                        str(action.metavar or action.dest.upper()),
                    )
                )
            else:
                positionals.append(str(action.metavar or action.dest))
        out.append(
            CommandSpec(name, helps.get(name, ""), command, tuple(options), tuple(positionals))
        )
    return out


def top_options(parser: argparse.ArgumentParser) -> list[str]:
    return [flag for action in parser._actions for flag in action.option_strings]


# --- bash ------------------------------------------------------------------------------------


def bash_script(parser: argparse.ArgumentParser) -> str:
    specs = commands(parser)
    cases, choice_cases = [], []
    for spec in specs:
        flags = " ".join(f for o in spec.options for f in o.flags)
        valued = " ".join(f for o in spec.options if o.takes_value for f in o.flags)
        cases.append(f'        {spec.name}) opts="{flags}"; valued="{valued}" ;;')
        for option in spec.options:
            if option.choices:
                pattern = "|".join(f"{spec.name}:{flag}" for flag in option.flags)
                choice_cases.append(
                    f'        {pattern}) COMPREPLY=($(compgen -W "{" ".join(option.choices)}" '
                    '-- "$cur")); return ;;'
                )
    names = " ".join(spec.name for spec in specs)
    top = " ".join(top_options(parser))
    return "\n".join(
        [
            "# bash completion for sgclassify (written by `sgclassify completion bash`)",
            "_sgclassify() {",
            '    local cur="${COMP_WORDS[COMP_CWORD]}" prev="${COMP_WORDS[COMP_CWORD-1]}"',
            "    local opts valued",
            "    if [[ $COMP_CWORD -eq 1 ]]; then",
            f'        COMPREPLY=($(compgen -W "{names} {top}" -- "$cur")); return',
            "    fi",
            '    case "${COMP_WORDS[1]}" in',
            *cases,
            "        *) return ;;",
            "    esac",
            '    case "${COMP_WORDS[1]}:$prev" in',
            *choice_cases,
            "    esac",
            '    if [[ " $valued " == *" $prev "* ]]; then',
            '        COMPREPLY=($(compgen -f -- "$cur")); return',
            "    fi",
            '    if [[ "$cur" == -* ]]; then',
            '        COMPREPLY=($(compgen -W "$opts" -- "$cur")); return',
            "    fi",
            '    COMPREPLY=($(compgen -f -- "$cur"))',
            "}",
            "complete -o filenames -o bashdefault -F _sgclassify sgclassify",
            "",
        ]
    )


# --- zsh ------------------------------------------------------------------------------------


def _zsh_text(text: str) -> str:
    """Help text inside a single-quoted `_arguments` spec: no quotes, brackets or colons."""
    text = re.sub(r"[\[\]]", "", text).replace(":", " -").replace("'", "")
    return text[:120]


def zsh_script(parser: argparse.ArgumentParser) -> str:
    specs = commands(parser)
    described = " ".join(f"'{spec.name}:{_zsh_text(spec.help)}'" for spec in specs)
    cases = []
    for spec in specs:
        arguments = []
        for option in spec.options:
            if option.takes_value:
                action = f"({' '.join(option.choices)})" if option.choices else "_files"
                value = f":{_zsh_text(option.metavar)}:{action}"
            else:
                value = ""
            if len(option.flags) > 1:
                exclusive = " ".join(option.flags)
                names = "{" + ",".join(option.flags) + "}"
                arguments.append(f"'({exclusive})'{names}'[{_zsh_text(option.help)}]{value}'")
            else:
                arguments.append(f"'{option.flags[0]}[{_zsh_text(option.help)}]{value}'")
        if spec.positionals:
            arguments.append("'*:file:_files'")
        joined = " \\\n        ".join(arguments)
        cases.append(f"    {spec.name})\n      _arguments \\\n        {joined} ;;")
    return "\n".join(
        [
            "#compdef sgclassify",
            "# zsh completion for sgclassify (written by `sgclassify completion zsh`)",
            "_sgclassify() {",
            f"  local -a commands; commands=({described})",
            "  if (( CURRENT == 2 )); then",
            "    _describe -t commands 'sgclassify command' commands",
            "    return",
            "  fi",
            "  shift words; (( CURRENT-- ))",
            '  case "$words[1]" in',
            *cases,
            "  esac",
            "}",
            '_sgclassify "$@"',
            "",
        ]
    )


# --- the man page -----------------------------------------------------------------------------


def _roff(text: str) -> str:
    """Text for roff: backslashes and hyphens escaped, no line starting with a control
    character."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "\n".join(
        ("\\&" + line if line.startswith((".", "'")) else line) for line in text.splitlines()
    )


def man_page(parser: argparse.ArgumentParser, version: str, when: date | None = None) -> str:
    """sgclassify(1) from the root parser (its description, epilog and every command)."""
    when = when or date.today()
    lines = [
        f'.TH SGCLASSIFY 1 "{when.isoformat()}" "sgclassify {version}" "User Commands"',
        ".SH NAME",
        "sgclassify \\- what would these security\\-group rules have done to this traffic?",
        ".SH SYNOPSIS",
        ".B sgclassify",
        "\\fICOMMAND\\fR [\\fIOPTIONS\\fR] ...",
        ".SH DESCRIPTION",
        _roff(" ".join((parser.description or "").split())),
        ".SH COMMANDS",
    ]
    for spec in commands(parser):
        usage = " ".join(spec.parser.format_usage().split())
        usage = usage.removeprefix("usage: ")
        lines += [
            f".SS {_roff(spec.name)}",
            _roff(spec.help) + ".",
            ".PP",
            ".nf",
            _roff(usage),
            ".fi",
        ]
        if spec.parser.description:
            lines += [".PP", _roff(" ".join(spec.parser.description.split()))]
        for option in spec.options:
            if option.flags == ("-h", "--help"):
                continue
            flags = ", ".join(f"\\fB{_roff(flag)}\\fR" for flag in option.flags)
            value = f" \\fI{_roff(option.metavar)}\\fR" if option.takes_value else ""
            lines += [".TP", flags + value, _roff(option.help)]
    epilog = (parser.epilog or "").split("exit codes:")[0].split("An output given")[0]
    examples = epilog.strip().splitlines()
    lines += [".SH EXAMPLES", ".nf", *(_roff(line) for line in examples[1:]), ".fi"]
    lines += [
        ".SH EXIT STATUS",
        ".TP",
        "0",
        "success (diff: no packet changes verdict)",
        ".TP",
        "1",
        "an internal error; diff: at least one packet changes verdict; lint \\-\\-fail\\-on: "
        "a finding at the level",
        ".TP",
        "2",
        "bad input: a policy error, an unreadable capture, bad arguments, an output that cannot "
        "be written; warnings with \\-\\-strict; every failure of diff",
        ".TP",
        "130",
        "interrupted (Ctrl\\-C); outputs being written are removed",
        ".SH SEE ALSO",
        "The project's documentation: README.md and docs/ (the semantics, the policy format, "
        "the outputs).",
        "",
    ]
    return "\n".join(lines)


# --- the commands -----------------------------------------------------------------------------


def add_parser(commands_: Any) -> None:
    parser = commands_.add_parser(
        "completion",
        help="print a shell completion script (bash or zsh)",
        description="Print the completion script of SHELL, written from the argument parser. "
        "bash: save it as ~/.local/share/bash-completion/completions/sgclassify; zsh: as "
        "_sgclassify in a folder of $fpath.",
    )
    parser.add_argument("shell", choices=("bash", "zsh"), metavar="SHELL", help="bash or zsh")


def run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    parser = args.root_parser  # set by classifier.cli.main
    out.write(bash_script(parser) if args.shell == "bash" else zsh_script(parser))
    return EXIT_OK
