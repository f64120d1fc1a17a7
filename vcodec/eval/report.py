"""Writing the BD-rate results: bdrate.csv (one row per sequence, class and `overall`) and table.md
laid out like Table II of the Cool-chic v2 paper (rows per class, then the average)."""

from __future__ import annotations

import csv
from pathlib import Path

import bjontegaard

from vcodec.eval.bdrate import METRICS, BdRow, Comparison
from vcodec.eval.results import RatePoint

BDRATE_COLUMNS: tuple[str, ...] = (
    "name", "level", "bd_rate_y", "bd_rate_u", "bd_rate_v", "bd_rate_yuv", "na_reason",
    "test_codec", "anchor_codec", "method", "class", "sequences",
    "overlap_y", "overlap_u", "overlap_v", "overlap_yuv", "param_share", "note",
)

CONVENTIONS = (
    "Rate: the sum of the real bits of a sequence's coded frames. PSNR: the mean of its frames' PSNRs "
    "(not of their MSEs), in the YUV 4:2:0 domain, PSNR-YUV = (6 Y + U + V) / 8"
)


def _number(value: float | None, digits: int) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def bdrate_records(comparison: Comparison) -> list[dict[str, str]]:
    records = []
    for rows in comparison.rows.values():
        for row in rows:
            record = {
                "name": row.name,
                "level": row.level,
                **{f"bd_rate_{m}": _number(row.values[m].value, 4) for m in METRICS},
                "na_reason": row.reason,
                "test_codec": row.test_codec,
                "anchor_codec": row.anchor_codec,
                "method": row.method,
                "class": row.seq_class,
                "sequences": str(row.count),
                **{f"overlap_{m}": _number(row.values[m].overlap, 4) for m in METRICS},
                "param_share": _number(row.param_share, 4),
                "note": row.note,
            }
            records.append(record)
    return records


def write_bdrate_csv(path: str | Path, comparison: Comparison) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=BDRATE_COLUMNS)
        writer.writeheader()
        writer.writerows(bdrate_records(comparison))


def _percent(row: BdRow, metric: str) -> str:
    return row.values[metric].text(1)


def _share(value: float | None) -> str:
    return "" if value is None else f"{100 * value:.1f} %"


def _overlap(row: BdRow) -> str:
    rate = row.values["yuv"]
    if rate.overlap_db is None:
        return "none" if rate.overlap == 0.0 else ""
    low, high = rate.overlap_db
    return f"{low:.2f}-{high:.2f} dB ({100 * (rate.overlap or 0):.0f} %)"


def timing_lines(points: list[RatePoint]) -> list[str]:
    """Encoding time per codec: what the rate savings cost."""
    lines = ["## Encoding time", "", "| Codec | Frames coded | Total (s) | Mean per frame (s) |",
             "|---|---:|---:|---:|"]
    for codec in dict.fromkeys(p.codec for p in points):
        timed = [p for p in points if p.codec == codec and p.encode_seconds is not None]
        if not timed:
            lines.append(f"| {codec} | {sum(p.frames for p in points if p.codec == codec)} | n/a | n/a |")
            continue
        frames = sum(p.frames for p in timed)
        total = sum(p.encode_seconds or 0.0 for p in timed)
        lines.append(f"| {codec} | {frames} | {total:.1f} | {total / frames:.2f} |")
    return [*lines, ""]


def architecture_lines(points: list[RatePoint]) -> list[str]:
    """Which decoder architectures each codec wrote, per rate point (frames of each), where recorded."""
    recorded = [p for p in points if p.archs]
    if not recorded:
        return []
    lines = ["## Architectures written", "", "| Codec | Rate point | Frames per architecture |", "|---|---|---|"]
    for codec in dict.fromkeys(p.codec for p in recorded):
        for rate_point in dict.fromkeys(p.rate_point for p in recorded if p.codec == codec):
            counts: dict[str, int] = {}
            for point in (p for p in recorded if p.codec == codec and p.rate_point == rate_point):
                for item in point.archs.split():
                    name, count = item.rsplit(":", 1)
                    counts[name] = counts.get(name, 0) + int(count)
            text = ", ".join(f"{name} {count}" for name, count in sorted(counts.items()))
            lines.append(f"| {codec} | {rate_point} | {text} |")
    return [*lines, ""]


def _codec_section(test: str, anchor: str, rows: list[BdRow]) -> list[str]:
    """Table II's layout (classes, then the average), then every sequence with its overlap and notes."""
    classes = [r for r in rows if r.level == "class"]
    overall = next(r for r in rows if r.level == "overall")
    lines = [
        f"## {test} vs {anchor}",
        "",
        "| Class | Sequences | BD-rate YUV | BD-rate Y | BD-rate U | BD-rate V | Parameter bits |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in [*classes, overall]:
        name = "**Average**" if row.level == "overall" else row.name
        lines.append(f"| {name} | {row.count} | {_percent(row, 'yuv')} | {_percent(row, 'y')} | "
                     f"{_percent(row, 'u')} | {_percent(row, 'v')} | {_share(row.param_share)} |")
    lines += [
        "",
        "| Sequence | Class | BD-rate YUV | BD-rate Y | BD-rate U | BD-rate V | PSNR-YUV overlap | "
        "Parameter bits | Note |",
        "|---|---|---:|---:|---:|---:|---|---:|---|",
    ]
    for row in (r for r in rows if r.level == "sequence"):
        lines.append(f"| {row.name} | {row.seq_class} | {_percent(row, 'yuv')} | {_percent(row, 'y')} | "
                     f"{_percent(row, 'u')} | {_percent(row, 'v')} | {_overlap(row)} | "
                     f"{_share(row.param_share)} | {row.reason} |")
    notes = [f"{r.name}: {r.note}" for r in [*classes, overall] if r.note]
    notes += [f"{r.name}: {r.reason}" for r in [*classes, overall] if r.reason]
    if notes:
        lines += ["", "Notes:", ""] + [f"- {note}" for note in notes]
    return [*lines, ""]


def markdown_table(comparison: Comparison, descriptions: dict[str, str] | None = None,
                   peak: str = "hm", frames_note: str = "", points: list[RatePoint] | None = None) -> str:
    """The report users read: what was compared and how, one section per test codec, encoding times."""
    descriptions = descriptions or {}
    anchor = comparison.anchor_codec
    peak_text = "255 * 2^(bitdepth - 8), as HM" if peak == "hm" else "2^bitdepth - 1"
    lines = [
        f"# BD-rate against {anchor}",
        "",
        f"- Anchor: **{anchor}**" + (f": {descriptions[anchor]}" if anchor in descriptions else ""),
    ]
    for test in comparison.rows:
        lines.append(f"- Test: **{test}**" + (f": {descriptions[test]}" if test in descriptions else ""))
    lines += [
        f"- {CONVENTIONS}; peak {peak_text}." + (f" {frames_note}" if frames_note else ""),
        f"- BD-rate: `bjontegaard` {bjontegaard.__version__}, {comparison.method} "
        "interpolation, in %; negative means fewer bits than the anchor at equal PSNR. A class is the mean "
        "of its sequences, the average the mean of the classes; n/a entries are left out, with a note.",
        "",
    ]
    for test, rows in comparison.rows.items():
        lines += _codec_section(test, anchor, rows)
    if points:
        lines += timing_lines(points)
        lines += architecture_lines(points)
    return "\n".join(lines)


def write_table(path: str | Path, comparison: Comparison, descriptions: dict[str, str] | None = None,
                peak: str = "hm", frames_note: str = "", points: list[RatePoint] | None = None) -> None:
    Path(path).write_text(markdown_table(comparison, descriptions, peak, frames_note, points))
