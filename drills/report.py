"""A drill's report: report.json (every figure and the timeline), report.html (one self-contained
page: the verdict, then a timeline per region of commits, forwards arriving, routing epochs and the
drill's events, then keys moved and hand-off pauses), and a verdict table for the terminal."""
from __future__ import annotations

import html
import json
from collections import Counter, defaultdict
from pathlib import Path

WIDTH, LANE_H, LEFT = 1100, 90, 110
COLORS = {"failure": "#d62728", "return": "#2ca02c", "drained": "#17becf", "savepoint": "#9467bd",
          "restarted": "#8c564b", "epoch": "#ff7f0e", "moved": "#bcbd22", "producers-moved": "#e377c2",
          "producers-back": "#7f7f7f", "restored": "#2ca02c"}


def verdict_lines(report: dict) -> list[str]:
    rows = report["verdict"]
    w = max(len(r["check"]) for r in rows)
    out = [f"{'check':{w}}  {'value':>12}  {'expected':>12}  result", "-" * (w + 40)]
    for r in rows:
        out.append(f"{r['check']:{w}}  {str(r['value']):>12}  {str(r['expected']):>12}  "
                   f"{'PASS' if r['ok'] else 'FAIL'}")
    out.append(f"drill {report['scenario']} ({report['backend']}, hand-off {report['handoff']}): "
               + ("PASSED" if report["passed"] else "FAILED"))
    return out


def write(report: dict, out: Path, forwards: dict[str, list[int]]) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    j = out / "report.json"
    j.write_text(json.dumps(report, indent=2, default=str))
    h = out / "report.html"
    h.write_text(render(report, forwards))
    return j, h


def _x(t_ms: int, t0: int, t1: int) -> float:
    return LEFT + (t_ms - t0) / max(t1 - t0, 1) * (WIDTH - LEFT - 20)


def _timeline(report: dict, forwards: dict[str, list[int]]) -> str:
    regions = report["regions"]
    commits = report["commits"]  # region -> [[commit_ms, rows, late_rows]]
    t0, t1 = report["started_ms"], report["ended_ms"]
    height = LANE_H * len(regions) + 60
    parts = [f'<svg width="{WIDTH}" height="{height}" xmlns="http://www.w3.org/2000/svg" '
             f'font-family="sans-serif" font-size="11">']
    for s in range(0, int((t1 - t0) / 1000) + 1, 10):  # a grid line every 10 s
        x = _x(t0 + s * 1000, t0, t1)
        parts.append(f'<line x1="{x:.1f}" y1="20" x2="{x:.1f}" y2="{height - 30}" stroke="#eee"/>'
                     f'<text x="{x:.1f}" y="{height - 15}" text-anchor="middle" fill="#888">{s}s</text>')
    for i, r in enumerate(regions):
        y = 30 + i * LANE_H
        parts.append(f'<text x="5" y="{y + LANE_H / 2}" font-weight="bold">{html.escape(r)}</text>'
                     f'<line x1="{LEFT}" y1="{y + LANE_H - 5}" x2="{WIDTH - 20}" y2="{y + LANE_H - 5}" stroke="#ccc"/>')
        # forwards arriving in this region's forward stream, per second (bars at the bottom)
        per_s = Counter((t - t0) // 1000 for t in forwards.get(r, []))
        peak = max(per_s.values(), default=1)
        for s, n in per_s.items():
            x = _x(t0 + s * 1000, t0, t1)
            bh = 25 * n / peak
            parts.append(f'<rect x="{x:.1f}" y="{y + LANE_H - 5 - bh:.1f}" width="3" height="{bh:.1f}" '
                         f'fill="#9ecae1"><title>{n} forwarded records arrived at {s}s</title></rect>')
        # commits: a dot per snapshot, radius by rows, red ring when it held late rows
        for c_ms, n, late in commits.get(r, []):
            x = _x(c_ms, t0, t1)
            rad = min(9, 2 + n ** 0.5 / 2)
            ring = ' stroke="#d62728" stroke-width="2"' if late else ""
            parts.append(f'<circle cx="{x:.1f}" cy="{y + 30}" r="{rad:.1f}" fill="#3182bd" fill-opacity="0.6"{ring}>'
                         f'<title>commit at {(c_ms - t0) / 1000:.1f}s: {n} rows, {late} late</title></circle>')
        # routing epochs as this region's jobs acknowledged them
        for a in (x for x in report["acks"] if x["region"] == r):
            x = _x(a["t_ms"], t0, t1)
            parts.append(f'<text x="{x:.1f}" y="{y + 12}" fill="#ff7f0e">e{a["epoch"]}</text>')
    for ev in report["timeline"]:
        x = _x(ev["t_ms"], t0, t1)
        color = COLORS.get(ev["kind"], "#333")
        label = ev["kind"] + (f" e{ev['epoch']}" if "epoch" in ev else "") + (f" {ev['region']}" if "region" in ev else "")
        parts.append(f'<line x1="{x:.1f}" y1="20" x2="{x:.1f}" y2="{height - 30}" stroke="{color}" '
                     f'stroke-dasharray="3,3"><title>{html.escape(label)}</title></line>')
    parts.append("</svg>")
    return "".join(parts)


def render(report: dict, forwards: dict[str, list[int]]) -> str:
    v = "".join(f"<tr><td>{html.escape(r['check'])}</td><td>{html.escape(str(r['value']))}</td>"
                f"<td>{html.escape(str(r['expected']))}</td><td class={'ok' if r['ok'] else 'bad'}>"
                f"{'PASS' if r['ok'] else 'FAIL'}</td></tr>" for r in report["verdict"])
    legend = " ".join(f'<span style="color:{c}">&#9474; {k}</span>' for k, c in COLORS.items())
    details = html.escape(json.dumps(report.get("scenario_figures", {}), indent=2, default=str))
    pauses = report.get("pauses_ms") or []
    hist = defaultdict(int)
    for p in pauses:
        hist[min(int(p // 500) * 500, 10_000)] += 1
    bars = "".join(f"<tr><td>{b}-{b + 499} ms</td><td><div class=bar style='width:{n * 8}px'></div> {n}</td></tr>"
                   for b, n in sorted(hist.items()))
    unrep = html.escape(json.dumps(report["audit"].get("unreported_sample", []), indent=2))
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>homeflow drill {report['scenario']}</title>
<style>body{{font-family:sans-serif;margin:20px;color:#222}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ddd;padding:4px 8px;text-align:left}} .ok{{color:#2ca02c;font-weight:bold}}
.bad{{color:#d62728;font-weight:bold}} .bar{{display:inline-block;height:10px;background:#3182bd}}
pre{{background:#f7f7f7;padding:8px;max-height:300px;overflow:auto}}</style></head><body>
<h1>Drill <code>{report['scenario']}</code>: <span class={'ok' if report['passed'] else 'bad'}>
{'PASSED' if report['passed'] else 'FAILED'}</span></h1>
<p>backend <b>{report['backend']}</b>, hand-off <b>{report['handoff']}</b>, regions {', '.join(report['regions'])},
{report['keys']} keys, {report['rate']} events/s per region, {report['duration_s']} s,
DynamoDB replication lag {report['ddb_lag_s']} s, S3 {report['s3_lag_s']} s. run id <code>{report['run_id']}</code></p>
<h2>Verdict</h2><table><tr><th>check</th><th>value</th><th>expected</th><th></th></tr>{v}</table>
<h2>Timeline</h2><p>Per region: commits (dots, size by rows, red ring = late rows), forwarded records
arriving per second (bars), the routing epoch its job acknowledged (orange). Dashed lines: {legend}</p>
{_timeline(report, forwards)}
<h2>Hand-off pauses</h2><p>p50 {report.get('pause_p50_ms')} ms, p99 {report.get('pause_p99_ms')} ms,
max {report.get('pause_max_ms')} ms over {len(pauses)} (key, move) pairs; keys that did not move: longest hold
{report.get('non_moving_max_held_ms')} ms.</p><table>{bars}</table>
<h2>Scenario</h2><pre>{details}</pre>
<h2>Rows marked out of order, per key</h2><p>the lake's <code>unordered</code> column (and the
per-key metric <code>homeflow_records_late</code>): rows committed but not provably in order</p>
<pre>{html.escape(json.dumps(report.get("marked_by_key", {}), indent=1, ensure_ascii=False))}</pre>
<h2>Unreported inversions (sample)</h2><pre>{unrep}</pre>
</body></html>"""
