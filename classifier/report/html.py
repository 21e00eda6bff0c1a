"""`sgclassify classify --report OUT.html`: the run's summary as one self-contained HTML page.

The contract is docs/report.md; this module only reads the summary
document (`SummaryBuilder.summary()`, what `--json` writes) and writes text: no numbers are
computed here that the summary does not hold, beyond shares and chart geometry.

Why charts are SVG written here, and no script at all:
- small: the demo's page is about 40 KB, where an inlined chart library would add
  100-250 KB to every report, and the size bound of the contract stays easy to keep;
- nothing to fail at load time: without a script there is no console error to have, nothing
  that can fetch, import or connect, and the page reads the same in every browser, offline,
  printed, or with scripts turned off;
- text is real text: ids, addresses and counts are HTML or SVG `<text>`, so they can be
  searched, copied, read by a screen reader and zoomed, not pixels on a canvas.
Charts are laid out in percentages of their box with fixed-height rows, so they fill a laptop
screen or a phone without scaling their lettering; on a phone the wide tables become one card
per row, and long tables scroll inside their own box.

Layout of the page: a header, then the six sections of the contract, in order, with their ids
(`totals`, `verdicts-over-time`, `top-denied`, `rule-hits`, `instance-matrix`, `connections`),
then the summary as `<script type="application/json" id="sg-summary">` with every `<` written
`\\u003c`. The stylesheet is `html.css` beside this module, inlined.

Size: a fixed part (stylesheet, header, the 120 timeline columns: about 100 KB at most), plus
about 650 bytes per rule, 500 per instance side and 370 per top-denied row (the JSON island
included), for ids of ordinary length; nothing grows with packets or connections.
"""

from __future__ import annotations

import base64
import html
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from classifier.report.summary import denied_port

VERDICTS = ("allow", "deny", "unmanaged", "not-ip", "malformed")
VERDICT_TEXT = {
    "allow": "allowed by a rule or by connection state",
    "deny": "denied by a rule or by no rule matching",
    "unmanaged": "neither address is an instance of the policy",
    "not-ip": "not an IP packet (ARP, LLDP, ...)",
    "malformed": "could not be decoded",
}
SECTION_IDS = (
    "totals",
    "verdicts-over-time",
    "top-denied",
    "rule-hits",
    "instance-matrix",
    "connections",
)
STYLESHEET = Path(__file__).with_suffix(".css")
NEVER_HIT_CHIPS = 40  # never-hit ids listed above the rule table (all are marked in the table)

# RGB of the verdict colours of the stylesheet, for the heat map's inline backgrounds
_ALLOW_RGB, _DENY_RGB = "0 158 115", "213 94 0"
_ICON = base64.b64encode(
    b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><path d="M16 2 4 7v8c0 7.5 5 '
    b"12.8 12 15 "
    b'7-2.2 12-7.5 12-15V7z" fill="#0f1b2d"/><path d="M16 6v20c-5-1.9-8-6-8-11V9.6z" '
    b'fill="#009e73"/>'
    b'<path d="M16 6v20c5-1.9 8-6 8-11V9.6z" fill="#d55e00"/></svg>'
).decode()

# tick steps of the time axis, in nanoseconds: 1-2-5 below a second, clock steps above
_SECOND = 1_000_000_000
_TICK_STEPS = (
    [m * 10**e for e in range(3, 9) for m in (1, 2, 5)]
    + [
        s * _SECOND
        for s in (
            1,
            2,
            5,
            10,
            15,
            30,
            60,
            120,
            300,
            600,
            900,
            1800,
            3600,
            7200,
            10800,
            21600,
            43200,
        )
    ]
    + [d * 86_400 * _SECOND for d in (1, 2, 7, 14, 28, 91, 182, 364, 728, 1820, 3640, 7280, 36400)]
)
_MAX_TICKS = 7


# --- text ----------------------------------------------------------------------------------


def _clean(text: object) -> str:
    """User text as valid Unicode: bytes of non-UTF-8 file names (surrogateescape) become U+FFFD
    in the page, so the file is valid UTF-8 (the JSON island keeps them exactly, escaped)."""
    return str(text).encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def esc(text: object) -> str:
    """Text for HTML content or a quoted attribute: never markup."""
    return html.escape(_clean(text), quote=True)


def count(n: int) -> str:
    return f"{int(n):,}"


def percent(part: int, whole: int) -> str:
    if not whole:
        return "0%"
    value = 100.0 * part / whole
    if 0 < value < 0.1:
        return f"{value:.2g}%"
    if 99.9 < value < 100:
        return f"{value:.3f}".rstrip("0") + "%"
    return f"{value:.1f}%"


def _pct(fraction: float) -> str:
    """An SVG length in percent of the box, short."""
    return f"{100 * fraction:.3f}".rstrip("0").rstrip(".") + "%"


def utc(ns: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=ns // 1000)


def utc_text(ns: int) -> str:
    """`2025-11-28 09:00:00.05 UTC`: the fraction to the nanosecond, trailing zeros dropped."""
    moment = utc(ns)
    fraction = f"{ns % _SECOND:09d}".rstrip("0")
    return moment.strftime("%Y-%m-%d %H:%M:%S") + (f".{fraction}" if fraction else "") + " UTC"


def duration_text(ns: int) -> str:
    """A duration for people: `268.435456 s (4 min 28 s)`, `512 µs`, `1.024 ms`."""
    if ns < 1_000_000:
        return f"{ns / 1000:g} µs"
    if ns < _SECOND:
        return f"{ns / 1e6:g} ms"
    text = f"{ns / _SECOND:,.9f}".rstrip("0").rstrip(".") + " s"
    return text + (f" ({short_duration(ns)})" if ns >= 60 * _SECOND else "")


def short_duration(ns: int) -> str:
    """At most two units: `6 h 1 min`, `4 min 28 s`, `1.2 s`, `350 ms`, `0 s`."""
    if ns < _SECOND:
        return duration_text(ns) if ns else "0 s"
    if ns < 60 * _SECOND:
        return f"{ns / _SECOND:.3g} s"
    whole = ns // _SECOND
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [(days, "d"), (hours, "h"), (minutes, "min"), (secs, "s")]
    start = next(i for i, (v, _) in enumerate(parts) if v)
    return " ".join(f"{v} {u}" for v, u in parts[start : start + 2] if v)


# --- small pieces -------------------------------------------------------------------------


def _bar(fraction: float, cls: str, title: str = "") -> str:
    """A horizontal bar: one `<rect>` in a rounded track (the track is the svg's background)."""
    width = _pct(max(0.0, min(1.0, fraction)))
    tip = f"<title>{esc(title)}</title>" if title else ""
    return (
        f'<svg class="bar" role="img" aria-label="{esc(title)}">{tip}'
        f'<rect class="{cls}" height="100%" width="{width}" rx="5"/></svg>'
    )


def _section(ident: str, title: str, lead: str, body: str) -> str:
    lead_html = f'<p class="lead">{lead}</p>' if lead else ""
    return (
        f'<section id="{ident}" aria-labelledby="{ident}-title">\n'
        f'<h2 id="{ident}-title">{title}</h2>{lead_html}\n{body}\n</section>\n'
    )


def _empty(sentence: str) -> str:
    return f'<p class="empty">{sentence}</p>'


def _legend(names: Iterable[str]) -> str:
    items = "".join(f'<li><span class="sw v-{name}"></span>{name}</li>' for name in names)
    return f'<ul class="legend" aria-label="verdict colours">{items}</ul>'


# --- totals ---------------------------------------------------------------------------------


def _totals(summary: Mapping[str, Any]) -> str:
    packets = int(summary["packets"])
    verdicts: Mapping[str, int] = summary["verdicts"]
    verdict_bytes: Mapping[str, int] = summary.get("verdict_bytes", {})
    time = summary["time"]
    files: Sequence[Mapping[str, Any]] = summary["files"]
    first, last = time.get("first_ns"), time.get("last_ns")
    span = float(time.get("span_seconds") or 0.0)
    span_text = f"{span:,.9f}".rstrip("0").rstrip(".") + " s"
    damaged = sum(1 for f in files if f.get("damaged"))
    kpis = [
        ("Packets", count(packets), "records classified"),
        ("Bytes", count(summary["bytes"]), "on the wire"),
        (
            "Time span",
            short_duration(last - first) if first is not None and last is not None else "none",
            span_text if first is not None else "no records",
        ),
        (
            "Mode",
            esc(summary["mode"]),
            "connection tracking" if summary["mode"] == "stateful" else "rules alone",
        ),
        (
            "Captures",
            count(len(files)),
            f"{count(damaged)} damaged" if damaged else "all read to the end",
        ),
    ]
    out = ['<div class="kpis">']
    for label, value, hint in kpis:
        out.append(
            f'<div class="kpi"><div class="label">{label}</div><div class="value">{value}</div>'
            f'<div class="hint">{hint}</div></div>'
        )
    out.append("</div>")
    if packets:
        out.append(_share_bar(verdicts, packets))
    out.append('<div class="verdicts">')
    for name in VERDICTS:
        n = int(verdicts.get(name, 0))
        out.append(
            f'<div class="verdict" title="{esc(VERDICT_TEXT[name])}"><span class="sw v-{name}">'
            "</span>"
            f'<span class="name">{name}</span><span class="pct">{percent(n, packets)}</span>'
            f'<span class="count"><b>{count(n)}</b> packets</span>'
            f'<span class="count">{count(verdict_bytes.get(name, 0))} bytes</span></div>'
        )
    out.append("</div>")

    when = (
        f"<dt>First</dt><dd>{utc_text(first)}</dd><dt>Last</dt><dd>{utc_text(last)}</dd>"
        if first is not None and last is not None
        else "<dt>Records</dt><dd>none</dd>"
    )
    reasons = "".join(
        f"<dt>{esc(k)}</dt><dd>{count(v)}</dd>" for k, v in summary.get("reasons", {}).items()
    )
    malformed = "".join(
        f"<dt>{esc(k)}</dt><dd>{count(v)}</dd>" for k, v in summary.get("malformed", {}).items()
    )
    out.append('<div class="facts">')
    out.append(
        f'<div><h3>Time</h3><dl class="pairs">{when}<dt>Span</dt><dd>{span_text}</dd></dl></div>'
    )
    out.append(f'<div><h3>Reasons</h3><dl class="pairs">{reasons}</dl></div>')
    if malformed:
        out.append(f'<div><h3>Malformed</h3><dl class="pairs">{malformed}</dl></div>')
    if "filter" in summary:
        capture_filter = summary["filter"]
        out.append(
            '<div><h3>Capture filter</h3><dl class="pairs"><dt>--filter</dt>'
            f"<dd><code>{esc(capture_filter['expression'])}</code></dd><dt>Filtered out</dt>"
            f"<dd>{count(capture_filter['filtered'])} records (not part of this run)</dd>"
            "</dl></div>"
        )
    out.append("</div>")

    out.append("<h3>Capture files</h3>")
    if not files:
        out.append(_empty("No capture file was read."))
    else:
        rows = []
        for f in files:
            status = "damaged" if f.get("damaged") else "ok"
            extra = []
            if f.get("slow_path"):
                extra.append(f"{count(f['slow_path'])} records through scapy (no native decoder)")
            notes = "".join(f"<li>{esc(w)}</li>" for w in f.get("warnings", []))
            notes += "".join(f"<li>{x}</li>" for x in extra)
            rows.append(
                f'<tr><td class="path">{esc(f["path"])}'
                + (f'<ul class="warnings">{notes}</ul>' if notes else "")
                + f'</td><td class="num">{count(f["packets"])}</td>'
                f'<td><span class="pill {"deny" if status == "damaged" else "allow"}">'
                f"{status}</span></td></tr>"
            )
        out.append(
            '<div class="scroll"><table><thead><tr><th>File</th><th class="num">Packets</th><th>'
            "Status</th>"
            f"</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
        )
    lead = f"{count(packets)} packets classified against the policy, {esc(summary['mode'])} mode."
    return _section("totals", "Totals", lead, "\n".join(out))


def _share_bar(verdicts: Mapping[str, int], packets: int) -> str:
    """One bar split by verdict: where the packets went, at a glance."""
    x = 0.0
    parts = []
    for name in VERDICTS:
        n = int(verdicts.get(name, 0))
        if not n:
            continue
        w = n / packets
        parts.append(
            f'<rect class="v-{name}" x="{_pct(x)}" width="{_pct(w)}" height="100%">'
            f"<title>{name}: {count(n)} packets ({percent(n, packets)})</title></rect>"
        )
        x += w
    return f'<svg class="share" role="img" aria-label="packets by verdict">{"".join(parts)}</svg>'


# --- verdicts over time ---------------------------------------------------------------------


def _nice_axis(top: int, ticks: int = 4) -> tuple[int, int]:
    """A step of 1, 2 or 5 × 10^k and the axis maximum (a multiple of it) for counts up to `top`."""
    top = max(int(top), 1)
    raw = top / ticks
    magnitude = 10 ** max(0, int(math.floor(math.log10(raw)))) if raw >= 1 else 1
    for m in (1, 2, 5, 10):
        step = m * magnitude
        if step * ticks >= top:
            break
    return step, step * math.ceil(top / step)


def _tick_label(ns: int, step: int, with_date: bool) -> str:
    moment = utc(ns)
    if step >= 86_400 * _SECOND:
        return moment.strftime("%Y-%m-%d")
    if step >= 60 * _SECOND:
        text = moment.strftime("%H:%M")
    else:
        text = moment.strftime("%H:%M:%S")
        if step < _SECOND:
            digits = 3 if step >= 1_000_000 else 6
            text += "." + f"{ns % _SECOND:09d}"[:digits]
    return (moment.strftime("%m-%d ") + text) if with_date else text


def _time_ticks(start: int, end: int) -> tuple[int, list[int]]:
    span = max(end - start, 1)
    step = next((s for s in _TICK_STEPS if span / s <= _MAX_TICKS), _TICK_STEPS[-1])
    first = -(-start // step) * step
    return step, list(range(first, end + 1, step))


def _timeline(summary: Mapping[str, Any]) -> str:
    timeline = summary["timeline"]
    buckets: Sequence[Mapping[str, int]] = timeline["buckets"]
    if not buckets or timeline.get("start_ns") is None:
        return _section(
            "verdicts-over-time",
            "Verdicts over time",
            "",
            _empty("No record was classified: there is no time line to draw."),
        )
    width, start = int(timeline["bucket_ns"]), int(timeline["start_ns"])
    n = len(buckets)
    end = start + n * width
    totals = [sum(int(b.get(v, 0)) for v in VERDICTS) for b in buckets]
    step, top = _nice_axis(max(totals))
    top_y, height = 10, 196
    base_y = top_y + height
    svg_h = base_y + 30

    def y(value: float) -> float:
        return base_y - height * value / top

    axis = [
        f'<svg class="axis" aria-hidden="true" viewBox="0 0 52 {svg_h}" width="52" '
        f'height="{svg_h}">'
    ]
    grid = []
    for value in range(0, top + 1, step):
        axis.append(f'<text x="46" y="{y(value) + 4:.1f}" text-anchor="end">{count(value)}</text>')
        if value:
            grid.append(
                f'<line class="gridline" x1="0" x2="100%" y1="{y(value):.1f}" y2="{y(value):.1f}"/>'
            )
    axis.append("</svg>")

    slot = 1.0 / n
    gap = 0.18 if n >= 24 else 0.35
    bars = []
    for i, bucket in enumerate(buckets):
        if not totals[i]:
            continue
        x, w = _pct((i + gap / 2) * slot), _pct(slot * (1 - gap))
        lo = 0
        rects = []
        for name in VERDICTS:
            v = int(bucket.get(name, 0))
            if not v:
                continue
            y0, y1 = y(lo), y(lo + v)
            h = max(y0 - y1, 1.0)
            rects.append(
                f'<rect class="v-{name}" x="{x}" width="{w}" y="{y0 - h:.2f}" height="{h:.2f}"/>'
            )
            lo += v
        parts = ", ".join(f"{name} {count(bucket[name])}" for name in VERDICTS if bucket.get(name))
        tip = (
            f"{_tick_label(start + i * width, min(width, _SECOND), True)} UTC, "
            f"{duration_text(width)}: {count(totals[i])} records ({parts})"
        )
        bars.append(f"<g><title>{esc(tip)}</title>{''.join(rects)}</g>")

    tick_step, ticks = _time_ticks(start, end)
    crosses_day = utc(start).date() != utc(end - 1).date()
    labels = []
    for k, t in enumerate(ticks):
        fx = (t - start) / (end - start)
        anchor = "start" if fx < 0.04 else "end" if fx > 0.96 else "middle"
        with_date = (
            crosses_day
            and tick_step < 86_400 * _SECOND
            and (k == 0 or utc(t).date() != utc(ticks[k - 1]).date())
        )
        odd = ' class="odd"' if k % 2 else ""
        labels.append(
            f'<line class="tick" x1="{_pct(fx)}" x2="{_pct(fx)}" y1="{base_y}" y2="{base_y + 5}"/>'
            f'<text{odd} x="{_pct(fx)}" y="{base_y + 19}" text-anchor="{anchor}">'
            f"{_tick_label(t, tick_step, with_date)}</text>"
        )
    chart = (
        '<svg class="chart" role="img" aria-label="records per verdict over time" '
        f'height="{svg_h}">'
        + "".join(grid)
        + "".join(bars)
        + f'<line class="baseline" x1="0" x2="100%" y1="{base_y}" y2="{base_y}"/>'
        + "".join(labels)
        + "</svg>"
    )
    day_first, day_last = utc(start).strftime("%Y-%m-%d"), utc(end - 1).strftime("%Y-%m-%d")
    days = day_first if day_first == day_last else f"{day_first} to {day_last}"
    body = (
        _legend(VERDICTS)
        + f'<div class="plot">{"".join(axis)}{chart}</div>'
        + f'<p class="axis-title">Time (UTC), {days} · records per column</p>'
    )
    lead = (
        f"{count(n)} columns of {esc(duration_text(width))} each, stacked by verdict, "
        f"from {utc_text(start)}."
    )
    return _section("verdicts-over-time", "Verdicts over time", lead, body)


# --- top denied -----------------------------------------------------------------------------


def _top_denied(summary: Mapping[str, Any]) -> str:
    rows: Sequence[Mapping[str, Any]] = summary["top_denied"]
    distinct = int(summary.get("denied_tuples", len(rows)))
    if not rows:
        return _section("top-denied", "Top denied", "", _empty("Nothing was denied."))
    out = []
    if not summary.get("denied_tuples_exact", True):
        out.append(
            '<p class="note"><b>Approximate.</b> There were too many distinct denied tuples to '
            "keep "
            "them all: the least-hit ones were dropped along the way, so these counts and this "
            "order are approximate.</p>"
        )
    peak = max(int(r["packets"]) for r in rows) or 1
    body = []
    for rank, r in enumerate(rows, 1):
        port = esc(denied_port(dict(r)) or "-")
        packets = int(r["packets"])
        body.append(
            f'<tr><td class="rank num">{rank}</td><td class="addr">{esc(r["src"])}</td><td '
            f'class="addr">{esc(r["dst"])}</td>'
            f'<td>{esc(r["protocol"])}</td><td class="num">{port}</td><td class="num">'
            f"{count(packets)}</td>"
            f'<td class="bar">{_bar(packets / peak, "v-deny")}</td></tr>'
        )
    out.append(
        '<div class="scroll tall"><table class="cards denied"><thead><tr><th class="num">#</th><th>'
        "Source</th><th>Destination</th>"
        '<th>Protocol</th><th class="num">Port / ICMP</th><th class="num">Packets</th><th>Denied '
        "packets</th></tr></thead>"
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )
    lead = (
        f"The {count(len(rows))} most denied (source, destination, protocol, port) of "
        f"{count(distinct)} distinct denied tuple{'s' if distinct != 1 else ''}."
    )
    return _section("top-denied", "Top denied", lead, "\n".join(out))


# --- rule hits ------------------------------------------------------------------------------


def _rule_hits(summary: Mapping[str, Any]) -> str:
    rules: Sequence[Mapping[str, Any]] = summary["rules"]
    never = set(summary.get("never_hit", []))
    if not rules:
        return _section("rule-hits", "Hits per rule", "", _empty("The policy has no rules."))
    peak = max(int(r["packets"]) for r in rules) or 1
    never_rules = [r for r in rules if r["id"] in never]
    out = [] if any(int(r["packets"]) for r in rules) else [_empty("No rule decided any packet.")]
    if never_rules:
        chips = "".join(
            f'<span class="chip">{esc(r["id"])}</span>' for r in never_rules[:NEVER_HIT_CHIPS]
        )
        more = len(never_rules) - NEVER_HIT_CHIPS
        if more > 0:
            chips += f'<span class="muted">and {count(more)} more, marked in the table</span>'
        out.append(f'<div class="chips" aria-label="rules never hit">{chips}</div>')
    body = []
    for r in rules:
        packets = int(r["packets"])
        marks = ""
        if r["id"] in never:
            marks += '<span class="badge">never hit</span>'
        if not r.get("enabled", True):
            marks += '<span class="badge off">disabled</span>'
        action = esc(r["action"])
        title = (
            f"{r['id']}: {count(packets)} packets, {count(r.get('bytes', 0))} bytes, "
            f"{count(r.get('connections', 0))} connections"
        )
        row_class = ' class="never"' if r["id"] in never else ""
        body.append(
            f'<tr{row_class}><td class="id">{esc(r["id"])}{marks}</td>'
            f'<td class="id">{esc(r["group"])}</td><td>{esc(r["direction"])}</td><td class="num">'
            f"{esc(r['priority'])}</td>"
            f'<td><span class="pill {action}">{action}</span></td><td class="num">'
            f"{count(packets)}</td>"
            '<td class="bar">'
            f"{_bar(packets / peak, 'v-' + ('deny' if r['action'] == 'deny' else 'allow'), title)}"
            "</td></tr>"
        )
    out.append(
        '<div class="scroll tall"><table class="cards rules"><thead><tr><th>Rule</th><th>Group</th>'
        "<th>Direction</th>"
        '<th class="num">Priority</th><th>Action</th><th class="num">Packets</th><th>Packets '
        "decided</th></tr></thead>"
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )
    hit = len(rules) - len(never_rules)
    lead = (
        f"{count(len(rules))} rules in policy order: {count(hit)} hit, "
        f"<b>{count(len(never_rules))} never hit</b>. A rule is hit when it decides an evaluated "
        "side."
    )
    return _section("rule-hits", "Hits per rule", lead, "\n".join(out))


# --- instance matrix ------------------------------------------------------------------------


def _heat(share: float) -> str:
    if share <= 0:
        return f"background:rgb({_ALLOW_RGB} / 7%)"
    return f"background:rgb({_DENY_RGB} / {6 + 34 * share:.0f}%)"


def _matrix_cell(side: Mapping[str, Any] | None) -> str:
    if side is None:
        return '<td class="cell none">no packets</td>'
    allow, deny = int(side["allow"]), int(side["deny"])
    total = allow + deny
    share = deny / total if total else 0.0
    split = (
        f'<svg class="split" role="img" aria-label="{count(allow)} allowed, {count(deny)} denied">'
        f'<rect class="v-allow" width="{_pct(allow / total if total else 0)}" height="100%"/>'
        f'<rect class="v-deny" x="{_pct(allow / total if total else 0)}" width="{_pct(share)}" '
        'height="100%"/></svg>'
    )
    return (
        f'<td class="cell" style="{_heat(share)}"><div class="counts"><span><b>{count(allow)}</b> '
        "allowed</span> "
        f'<span><b>{count(deny)}</b> denied</span></div>{split}<div class="denied-share">'
        f"{percent(deny, total)} denied</div></td>"
    )


def _instance_matrix(summary: Mapping[str, Any]) -> str:
    sides: Sequence[Mapping[str, Any]] = summary["sides"]
    if not sides:
        return _section(
            "instance-matrix",
            "Instances",
            "",
            _empty("No packet was evaluated on an instance's side."),
        )
    cells: dict[str, dict[str, Mapping[str, Any]]] = {}
    for side in sides:
        cells.setdefault(side["instance"], {})[side["direction"]] = side
    rows = [
        f'<tr><td class="id">{esc(instance)}</td>'
        f"{_matrix_cell(d.get('ingress'))}{_matrix_cell(d.get('egress'))}</tr>"
        for instance, d in cells.items()
    ]
    steps = "".join(f'<i style="{_heat(s)}"></i>' for s in (0, 0.25, 0.5, 0.75, 1))
    body = (
        '<div class="scroll tall"><table class="cards matrix"><thead><tr><th>Instance</th><th>'
        "Ingress</th><th>Egress</th>"
        f"</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
        f'<div class="heat">Cell colour, share of packets denied: <span class="scale">0% {steps} '
        "100%</span></div>"
    )
    lead = (
        f"Packets per instance and direction, on the reported side ({count(len(cells))} instances)."
    )
    return _section("instance-matrix", "Instances", lead, body)


# --- connections ----------------------------------------------------------------------------


def _connections(summary: Mapping[str, Any]) -> str:
    title = "Connections"
    if summary["mode"] != "stateful":
        return _section(
            title.lower(),
            title,
            "",
            _empty(
                "Connections are not tracked in stateless mode: every packet was judged by the "
                "rules alone."
            ),
        )
    connections = summary["connections"]
    total, midstream = int(connections["total"]), int(connections["midstream"])
    by_protocol: Mapping[str, int] = connections["by_protocol"]
    if not total:
        return _section(title.lower(), title, "", _empty("No connection was created."))
    peak = max(by_protocol.values(), default=1) or 1
    bars = "".join(
        f'<span class="label">{esc(name)}</span>'
        f"{_bar(n / peak, 'v-accent', f'{name}: {count(n)} connections')}"
        f'<span class="num">{count(n)}</span>'
        for name, n in by_protocol.items()
    )
    evicted, limit = int(connections.get("evicted", 0)), int(connections.get("limit", 0))
    evictions = (
        '<div class="kpi"><div class="label">Evicted</div>'
        f'<div class="value">{count(evicted)}</div><div class="hint">forgotten at the limit of '
        f"{count(limit)} tracked at once (--max-connections)</div></div>"
        if evicted
        else ""
    )
    body = (
        '<div class="kpis"><div class="kpi"><div class="label">Created</div><div class="value">'
        f"{count(total)}</div>"
        '<div class="hint">connections</div></div><div class="kpi"><div class="label">'
        "Mid-stream</div>"
        f'<div class="value">{count(midstream)}</div><div class="hint">TCP connections picked up '
        f"mid-stream</div></div>{evictions}</div>"
        f'<h3>By protocol</h3><div class="bars">{bars}</div>'
    )
    lead = (
        f"{count(total)} connections created; {count(midstream)} TCP "
        f"connection{'s' if midstream != 1 else ''} "
        "picked up mid-stream (the first packet seen was not a bare SYN)."
        + (
            f" {count(evicted)} were evicted: at most {count(limit)} are tracked at once, and "
            "the connection idle longest makes room (--max-connections)."
            if evicted
            else ""
        )
    )
    return _section(title.lower(), title, lead, body)


# --- the page -------------------------------------------------------------------------------


def _stylesheet() -> str:
    """The stylesheet without its comments."""
    return re.sub(r"/\*.*?\*/\n?", "", STYLESHEET.read_text(encoding="utf-8"), flags=re.S)


def summary_json(summary: Mapping[str, Any]) -> str:
    """The JSON island's text: the summary, every `<` as `\\u003c` (nothing can end the element)."""
    return json.dumps(summary, separators=(",", ":")).replace("<", "\\u003c")


def render_report(summary: Mapping[str, Any], policy: str | None = None) -> str:
    """The whole page, as text."""
    from classifier import __version__

    files = summary["files"]
    time = summary["time"]
    meta = [
        f"<b>{count(summary['packets'])}</b> packets",
        f"<b>{count(len(files))}</b> capture{'s' if len(files) != 1 else ''}",
    ]
    if policy:
        meta.insert(0, f"policy <b>{esc(policy)}</b>")
    meta.append(esc(summary["mode"]))
    if time.get("first_ns") is not None:
        meta.append(f"{utc_text(time['first_ns'])} to {utc_text(time['last_ns'])}")
    title = f"sg-classifier report: {count(summary['packets'])} packets" + (
        f", {_clean(policy)}" if policy else ""
    )
    sections = (
        _totals(summary),
        _timeline(summary),
        _top_denied(summary),
        _rule_hits(summary),
        _instance_matrix(summary),
        _connections(summary),
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{esc(title)}</title>\n"
        f'<link rel="icon" href="data:image/svg+xml;base64,{_ICON}">\n'
        f"<style>\n{_stylesheet()}</style>\n</head>\n<body>\n"
        '<header class="top"><div class="wrap"><div class="brand">sg-classifier</div>'
        "<h1>What the security groups did to this traffic</h1>"
        f'<p class="meta">{" · ".join(meta)}</p></div></header>\n'
        f'<main class="wrap">\n{"".join(sections)}</main>\n'
        f'<footer class="wrap">Written by sgclassify {esc(__version__)}. The summary is embedded '
        "in this "
        'file as JSON (the element with id <span class="mono">sg-summary</span>), equal to what '
        '<span class="mono">--json</span> writes.</footer>\n'
        f'<script type="application/json" id="sg-summary">{summary_json(summary)}</script>\n'
        "</body>\n</html>\n"
    )


def write_report(summary: Mapping[str, Any], stream: TextIO, policy: str | None = None) -> None:
    stream.write(render_report(summary, policy))
