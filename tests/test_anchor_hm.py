"""HM anchors on the real HM-18.0 sample (../shared/hm-sample): log parser, bitstream import, agreement."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from vcodec.eval.codecs import CsvCodec, HmBitstreamCodec, HmLogCodec, X265Codec
from vcodec.eval.errors import AnchorError, JobsFailedError
from vcodec.eval.evaluate import evaluate
from vcodec.eval.hevc import parse_hm_log, split_access_units
from vcodec.eval.sequences import Sequence, class_from_directory
from vcodec.metrics import psnr_from_mses

from hm_sample import HM_SAMPLE

# Without the sample every test here is skipped, and conftest.py says so in the summary.
pytestmark = pytest.mark.skipif(not HM_SAMPLE.is_dir(), reason=f"HM sample outputs not found at {HM_SAMPLE}")

CLIPS = ("Immuno_416x240_30_8bit_420", "Hubble_416x240_30_10bit_420")
QPS = (22, 27, 32, 37)


@pytest.fixture(scope="module")
def sequences() -> dict[str, Sequence]:
    return {s.name: s for s in class_from_directory(HM_SAMPLE, 2)}


def test_log_parser_reads_every_poc_line() -> None:
    log = parse_hm_log((HM_SAMPLE / "Immuno_416x240_30_8bit_420_QP22.log").read_text())
    assert log.version == "18.0" and log.qp == 22 and log.bitdepth == 8
    assert (log.width, log.height, log.first_frame) == (416, 240, 0)
    assert log.input_file == "Immuno_416x240_30_8bit_420.yuv"
    assert [(f.poc, f.slice_type, f.qp, f.bits) for f in log.frames] == [(0, "I", 22, 150808), (1, "I", 22, 151544)]
    assert (log.frames[0].psnr_y, log.frames[0].psnr_u, log.frames[0].psnr_v) == (41.2568, 45.8125, 46.8868)
    assert log.frames[0].seconds is not None
    hubble = parse_hm_log((HM_SAMPLE / "Hubble_416x240_30_10bit_420_QP37.log").read_text())
    assert hubble.bitdepth == 10 and [f.bits for f in hubble.frames] == [11256, 11480]


def test_log_parser_rejects_other_text() -> None:
    with pytest.raises(AnchorError, match="not an HM encoder log"):
        parse_hm_log("SUMMARY\nnothing here\n")


@pytest.mark.parametrize("clip", CLIPS)
@pytest.mark.parametrize("qp", QPS)
def test_access_units_carry_exactly_the_logged_bits(clip: str, qp: int) -> None:
    data = (HM_SAMPLE / f"{clip}_QP{qp}.bin").read_bytes()
    units = split_access_units(data)
    log = parse_hm_log((HM_SAMPLE / f"{clip}_QP{qp}.log").read_text())
    assert [8 * len(u) for u in units] == [f.bits for f in log.frames]
    assert b"".join(units) == data


@pytest.mark.parametrize("clip", CLIPS)
def test_decoded_bitstreams_agree_with_the_logs(sequences: dict[str, Sequence], clip: str) -> None:
    """Bits equal, and PSNR from FFmpeg's decode against the source equals HM's to 4 decimals (peak 1020 at 10 bit)."""
    sequence = sequences[clip]
    bitstreams, logs = HmBitstreamCodec(str(HM_SAMPLE)), HmLogCodec(str(HM_SAMPLE))
    assert bitstreams.rate_points(sequence) == logs.rate_points(sequence) == [str(q) for q in QPS]
    for qp in QPS:
        decoded = bitstreams.code(sequence, 0, 2, str(qp))
        logged = logs.code(sequence, 0, 2, str(qp))
        for ours, hm in zip(decoded.frames, logged.frames):
            assert ours.bits == hm.bits
            mine = psnr_from_mses(ours.mse, sequence.bitdepth, hm_peak=True)
            theirs = psnr_from_mses(hm.mse, sequence.bitdepth, hm_peak=True)
            assert [round(v, 4) for v in (mine.y, mine.u, mine.v)] == pytest.approx(
                [theirs.y, theirs.u, theirs.v], abs=1e-9)
        row = decoded.rate_point_row()
        assert row.bits == sum(f.bits for f in logged.frames)


def test_second_frame_alone_is_imported_from_its_own_access_unit(sequences: dict[str, Sequence]) -> None:
    sequence = sequences["Immuno_416x240_30_8bit_420"]
    result = HmBitstreamCodec(str(HM_SAMPLE)).code(sequence, 1, 1, "27")
    assert [f.index for f in result.frames] == [1] and result.frames[0].bits == 90976


def test_csv_anchor_reads_per_frame_rows(tmp_path: Path, sequences: dict[str, Sequence]) -> None:
    table = tmp_path / "hm.csv"
    lines = ["sequence,qp,frame,bits,psnr_y,psnr_u,psnr_v"]
    for qp in QPS:
        log = parse_hm_log((HM_SAMPLE / f"Hubble_416x240_30_10bit_420_QP{qp}.log").read_text())
        lines += [f"Hubble_416x240_30_10bit_420,{qp},{f.poc},{f.bits},{f.psnr_y},{f.psnr_u},{f.psnr_v}"
                  for f in log.frames]
    table.write_text("\n".join(lines) + "\n")
    sequence = sequences["Hubble_416x240_30_10bit_420"]
    codec = CsvCodec(str(table))
    assert codec.rate_points(sequence) == [str(q) for q in QPS]
    from_csv = codec.code(sequence, 0, 2, "32").rate_point_row()
    from_log = HmLogCodec(str(HM_SAMPLE)).code(sequence, 0, 2, "32").rate_point_row()
    assert from_csv.bits == from_log.bits == 42256
    assert from_csv.psnr_yuv == pytest.approx(from_log.psnr_yuv, abs=1e-9)
    assert from_log.kbps == pytest.approx(633.84)  # the log's SUMMARY line
    # PSNR-YUV is the CTC's (6 Y + U + V) / 8 of the frame-mean PSNRs of the SUMMARY line, not HM's own
    # "YUV-PSNR" column (36.2755 there), which is the PSNR of the sample-count-weighted MSE.
    assert from_log.psnr_yuv == pytest.approx((6 * 35.0362 + 41.1232 + 40.8162) / 8, abs=1e-4)


def test_x265_stand_in_is_close_to_hm(tmp_path: Path, sequences: dict[str, Sequence]) -> None:
    """The built-in anchor against real HM bitstreams on the sample: within a few percent BD-rate."""
    outputs = evaluate(list(sequences.values()), [X265Codec(preset="slow")], HmBitstreamCodec(str(HM_SAMPLE)),
                       tmp_path / "out", frames=1, workers=0, quiet=True)
    rows = {r.name: r for r in outputs.comparison.rows["x265-slow"]}
    for clip in CLIPS:
        value = rows[clip].values["yuv"].value
        assert value is not None and abs(value) < 6.0, (clip, value)
    table = (tmp_path / "out" / "table.md").read_text()
    assert "hm-bitstreams" in table and "FFmpeg's HEVC decoder" in table


def test_failing_anchor_job_is_retried_reported_and_left_out(tmp_path: Path, sequences: dict[str, Sequence],
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    """In a worker process: the broken log's job fails, is retried once, is reported; the others finish."""
    logs = tmp_path / "logs"
    logs.mkdir()
    for path in HM_SAMPLE.glob("*.log"):
        shutil.copy(path, logs / path.name)
    (logs / "Immuno_416x240_30_8bit_420_QP37.log").write_text("the encoder crashed\n")
    with pytest.raises(JobsFailedError, match="1 of 16 jobs failed twice"):
        evaluate(list(sequences.values()), [HmBitstreamCodec(str(HM_SAMPLE))], HmLogCodec(str(logs)),
                 tmp_path / "out", frames=2, workers=1, threads=1, quiet=True)
    bdrate = (tmp_path / "out" / "bdrate.csv").read_text()
    assert "anchor has 3 rate point(s), 4 needed" in bdrate
    rows = (tmp_path / "out" / "points.csv").read_text().splitlines()
    assert len(rows) == 1 + 15
    messages = capsys.readouterr().err
    assert "hm-logs @ 37 failed (AnchorError" in messages and "retrying" in messages
    assert "failed twice: AnchorError" in messages
    # The same pictures through both import paths: a BD-rate of zero, up to the logs' 4-decimal rounding.
    hubble = next(line for line in bdrate.splitlines() if line.startswith("Hubble"))
    assert all(abs(float(v)) < 0.01 for v in hubble.split(",")[2:6])
