"""The progress charts' SVG and tables: values where they belong, text escaped, the MCID
band around the first value, markers, and left and right told apart by stroke and point
shape (not colour alone); a screen reader gets a title, a description and the table."""
from __future__ import annotations

import datetime as dt
import re
import xml.etree.ElementTree as ET
from decimal import Decimal as D

from plugin.core import charts
from plugin.core.charts import Chart, Marker, Point, Series

SVG = "{http://www.w3.org/2000/svg}"
MARCH, APRIL, MAY = dt.date(2026, 3, 3), dt.date(2026, 4, 14), dt.date(2026, 5, 26)


def _chart(**extra) -> Chart:
    left = Series("left", (Point(MARCH, D(40), "a"), Point(APRIL, D(55), "b"),
                           Point(MAY, D(70), "c")))
    right = Series("right", (Point(MARCH, D(80), "a"), Point(MAY, D("82.5"), "c")))
    return Chart(**{"key": "1-slr", "title": "SLR onset", "unit": "°",
                    "series": (left, right), **extra})


def _tree(chart: Chart) -> ET.Element:
    return ET.fromstring(str(chart.svg))  # well-formed XML, or this raises


def test_points_sit_where_their_values_and_dates_say() -> None:
    tree = _tree(_chart())
    left = tree.find(f".//{SVG}g[@class='series series-left']")
    points = [tuple(map(float, p.split(","))) for p in
              left.find(f"{SVG}polyline").get("points").split()]
    (x1, y1), (x2, y2), (x3, y3) = points
    assert x1 < x2 < x3 and y1 > y2 > y3  # later to the right, higher values up
    # x in proportion to the days between visits (42 then 42 days)
    assert abs((x2 - x1) - (x3 - x2)) < 0.2
    # y in proportion to the values (40 -> 55 -> 70: equal steps)
    assert abs((y1 - y2) - (y2 - y3)) < 0.2
    # a point at each value: the circles sit on the line's vertices
    assert [(float(c.get("cx")), float(c.get("cy"))) for c in left.iter(f"{SVG}circle")] \
        == points
    ticks = [t.text for t in tree.iter(f"{SVG}text")]
    assert {"40", "60", "80", "100"} <= set(ticks)  # round steps, covering 82.5
    assert {"3 Mar 2026", "14 Apr 2026", "26 May 2026"} <= set(ticks)


def test_left_and_right_differ_in_stroke_and_shape_not_only_colour() -> None:
    tree = _tree(_chart())
    left = tree.find(f".//{SVG}g[@class='series series-left']")
    right = tree.find(f".//{SVG}g[@class='series series-right']")
    assert left.find(f"{SVG}polyline").get("stroke-dasharray") is None
    assert right.find(f"{SVG}polyline").get("stroke-dasharray") == "7 5"
    assert len(left.findall(f".//{SVG}circle")) == 3 and not left.findall(f".//{SVG}rect")
    assert len(right.findall(f".//{SVG}rect")) == 2 and not right.findall(f".//{SVG}circle")
    legend = tree.find(f".//{SVG}g[@class='legend']")
    assert [t.text for t in legend.iter(f"{SVG}text")] == ["Left", "Right"]


def test_title_description_and_role_name_the_chart() -> None:
    tree = _tree(_chart())
    assert tree.get("role") == "img"
    assert tree.get("aria-labelledby") == "chart-1-slr-title chart-1-slr-desc"
    assert tree.find(f"{SVG}title").get("id") == "chart-1-slr-title"
    assert tree.find(f"{SVG}desc").text == (
        "Left: 40 on 3 March 2026 to 70 on 26 May 2026, 3 visits; Right: 80 on 3 March "
        "2026 to 82.5 on 26 May 2026, 2 visits.")


def test_every_text_from_data_is_escaped() -> None:
    hostile = '<script>alert("x")</script>&'
    chart = _chart(title=hostile, unit=hostile, markers=(Marker(APRIL, hostile),))
    svg, table = str(chart.svg), str(chart.table)
    for markup in (svg, table, str(charts.markers(chart.markers))):
        assert "<script>" not in markup and "&lt;script&gt;" in markup
    _tree(chart)  # still well-formed


def test_the_mcid_band_is_shaded_around_the_first_value() -> None:
    lefs = Series("", (Point(MARCH, D(40)), Point(APRIL, D(52))), band=(D(31), D(49)))
    chart = Chart("2-lefs", "LEFS", "", (lefs,))
    tree = _tree(chart)
    (band,) = tree.findall(f".//{SVG}rect[@class='band']")
    top, height = float(band.get("y")), float(band.get("height"))
    points = tree.find(f".//{SVG}polyline").get("points").split()
    y40 = float(points[0].split(",")[1])
    assert abs((top + height / 2) - y40) < 0.2  # centred on the first value
    y52 = float(points[1].split(",")[1])
    assert y52 < top  # 52 is above the band: beyond the MCID
    assert "minimal important change" in tree.find(f"{SVG}desc").text
    assert _tree(_chart()).findall(f".//{SVG}rect[@class='band']") == []  # none undefined


def test_markers_are_vertical_lines_at_their_dates_with_labels() -> None:
    chart = _chart(markers=(Marker(MARCH, "Referral made: Physiotherapy"),
                            Marker(APRIL, "Injection reported: Epidural")))
    tree = _tree(chart)
    groups = tree.findall(f".//{SVG}g[@class='marker']")
    assert [g.find(f"{SVG}title").text for g in groups] == [
        "Referral made: Physiotherapy (3 March 2026)",
        "Injection reported: Epidural (14 April 2026)"]
    xs = [float(g.find(f"{SVG}line").get("x1")) for g in groups]
    first_point = float(tree.find(f".//{SVG}polyline").get("points").split()[0].split(",")[0])
    assert xs[0] == first_point and xs[1] > xs[0]
    assert [g.find(f"{SVG}text").text for g in groups] == ["E1", "E2"]
    listed = str(charts.markers(chart.markers))
    assert "<li>E1: Referral made: Physiotherapy (3 March 2026)</li>" in listed


def test_the_table_holds_every_value_by_visit_and_side() -> None:
    table = str(_chart().table)
    rows = re.findall(r"<tr>(.*?)</tr>", table)
    assert rows[0] == ('<th scope="col">Date</th><th scope="col">Left (°)</th>'
                       '<th scope="col">Right (°)</th>')
    assert rows[1:] == ['<th scope="row">3 March 2026</th><td>40</td><td>80</td>',
                        '<th scope="row">14 April 2026</th><td>55</td><td>–</td>',
                        '<th scope="row">26 May 2026</th><td>70</td><td>82.5</td>']
    assert "<caption>SLR onset: values by visit</caption>" in table


def test_two_visits_on_one_day_are_two_rows_in_the_order_signed() -> None:
    chart = Chart("x", "Pain", "", (Series("", (Point(MARCH, D(5), "z"),
                                                Point(MARCH, D(3), "a"))),))
    assert re.findall(r"<td>(\d)</td>", str(chart.table)) == ["5", "3"]
    _tree(chart)  # one date: the x axis still draws (centred)


def test_many_visits_get_a_few_readable_date_ticks() -> None:
    days = [MARCH + dt.timedelta(days=7 * n) for n in range(50)]
    picked = charts.date_ticks(days)
    assert len(picked) == charts.MAX_DATE_TICKS and picked[0] == days[0] \
        and picked[-1] == days[-1]
