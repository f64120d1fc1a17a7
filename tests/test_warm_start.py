"""Warm start: a frame trains from the previous frame's float model, in chains that do not depend on --jobs,
and every frame of a warm-started sequence still decodes alone, in any order."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from vcodec.bitstream.container import ContainerReader, ContainerWriter
from vcodec.config import ConfigError, EncoderConfig, load_config
from vcodec.decoder import decode_frame
from vcodec.encoder.encode import encode_frame_chained, fit
from vcodec.encoder.target import make_target
from vcodec.encoder.train import continue_training, rounded_cost, train_frame_model
from vcodec.encoder.warm_start import capture, warm_config, warm_model
from vcodec.eval.sequences import write_pan_zoom_clip
from vcodec.io import frame_to_bytes, open_video
from vcodec.samples import pan_zoom_frames
from vcodec.sequence.encode import encode_sequence
from vcodec.sequence.jobs import coded_frames
from vcodec.sequence.reports import SilentObserver
from vcodec.sequence.settings import EncodeSettings
from vcodec.model.frame_model import FrameModel
from vcodec.types import Frame, VcodecError

LMBDA = 0.001


@pytest.fixture(scope="module")
def clip() -> list[Frame]:
    return pan_zoom_frames(64, 48, 5, 8, "astronaut")


def config(warm_start: str = "network", chain: int = 8, iterations: int = 40) -> EncoderConfig:
    return load_config("tiny", "fast", iterations=iterations, warm_start=warm_start, warm_chain=chain,
                       warm_fraction=0.25, quantization_patience=1)


def test_pan_zoom_clip_moves_a_little_every_frame(tmp_path: Path) -> None:
    frames = pan_zoom_frames(96, 64, 4, 8, "astronaut")
    assert [f.y.shape for f in frames] == [(64, 96)] * 4 and frames[0].u.shape == (32, 48)
    steps = [float(np.abs(a.y.astype(int) - b.y.astype(int)).mean()) for a, b in zip(frames, frames[1:])]
    assert all(0.5 < step < 40 for step in steps)  # moving, yet the same picture
    assert frame_to_bytes(pan_zoom_frames(96, 64, 4, 8, "astronaut")[2]) == frame_to_bytes(frames[2])
    path = write_pan_zoom_clip(tmp_path, width=96, height=64, frames=4)
    with open_video(str(path)) as source:
        assert source.info.frame_count == 4 and (source.info.width, source.info.height) == (96, 64)
    with pytest.raises(VcodecError, match="zoom"):
        pan_zoom_frames(96, 64, 4, 8, "astronaut", zoom=0.5)
    with pytest.raises(VcodecError, match="even"):
        pan_zoom_frames(95, 64)


def test_warm_model_takes_the_network_and_latents_only_when_asked(clip: list[Frame]) -> None:
    cfg = config()
    frame = clip[0]
    target = make_target(frame, "cpu")
    model = _trained(frame, cfg)
    state = capture(model)
    network = warm_model(state, frame.height, frame.width, "network", 1.0)
    everything = warm_model(state, frame.height, frame.width, "all", 1.0)
    assert all(float(latent.detach().abs().sum()) == 0.0 for latent in network.latents)
    assert any(float(latent.detach().abs().sum()) > 0.0 for latent in everything.latents)
    for name, value in network.synthesis.state_dict().items():
        assert torch.equal(value, model.synthesis.state_dict()[name])
    assert rounded_cost(everything, target, LMBDA, cfg.loss) == rounded_cost(model, target, LMBDA, cfg.loss)
    with pytest.raises(ConfigError, match="64x48"):
        warm_model(state, 32, 64, "all", 1.0)
    with pytest.raises(ConfigError, match="off"):
        warm_model(state, 48, 64, "off", 1.0)


def _trained(frame: Frame, cfg: EncoderConfig) -> FrameModel:
    return fit(frame, LMBDA, cfg, None)[0]


def test_warm_config_uses_the_warm_schedule_and_one_architecture() -> None:
    cfg = load_config("auto", "medium", iterations=400, warm_fraction=0.125, warm_learning_rate=0.005,
                      warm_softround_temperature=[0.2, 0.1])
    assert len(cfg.archs) == 2
    warm = warm_config(cfg, cfg.archs[0])
    assert warm.preset.iterations == 50 and warm.preset.learning_rate == 0.005
    assert warm.preset.softround_temperature == (0.2, 0.1) and warm.archs == (cfg.archs[0],)
    with pytest.raises(ConfigError, match="warm_fraction"):
        load_config("tiny", "fast", warm_fraction=0.0)
    with pytest.raises(ConfigError, match="warm_start"):
        load_config("tiny", "fast", warm_start="latents")


def test_continue_training_starts_where_the_model_is(clip: list[Frame]) -> None:
    """From the previous frame's model, a few iterations reach a lower RD cost than as many from scratch."""
    cfg = config(iterations=60)
    first, second = clip[0], clip[1]
    state = capture(_trained(first, cfg))
    short = replace(cfg, preset=replace(cfg.preset, iterations=8))
    target = make_target(second, "cpu")
    torch.manual_seed(0)
    warm = continue_training(warm_model(state, 48, 64, "all", 1.0), target, LMBDA, warm_config(short, cfg.arch))
    torch.manual_seed(0)
    cold = train_frame_model(target, LMBDA, short).model
    assert rounded_cost(warm, target, LMBDA, cfg.loss) < 0.8 * rounded_cost(cold, target, LMBDA, cfg.loss)


def test_chains_start_cold_at_multiples_of_their_length_whatever_the_jobs(clip: list[Frame]) -> None:
    """Chains of 2 over 5 frames: frames 0, 2, 4 are coded as cold frames are, frames 1 and 3 not; two
    worker processes write the same bytes as one process."""
    cfg = config(chain=2)
    serial = list(coded_frames(iter(clip), 0, LMBDA, cfg, 1, 1, SilentObserver()))
    parallel = list(coded_frames(iter(clip), 0, LMBDA, cfg, 2, 1, SilentObserver()))
    assert [stats.number for _, stats in parallel] == [0, 1, 2, 3, 4]
    assert [data for data, _ in parallel] == [data for data, _ in serial]
    cold = list(coded_frames(iter(clip), 0, LMBDA, config("off"), 1, 1, SilentObserver()))
    same = [a == b for (a, _), (b, _) in zip(serial, cold)]
    assert same == [True, False, True, False, True]


def test_a_warm_frame_needs_its_predecessor_only_to_encode(clip: list[Frame]) -> None:
    cfg = config()
    first, state = encode_frame_chained(clip[0], LMBDA, cfg, None)
    second, _ = encode_frame_chained(clip[1], LMBDA, cfg, state)
    assert frame_to_bytes(decode_frame(second.data)) == frame_to_bytes(second.reconstruction)
    assert second.arch_name == first.arch_name


@pytest.fixture()
def clip_file(tmp_path: Path) -> Path:
    return write_pan_zoom_clip(tmp_path, width=64, height=48, frames=5)


def _settings(**changes: object) -> EncodeSettings:
    """fast with --warm-start (network, chains of 8, warm frames a quarter of the iterations)."""
    return EncodeSettings(LMBDA, arch="tiny", preset="fast", iterations=40,
                          **{"warm_start": True, **changes})  # type: ignore[arg-type]


def test_a_warm_started_sequence_decodes_one_frame_at_a_time_out_of_order(clip_file: Path, tmp_path: Path) -> None:
    with open_video(str(clip_file)) as source:
        encode_sequence(source, tmp_path / "warm.vcc", _settings(keep_in_file=True), threads=1)
    with open_video(str(clip_file)) as source:
        encode_sequence(source, tmp_path / "cold.vcc", _settings(warm_start=False), threads=1)
    with ContainerReader(tmp_path / "warm.vcc") as warm, ContainerReader(tmp_path / "cold.vcc") as cold:
        assert warm.header.settings["warm_start"] == "network"
        in_order = [frame_to_bytes(decode_frame(warm.read_frame(n))) for n in range(5)]
        for number in (3, 0, 4, 1, 2):  # each frame from its own bytes alone, in any order
            assert frame_to_bytes(decode_frame(warm.read_frame(number))) == in_order[number]
        assert warm.read_frame(0) == cold.read_frame(0)  # a chain's first frame is a cold frame
        assert warm.read_frame(1) != cold.read_frame(1)


def test_a_resume_inside_a_chain_writes_what_an_uninterrupted_encode_writes(
        clip_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The frames of the chain before the resume point are trained again (not written), so the next one
    starts from the same model as it would have."""
    with open_video(str(clip_file)) as source:
        encode_sequence(source, tmp_path / "whole.vcc", _settings(), threads=1)
    real_append = ContainerWriter.append
    appended = []

    def append_then_stop(self: ContainerWriter, payload: bytes) -> None:
        real_append(self, payload)
        appended.append(payload)
        if len(appended) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(ContainerWriter, "append", append_then_stop)
    with open_video(str(clip_file)) as source, pytest.raises(KeyboardInterrupt):
        encode_sequence(source, tmp_path / "cut.vcc", _settings(), threads=1)
    monkeypatch.undo()
    with open_video(str(clip_file)) as source:
        summary = encode_sequence(source, tmp_path / "cut.vcc", _settings(), threads=1, resume=True)
    assert (summary.resumed_frames, summary.frames, len(summary.coded)) == (2, 5, 3)
    assert (tmp_path / "cut.vcc").read_bytes() == (tmp_path / "whole.vcc").read_bytes()


def test_the_warm_start_options_override_the_preset() -> None:
    preset_says = load_config("auto", "fast").preset.warm_start
    assert EncodeSettings(LMBDA, preset="fast").encoder_config().preset.warm_start == preset_says
    assert EncodeSettings(LMBDA, preset="fast", warm_start=False).encoder_config().preset.warm_start == "off"
    turned_on = EncodeSettings(LMBDA, preset="fast", warm_start=True).encoder_config().preset.warm_start
    assert turned_on == (preset_says if preset_says != "off" else "network")


def test_warm_start_on_the_command_line(clip_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "cold.vcc"
    args = [sys.executable, "-m", "vcodec", "encode", str(clip_file), "-o", str(out), "--frames", "2", "--lmbda",
            "0.001", "--preset", "fast", "--arch", "tiny", "--iterations", "8", "--threads", "1", "--settings", "-q"]
    subprocess.run([*args, "--no-warm-start"], check=True, capture_output=True, timeout=300)
    with ContainerReader(out) as reader:
        assert reader.header.settings["warm_start"] == "off"
    subprocess.run([*args, "--warm-start", "-y"], check=True, capture_output=True, timeout=300)
    with ContainerReader(out) as reader:
        assert reader.header.settings["warm_start"] == "network"
        fast = load_config("auto", "fast").preset
        assert reader.header.settings["warm_fraction"] == fast.warm_fraction and reader.header.settings["warm_chain"] == 8
    subprocess.run([*args, "-y"], check=True, capture_output=True, timeout=300)  # fast's default: warm, measured
    with ContainerReader(out) as reader:
        assert reader.header.settings["warm_start"] == "network" == fast.warm_start
