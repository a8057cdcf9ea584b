"""Small server-drawn SVG charts: no script, no build step, readable without sight.

Each chart is a ``<figure>``: the SVG is one image (``role="img"``) whose title and description say
what it shows in words, a legend names the series in text, and the figures follow as a table.
Colours come from the stylesheet (``.series-0`` …), so print and high-contrast modes can change them.
"""

from __future__ import annotations

from html import escape
from typing import Sequence

from markupsafe import Markup

from gateway.console.pages import local_date

WIDTH, HEIGHT = 640, 240
LEFT, RIGHT, TOP, BOTTOM = 48, 12, 12, 36


def _short_day(iso: str) -> str:
    return local_date(iso)[:5]


def _nice_max(value: float, whole: bool = False) -> float:
    """A round top for the axis; for counts one that four gridlines divide into whole numbers."""
    steps = (4, 8, 12, 20, 40, 60, 100, 200, 400, 600, 1000, 2000, 4000, 10_000, 20_000, 40_000, 100_000) if whole else (
        0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 21_600, 43_200, 86_400)
    for step in steps:
        if value <= step:
            return float(step)
    return float(value)


def _number(value: float) -> str:
    return f"{value:g}".replace(".", ",")


def _axis(maximum: float, unit: str) -> str:
    parts = []
    for i in range(5):
        value = maximum * i / 4
        y = TOP + (HEIGHT - TOP - BOTTOM) * (1 - i / 4)
        label = f"{_number(value)}{unit}"
        parts.append(f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>'
                     f'<text class="tick" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{escape(label)}</text>')
    return "".join(parts)


def _x_labels(days: Sequence[str], step: float, offset: float) -> str:
    every = max(1, len(days) // 7)
    return "".join(f'<text class="tick" x="{LEFT + i * step + offset:.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle">'
                   f'{escape(_short_day(day))}</text>' for i, day in enumerate(days) if i % every == 0)


def _figure(chart_id: str, title: str, summary: str, svg_body: str, names: Sequence[str], table: str) -> Markup:
    legend = "".join(f'<li><span class="swatch series-{i}" aria-hidden="true"></span>{escape(name)}</li>'
                     for i, name in enumerate(names))
    return Markup(
        f'<figure class="chart" id="{chart_id}">'
        f'<figcaption><h3 id="{chart_id}-title">{escape(title)}</h3></figcaption>'
        f'<svg viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-labelledby="{chart_id}-title {chart_id}-desc" '
        f'focusable="false"><desc id="{chart_id}-desc">{escape(summary)}</desc>{svg_body}</svg>'
        f'<ul class="legend">{legend}</ul>'
        f'<details><summary>Cijfers als tabel</summary>{table}</details></figure>')


def _table(caption: str, head: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    th = "".join(f'<th scope="col">{escape(h)}</th>' for h in head)
    body = "".join("<tr>" + f'<th scope="row">{escape(str(row[0]))}</th>'
                   + "".join(f"<td>{escape(str(cell))}</td>" for cell in row[1:]) + "</tr>" for row in rows)
    return f'<table class="data"><caption>{escape(caption)}</caption><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>'


def stacked_bars(chart_id: str, title: str, days: Sequence[str], series: dict[str, list[int]]) -> Markup:
    """Per day, one bar split by series (e.g. exchanges by outcome)."""
    names = list(series)
    totals = [sum(series[name][i] for name in names) for i in range(len(days))]
    maximum = _nice_max(max(totals, default=0), whole=True)
    plot_h = HEIGHT - TOP - BOTTOM
    step = (WIDTH - LEFT - RIGHT) / max(1, len(days))
    bars = []
    for i, day in enumerate(days):
        y = TOP + plot_h
        for s, name in enumerate(names):
            value = series[name][i]
            if not value:
                continue
            h = plot_h * value / maximum
            y -= h
            bars.append(f'<rect class="series-{s}" x="{LEFT + i * step + step * 0.15:.1f}" y="{y:.1f}" '
                        f'width="{step * 0.7:.1f}" height="{h:.1f}"><title>{escape(_short_day(day))}: {value} {escape(name)}'
                        f'</title></rect>')
    total = sum(totals)
    busiest = max(range(len(days)), key=lambda i: totals[i]) if total else None
    summary = (f"In {len(days)} dagen {total} uitwisselingen: "
               + ", ".join(f"{sum(series[name])} {name}" for name in names)
               + (f". Drukste dag {local_date(days[busiest])} met {totals[busiest]}." if busiest is not None else "."))
    table = _table(title, ["Dag", *names, "Totaal"],
                   [[local_date(day), *(series[name][i] for name in names), totals[i]] for i, day in enumerate(days)])
    return _figure(chart_id, title, summary, _axis(maximum, "") + "".join(bars) + _x_labels(days, step, step / 2),
                   names, table)


def lines(chart_id: str, title: str, days: Sequence[str], series: dict[str, list[float | None]], unit: str = " s") -> Markup:
    """Per day, a line per series; days without a value leave a gap (e.g. delivery latency)."""
    names = list(series)
    values = [v for name in names for v in series[name] if v is not None]
    maximum = _nice_max(max(values, default=0))
    plot_h = HEIGHT - TOP - BOTTOM
    step = (WIDTH - LEFT - RIGHT) / max(1, len(days) - 1)
    paths = []
    for s, name in enumerate(names):
        points = [(LEFT + i * step, TOP + plot_h * (1 - v / maximum)) for i, v in enumerate(series[name]) if v is not None]
        if points:
            d = " ".join(f"{'M' if j == 0 else 'L'}{x:.1f},{y:.1f}" for j, (x, y) in enumerate(points))
            paths.append(f'<path class="line series-{s}" d="{d}"/>')
            paths.extend(f'<circle class="series-{s}" cx="{x:.1f}" cy="{y:.1f}" r="3"/>' for x, y in points)

    def fmt(value: float | None) -> str:
        return "—" if value is None else f"{value:.1f}".replace(".", ",") + unit

    measured = [i for i, day in enumerate(days) if series[names[0]][i] is not None] if names else []
    summary = (f"{title}: gemeten op {len(measured)} van {len(days)} dagen."
               + (f" Laatste meting {local_date(days[measured[-1]])}: "
                  + ", ".join(f"{name} {fmt(series[name][measured[-1]])}" for name in names) + "." if measured else ""))
    table = _table(title, ["Dag", *names], [[local_date(day), *(fmt(series[name][i]) for name in names)]
                                            for i, day in enumerate(days)])
    return _figure(chart_id, title, summary, _axis(maximum, unit) + "".join(paths) + _x_labels(days, step, 0),
                   names, table)


def grouped_bars(chart_id: str, title: str, groups: Sequence[str], series: dict[str, list[int]]) -> Markup:
    """Per group (e.g. connector type) a bar per series (e.g. queued, parked, dead)."""
    names = list(series)
    maximum = _nice_max(max((v for name in names for v in series[name]), default=0), whole=True)
    plot_h = HEIGHT - TOP - BOTTOM
    step = (WIDTH - LEFT - RIGHT) / max(1, len(groups))
    width = step * 0.8 / max(1, len(names))
    bars = []
    for g, group in enumerate(groups):
        for s, name in enumerate(names):
            value = series[name][g]
            h = plot_h * value / maximum
            bars.append(f'<rect class="series-{s}" x="{LEFT + g * step + step * 0.1 + s * width:.1f}" y="{TOP + plot_h - h:.1f}" '
                        f'width="{width:.1f}" height="{h:.1f}"><title>{escape(group)}: {value} {escape(name)}</title></rect>')
    labels = "".join(f'<text class="tick" x="{LEFT + g * step + step / 2:.1f}" y="{HEIGHT - BOTTOM + 16}" '
                     f'text-anchor="middle">{escape(group)}</text>' for g, group in enumerate(groups))
    summary = "; ".join(f"{group}: " + ", ".join(f"{series[name][g]} {name}" for name in names) for g, group in enumerate(groups))
    table = _table(title, ["Koppeling", *names], [[group, *(series[name][g] for name in names)] for g, group in enumerate(groups)])
    return _figure(chart_id, title, summary or "Geen koppelingen.", _axis(maximum, "") + "".join(bars) + labels, names, table)
