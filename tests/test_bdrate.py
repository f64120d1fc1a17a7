"""BD-rate: known answers, and a clear n/a (never a number) when the curves do not allow one."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import typer

from vcodec.eval.bdrate import BD_METHODS, bd_rate, compare, compare_all
from vcodec.eval.cli import app
from vcodec.eval.errors import EvalError
from vcodec.eval.evaluate import bdrate_tables
from vcodec.eval.report import markdown_table, write_bdrate_csv
from vcodec.eval.results import RatePoint, read_points, write_points

# An RD curve of a real x265 encode (kbps, PSNR-YUV), as in the bjontegaard package's README.
RATES = [9487.76, 4593.60, 2486.44, 1358.24]
PSNRS = [40.037, 38.615, 36.845, 34.851]


@pytest.mark.parametrize("method", BD_METHODS)
@pytest.mark.parametrize(("factor", "expected"), [(1.1, 10.0), (0.8, -20.0), (1.0, 0.0)])
def test_same_curve_at_scaled_rates(method: str, factor: float, expected: float) -> None:
    result = bd_rate(RATES, PSNRS, [r * factor for r in RATES], PSNRS, method)
    assert result.value == pytest.approx(expected, abs=1e-6)
    assert result.overlap == 1.0 and result.reason == ""


def test_order_of_points_does_not_matter() -> None:
    forward = bd_rate(RATES, PSNRS, [r * 1.1 for r in RATES], PSNRS)
    backward = bd_rate(RATES[::-1], PSNRS[::-1], [r * 1.1 for r in RATES][::-1], PSNRS[::-1])
    assert forward.value == pytest.approx(backward.value)


def test_partial_overlap_is_reported() -> None:
    shifted = [p + 2.0 for p in PSNRS]
    result = bd_rate(RATES, PSNRS, RATES, shifted)
    assert result.value is not None and result.value < 0  # better PSNR at the same rate: fewer bits
    low, high = result.overlap_db
    assert (low, high) == pytest.approx((34.851 + 2.0, 40.037))
    assert result.overlap == pytest.approx((40.037 - 36.851) / (42.037 - 34.851))


@pytest.mark.parametrize(
    ("test_rates", "test_psnrs", "reason"),
    [
        (RATES, [p + 10 for p in PSNRS], "do not overlap"),
        (RATES[:3], PSNRS[:3], "3 rate point(s), 4 needed"),
        (RATES, [40.037, 36.0, 36.845, 34.851], "not monotonic"),
        (RATES, [40.0, 38.0, 38.0, 34.0], "not monotonic"),
        ([0.0, *RATES[1:]], PSNRS, "non-positive rate"),
    ],
)
def test_unusable_curves_give_na_with_reason(test_rates: list[float], test_psnrs: list[float], reason: str) -> None:
    result = bd_rate(RATES, PSNRS, test_rates, test_psnrs)
    assert result.value is None and reason in result.reason
    assert result.text() == "n/a"


def test_overlap_is_reported_even_when_na() -> None:
    result = bd_rate(RATES, PSNRS, RATES[:3], [p + 1.0 for p in PSNRS[:3]])
    assert result.value is None and "4 needed" in result.reason
    assert result.overlap_db == pytest.approx((37.845, 40.037))


def test_unknown_method_is_an_error() -> None:
    with pytest.raises(EvalError, match="akima"):
        bd_rate(RATES, PSNRS, RATES, PSNRS, "spline")


def _curve(sequence: str, seq_class: str, codec: str, factor: float, psnr_shift: float = 0.0,
           count: int = 4) -> list[RatePoint]:
    points = []
    for qp, (rate, psnr) in enumerate(zip(RATES[:count], PSNRS[:count])):
        bits = int(round(rate * factor * 10000))
        points.append(RatePoint(
            sequence, seq_class, codec, str(22 + 5 * qp), 1, bits, bits / 1000.0,
            psnr + psnr_shift, psnr + 4 + psnr_shift, psnr + 5 + psnr_shift, psnr + 1.125 + psnr_shift, 0.5,
            param_bits=bits // 10 if codec == "test" else None,
        ))
    return points


def _table() -> list[RatePoint]:
    points = []
    for name, seq_class, factor in (("b1", "B", 1.1), ("b2", "B", 1.3), ("c1", "C", 0.9)):
        points += _curve(name, seq_class, "anchor", 1.0) + _curve(name, seq_class, "test", factor)
    points += _curve("c2", "C", "anchor", 1.0) + _curve("c2", "C", "test", 1.0, psnr_shift=20.0)
    points += _curve("d1", "D", "anchor", 1.0) + _curve("d1", "D", "test", 1.2, count=3)
    return points


def test_classes_average_their_sequences_and_overall_averages_classes() -> None:
    rows = {r.name: r for r in compare(_table(), "anchor", "test")}
    assert rows["b1"].values["yuv"].value == pytest.approx(10.0, abs=1e-4)
    assert rows["B"].values["y"].value == pytest.approx(20.0, abs=1e-4)
    assert rows["C"].values["yuv"].value == pytest.approx(-10.0, abs=1e-4)  # c2 is n/a and left out
    assert "c2 n/a, left out" in rows["C"].note
    assert "do not overlap" in rows["c2"].reason
    assert rows["D"].values["yuv"].value is None and "no sequence" in rows["D"].reason
    assert rows["overall"].values["yuv"].value == pytest.approx((20.0 - 10.0) / 2, abs=1e-4)
    assert "D n/a" in rows["overall"].note
    assert rows["overall"].count == 5 and rows["B"].count == 2
    assert rows["b1"].param_share == pytest.approx(0.1, abs=1e-3)


def test_bdrate_csv_and_markdown_layout(tmp_path: Path) -> None:
    comparison = compare_all(_table(), "anchor", ["test"], "pchip")
    write_bdrate_csv(tmp_path / "bdrate.csv", comparison)
    with open(tmp_path / "bdrate.csv", newline="") as handle:
        reader = csv.DictReader(handle)
        assert reader.fieldnames[:7] == ["name", "level", "bd_rate_y", "bd_rate_u", "bd_rate_v", "bd_rate_yuv",
                                         "na_reason"]
        rows = list(reader)
    assert [r["level"] for r in rows].count("class") == 3 and rows[-1]["name"] == "overall"
    c2 = next(r for r in rows if r["name"] == "c2")
    assert c2["bd_rate_yuv"] == "" and "do not overlap" in c2["na_reason"]
    table = markdown_table(comparison)
    assert "| **Average** | 5 | +5.0 |" in table
    assert "| D | 1 | n/a |" in table


def test_bdrate_verb_from_two_tables(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    points = _table()
    write_points(tmp_path / "anchor.csv", [p for p in points if p.codec == "anchor"])
    write_points(tmp_path / "test.csv", [p for p in points if p.codec == "test"])
    comparison, _ = bdrate_tables(tmp_path / "anchor.csv", tmp_path / "test.csv")
    assert comparison.rows["test"][0].values["yuv"].value == pytest.approx(10.0, abs=1e-4)
    assert len(read_points(tmp_path / "anchor.csv")) == 20

    command = typer.main.get_command(app)
    command.main(args=["bdrate", str(tmp_path / "anchor.csv"), str(tmp_path / "test.csv"), "-o",
                       str(tmp_path / "out")], standalone_mode=False)
    printed = capsys.readouterr().out
    assert "## test vs anchor" in printed and "| b1 | B | +10.0 |" in printed
    assert (tmp_path / "out" / "bdrate.csv").is_file() and (tmp_path / "out" / "table.md").is_file()


def test_bdrate_verb_needs_a_codec_choice_for_mixed_tables(tmp_path: Path) -> None:
    write_points(tmp_path / "both.csv", _table())
    with pytest.raises(EvalError, match="name the anchor codec"):
        bdrate_tables(tmp_path / "both.csv", tmp_path / "both.csv")
    comparison, _ = bdrate_tables(tmp_path / "both.csv", tmp_path / "both.csv", anchor_codec="anchor")
    assert list(comparison.rows) == ["test"]
    (tmp_path / "bad.csv").write_text("sequence,codec\nx,y\n")
    with pytest.raises(EvalError, match="lacks column"):
        bdrate_tables(tmp_path / "bad.csv", tmp_path / "both.csv")


def test_plot_verb_draws_every_codec(tmp_path: Path) -> None:
    write_points(tmp_path / "points.csv", _table())
    command = typer.main.get_command(app)
    command.main(args=["plot", str(tmp_path / "points.csv"), "-o", str(tmp_path / "plots"), "-q"],
                 standalone_mode=False)
    names = sorted(p.name for p in (tmp_path / "plots").iterdir())
    assert names == ["B_b1.png", "B_b2.png", "C_c1.png", "C_c2.png", "D_d1.png", "class_B.png", "class_C.png",
                     "class_D.png"]
    with pytest.raises(EvalError, match="rate axis"):
        command.main(args=["plot", str(tmp_path / "points.csv"), "-o", str(tmp_path / "p2"), "--rate-axis", "mb"],
                     standalone_mode=False)
