#!/usr/bin/env python3
"""Plots scripts/load results as a self-contained SVG (standard library only).

usage: plot_load.py results.csv out.svg

Left panel: throughput by connection count (reference req/s, Inlet ingest
req/s, end-to-end events/s). Right panel: Inlet's p99 latency in ms.
Connection counts are spaced evenly (they grow geometrically).
"""
import csv
import sys
from xml.sax.saxutils import escape

W, H = 420, 300  # one panel
PAD_L, PAD_R, PAD_T, PAD_B = 64, 16, 36, 48
COLORS = {"reference": "#888888", "ingest": "#1f77b4", "e2e": "#d62728", "p99": "#9467bd"}


def nice_max(v):
    if v <= 0:
        return 1.0
    mag = 10 ** (len(str(int(v))) - 1)
    for step in (1, 2, 2.5, 5, 10):
        if step * mag >= v:
            return step * mag
    return 10 * mag


def panel(x0, title, xs, series, unit):
    """series: list of (name, color, values)."""
    ymax = nice_max(max((v for _, _, vals in series for v in vals), default=1) * 1.05)
    pw, ph = W - PAD_L - PAD_R, H - PAD_T - PAD_B
    n = len(xs)

    def px(i):
        return x0 + PAD_L + (pw * (i + 0.5) / n)

    def py(v):
        return PAD_T + ph - ph * v / ymax

    out = [f'<text x="{x0 + W / 2}" y="20" text-anchor="middle" font-weight="bold">{escape(title)}</text>']
    out.append(f'<rect x="{x0 + PAD_L}" y="{PAD_T}" width="{pw}" height="{ph}" fill="none" stroke="#ccc"/>')
    for k in range(5):
        v = ymax * k / 4
        y = py(v)
        out.append(f'<line x1="{x0 + PAD_L}" x2="{x0 + PAD_L + pw}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eee"/>')
        label = f"{v:,.0f}" if ymax >= 10 else f"{v:.2f}"
        out.append(f'<text x="{x0 + PAD_L - 6}" y="{y + 4:.1f}" text-anchor="end">{label}</text>')
    for i, x in enumerate(xs):
        out.append(f'<text x="{px(i):.1f}" y="{PAD_T + ph + 16}" text-anchor="middle">{x}</text>')
    out.append(f'<text x="{x0 + PAD_L + pw / 2}" y="{H - 8}" text-anchor="middle">connections</text>')
    out.append(f'<text x="{x0 + 14}" y="{PAD_T + ph / 2}" text-anchor="middle" '
               f'transform="rotate(-90 {x0 + 14} {PAD_T + ph / 2})">{escape(unit)}</text>')
    for j, (name, color, vals) in enumerate(series):
        pts = " ".join(f"{px(i):.1f},{py(v):.1f}" for i, v in enumerate(vals))
        out.append(f'<polyline points="{pts}" fill="none" stroke="{color}" stroke-width="2"/>')
        for i, v in enumerate(vals):
            out.append(f'<circle cx="{px(i):.1f}" cy="{py(v):.1f}" r="3" fill="{color}"/>')
    out.append(f'<rect x="{x0 + PAD_L + 4}" y="{PAD_T + 3}" width="170" height="{14 * len(series) + 4}" '
               f'fill="white" fill-opacity="0.85"/>')
    for j, (name, color, vals) in enumerate(series):
        ly = PAD_T + 14 + 14 * j
        out.append(f'<line x1="{x0 + PAD_L + 8}" x2="{x0 + PAD_L + 24}" y1="{ly - 4}" y2="{ly - 4}" '
                   f'stroke="{color}" stroke-width="2"/>')
        out.append(f'<text x="{x0 + PAD_L + 28}" y="{ly}">{escape(name)}</text>')
    return out


def main():
    src, dst = sys.argv[1], sys.argv[2]
    rows = list(csv.DictReader(open(src)))
    # The chart is the embedded backend's; PostgreSQL rows are in the table.
    rows = [r for r in rows if r.get("backend", "embedded") == "embedded"]
    xs = [r["conns"] for r in rows]
    num = lambda key: [float(r[key]) for r in rows]
    body = panel(0, "Throughput", xs, [
        ("reference req/s", COLORS["reference"], num("ref_rps")),
        ("inlet ingest req/s", COLORS["ingest"], num("ingest_rps")),
        ("inlet end-to-end events/s", COLORS["e2e"], num("e2e_eps")),
    ], "per second")
    body += panel(W, "Inlet p99 latency", xs, [("p99 ms", COLORS["p99"], num("p99_ms"))], "ms")
    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{2 * W}" height="{H}" '
           f'viewBox="0 0 {2 * W} {H}" font-family="sans-serif" font-size="11">',
           f'<rect width="{2 * W}" height="{H}" fill="white"/>'] + body + ["</svg>"]
    with open(dst, "w") as f:
        f.write("\n".join(svg) + "\n")


if __name__ == "__main__":
    main()
