"""Distributions drawn for people: histograms as text bars in the terminal, and the same as a self-contained HTML report."""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

# Terminal escapes and other control characters in untrusted names (reviewers, tags) are dropped, never printed.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def plain(text: str) -> str:
    return _CONTROL.sub("", text)


# Eighths of a block: a bar's length resolves to 1/8 of a character cell.
_BLOCKS = " ▏▎▍▌▋▊▉█"


def bar(fraction: float, *, width: int) -> str:
    """A horizontal bar filling `fraction` (0..1) of `width` cells."""
    eighths = round(max(0.0, min(1.0, fraction)) * width * 8)
    full, rest = divmod(eighths, 8)
    return ("█" * full + (_BLOCKS[rest] if rest else "")).ljust(width)


@dataclass(frozen=True)
class Histogram:
    """Values of several series counted into the same bins, so the series compare bin by bin."""

    title: str
    unit: str
    edges: list[float]  # len(bins) + 1
    series: dict[str, list[int]]  # name -> count per bin

    @property
    def empty(self) -> bool:
        return not any(any(counts) for counts in self.series.values())


def histogram(title: str, unit: str, series: Mapping[str, Sequence[float]], *, bins: int = 10) -> Histogram:
    values = [v for vs in series.values() for v in vs]
    bins = max(1, min(bins, len(set(values))))  # one decision is one bar, not ten bins of which nine are empty
    low, high = (min(values), max(values)) if values else (0.0, 1.0)
    if high <= low:
        high = low + 1.0
    step = (high - low) / bins
    edges = [low + step * i for i in range(bins + 1)]
    counted = {}
    for name, vs in series.items():
        counts = [0] * bins
        for v in vs:
            counts[min(bins - 1, int((v - low) / step))] += 1
        counted[name] = counts
    return Histogram(title, unit, edges, counted)


def _label(value: float) -> str:
    return f"{value:.2f}" if abs(value) < 10 else f"{value:.0f}"


def histogram_lines(chart: Histogram, *, width: int = 40) -> list[str]:
    """The histogram as text: per bin, one bar per series, each scaled to its own largest bin (shapes compare, sizes differ)."""
    lines = [f"{chart.title}"]
    if chart.empty:
        return [*lines, "  (no data yet)"]
    names = {name: plain(name) for name in chart.series}
    name_width = max(len(name) for name in names.values())
    peaks = {name: max(counts) or 1 for name, counts in chart.series.items()}
    for index in range(len(chart.edges) - 1):
        span = f"{_label(chart.edges[index])}–{_label(chart.edges[index + 1])} {chart.unit}"
        for row, (name, counts) in enumerate(chart.series.items()):
            lead = span if row == 0 else ""
            lines.append(f"  {lead:<22} {names[name]:<{name_width}} {bar(counts[index] / peaks[name], width=width)} {counts[index]}")
    totals = ", ".join(f"{names[name]} {sum(counts)}" for name, counts in chart.series.items())
    return [*lines, f"  (bars scaled per series; totals: {totals})"]


_COLOURS = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948")


def html_report(title: str, charts: Sequence[Histogram], tables: Sequence[tuple[str, list[str], list[list[str]]]]) -> str:
    """A self-contained page (inline CSS, no scripts, fonts or links); every text escaped, so untrusted text stays text."""

    def e(text: str) -> str:
        return html.escape(plain(text))

    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{e(title)}</title>",
        "<style>body{font:14px system-ui,sans-serif;margin:2em;max-width:60em}table{border-collapse:collapse;margin:1em 0}"
        "td,th{padding:2px 8px;text-align:left}td.n{text-align:right}.bar{display:inline-block;height:10px}"
        "h2{margin-top:2em}.legend span{margin-right:1em}</style></head><body>",
        f"<h1>{e(title)}</h1>",
    ]
    for heading, columns, rows in tables:
        parts.append(f"<h2>{e(heading)}</h2><table><tr>{''.join(f'<th>{e(c)}</th>' for c in columns)}</tr>")
        parts += ["<tr>" + "".join(f"<td>{e(cell)}</td>" for cell in row) + "</tr>" for row in rows]
        parts.append("</table>")
    for chart in charts:
        parts.append(f"<h2>{e(chart.title)}</h2>")
        if chart.empty:
            parts.append("<p>(no data yet)</p>")
            continue
        colours = dict(zip(chart.series, _COLOURS * 4, strict=False))
        legend = "".join(f'<span><span class="bar" style="width:10px;background:{c}"></span> {e(n)}</span>' for n, c in colours.items())
        parts.append(f'<p class="legend">{legend}</p><table>')
        peaks = {name: max(counts) or 1 for name, counts in chart.series.items()}
        for index in range(len(chart.edges) - 1):
            span = f"{_label(chart.edges[index])}–{_label(chart.edges[index + 1])} {chart.unit}"
            for row, (name, counts) in enumerate(chart.series.items()):
                width = round(300 * counts[index] / peaks[name])
                parts.append(
                    f"<tr><td>{e(span) if row == 0 else ''}</td><td>{e(name)}</td>"
                    f'<td><span class="bar" style="width:{width}px;background:{colours[name]}"></span></td>'
                    f'<td class="n">{counts[index]}</td></tr>'
                )
        parts.append("</table>")
    parts.append("</body></html>\n")
    return "\n".join(parts)
