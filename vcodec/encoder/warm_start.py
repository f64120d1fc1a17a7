"""Warm start: a frame's training begins from the float model of the frame before it, not from scratch.

Neighbouring frames of a video look alike, so the previous frame's trained network (and, where the
picture moved little, its latents) is a better start than a random initialisation: fewer iterations
reach the same rate-distortion cost. Only the encoder's starting point changes; the bitstream is the
same intra frame as ever and decodes alone. The state carried over is the model *before* parameter
quantisation, so quantisation errors do not pile up along a chain.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from vcodec.config import ArchConfig, ConfigError, EncoderConfig
from vcodec.model.frame_model import FrameModel

LATENTS_PREFIX = "latents."


@dataclass(frozen=True)
class WarmState:
    """A trained frame model's float parameters, what the next frame of its chain starts from."""

    arch: ArchConfig
    height: int
    width: int
    parameters: dict[str, torch.Tensor]


def capture(model: FrameModel) -> WarmState:
    """A CPU copy of the model's parameters as trained (take it before quantisation changes them)."""
    parameters = {name: value.detach().to("cpu", copy=True) for name, value in model.state_dict().items()}
    return WarmState(model.arch, model.height, model.width, parameters)


def warm_model(state: WarmState, height: int, width: int, variant: str, latent_gain: float,
               memory_saving_pixels: int | None = None) -> FrameModel:
    """A new model holding the previous frame's network, and with variant "all" its latents too (zero
    latents otherwise, as a cold start has); it trains on the memory-saving path above
    memory_saving_pixels, as a cold model does."""
    if variant not in ("network", "all"):
        raise ConfigError(f"warm start {variant!r} starts from nothing (use network or all)")
    if (height, width) != (state.height, state.width):
        raise ConfigError(f"cannot warm-start a {width}x{height} frame from a {state.width}x{state.height} one")
    model = FrameModel(state.arch, height, width, latent_gain, memory_saving_pixels)
    wanted = {name: value for name, value in state.parameters.items()
              if variant == "all" or not name.startswith(LATENTS_PREFIX)}
    model.load_state_dict(wanted, strict=False)
    return model


def warm_config(cfg: EncoderConfig, arch: ArchConfig) -> EncoderConfig:
    """The configuration a warm frame trains with: the preset's warm schedule in place of its cold one,
    and the previous frame's architecture only (with --arch auto, no warm-up among candidates)."""
    preset = cfg.preset
    schedule = dataclasses.replace(
        preset,
        iterations=preset.warm_iterations,
        learning_rate=preset.warm_learning_rate,
        latent_learning_rate=preset.warm_latent_learning_rate,
        softround_temperature=preset.warm_softround_temperature,
        warmup_candidates=1,
    )
    return dataclasses.replace(cfg, arch=arch, preset=schedule, arch_candidates=())
