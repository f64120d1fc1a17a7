"""Overfitting one frame: Adam on D + lambda * R, soft rounding with noise (or plain noise) first, then
epsilon-STE rounding.

The STE phase scores the model with true rounding at every step; the best-scoring state is the one kept.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from vcodec.config import EncoderConfig
from vcodec.encoder.allocator import retain_freed_memory
from vcodec.encoder.losses import distortion, mse_yuv
from vcodec.model.frame_model import SOFTROUND_TEMPERATURE, FrameModel

STE_EPSILON = 0.01
PROGRESS_EVERY = 25


@dataclass(frozen=True)
class TrainProgress:
    iteration: int
    total_iterations: int
    loss: float
    psnr_yuv: float  # from the 6:1:1 MSE of the training reconstruction (noisy latents in phase 1)
    bpp: float


@dataclass(frozen=True)
class Target:
    """The frame to fit, as normalised float planes on the training device."""

    luma: torch.Tensor    # (1, 1, H, W)
    chroma: torch.Tensor  # (1, 2, H/2, W/2)

    @property
    def pixels(self) -> int:
        return self.luma.shape[-1] * self.luma.shape[-2]


def rd_loss(model: FrameModel, target: Target, lmbda: float, loss: str, quantizer: str,
            temperature: float = SOFTROUND_TEMPERATURE) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(D + lambda * bpp, 6:1:1 MSE, bpp); `temperature` of the softround quantizer."""
    luma, chroma, bits = model(quantizer, STE_EPSILON, temperature)
    bpp = bits / target.pixels
    dist = distortion(loss, luma, chroma, target.luma, target.chroma)
    mse = dist.detach() if loss == "mse" else mse_yuv(luma, chroma, target.luma, target.chroma).detach()
    return dist + lmbda * bpp, mse, bpp.detach()


def _learning_rate(base: float, schedule: str, iteration: int, iterations: int) -> float:
    if schedule == "constant" or iterations <= 1:
        return base
    return base * 0.5 * (1.0 + math.cos(math.pi * iteration / iterations))


def train(model: FrameModel, target: Target, lmbda: float, cfg: EncoderConfig,
          progress: Callable[[TrainProgress], None] | None = None) -> None:
    retain_freed_memory()
    preset = cfg.preset
    ste_iterations = round(preset.iterations * preset.ste_fraction)
    noise_iterations = preset.iterations - ste_iterations
    phases = [(preset.noise_quantizer, noise_iterations, preset.learning_rate, preset.latent_learning_rate,
               preset.schedule),
              ("ste", ste_iterations, preset.ste_learning_rate, preset.ste_learning_rate, "constant")]
    latents = list(model.latents.parameters())
    network = [p for name, p in model.named_parameters() if not name.startswith("latents.")]
    done = 0
    start_temperature, end_temperature = preset.softround_temperature
    best: tuple[float, dict[str, torch.Tensor]] | None = None  # lowest rounded RD cost seen, and its state
    for quantizer, iterations, network_lr, latent_lr, schedule in phases:
        optimizer = torch.optim.Adam([{"params": network, "lr": network_lr, "base_lr": network_lr},
                                      {"params": latents, "lr": latent_lr, "base_lr": latent_lr}])
        for iteration in range(iterations):
            for group in optimizer.param_groups:
                group["lr"] = _learning_rate(group["base_lr"], schedule, iteration, iterations)
            progress_in_phase = iteration / max(1, iterations - 1)
            temperature = start_temperature + (end_temperature - start_temperature) * progress_in_phase
            loss, mse, bpp = rd_loss(model, target, lmbda, cfg.loss, quantizer, temperature)
            if quantizer == "ste":  # (reading the loss waits for the device: only where it is needed)
                score = float(loss.detach())
                if best is None or score < best[0]:
                    best = (score, {k: v.detach().clone() for k, v in model.state_dict().items()})
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            done += 1
            if progress is not None and (done % PROGRESS_EVERY == 0 or done == preset.iterations):
                psnr = -10.0 * math.log10(max(float(mse), 1e-12))
                progress(TrainProgress(done, preset.iterations, float(loss.detach()), psnr, float(bpp)))
    if best is not None:
        # With true rounding the loss is the cost of the model as it will be coded: keep the best state,
        # the one after the last step included.
        with torch.no_grad():
            final, _, _ = rd_loss(model, target, lmbda, cfg.loss, "round")
        if best[0] < float(final):
            model.load_state_dict(best[1])
