"""The HTML report in a real headless Chromium (report contract, section 4).

Opened from a file:// URL with the network offline: no request but the file and data: URLs, no
console error, every chart present and drawn, the JSON island equal to `--json`, no sideways
scrolling at 1280x800 and 390x844, and screenshots that are not blank. Skipped, with the reason,
where no browser can be had (`make tools` installs Debian's chromium and chromium-driver).
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from classifier.cli import main
from classifier.report.html import SECTION_IDS, render_report
from tests.browser import find_browser, open_page, screenshot, start
from tests.conftest import EXAMPLES, SAMPLE_PCAPS
from tests.test_report_html import synthetic

Reports = dict[str, tuple[Path, dict[str, Any]]]  # name -> (report path, summary)

SIZES = {"laptop": (1280, 800, False), "phone": (390, 844, True)}

# JavaScript run in the page: geometry of the charts, and anything wider than the viewport that
# is not inside a box that scrolls (or clips) on its own.
CHARTS_JS = """
const out = {};
for (const section of document.querySelectorAll('main > section')) {
  out[section.id] = [...section.querySelectorAll('svg')].map(svg => {
    const box = svg.getBoundingClientRect();
    const marks = [...svg.querySelectorAll('rect, path, line')].filter(m => {
      const r = m.getBoundingClientRect(); return r.width > 0 && r.height > 0;
    }).length;
    return {width: box.width, height: box.height, marks: marks, cls: svg.getAttribute('class')};
  });
}
return out;
"""
OVERFLOW_JS = """
const limit = window.innerWidth + 0.5, wide = [];
const scrolls = el => { for (let e = el.parentElement; e; e = e.parentElement) {
  const x = getComputedStyle(e).overflowX;
  if (x === 'auto' || x === 'scroll' || x === 'hidden') return true; }
  return false; };
for (const el of document.body.querySelectorAll('*')) {
  const r = el.getBoundingClientRect();
  if (r.width > 0 && (r.right > limit || r.left < -0.5) && !scrolls(el))
    wide.push(el.tagName + '.' + el.className);
}
return {scrollWidth: document.documentElement.scrollWidth, bodyScroll: document.body.scrollWidth,
        innerWidth: window.innerWidth, wide: wide.slice(0, 10)};
"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    found = find_browser()
    if isinstance(found, str):
        pytest.skip(found)
    session = start(*found)
    yield session
    session.quit()


def _classify(
    tmp: Path, name: str, *extra: str, pcaps: list[str] | None = None
) -> tuple[Path, dict[str, Any]]:
    report, summary = tmp / f"{name}.html", tmp / f"{name}.json"
    captures = pcaps if pcaps is not None else sorted(str(p) for p in SAMPLE_PCAPS.glob("*.pcap"))
    args = ["classify", "--policy", str(EXAMPLES / "web-db.yaml"), "-q", *extra, *captures]
    code = main(
        [*args, "--json", str(summary), "--report", str(report)], io.StringIO(), io.StringIO()
    )
    assert code == 0
    return report, json.loads(summary.read_text())


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> Reports:
    tmp = tmp_path_factory.mktemp("reports")
    empty = tmp / "empty.pcap"
    empty.write_bytes(bytes.fromhex("d4c3b2a1020004000000000000000000ffff000001000000"))
    demo = _classify(tmp, "demo")
    return {
        "demo": demo,
        "crowded": _crowded(tmp, demo[1]),
        "stateless": _classify(tmp, "stateless", "--stateless", "--top", "1000"),
        "empty": _classify(tmp, "empty", pcaps=[str(empty)]),
    }


def _crowded(tmp: Path, summary: dict[str, Any]) -> tuple[Path, dict[str, Any]]:
    """The demo grown: 400 rules, 100 instances, 300 IPv6 tuples, ids of 160 characters
    without a space (and markup in them), a long policy name."""
    big = synthetic(summary, 400, 200, 300, odd_id="sg-" + "x" * 150 + "</script><b>")
    path = tmp / "crowded.html"
    path.write_text(render_report(big, "p" * 300), encoding="utf-8")
    return path, big


def _pixel_spread(png: bytes) -> tuple[float, int]:
    from PIL import Image, ImageStat

    image = Image.open(io.BytesIO(png)).convert("RGB")
    grey = ImageStat.Stat(image.convert("L")).stddev[0]
    colours = len(image.getcolors(1 << 24) or [])
    return grey, colours


@pytest.mark.parametrize("size", sorted(SIZES))
@pytest.mark.parametrize("name", ["demo", "crowded", "stateless", "empty"])
def test_report_renders_offline_clean_and_fits(
    browser: Any, reports: Reports, name: str, size: str, tmp_path: Path
) -> None:
    path, summary = reports[name]
    width, height, mobile = SIZES[size]
    load = open_page(browser, path, width, height, mobile)

    # requests: the file itself (the log does list it), else data: and blob: URLs only
    assert path.resolve().as_uri() in load.requests
    others = [url for url in load.requests if url != path.resolve().as_uri()]
    assert all(url.startswith(("data:", "blob:")) for url in others), others
    resources = browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)"
    )
    assert all(url.startswith(("data:", "blob:")) for url in resources), resources
    assert not [m for m in load.console if m["level"] in ("SEVERE", "WARNING")], load.console

    island = browser.execute_script("return document.getElementById('sg-summary').textContent")
    assert json.loads(island) == summary
    ids = browser.execute_script(
        "return [...document.querySelectorAll('main > section')].map(s => s.id)"
    )
    assert ids == list(SECTION_IDS)

    charts = browser.execute_script(CHARTS_JS)
    expected = {  # section -> the charts it must draw for this summary
        "verdicts-over-time": bool(summary["timeline"]["buckets"]),
        "top-denied": bool(summary["top_denied"]),
        "rule-hits": any(rule["packets"] for rule in summary["rules"]),  # bars of zero otherwise
        "instance-matrix": bool(summary["sides"]),
        "connections": summary["mode"] == "stateful" and summary["connections"]["total"] > 0,
    }
    for section, drawn in expected.items():
        if not drawn:
            continue
        svgs = charts[section]
        assert svgs and all(s["width"] > 0 and s["height"] > 0 for s in svgs), (section, svgs)
        assert sum(s["marks"] for s in svgs) > 0, (section, svgs)
    if summary["rules"]:
        assert len(charts["rule-hits"]) == len(summary["rules"])  # one bar per rule
    if summary["timeline"]["buckets"]:
        plot = [s for s in charts["verdicts-over-time"] if s["cls"] == "chart"]
        assert len(plot) == 1 and plot[0]["marks"] >= sum(
            1 for b in summary["timeline"]["buckets"] if any(b.values())
        )

    # what must be readable is rendered text (innerText leaves out what is hidden)
    text = browser.execute_script(
        "return Object.fromEntries([...document.querySelectorAll('main > section')]"
        ".map(s => [s.id, s.innerText]))"
    )
    assert summary["mode"] in text["totals"]
    for rule in summary["rules"]:
        assert rule["id"] in text["rule-hits"]
    if summary["never_hit"]:
        assert "never hit" in text["rule-hits"].lower()
    if summary["mode"] == "stateful" and summary["connections"]["total"]:
        assert "mid-stream" in text["connections"].lower()
    if summary["mode"] == "stateless":
        assert "stateless mode" in text["connections"]

    fit = browser.execute_script(OVERFLOW_JS)
    assert fit["scrollWidth"] <= fit["innerWidth"] and fit["bodyScroll"] <= fit["innerWidth"], fit
    assert fit["innerWidth"] == width and not fit["wide"], fit

    png = screenshot(browser)
    (tmp_path / f"{name}-{size}.png").write_bytes(png)
    spread, colours = _pixel_spread(png)
    assert spread > 10 and colours > 50, (spread, colours)


def test_the_console_and_request_logs_are_live(browser: Any, reports: Reports) -> None:
    """The checks above can fail: an error and a request made by the page do show up."""
    path, _ = reports["empty"]
    open_page(browser, path, 1280, 800, False)
    browser.execute_script(
        "console.error('sg-probe'); new Image().src = 'https://example.invalid/x.png';"
    )
    browser.execute_script("return new Promise(r => setTimeout(r, 200))")
    urls = [
        json.loads(e["message"])["message"].get("params", {}).get("request", {}).get("url", "")
        for e in browser.get_log("performance")
    ]
    assert any("example.invalid" in url for url in urls)
    assert any(
        "sg-probe" in m["message"] and m["level"] == "SEVERE" for m in browser.get_log("browser")
    )
