"""The HTML report's writer, without a browser: structure, escaping, the JSON island, size, CLI.

The page is parsed with the standard library's HTML parser (as a browser tokenises it), so a
hostile id that ended an element or opened a script would show up as an element here.
"""

from __future__ import annotations

import copy
import io
import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import yaml

from classifier.cli import main
from classifier.report.html import SECTION_IDS, render_report, summary_json
from tests.conftest import EXAMPLES, SAMPLE_PCAPS

WEB_DB = EXAMPLES / "web-db.yaml"
SAMPLES = sorted(str(p) for p in SAMPLE_PCAPS.glob("*.pcap"))
HOSTILE = "</script><script>alert(1)</script>"
EMPTY_PCAP = bytes.fromhex("d4c3b2a1020004000000000000000000ffff000001000000")
VOID = {"meta", "link", "br", "img", "input", "hr", "source", "area", "base", "col", "embed", "wbr"}


class Page(HTMLParser):
    """Elements (tag, attributes, enclosing section id), the scripts' text, and per section
    the rendered text: not in <title>, <style> or <script>."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str | None], str | None]] = []
        self.scripts: list[tuple[dict[str, str | None], str]] = []
        self.text: dict[str, str] = {}
        self.stack: list[tuple[str, str | None]] = []
        self.section: str | None = None
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "section":
            self.section = attributes.get("id")
        self.elements.append((tag, attributes, self.section))
        if tag == "script":
            self.scripts.append((attributes, ""))
        if tag not in VOID:
            self.stack.append((tag, attributes.get("id")))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs), self.section))

    def handle_endtag(self, tag: str) -> None:
        while self.stack:
            open_tag, _ = self.stack.pop()
            if open_tag == tag:
                break
        if tag == "section":
            self.section = None

    def handle_data(self, data: str) -> None:
        inside = {tag for tag, _ in self.stack}
        if "script" in inside:
            attributes, text = self.scripts[-1]
            self.scripts[-1] = (attributes, text + data)
        elif self.section and not inside & {"title", "style"}:
            self.text[self.section] = self.text.get(self.section, "") + data + " "


def classify(
    tmp_path: Path, *extra: str, pcaps: list[str] = SAMPLES, policy: Path = WEB_DB
) -> tuple[int, str, dict[str, Any], str]:
    report, summary = tmp_path / "report.html", tmp_path / "summary.json"
    err = io.StringIO()
    code = main(
        [
            "classify",
            "--policy",
            str(policy),
            "-q",
            "--json",
            str(summary),
            "--report",
            str(report),
            *extra,
            *pcaps,
        ],
        io.StringIO(),
        err,
    )
    html = report.read_text(encoding="utf-8") if report.exists() else ""
    document = json.loads(summary.read_text()) if summary.exists() else {}
    return code, html, document, err.getvalue()


def island(page: Page) -> Any:
    scripts = [text for attributes, text in page.scripts if attributes.get("id") == "sg-summary"]
    assert len(scripts) == 1
    return json.loads(scripts[0])


def test_structure_and_the_json_island(tmp_path: Path) -> None:
    code, html, summary, err = classify(tmp_path)
    assert code == 0, err
    assert html.startswith("<!DOCTYPE html>")
    page = Page(html)
    tags = [(tag, a) for tag, a, _ in page.elements]
    assert ("meta", {"charset": "utf-8"}) in tags
    assert ("meta", {"name": "viewport", "content": "width=device-width, initial-scale=1"}) in tags
    assert any(tag == "title" for tag, _ in tags)
    sections = [a.get("id") for tag, a in tags if tag == "section"]
    assert sections == list(SECTION_IDS)
    assert island(page) == summary and "timeline" in summary
    assert [a for a, _ in page.scripts] == [
        {"type": "application/json", "id": "sg-summary"}
    ]  # no other script
    body = html.split('id="sg-summary">', 1)[1].split("</script>", 1)[0]
    assert "<" not in body
    # the charts of section 3: SVG in each section with data
    svg_sections = {section for tag, _, section in page.elements if tag == "svg"}
    assert set(SECTION_IDS) - {"totals"} <= svg_sections
    text = page.text
    for needle in ("stateful", "UTC", "54.3%", "21,600.963412 s", "pcaps/web.pcap", "495"):
        assert needle in text["totals"], needle
    assert all(
        name in text["verdicts-over-time"]
        for name in ("allow", "deny", "unmanaged", "not-ip", "malformed")
    )
    assert "never hit" in text["rule-hits"] and "base-deny-telnet" in text["rule-hits"]
    assert "mid-stream" in text["connections"]
    for row in summary["top_denied"]:
        assert row["src"] in text["top-denied"] and row["dst"] in text["top-denied"]
    rule_rows = [a for tag, a, section in page.elements if tag == "tr" and section == "rule-hits"]
    assert len(rule_rows) == 1 + len(summary["rules"])  # the header row and one per rule


def test_nothing_is_requested(tmp_path: Path) -> None:
    """No src, href, srcset, url() or @import names anything but a data: URI or a #fragment."""
    _, html, _, _ = classify(tmp_path)
    page = Page(html)
    for tag, attributes, _ in page.elements:
        for name in ("src", "href", "srcset", "action", "poster", "data"):
            value = attributes.get(name)
            if value is not None:
                assert value.startswith(("data:", "#")), (tag, name, value)
    assert "@import" not in html
    for target in re.findall(r"url\(\s*['\"]?([^'\")]*)", html):
        assert target.startswith(("#", "data:")), target
    assert not re.search(r"https?://|//[a-z0-9.-]+\.[a-z]{2,}/", html.replace(summary_json({}), ""))


def test_hostile_ids_stay_text(tmp_path: Path) -> None:
    document = yaml.safe_load(WEB_DB.read_text())
    weird_instance = '<img src=x onerror="alert(2)">&amp;'
    for group in document["security_groups"]:
        for rule in group["rules"]:
            if rule["id"] == "base-deny-telnet":  # never hit: also in the never-hit list
                rule["id"] = HOSTILE
    for instance in document["instances"]:
        if instance["id"] == "web-1":
            instance["id"] = weird_instance
    policy = tmp_path / f"{HOSTILE.replace('/', '_')}.json"
    policy.write_text(json.dumps(document))
    code, html, summary, err = classify(tmp_path, policy=policy)
    assert code == 0, err
    page = Page(html)
    assert [tag for tag, _, _ in page.elements].count("script") == 1
    assert not [tag for tag, _, _ in page.elements if tag == "img"]
    assert not [a for _, a, _ in page.elements if any(k.startswith("on") for k in a)]
    assert island(page) == summary
    assert HOSTILE in summary["never_hit"]
    assert HOSTILE in page.text["rule-hits"] and weird_instance in page.text["instance-matrix"]


def synthetic(
    summary: dict[str, Any], rules: int, sides: int, denied: int, odd_id: str = HOSTILE
) -> dict[str, Any]:
    """The demo summary grown to many rules, instance sides and top-denied rows (IPv6, counts
    of 13 digits); every tenth rule and instance has `odd_id` in its id."""
    big = copy.deepcopy(summary)
    template = summary["rules"][0]
    big["rules"] = [
        {
            **template,
            "id": f"{odd_id}-{i}" if i % 10 == 0 else f"rule-{i:05d}",
            "group": f"sg-{i // 25}",
            "packets": i % 7 * 1000,
        }
        for i in range(rules)
    ]
    big["never_hit"] = [r["id"] for r in big["rules"] if not r["packets"]]
    big["sides"] = [
        {
            "instance": f"{odd_id}-{i // 2}" if i // 2 % 10 == 0 else f"vm-{i // 2:05d}",
            "direction": ("ingress", "egress")[i % 2],
            "allow": 10**9 + i,
            "deny": 10**8,
            "bytes": 10**12,
        }
        for i in range(sides)
    ]
    big["top_denied"] = [
        {
            "src": f"2001:db8:ffff:ffff:ffff:ffff:ffff:{i:x}",
            "dst": "2001:db8:eeee:eeee:eeee:eeee:eeee:eeee",
            "protocol": "icmpv6",
            "dport": None,
            "packets": 10**12 - i,
        }
        for i in range(denied)
    ]
    big["denied_tuples"], big["denied_tuples_exact"] = 10**7, False
    return big


def size_bound(summary: dict[str, Any]) -> int:
    return (
        1_500_000
        + 1_750 * len(summary["rules"])
        + 1_000 * len(summary["sides"])
        + 500 * len(summary["top_denied"])
    )


def test_size_stays_within_the_bound(tmp_path: Path) -> None:
    _, html, summary, _ = classify(tmp_path)
    assert len(html.encode()) < 100_000  # the demo: small
    for rules, sides, denied in ((5000, 0, 0), (0, 4000, 0), (0, 0, 5000), (3000, 2000, 1000)):
        big = synthetic(summary, rules, sides, denied)
        page = render_report(big, "policy.yaml")
        assert len(page.encode()) <= size_bound(big), (rules, sides, denied, len(page.encode()))
        parsed = Page(page)
        assert island(parsed) == big
        if rules:
            assert (
                sum(1 for tag, _, s in parsed.elements if tag == "svg" and s == "rule-hits")
                == rules
            )
        if denied:
            assert "Approximate" in parsed.text["top-denied"]
            assert "1,000,000,000,000" in parsed.text["top-denied"]  # whole numbers, never 1.0T


def test_empty_sections_say_so(tmp_path: Path) -> None:
    empty = tmp_path / "empty.pcap"
    empty.write_bytes(EMPTY_PCAP)
    code, html, summary, err = classify(tmp_path, pcaps=[str(empty)])
    assert code == 0, err
    assert summary["timeline"] == {"bucket_ns": 1000, "start_ns": None, "buckets": []}
    page = Page(html)
    assert [a.get("id") for tag, a, _ in page.elements if tag == "section"] == list(SECTION_IDS)
    assert island(page) == summary
    assert "No record was classified" in page.text["verdicts-over-time"]
    assert "Nothing was denied" in page.text["top-denied"]
    assert "No packet was evaluated" in page.text["instance-matrix"]
    assert "No connection was created" in page.text["connections"]
    assert "No rule decided any packet" in page.text["rule-hits"]
    assert all(
        r["id"] in page.text["rule-hits"] for r in summary["rules"]
    )  # rules are still listed


def test_stateless_mode(tmp_path: Path) -> None:
    code, html, summary, err = classify(
        tmp_path, "--stateless", pcaps=[str(SAMPLE_PCAPS / "web.pcap")]
    )
    assert code == 0, err
    page = Page(html)
    assert "stateless" in page.text["totals"]
    assert "not tracked in stateless mode" in page.text["connections"]
    assert not [tag for tag, _, s in page.elements if tag == "svg" and s == "connections"]
    assert island(page) == summary


def test_evictions_and_the_capture_filter_are_on_the_page(tmp_path: Path) -> None:
    code, html, summary, err = classify(tmp_path, "--max-connections", "1", "--filter", "tcp")
    if code == 2 and "libpcap" in err:
        pytest.skip("libpcap is not installed (the capture filter's compiler)")
    assert code == 0, err
    page = Page(html)
    evicted = summary["connections"]["evicted"]
    assert evicted > 0
    assert f"{evicted:,} were evicted" in page.text["connections"]
    assert "--max-connections" in page.text["connections"]
    assert "Capture filter" in page.text["totals"] and "tcp" in page.text["totals"]
    assert f"{summary['filter']['filtered']:,} records" in page.text["totals"]
    assert island(page) == summary


def test_damaged_capture_still_writes_the_report(tmp_path: Path) -> None:
    data = (SAMPLE_PCAPS / "web.pcap").read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(data[: len(data) - 30])
    code, html, summary, _ = classify(tmp_path, pcaps=[str(cut)])
    assert code == 0 and summary["files"][0]["damaged"]
    page = Page(html)
    assert island(page) == summary and "damaged" in page.text["totals"]
    garbage = tmp_path / "garbage.pcap"
    garbage.write_bytes(b"not a capture" * 20)
    (tmp_path / "report.html").unlink()
    code, html, summary, err = classify(
        tmp_path, pcaps=[str(SAMPLE_PCAPS / "web.pcap"), str(garbage)]
    )
    assert code == 2 and "Traceback" not in err
    # every header is read before the run: nothing is written for a bad capture
    assert str(garbage) in err and not (tmp_path / "report.html").exists()


@pytest.mark.parametrize("clash", ["policy", "capture", "json", "packets"])
def test_report_may_not_overwrite_an_input_or_another_output(tmp_path: Path, clash: str) -> None:
    capture = tmp_path / "web.pcap"
    capture.write_bytes((SAMPLE_PCAPS / "web.pcap").read_bytes())
    policy = tmp_path / "policy.yaml"
    policy.write_text(WEB_DB.read_text())
    before = {p: p.read_bytes() for p in (capture, policy)}
    other = tmp_path / "out.txt"
    target = {"policy": policy, "capture": capture, "json": other, "packets": other}[clash]
    extra = {"json": ["--json", str(other)], "packets": ["--packets", str(other)]}.get(clash, [])
    err = io.StringIO()
    code = main(
        ["classify", "--policy", str(policy), "-q", *extra, "--report", str(target), str(capture)],
        io.StringIO(),
        err,
    )
    assert code == 2 and "also" in err.getvalue() and len(err.getvalue().splitlines()) == 1
    assert {p: p.read_bytes() for p in before} == before


def test_unwritable_report_is_one_line(tmp_path: Path) -> None:
    err = io.StringIO()
    target = tmp_path / "missing-dir" / "r.html"
    code = main(
        ["classify", "--policy", str(WEB_DB), "-q", "--report", str(target), SAMPLES[0]],
        io.StringIO(),
        err,
    )
    assert code == 2 and "cannot write" in err.getvalue() and "Traceback" not in err.getvalue()


def test_non_utf8_file_names_keep_the_page_valid(tmp_path: Path) -> None:
    summary = json.loads(json.dumps(synthetic(classify(tmp_path)[2], 3, 2, 2)))
    summary["files"][0]["path"] = (
        "caps/\udcff\udcfe.pcap"  # bytes of a Latin-1 name, as the shell gave them
    )
    page = render_report(summary)
    page.encode("utf-8")  # strict: the page is valid UTF-8
    assert "caps/\ufffd\ufffd.pcap" in Page(page).text["totals"]
    assert island(Page(page)) == summary  # the island keeps the exact text, escaped
