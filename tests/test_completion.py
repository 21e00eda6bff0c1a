"""Shell completion and the man page, both written from the argument parser: run in bash
(and zsh where installed), rendered by groff, and checked against the parser itself."""

from __future__ import annotations

import io
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from classifier.cli import build_parser, main
from classifier.cli.completion import commands
from tests.foreign import foreign_env


def text(*argv: str) -> str:
    out, err = io.StringIO(), io.StringIO()
    assert main(list(argv), out, err) == 0, err.getvalue()
    return out.getvalue()


def complete(script: Path, words: list[str]) -> list[str]:
    """What bash's completion function offers for the command line `words` (the last word is
    the one being completed)."""
    line = " ".join(f"'{w}'" for w in words)
    program = (
        f"source {script}\n"
        f"COMP_WORDS=({line}); COMP_CWORD={len(words) - 1}\n"
        "_sgclassify\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    done = subprocess.run(
        ["bash", "-c", program], capture_output=True, text=True, check=True, env=foreign_env()
    )
    return done.stdout.split()


@pytest.fixture
def bash_script(tmp_path: Path) -> Path:
    if shutil.which("bash") is None:
        pytest.skip("bash is not installed")
    path = tmp_path / "sgclassify.bash"
    path.write_text(text("completion", "bash"))
    return path


def test_bash_completes_commands_options_and_choices(bash_script: Path, tmp_path: Path) -> None:
    names = [spec.name for spec in commands(build_parser())]
    assert set(names) <= set(complete(bash_script, ["sgclassify", ""]))
    assert complete(bash_script, ["sgclassify", "cla"]) == ["classify"]
    assert complete(bash_script, ["sgclassify", "diff", "--s"]) == ["--stateless", "--strict"]
    assert complete(bash_script, ["sgclassify", "lint", "p.yaml", "--fail-on", ""]) == [
        "error", "warning", "info",
    ]  # fmt: skip
    assert complete(bash_script, ["sgclassify", "completion", ""]) != []
    (tmp_path / "policy.yaml").write_text("{}\n")
    offered = complete(bash_script, ["sgclassify", "classify", "--policy", f"{tmp_path}/pol"])
    assert offered == [f"{tmp_path}/policy.yaml"]  # an option's value: file names


def test_every_option_of_the_parser_is_offered(bash_script: Path) -> None:
    for spec in commands(build_parser()):
        offered = set(complete(bash_script, ["sgclassify", spec.name, "-"]))
        assert {flag for option in spec.options for flag in option.flags} == offered, spec.name


def test_zsh_script_parses(tmp_path: Path) -> None:
    script = tmp_path / "_sgclassify"
    script.write_text(text("completion", "zsh"))
    assert script.read_text().startswith("#compdef sgclassify\n")
    if shutil.which("zsh") is None:
        pytest.skip("zsh is not installed (the script was written; it is not parsed)")
    subprocess.run(["zsh", "-n", str(script)], check=True, env=foreign_env())


def test_man_page_renders_without_warnings(tmp_path: Path) -> None:
    page = tmp_path / "sgclassify.1"
    page.write_text(text("manpage"))
    if shutil.which("groff") is None:
        pytest.skip("groff is not installed (the page was written; it is not rendered)")
    done = subprocess.run(
        ["groff", "-man", "-Tutf8", "-ww", str(page)],
        capture_output=True,
        text=True,
        check=True,
        env=foreign_env(),
    )
    assert done.stderr == ""
    rendered = re.sub(".\b", "", done.stdout)  # overstrike bold and underline
    rendered = rendered.replace("\u2010", "-").replace("\u2212", "-")
    for spec in commands(build_parser()):
        assert spec.name in rendered
        for option in spec.options:
            if option.flags != ("-h", "--help"):
                assert option.flags[-1] in rendered, (spec.name, option.flags)
    assert "EXIT STATUS" in rendered and "130" in rendered
