"""Bar charts as inline SVG, drawn on the server (no JavaScript)."""
from __future__ import annotations

from collections.abc import Sequence
from html import escape

from markupsafe import Markup

COLOURS = ("#2f6fb0", "#c0392b", "#27ae60", "#8e44ad")


def bars(labels: Sequence[str], series: Sequence[tuple[str, Sequence[float]]], *, width: int = 720,
         height: int = 180, title: str = "") -> Markup:
    """Grouped bars: one group per label, one bar per series, with a legend and the maximum on the axis."""
    top = max([v for _, values in series for v in values if v > 0], default=1)
    left, bottom, legend = 40, 30, 18
    plot_w, plot_h = width - left - 10, height - bottom - legend - 6
    group = plot_w / max(1, len(labels))
    bar = max(1.0, (group - 4) / max(1, len(series)))
    out = [f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" width="{width}" height="{height}"'
           f' xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>',
           f'<line x1="{left}" y1="{legend + plot_h}" x2="{width - 10}" y2="{legend + plot_h}" stroke="#999"/>',
           f'<text x="{left - 4}" y="{legend + 10}" text-anchor="end" font-size="10">{top:g}</text>',
           f'<text x="{left - 4}" y="{legend + plot_h}" text-anchor="end" font-size="10">0</text>']
    x = left
    for i, (name, _) in enumerate(series):
        out.append(f'<rect x="{x}" y="2" width="10" height="10" fill="{COLOURS[i % len(COLOURS)]}"/>'
                   f'<text x="{x + 14}" y="11" font-size="11">{escape(name)}</text>')
        x += 20 + 7 * len(name)
    step = max(1, len(labels) // 12)
    for g, label in enumerate(labels):
        x0 = left + g * group + 2
        for i, (name, values) in enumerate(series):
            value = values[g]
            h = plot_h * value / top
            out.append(f'<rect x="{x0 + i * bar:.1f}" y="{legend + plot_h - h:.1f}" width="{bar:.1f}" height="{h:.1f}"'
                       f' fill="{COLOURS[i % len(COLOURS)]}"><title>{escape(label)} {escape(name)}: {value:g}</title></rect>')
        if g % step == 0:
            out.append(f'<text x="{x0 + group / 2:.1f}" y="{height - 8}" text-anchor="middle" font-size="10">'
                       f'{escape(label)}</text>')
    out.append("</svg>")
    return Markup("".join(out))
