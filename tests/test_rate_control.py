"""Rate control (`--target-bpp`, `--target-kbps`, `--target-psnr`): the lambda search on real encodes of
tiny frames, the continuation of a training at another lambda, the kbps budget against a real container,
and the command line (options, CSV columns, `vcodec info`)."""

from __future__ import annotations

import csv
import dataclasses
import json
import math
from fractions import Fraction
from pathlib import Path

import pytest
import torch

from vcodec.bitstream.container import ContainerWriter, SequenceHeader
from vcodec.cli import ExitCode, main
from vcodec.config import ConfigError, load_config, load_rate_control
from vcodec.encoder.encode import encode_frame_report, start_training
from vcodec.encoder.rate_control import encode_to_target, gradient_energy, predict_lambda
from vcodec.io import OptionError, VideoInfo
from vcodec.samples import sample_frames
from vcodec.sequence.rate_targets import frame_target
from vcodec.sequence.settings import EncodeSettings, resolve_rate
from vcodec.types import RateTarget, VcodecError

ITERATIONS = 200


@pytest.fixture(scope="module")
def frame():
    return sample_frames(64, 48, 1, 8, "astronaut")[0]


@pytest.fixture(scope="module")
def config():
    return load_config("auto", "fast", iterations=ITERATIONS)


def test_rate_control_config_is_checked(tmp_path: Path) -> None:
    rc = load_rate_control()
    assert rc.model("fast", "bpp").slope < 0 and rc.model("fast", "psnr").slope < 0  # more lambda, fewer bits
    assert rc.model("no-such-preset", "psnr") == rc.model("fast", "psnr")  # borrowed, the probes correct it
    bad = tmp_path / "rc.toml"
    bad.write_text("probe_fraction = 1.5\n")
    with pytest.raises(ConfigError, match="probe_fraction"):
        load_rate_control(bad)
    bad.write_text("[model.fast.bpp]\nintercept = 1.0\nslope = 0.0\n")
    with pytest.raises(ConfigError, match="slope"):
        load_rate_control(bad)
    bad.write_text("[model.fast.ssim]\nintercept = 1.0\nslope = -1.0\n")
    with pytest.raises(ConfigError, match="may hold only"):
        load_rate_control(bad)


def test_targets_and_options() -> None:
    assert resolve_rate(None, None, target_bpp=0.5) == (None, None, ("bpp", 0.5))
    assert resolve_rate(0.001, None) == (0.001, None, None)
    for kwargs in ({"lmbda": 0.001, "rate": None, "target_bpp": 0.5}, {"lmbda": None, "rate": "r2", "target_psnr": 35.0},
                   {"lmbda": None, "rate": None, "target_bpp": 0.5, "target_kbps": 100.0}):
        with pytest.raises(OptionError, match="not "):
            resolve_rate(**kwargs)
    for kwargs in ({"target_bpp": 0.0}, {"target_bpp": -1.0}, {"target_kbps": float("nan")}, {"target_psnr": 150.0},
                   {"target_bpp": 40.0}):
        with pytest.raises(OptionError, match="out of range"):
            resolve_rate(None, None, **kwargs)
    with pytest.raises(OptionError):
        EncodeSettings(None)  # neither a lambda nor a target
    with pytest.raises(OptionError):
        EncodeSettings(0.001, target=("bpp", 0.5))  # both
    assert EncodeSettings(None, target=("psnr", 35.0)).keeps_settings
    with pytest.raises(VcodecError):
        RateTarget("ssim", 0.9)
    assert RateTarget("bpp", math.e).goal == pytest.approx(1.0)


@pytest.mark.parametrize("args, message", [
    (["--lmbda", "0.001", "--target-bpp", "0.5"], "--target-bpp and --lmbda"),
    (["--target-psnr", "35", "--target-kbps", "100"], "--target-kbps and --target-psnr"),
    (["--rate", "r2", "--target-psnr", "35"], "--target-psnr and --rate"),
    (["--target-bpp", "0"], "out of range"),
    (["--target-kbps", "-5"], "out of range"),
    (["--target-psnr", "abc"], "--target-psnr"),
])
def test_cli_refuses_bad_targets(tmp_path: Path, capsys, args: list[str], message: str) -> None:
    clip = tmp_path / "clip_64x48_30.yuv"
    assert main(["sample", "-o", str(clip), "--size", "64x48", "--frames", "1", "-q"]) == 0
    code = main(["encode", str(clip), "-o", str(tmp_path / "out.vcc"), *args, "-q"])
    err = capsys.readouterr().err
    assert code == ExitCode.USAGE
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out.vcc").exists() and not (tmp_path / "out.vcc.partial").exists()


def test_kbps_target_counts_the_whole_file(tmp_path: Path) -> None:
    """A frame budget from --target-kbps, written as frames of exactly that many bytes into a real container
    with the settings an encode keeps, makes a file at the target kbps (to 0.2 %)."""
    fps, frames, kbps = Fraction(30), 5, 200.0
    info = VideoInfo(208, 120, 8, fps, frames)
    settings = EncodeSettings(None, preset="fast", target=("kbps", kbps))
    first = sample_frames(208, 120, 1, 8, "coffee")[0]
    record = settings.record(load_config("auto", "fast"), 0, first)
    header = SequenceHeader(208, 120, 8, fps, settings=record)
    target = frame_target(("kbps", kbps), info, header)
    assert target.metric == "bpp"
    frame_bytes = round(target.value * 208 * 120 / 8)
    path = tmp_path / "budget.vcc"
    writer = ContainerWriter.create(path, header)
    for _ in range(frames):
        writer.append(bytes(frame_bytes))
    writer.finish(settings={**record, "reached": {"bpp": 0.123456, "psnr_yuv": 30.1234, "frames_within": 5,
                                                  "frames_coded": 5, "probes": 10}})
    writer.close()
    file_kbps = 8 * path.stat().st_size / frames * float(fps) / 1000
    assert abs(file_kbps / kbps - 1) < 0.002  # the reached record's size is estimated to a few bytes
    with pytest.raises(OptionError, match="no bits"):
        frame_target(("kbps", 1.0), info, header)


def test_continuing_a_training_equals_one_go(frame, config) -> None:
    """A training stopped inside its main phase and continued at the same lambda trains exactly as one
    run: what rate control's warm-started continuation relies on."""
    one_go = start_training(frame, 0.002, config, None).finish(0.002).model
    training = start_training(frame, 0.002, config, None)
    training.train_main(37, 0.002)
    training.train_main(90, 0.002)
    stopped = training.finish(0.002).model
    for (name, a), (_, b) in zip(one_go.state_dict().items(), stopped.state_dict().items()):
        assert torch.equal(a, b), name


def test_search_reaches_a_reachable_target(frame, config) -> None:
    """The target is the real bpp of a plain encode at lambda 0.002; the search starts from a model that
    predicts a lambda 3x too large and must end within the tolerance, on the real bitstream."""
    reachable = encode_frame_report(frame, 0.002, config).bpp()
    rc = load_rate_control()
    model = rc.model("fast", "bpp")
    energy = gradient_energy(frame)
    goal = math.log(reachable)
    off = model.intercept + goal - (model.intercept + model.slope * math.log(0.006) + model.feature * math.log(energy))
    wrong = dataclasses.replace(model, intercept=off, probe_offset=0.0)
    assert predict_lambda(wrong, goal, energy) == pytest.approx(0.006)
    rc = dataclasses.replace(rc, models={"fast": {"bpp": wrong}}, time_budget=10.0)  # (a loaded machine)
    result = encode_to_target(frame, RateTarget("bpp", reachable), config, rc=rc)
    assert result.within
    assert abs(result.encoded.bpp() / reachable - 1) <= rc.bpp_tolerance
    assert result.predicted_lmbda == pytest.approx(0.006)
    assert result.lmbda < 0.006 / 2  # the search left the wrong prediction (probe, steering or corrections)
    assert 1 <= result.probes <= rc.max_probes + rc.max_corrections


def test_unreachable_target_is_best_effort(frame, config) -> None:
    """A bpp below what the largest lambda of the range reaches is coded at that lambda, reported missed,
    after a single training run (another probe at the same lambda would measure the same)."""
    rc = dataclasses.replace(load_rate_control(), lmbda_max=0.02)
    result = encode_to_target(frame, RateTarget("bpp", 0.01), config, rc=rc)
    assert not result.within
    assert result.lmbda == rc.lmbda_max
    assert result.probes == 1 and result.corrections == 0
    assert result.encoded.bpp() > 0.01


def test_encode_with_target_csv_and_info(tmp_path: Path, capsys) -> None:
    clip = tmp_path / "clip_64x48_30.yuv"
    out = tmp_path / "out.vcc"
    stats = tmp_path / "stats.csv"
    assert main(["sample", "-o", str(clip), "--size", "64x48", "--frames", "1", "-q"]) == 0
    code = main(["encode", str(clip), "-o", str(out), "--preset", "fast", "--iterations", "120",
                 "--target-psnr", "28", "--csv", str(stats)])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "target 28 dB PSNR-YUV:" in err and "frames within tolerance" in err
    with stats.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 1 and rows[0]["target"] == "psnr=28" and int(rows[0]["probes"]) >= 1
    assert 0 < float(rows[0]["lmbda"]) < 1
    assert main(["info", str(out), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    settings = data["settings"]
    assert settings["target"] == {"psnr": 28.0} and settings["lmbda"] is None
    reached = settings["reached"]
    assert reached["psnr_yuv"] == pytest.approx(float(rows[0]["psnr_yuv"]), abs=1e-3)
    assert reached["bpp"] == pytest.approx(float(rows[0]["bpp"]), abs=1e-5)
    assert reached["frames_coded"] == 1 and reached["probes"] == int(rows[0]["probes"])
    assert main(["info", str(out)]) == 0
    text = capsys.readouterr().out
    assert "Rate target: 28 dB PSNR-YUV; reached" in text and f"{reached['psnr_yuv']:.2f} dB" in text
    # --resume recognises the finished file; another target does not match it
    assert main(["encode", str(clip), "-o", str(out), "--preset", "fast", "--iterations", "120",
                 "--target-psnr", "28", "--resume", "-q"]) == 0
    code = main(["encode", str(clip), "-o", str(out), "--preset", "fast", "--iterations", "120",
                 "--target-psnr", "29", "--resume", "-q"])
    assert code == ExitCode.RESUME and "target" in capsys.readouterr().err


def test_rate_control_codes_every_frame_cold() -> None:
    """A rate target and warm start do not combine: --warm-start with a target is refused, a preset's warm
    start is turned off (and so recorded), and a warm config still codes a target's frames in chains of 1."""
    from vcodec.sequence.jobs import chain_length

    with pytest.raises(OptionError, match="codes every frame cold"):
        EncodeSettings(None, preset="fast", target=("bpp", 0.5), warm_start=True)
    assert EncodeSettings(None, preset="fast", target=("bpp", 0.5)).encoder_config().preset.warm_start == "off"
    assert EncodeSettings(None, preset="fast", target=("bpp", 0.5),
                          warm_start=False).encoder_config().preset.warm_start == "off"
    warm = load_config("auto", "fast", warm_start="network")
    assert warm.preset.warm_start == "network" and chain_length(warm) > 1
    assert chain_length(warm, RateTarget("bpp", 0.5)) == 1
    assert chain_length(warm, 0.001) == warm.preset.warm_chain


def test_trimming_the_parameters_never_moves_away_from_the_goal(frame, config) -> None:
    """A near miss is re-coded at other parameter lambdas without training: the kept result is never
    further from the goal than the plain coding, and it is a real, decodable bitstream."""
    from vcodec.decoder import decode_frame
    from vcodec.encoder.rate_control import _code, _finish, _trim

    rc = load_rate_control()
    training = start_training(frame, 0.002, config, None)
    finished = _finish(training, 0.002)
    plain = _code(frame, finished, 0.002, config, 0.0)
    target = RateTarget("bpp", plain.bpp() * 0.97)  # 3 % fewer bits than the plain coding: a near miss
    goal = target.goal
    trimmed = _trim(frame, finished, 0.002, plain, goal, 1e-4, target, -0.45, config, rc, 0.0)
    assert abs(goal - math.log(trimmed.bpp())) <= abs(goal - math.log(plain.bpp()))
    assert trimmed.bpp() < plain.bpp()  # here a coarser parameter step does save bits
    assert decode_frame(trimmed.data).y.tobytes() == trimmed.reconstruction.y.tobytes()
