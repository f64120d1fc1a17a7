"""Decoder architectures: every one in cfg/arch decodes bit-exactly from its bytes, and --arch auto
writes the candidate that its warm-up found cheapest to code."""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

from vcodec.config import CFG_DIR, load_config
from vcodec.bitstream.frame_info import read_frame_info
from vcodec.decoder import decode_frame
from vcodec.encoder.encode import encode_frame_and_model, write_bitstream
from vcodec.encoder.quantize import quantize_parameters
from vcodec.encoder.target import make_target
from vcodec.io.formats import frame_to_bytes
from vcodec.metrics import frame_mse
from vcodec.model.complexity import macs_per_pixel
from vcodec.samples import sample_frames
from vcodec.types import Frame

ARCHS = sorted(p.stem for p in (CFG_DIR / "arch").glob("*.toml"))
MAX_MAC_PER_PIXEL = 2300  # every architecture stays within the main budget


@pytest.fixture(scope="module")
def small_frame() -> Frame:
    return sample_frames(48, 32, 1, 8, "coffee")[0]


def _digest(frame: Frame) -> str:
    return hashlib.sha256(frame_to_bytes(frame)).hexdigest()


@pytest.mark.parametrize("arch", ARCHS)
def test_every_architecture_decodes_bit_exactly(arch: str, small_frame: Frame) -> None:
    cfg = load_config(arch, "fast", iterations=40, quantization_patience=1)
    encoded, _ = encode_frame_and_model(small_frame, 0.001, cfg)  # the encoder checks decoder vs its model
    assert read_frame_info(encoded.data).arch_name == arch == encoded.arch_name
    digests = set()
    for threads in (1, 2):
        previous = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            digests.add(_digest(decode_frame(encoded.data)))
        finally:
            torch.set_num_threads(previous)
    assert digests == {_digest(encoded.reconstruction)}
    assert macs_per_pixel(cfg.arch)["total"] <= MAX_MAC_PER_PIXEL


def _cost_from_bytes(frame: Frame, data: bytes, lmbda: float) -> float:
    """Independent of the encoder's scoring: decode the bytes, 6:1:1 MSE on [0, 1] samples + lambda bpp."""
    decoded = decode_frame(data)
    y, u, v = frame_mse(frame, decoded)
    peak = float(frame.max_value)
    return (6 * y + u + v) / 8 / peak**2 + lmbda * 8 * len(data) / (frame.width * frame.height)


def test_arch_auto_writes_the_cheapest_candidate(small_frame: Frame) -> None:
    lmbda = 0.004
    cfg = load_config("auto", "fast", arch_candidates=["main", "tiny", "light"], iterations=120,
                      warmup_iterations=15, warmup_survivors=2, quantization_patience=1)
    encoded, model = encode_frame_and_model(small_frame, lmbda, cfg)
    names = [name for name, _ in encoded.candidate_costs]
    assert sorted(names) == ["light", "main", "tiny"]  # every candidate was trained and scored
    costs = dict(encoded.candidate_costs)
    assert encoded.arch_name == min(costs, key=costs.__getitem__)
    assert read_frame_info(encoded.data).arch_name == encoded.arch_name


def test_coded_cost_is_the_cost_of_the_real_bitstream(small_frame: Frame) -> None:
    """The score auto ranks by is what writing the model would cost: recomputed here from real bytes."""
    from vcodec.encoder.encode import coded_cost

    lmbda = 0.001
    cfg = load_config("tiny", "fast", iterations=40, quantization_patience=1)
    _, model = encode_frame_and_model(small_frame, lmbda, cfg)
    trial = copy.deepcopy(model)
    params = quantize_parameters(trial, make_target(small_frame, "cpu"), lmbda, 1)
    data, _ = write_bitstream(small_frame, trial, params)
    assert coded_cost(small_frame, model, lmbda, cfg) == pytest.approx(_cost_from_bytes(small_frame, data, lmbda), rel=1e-9)
