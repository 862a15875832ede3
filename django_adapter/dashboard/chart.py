"""The records-applied-per-day chart, drawn here as a small inline SVG.

No charting library and nothing fetched at run time: a bar per day, the day's
count in a ``<title>`` (shown on hover), and a sentence for screen readers in
``aria-label``.  The template also lists the days as text for those who cannot
see the bars.
"""

from __future__ import annotations

import datetime as dt

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

WIDTH, HEIGHT, GAP = 280, 48, 1


def days_ending(last: dt.date, count: int) -> list[dt.date]:
    return [last - dt.timedelta(days=n) for n in range(count - 1, -1, -1)]


def describe(per_day: list[tuple[dt.date, int]]) -> str:
    total = sum(n for _, n in per_day)
    if not per_day:
        return "No days to show."
    first, last = per_day[0][0], per_day[-1][0]
    span = f"{first:%d %b} to {last:%d %b %Y} (UTC days)"
    if not total:
        return f"No records applied from {span}."
    day, most = max(per_day, key=lambda d: (d[1], d[0]))
    return f"{total} records applied from {span}; most on {day:%d %b}: {most}."


def bars_svg(per_day: list[tuple[dt.date, int]]) -> SafeString:
    """``per_day``: (day, count) oldest first.  Heights are relative to the busiest day."""
    top = max((n for _, n in per_day), default=0) or 1
    step = WIDTH / max(len(per_day), 1)
    bars = []
    for i, (day, n) in enumerate(per_day):
        h = 0 if n == 0 else max(1.5, HEIGHT * n / top)
        bars.append(
            (
                f"{i * step:.2f}",
                f"{HEIGHT - h:.2f}",
                f"{max(step - GAP, 1):.2f}",
                f"{h:.2f}",
                f"{day:%a %d %b}: {n} applied",
            )
        )
    body = format_html_join(
        "",
        '<rect class="bar" x="{}" y="{}" width="{}" height="{}"><title>{}</title></rect>',
        bars,
    )
    return format_html(
        '<svg class="chart" viewBox="0 0 {} {}" preserveAspectRatio="none" role="img" '
        'aria-label="{}" xmlns="http://www.w3.org/2000/svg">'
        '<line class="axis" x1="0" y1="{}" x2="{}" y2="{}"></line>{}</svg>',
        WIDTH,
        HEIGHT,
        describe(per_day),
        HEIGHT,
        WIDTH,
        HEIGHT,
        body,
    )
