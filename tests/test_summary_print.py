"""The printed summary: plain text off a terminal or for long tables, `--top N` caps its tables."""

from __future__ import annotations

import io
import json
from pathlib import Path

from classifier.cli import main
from classifier.report.summary import RICH_MAX_ROWS, layout, print_summary
from tests.conftest import EXAMPLES, SAMPLE_PCAPS

WEB_DB = str(EXAMPLES / "web-db.yaml")
SAMPLES = sorted(str(path) for path in SAMPLE_PCAPS.glob("*.pcap"))


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def run_classify(tmp_path: Path, *extra: str) -> tuple[str, dict[str, object]]:
    out, err = io.StringIO(), io.StringIO()
    summary = tmp_path / "summary.json"
    code = main(
        ["classify", "--policy", WEB_DB, "--json", str(summary), "-q", *extra, *SAMPLES], out, err
    )
    assert code == 0, err.getvalue()
    return out.getvalue(), json.loads(summary.read_text())


def test_plain_text_off_a_terminal(tmp_path: Path) -> None:
    out, summary = run_classify(tmp_path)
    assert "┏" not in out and "│" not in out  # no box drawing: plain aligned columns
    assert "Hits per rule (policy order)" in out
    rules = summary["rules"]
    assert isinstance(rules, list)
    for rule in rules:  # without --top, every rule is printed
        assert f"\n{rule['id']} " in out or f"\n{rule['id']}\n" in out


def test_rich_on_a_terminal_only_for_short_tables(tmp_path: Path) -> None:
    _, summary = run_classify(tmp_path)
    terminal = Terminal()
    print_summary(summary, terminal)
    assert "┏" in terminal.getvalue()
    long = dict(summary)
    rules = summary["rules"]
    assert isinstance(rules, list)
    long["rules"] = [dict(rules[0], id=f"r{i}") for i in range(RICH_MAX_ROWS + 1)]
    terminal = Terminal()
    print_summary(long, terminal)
    assert "┏" not in terminal.getvalue() and "r100" in terminal.getvalue()


def test_top_caps_the_printed_tables_not_the_json(tmp_path: Path) -> None:
    full_out, full = run_classify(tmp_path)
    out, capped = run_classify(tmp_path, "--top", "2")
    assert capped["rules"] == full["rules"] and capped["sides"] == full["sides"]
    rules = full["rules"]
    assert isinstance(rules, list) and len(rules) > 2
    blocks = layout(capped, cap=2)
    tables = {block.title.split(":")[0]: block for block in blocks if not isinstance(block, tuple)}
    shown = tables["Hits per rule"].rows
    assert len(shown) == 2
    most = sorted(rules, key=lambda rule: -rule["packets"])[:2]
    assert {row[0] for row in shown} == {rule["id"] for rule in most}
    assert f"the 2 most hit of {len(rules)}" in out
    top_denied = capped["top_denied"]
    assert isinstance(top_denied, list) and len(top_denied) <= 2  # as before: JSON too
