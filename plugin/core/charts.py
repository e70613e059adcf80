"""Progress charts as server-rendered SVG, each with the data table that says the same.

Why hand-written SVG and not a chart library: the page must work without JavaScript, a
CDN or a build (the tablet's content security policy allows no script but our own),
and the same markup must print in WeasyPrint's clinician summary. A line chart of a
few dozen visits is a polyline, a few ticks and some text: about as much code as the
adapter to a library would be.

Accessibility: each chart is ``role="img"`` labelled by its ``<title>`` and ``<desc>``
(the desc says what the chart shows in words), and the table beside it holds every
value, so nothing is in the picture alone. Left and right differ in stroke (solid /
dashed) *and* point shape (circle / square), never by colour alone; a black-and-white
print keeps them apart. Every text from data is escaped here (``markupsafe.escape``):
the result is ``Markup`` that templates insert as is. Presentation attributes only, no
``style`` attribute: the page's CSP allows no inline style.
"""
from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from markupsafe import Markup, escape

#: The drawing's size in SVG user units (it scales to its box: ``viewBox``).
WIDTH, HEIGHT = 640, 260
LEFT, RIGHT, TOP, BOTTOM = 56, 40, 44, 46
#: How each side is drawn: stroke colour, dash pattern ("" = solid), point shape.
STYLES = {"left": ("#1f5fa8", "", "circle"), "right": ("#a3401a", "7 5", "square"),
          "": ("#222222", "", "diamond")}
SIDE_WORDS = {"left": "Left", "right": "Right", "": "Value"}
MAX_DATE_TICKS = 6


@dataclass(frozen=True)
class Point:
    date: dt.date
    value: Decimal
    #: the visit it was measured at (an opaque key, never shown): two visits on one day
    #: are two rows of the table
    visit: str = ""


@dataclass(frozen=True)
class Series:
    """One line: a side ("left", "right" or "" when the finding has none) and its
    points, oldest first. ``band`` (low, high): the minimal important change around the
    first value, shaded, when the measure has a sourced MCID."""

    side: str
    points: tuple[Point, ...]
    band: tuple[Decimal, Decimal] | None = None


@dataclass(frozen=True)
class Marker:
    """A dated event drawn as a vertical line: a referral made, a treatment reported."""

    date: dt.date
    label: str


@dataclass(frozen=True)
class Chart:
    key: str  # unique on a page, [a-z0-9-]: the element ids derive from it
    title: str
    unit: str
    series: tuple[Series, ...]
    markers: tuple[Marker, ...] = ()
    #: what a shaded band means (the MCID and its source), said under the chart
    band_note: str | None = None
    #: the change sentences ("LEFS +12 since 3 March 2026: a meaningful improvement")
    changes: tuple[str, ...] = ()

    @property
    def dates(self) -> list[dt.date]:
        return sorted({p.date for s in self.series for p in s.points})

    @property
    def svg(self) -> Markup:
        return svg(self)

    @property
    def table(self) -> Markup:
        return table(self)

    @property
    def visits(self) -> list[tuple[dt.date, str]]:
        """Each visit with a value, oldest first (the table's rows); visits on one day
        in the order the series hold them (the order they were signed)."""
        seen = dict.fromkeys((p.date, p.visit) for s in self.series for p in s.points)
        return sorted(seen, key=lambda visit: visit[0])


def short_date(day: dt.date) -> str:
    return f"{day.day} {day:%b %Y}"


def long_date(day: dt.date) -> str:
    return f"{day.day} {day:%B %Y}"


def number(value: Decimal) -> str:
    """A value as printed: no exponent, no trailing zeros (``40``, ``2.5``)."""
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "") else text


def svg(chart: Chart) -> Markup:
    """The chart as inline SVG markup."""
    dates = chart.dates
    start = min([*dates, *(m.date for m in chart.markers)])
    end = max([*dates, *(m.date for m in chart.markers)])
    span = max((end - start).days, 1)
    values = [p.value for s in chart.series for p in s.points] + \
        [v for s in chart.series if s.band for v in s.band]
    ticks = nice_ticks(min(values), max(values))
    low, high = ticks[0], ticks[-1]
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(day: dt.date) -> float:
        if start == end:
            return LEFT + plot_w / 2
        return LEFT + plot_w * (day - start).days / span

    def y(value: Decimal) -> float:
        return TOP + plot_h * float((high - value) / (high - low))

    ident = f"chart-{chart.key}"
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
           f'width="100%" class="chart" role="img" '
           f'aria-labelledby="{ident}-title {ident}-desc" id="{ident}">',
           f'<title id="{ident}-title">{escape(chart.title)}</title>',
           f'<desc id="{ident}-desc">{escape(describe(chart))}</desc>']
    for s in chart.series:  # bands first: everything else draws over them
        if s.band:
            top, bottom = y(max(s.band)), y(min(s.band))
            out.append(f'<rect class="band" x="{LEFT}" y="{top:.1f}" width="{plot_w}" '
                       f'height="{bottom - top:.1f}" fill="{STYLES[s.side][0]}" '
                       f'fill-opacity="0.12" stroke="none"/>')
    for tick in ticks:
        ty = y(tick)
        out.append(f'<line x1="{LEFT}" y1="{ty:.1f}" x2="{WIDTH - RIGHT}" y2="{ty:.1f}" '
                   f'stroke="#dddddd" stroke-width="1"/>')
        out.append(f'<text x="{LEFT - 6}" y="{ty + 4:.1f}" font-size="12" '
                   f'text-anchor="end" fill="#222222">{escape(number(tick))}</text>')
    out.append(f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{TOP + plot_h}" '
               f'stroke="#444444" stroke-width="1"/>')
    out.append(f'<line x1="{LEFT}" y1="{TOP + plot_h}" x2="{WIDTH - RIGHT}" '
               f'y2="{TOP + plot_h}" stroke="#444444" stroke-width="1"/>')
    if chart.unit:
        out.append(f'<text x="{LEFT - 6}" y="{TOP - 10}" font-size="12" text-anchor="end" '
                   f'fill="#222222">{escape(chart.unit)}</text>')
    for day in date_ticks(dates):
        tx = x(day)
        out.append(f'<line x1="{tx:.1f}" y1="{TOP + plot_h}" x2="{tx:.1f}" '
                   f'y2="{TOP + plot_h + 5}" stroke="#444444" stroke-width="1"/>')
        out.append(f'<text x="{tx:.1f}" y="{TOP + plot_h + 19}" font-size="12" '
                   f'text-anchor="middle" fill="#222222">{escape(short_date(day))}</text>')
    for n, marker in enumerate(chart.markers):
        mx = x(marker.date)
        out.append(f'<g class="marker"><title>{escape(marker_text(marker))}</title>'
                   f'<line x1="{mx:.1f}" y1="{TOP - 4}" x2="{mx:.1f}" y2="{TOP + plot_h}" '
                   f'stroke="#6a3d9a" stroke-width="1.5" stroke-dasharray="2 3"/>'
                   f'<text x="{mx:.1f}" y="{TOP - 18 - 12 * (n % 2)}" font-size="11" '
                   f'text-anchor="middle" fill="#6a3d9a">{escape(marker_tag(n))}</text></g>')
    for s in chart.series:
        colour, dash, shape = STYLES[s.side]
        coords = " ".join(f"{x(p.date):.1f},{y(p.value):.1f}" for p in s.points)
        out.append(f'<g class="series series-{s.side or "single"}">')
        if len(s.points) > 1:
            out.append(f'<polyline points="{coords}" fill="none" stroke="{colour}" '
                       f'stroke-width="2.5"' + (f' stroke-dasharray="{dash}"' if dash else "")
                       + "/>")
        # no <title> per point: the table beside the chart holds every value (and 50
        # visits' titles were a third of the page's markup)
        out += [_shape(shape, x(p.date), y(p.value), colour) for p in s.points]
        out.append("</g>")
    out.append(_legend(chart))
    out.append("</svg>")
    return Markup("".join(out))


def table(chart: Chart) -> Markup:
    """The chart's data as a table: a row per visit, a column per side, the unit in
    the header."""
    sides = [s.side for s in chart.series]
    by_side = {s.side: {(p.date, p.visit): p.value for p in s.points} for s in chart.series}
    unit = f" ({escape(chart.unit)})" if chart.unit else ""
    out = [f'<table class="chart-data" id="chart-{chart.key}-data">',
           f"<caption>{escape(chart.title)}: values by visit</caption>",
           '<thead><tr><th scope="col">Date</th>']
    out += [f'<th scope="col">{SIDE_WORDS[side]}{unit}</th>' for side in sides]
    out.append("</tr></thead><tbody>")
    for visit in chart.visits:
        day = visit[0]
        cells = "".join(f"<td>{escape(number(by_side[side][visit]))}</td>"
                        if visit in by_side[side] else "<td>–</td>" for side in sides)
        out.append(f'<tr><th scope="row">{escape(long_date(day))}</th>{cells}</tr>')
    out.append("</tbody></table>")
    return Markup("".join(out))


def markers(found: Sequence[Marker]) -> Markup:
    """The events the charts mark (``E1``…), in words with their dates: listed once
    above the charts, which all mark the same events."""
    if not found:
        return Markup("")
    return Markup('<ul class="chart-markers" id="chart-markers">' + "".join(
        f"<li>{escape(marker_tag(n))}: {escape(marker_text(m))}</li>"
        for n, m in enumerate(found)) + "</ul>")


def describe(chart: Chart) -> str:
    """The chart in one sentence for a screen reader (the table holds the values)."""
    parts = []
    for s in chart.series:
        first, last = s.points[0], s.points[-1]
        parts.append(f"{SIDE_WORDS[s.side] if s.side else chart.title}: {number(first.value)} "
                     f"on {long_date(first.date)} to {number(last.value)} on "
                     f"{long_date(last.date)}, {len(s.points)} visit"
                     f"{'s' if len(s.points) != 1 else ''}")
    text = "; ".join(parts) + "."
    if any(s.band for s in chart.series):
        text += " The shaded band is the minimal important change around the first value."
    if chart.markers:
        text += (f" {len(chart.markers)} event{'s' if len(chart.markers) != 1 else ''} "
                 f"marked ({', '.join(marker_tag(n) for n in range(len(chart.markers)))}: "
                 f"listed above the charts).")
    return text


def marker_tag(n: int) -> str:
    return f"E{n + 1}"


def marker_text(marker: Marker) -> str:
    return f"{marker.label} ({long_date(marker.date)})"


def nice_ticks(low: Decimal, high: Decimal, count: int = 5) -> list[Decimal]:
    """Round tick values covering [low, high] (1, 2, 2.5 or 5 times a power of ten)."""
    if low == high:
        low, high = low - 1, high + 1
    raw = float(high - low) / max(count - 1, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(Decimal(str(m)) * Decimal(str(power)) for m in (1, 2, 2.5, 5, 10)
                if m * power >= raw)
    first = (low / step).to_integral_value(rounding="ROUND_FLOOR") * step
    ticks = [first]
    while ticks[-1] < high:
        ticks.append(ticks[-1] + step)
    return ticks


def date_ticks(dates: Sequence[dt.date]) -> list[dt.date]:
    """At most ``MAX_DATE_TICKS`` of the visit dates, evenly picked, first and last
    always (labels of 50 visits would overlap)."""
    if len(dates) <= MAX_DATE_TICKS:
        return list(dates)
    step = (len(dates) - 1) / (MAX_DATE_TICKS - 1)
    return [dates[round(n * step)] for n in range(MAX_DATE_TICKS)]


def _shape(shape: str, cx: float, cy: float, colour: str) -> str:
    if shape == "circle":
        return f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="5" fill="{colour}"/>'
    if shape == "square":
        return (f'<rect x="{cx - 5:.1f}" y="{cy - 5:.1f}" width="10" height="10" '
                f'fill="#ffffff" stroke="{colour}" stroke-width="2.5"/>')
    return (f'<path d="M{cx:.1f} {cy - 6:.1f}L{cx + 6:.1f} {cy:.1f}L{cx:.1f} '
            f'{cy + 6:.1f}L{cx - 6:.1f} {cy:.1f}Z" fill="{colour}"/>')


def _legend(chart: Chart) -> str:
    """The key of the sides (only when there are two: one line needs none)."""
    sided = [s for s in chart.series if s.side]
    if len(sided) < 2:
        return ""
    out = ['<g class="legend">']
    for n, s in enumerate(sided):
        colour, dash, shape = STYLES[s.side]
        lx, ly = LEFT + 100 * n, HEIGHT - 10
        out.append(f'<line x1="{lx}" y1="{ly}" x2="{lx + 30}" y2="{ly}" stroke="{colour}" '
                   f'stroke-width="2.5"' + (f' stroke-dasharray="{dash}"' if dash else "") + "/>")
        out.append(_shape(shape, lx + 15, ly, colour))
        out.append(f'<text x="{lx + 36}" y="{ly + 4}" font-size="12" fill="#222222">'
                   f'{SIDE_WORDS[s.side]}</text>')
    out.append("</g>")
    return "".join(out)
