"""The `sgclassify` command: outputs, exit codes, and never a traceback."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from classifier.cli import main
from tests.conftest import EXAMPLES, ROOT

WEB_DB = str(EXAMPLES / "web-db.yaml")


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out, err)
    return code, out.getvalue(), err.getvalue()


def test_validate_ok() -> None:
    code, out, _ = run("validate", WEB_DB)
    assert code == 0
    assert out.strip() == "ok: 3 groups, 11 rules, 3 instances"


@pytest.mark.parametrize(
    "name", ["web-db.yaml", "default-group.yaml", "ipv6.yaml", "api-export.json"]
)
def test_every_example_validates(name: str) -> None:
    code, out, err = run("validate", str(EXAMPLES / name))
    assert code == 0, err
    assert out.startswith("ok: ")


def test_validate_reports_every_problem_with_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "security_groups:\n"
        "  - id: g\n"
        "    rules:\n"
        "      - {direction: ingress, priority: 101}\n"
        "      - {direction: sideways}\n"
    )
    code, out, err = run("validate", str(bad))
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) >= 2
    assert all(str(bad) in line for line in lines)
    assert any("priority" in line for line in lines) and any("direction" in line for line in lines)
    assert "Traceback" not in err


def test_check_text_names_the_deciding_rule() -> None:
    code, out, _ = run(
        "check",
        "--policy",
        WEB_DB,
        "--src",
        "203.0.113.7",
        "--dst",
        "10.0.1.10",
        "--proto",
        "tcp",
        "--dport",
        "443",
    )
    assert code == 0
    assert "web-1 ingress: allow by rule web-http of group sg-web" in out
    assert out.strip().endswith("verdict: allow")


def test_check_json_both_sides_egress_first() -> None:
    code, out, _ = run(
        "check",
        "--policy",
        WEB_DB,
        "--src",
        "10.0.1.10",
        "--dst",
        "10.0.2.20",
        "--proto",
        "tcp",
        "--dport",
        "5432",
        "--json",
    )
    assert code == 0
    document = json.loads(out)
    assert document == {
        "verdict": "allow",
        "sides": [
            {
                "instance": "web-1",
                "direction": "egress",
                "verdict": "allow",
                "group": "sg-web",
                "rule": "web-out",
                "reason": "rule",
            },
            {
                "instance": "db-1",
                "direction": "ingress",
                "verdict": "allow",
                "group": "sg-db",
                "rule": "db-pg",
                "reason": "rule",
            },
        ],
    }


def test_check_deny_and_unmanaged() -> None:
    _, out, _ = run(
        "check",
        "--policy",
        WEB_DB,
        "--src",
        "203.0.113.66",
        "--dst",
        "10.0.2.20",
        "--proto",
        "tcp",
        "--dport",
        "22",
        "--json",
    )
    document = json.loads(out)
    assert document["verdict"] == "deny"
    assert document["sides"] == [
        {
            "instance": "db-1",
            "direction": "ingress",
            "verdict": "deny",
            "group": "sg-db",
            "rule": "db-deny-scan",
            "reason": "rule",
        }
    ]
    _, out, _ = run(
        "check",
        "--policy",
        WEB_DB,
        "--src",
        "8.8.8.8",
        "--dst",
        "1.1.1.1",
        "--proto",
        "udp",
        "--dport",
        "53",
        "--json",
    )
    assert json.loads(out) == {"verdict": "unmanaged", "sides": []}


def test_check_without_port_says_ports_unknown() -> None:
    code, out, _ = run(
        "check", "--policy", WEB_DB, "--src", "203.0.113.7", "--dst", "10.0.1.10", "--proto", "tcp"
    )
    assert code == 0
    assert "unknown" in out
    # no port-free ingress rule for TCP from the internet on web-1: implicit deny
    assert out.strip().endswith("verdict: deny")
    code, out, err = run(
        "check",
        "--policy",
        WEB_DB,
        "--src",
        "203.0.113.7",
        "--dst",
        "10.0.1.10",
        "--proto",
        "tcp",
        "--json",
    )
    assert json.loads(out)["verdict"] == "deny" and "unknown" in err


@pytest.mark.parametrize(
    "argv",
    [
        ["check", "--policy", WEB_DB, "--src", "1.2.3.999", "--dst", "10.0.1.10", "--proto", "tcp"],
        ["check", "--policy", WEB_DB, "--src", "1.2.3.4", "--dst", "::1", "--proto", "tcp"],
        ["check", "--policy", WEB_DB, "--src", "1.2.3.4", "--dst", "10.0.1.10", "--proto", "bogus"],
        [
            "check",
            "--policy",
            WEB_DB,
            "--src",
            "1.2.3.4",
            "--dst",
            "10.0.1.10",
            "--proto",
            "tcp",
            "--dport",
            "70000",
        ],
        [
            "check",
            "--policy",
            WEB_DB,
            "--src",
            "1.2.3.4",
            "--dst",
            "10.0.1.10",
            "--proto",
            "udp",
            "--icmp-type",
            "3",
        ],
        [
            "check",
            "--policy",
            WEB_DB,
            "--src",
            "1.2.3.4",
            "--dst",
            "10.0.1.10",
            "--proto",
            "udp",
            "--sport",
            "3",
        ],
        [
            "check",
            "--policy",
            "/nonexistent.yaml",
            "--src",
            "1.2.3.4",
            "--dst",
            "10.0.1.10",
            "--proto",
            "tcp",
        ],
        ["validate"],
        ["frobnicate"],
        ["packets", "/nonexistent.pcap"],
        ["classify", "--policy", WEB_DB, "/nonexistent.pcap"],
    ],
)
def test_bad_input_is_one_clear_line_and_exit_2(argv: list[str]) -> None:
    code, _, err = run(*argv)
    assert code == 2
    assert "Traceback" not in err
    assert err.startswith("error: ")


def test_binary_policy_file_and_garbage_capture(tmp_path: Path) -> None:
    binary = tmp_path / "policy.bin"
    binary.write_bytes(bytes(range(256)) * 4)
    code, _, err = run("validate", str(binary))
    assert code == 2 and str(binary) in err
    garbage = tmp_path / "garbage.pcap"
    garbage.write_bytes(b"this is not a capture at all" * 10)
    code, _, err = run("packets", str(garbage))
    assert code == 2 and str(garbage) in err


def test_python_dash_m_and_help() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "classifier", "--help"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 0
    for command in ("validate", "check", "packets", "classify"):
        assert command in done.stdout


@pytest.mark.parametrize(("given", "seen"), [(None, "1"), ("3", "3")])
def test_the_command_keeps_numpy_to_one_blas_thread_unless_told(
    given: str | None, seen: str
) -> None:
    """The command sets OPENBLAS_NUM_THREADS=1 before numpy loads (its idle BLAS threads
    would only take start-up CPU), and leaves a value the user set (OpenBLAS reads it when
    numpy loads)."""
    import os

    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    if given is not None:
        env["OPENBLAS_NUM_THREADS"] = given
    probe = (
        "import sys, os, classifier.cli; "
        "assert 'numpy' in sys.modules; print(os.environ['OPENBLAS_NUM_THREADS'])"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.strip() == seen


def test_the_executable_freezes_what_it_loaded_then_exits_with_the_command_s_code() -> None:
    """`sgclassify` and `python -m classifier` run `classifier.cli.command`: the loaded
    modules frozen out of the garbage collector, then `main`'s exit code; `main` alone (what
    scripts and tests call) freezes nothing."""
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'sgclassify = "classifier.cli:command"' in pyproject
    assert "command()" in (ROOT / "classifier" / "__main__.py").read_text()
    code = (
        "import gc, sys\n"
        "import classifier.cli as cli\n"
        "def fake():\n"
        "    print(gc.get_freeze_count() > 0, flush=True)\n"
        "    return 3\n"
        "cli.main([\"validate\", sys.argv[1]], open('/dev/null', 'w'))\n"
        "print(gc.get_freeze_count(), flush=True)\n"
        "cli.main = fake\n"
        "cli.command()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, WEB_DB], capture_output=True, text=True, cwd=ROOT
    )
    assert (done.returncode, done.stdout, done.stderr) == (3, "0\nTrue\n", "")
