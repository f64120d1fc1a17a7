"""Overfitting one frame: Adam on D + lambda * R in three phases.

1. Warm-up (optional): several initialisations, and with `--arch auto` several architectures, train
   briefly; the best goes on.
2. Main phase: soft rounding with annealed temperature and noise (C3 / Cool-chic), cosine learning rate,
   optionally scored with true rounding every `validate_every` iterations, the best state kept.
3. Final phase: epsilon-STE with true rounding in the forward pass, scored every step, the best kept.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from vcodec.config import ConfigError, EncoderConfig, PresetConfig
from vcodec.encoder.allocator import retain_freed_memory
from vcodec.encoder.losses import distortion, mse_yuv
from vcodec.encoder.quantizers import quantize
from vcodec.encoder.target import Target
from vcodec.model.frame_model import FrameModel

STE_EPSILON = 0.01
PROGRESS_EVERY = 25
DEFAULT_TEMPERATURE = 0.3  # of the softround quantizer where no schedule gives one


@dataclass(frozen=True)
class TrainProgress:
    iteration: int
    total_iterations: int
    loss: float
    psnr_yuv: float  # from the 6:1:1 MSE of the training reconstruction (noisy latents in phase 1)
    bpp: float


@dataclass(frozen=True)
class QuantizerSetting:
    """How the latents are quantised at one iteration."""

    quantizer: str = "round"
    temperature: float = DEFAULT_TEMPERATURE
    noise: str = "uniform"
    noise_parameter: float = 1.0


ROUND = QuantizerSetting()


def rd_loss(model: FrameModel, target: Target, lmbda: float, loss: str,
            setting: QuantizerSetting = ROUND) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(D + lambda * bpp, 6:1:1 MSE, bpp) with the latents quantised as `setting` says."""
    grids = [quantize(latent, setting.quantizer, setting.temperature, setting.noise, setting.noise_parameter,
                      STE_EPSILON) for latent in model.scaled_latents()]
    luma, chroma, bits = model(grids)
    bpp = bits / target.pixels
    dist = distortion(loss, luma, chroma, target.luma, target.chroma)
    mse = dist.detach() if loss == "mse" else mse_yuv(luma, chroma, target.luma, target.chroma).detach()
    return dist + lmbda * bpp, mse, bpp.detach()


@torch.no_grad()
def rounded_cost(model: FrameModel, target: Target, lmbda: float, loss: str) -> float:
    """The RD cost of the model as it will be coded (true rounding), parameters as they are."""
    return float(rd_loss(model, target, lmbda, loss)[0])


def _interpolate(bounds: tuple[float, float], fraction: float) -> float:
    return bounds[0] + (bounds[1] - bounds[0]) * fraction


def _cosine(base: float, floor: float, iteration: int, iterations: int) -> float:
    if iterations <= 1:
        return base
    return floor + (base - floor) * 0.5 * (1.0 + math.cos(math.pi * iteration / iterations))


def _state(model: FrameModel) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


class _Optimizers:
    """Adam on the latents and Adam or SOAP (Shampoo-preconditioned Adam, which Cool-chic 5 uses) on the
    network weights, stepped together; `param_groups` spans both, each group with its `base_lr`."""

    def __init__(self, model: FrameModel, kind: str, network_lr: float, latent_lr: float) -> None:
        latents = list(model.latents.parameters())
        network = [p for name, p in model.named_parameters() if not name.startswith("latents.")]
        network_group = {"params": network, "lr": network_lr, "base_lr": network_lr}
        latent_group = {"params": latents, "lr": latent_lr, "base_lr": latent_lr}
        self.parts: list[torch.optim.Optimizer]
        if kind == "soap":
            from pytorch_optimizer.optimizer.soap import SOAP

            self.parts = [SOAP([network_group], lr=network_lr, weight_decay=0.0), torch.optim.Adam([latent_group])]
        else:
            self.parts = [torch.optim.Adam([network_group, latent_group])]
        self.param_groups = [group for part in self.parts for group in part.param_groups]

    def zero_grad(self) -> None:
        for part in self.parts:
            part.zero_grad(set_to_none=True)

    def step(self) -> None:
        for part in self.parts:
            part.step()


@dataclass
class _Counter:
    """Iterations done across phases and candidates, for progress reports against the preset's budget."""

    total: int
    progress: Callable[[TrainProgress], None] | None
    done: int = 0

    def step(self, loss: torch.Tensor, mse: torch.Tensor, bpp: torch.Tensor) -> None:
        self.done += 1
        if self.progress is not None and (self.done % PROGRESS_EVERY == 0 or self.done == self.total):
            psnr = -10.0 * math.log10(max(float(mse), 1e-12))
            self.progress(TrainProgress(min(self.done, self.total), self.total, float(loss.detach()), psnr,
                                        float(bpp)))


def _run_phase(model: FrameModel, target: Target, lmbda: float, cfg: EncoderConfig, counter: _Counter,
               iterations: int, quantizer: str, network_lr: float, latent_lr: float, cosine: bool,
               validate_every: int) -> None:
    """Train for `iterations` steps; with validate_every > 0, score true rounding that often (and at the end)
    and leave the model in the best state scored."""
    preset = cfg.preset
    optimizer = _Optimizers(model, preset.optimizer, network_lr, latent_lr)
    parameters = [p for group in optimizer.param_groups for p in group["params"]]
    best: tuple[float, dict[str, torch.Tensor]] | None = None
    for iteration in range(iterations):
        if cosine:
            for group in optimizer.param_groups:
                floor = preset.learning_rate_floor * group["base_lr"] / preset.learning_rate
                group["lr"] = _cosine(group["base_lr"], floor, iteration, iterations)
        fraction = iteration / max(1, iterations - 1)
        setting = QuantizerSetting(quantizer, _interpolate(preset.softround_temperature, fraction),
                                   preset.noise, _interpolate(preset.noise_parameter, fraction))
        loss, mse, bpp = rd_loss(model, target, lmbda, cfg.loss, setting)
        if quantizer == "ste":  # the forward pass is the coded model: its loss is the score
            score = float(loss.detach())
            if best is None or score < best[0]:
                best = (score, _state(model))
        optimizer.zero_grad()
        loss.backward()
        if preset.gradient_clip > 0:
            torch.nn.utils.clip_grad_norm_(parameters, preset.gradient_clip)
        optimizer.step()
        counter.step(loss, mse, bpp)
        if validate_every and quantizer != "ste" and ((iteration + 1) % validate_every == 0):
            score = rounded_cost(model, target, lmbda, cfg.loss)
            if best is None or score < best[0]:
                best = (score, _state(model))
    if best is not None and (quantizer == "ste" or validate_every):
        if best[0] < rounded_cost(model, target, lmbda, cfg.loss):
            model.load_state_dict(best[1])


def _latent_lr(preset: PresetConfig, network_lr: float) -> float:
    return network_lr if preset.latent_gain > 0 else preset.latent_learning_rate * network_lr / preset.learning_rate


WARMUP_SHARE_MAX = 0.25  # the warm-up never takes more than this share of the iterations


def round_iterations(preset: PresetConfig, archs: int = 1) -> int:
    """Iterations of each warm-up round: the preset's, cut so that the warm-up stays within a quarter of the
    iterations (an `--iterations` override shrinks it); 0 means no warm-up."""
    candidates = preset.warmup_candidates * archs
    if candidates <= 1:
        return 0
    rounds = candidates + min(preset.warmup_survivors, candidates)
    return min(preset.warmup_iterations, int(preset.iterations * WARMUP_SHARE_MAX) // rounds)


def warmup_iterations(preset: PresetConfig, archs: int = 1) -> int:
    """Iterations the warm-up spends in all: every candidate's first round, the survivors' second."""
    candidates = preset.warmup_candidates * archs
    if candidates <= 1:
        return 0
    return round_iterations(preset, archs) * (candidates + min(preset.warmup_survivors, candidates))


Score = Callable[[FrameModel], float]


def warm_up(candidates: list[FrameModel], target: Target, lmbda: float, cfg: EncoderConfig, counter: _Counter,
            score: Score, iterations: int) -> tuple[FrameModel, dict[int, float]]:
    """Candidates train `warmup_iterations` at a constant learning rate; the survivors (lowest score) train
    as long again. Returns the best and every candidate's last score, by index into `candidates`."""
    preset = cfg.preset
    lr = preset.learning_rate
    scores: dict[int, float] = {}
    alive = list(range(len(candidates)))
    for round_index in range(2):
        if round_index == 1:
            alive = sorted(alive, key=scores.__getitem__)[: preset.warmup_survivors]
        for index in alive:
            _run_phase(candidates[index], target, lmbda, cfg, counter, iterations,
                       preset.noise_quantizer, lr, _latent_lr(preset, lr), cosine=False, validate_every=0)
            scores[index] = score(candidates[index])
    best = min(alive, key=scores.__getitem__)
    return candidates[best], scores


@dataclass(frozen=True)
class TrainedModel:
    model: FrameModel
    candidate_scores: tuple[tuple[str, float], ...]  # (arch name, warm-up score) of every candidate, if any


def train_frame_model(target: Target, lmbda: float, cfg: EncoderConfig, score: Score | None = None,
                      progress: Callable[[TrainProgress], None] | None = None) -> TrainedModel:
    """Overfit a model to the target: warm-up among the candidates (cfg.archs x warmup_candidates
    initialisations), then the main and final phases on the winner, all within the preset's iterations.

    `score` ranks warm-up candidates (lower is better); by default the rounded RD cost, which ignores the
    parameters' bits and so suits candidates of one architecture only."""
    retain_freed_memory()
    preset = cfg.preset
    height, width = target.luma.shape[-2:]
    gain = preset.latent_gain or 1.0
    candidates = []
    for arch in cfg.archs:
        for index in range(preset.warmup_candidates):
            torch.manual_seed(cfg.seed + 1000 * index)
            candidates.append(FrameModel(arch, height, width, gain, preset.memory_saving_pixels).to(target.luma.device))
    counter = _Counter(preset.iterations, progress)
    ste_iterations = round(preset.iterations * preset.ste_fraction)
    main_iterations = preset.iterations - ste_iterations - warmup_iterations(preset, len(cfg.archs))
    if main_iterations <= 0:
        raise ConfigError(f"{preset.iterations} iterations leave none for the main phase after the warm-up of "
                          f"{len(candidates)} candidates and the final phase")
    scores: dict[int, float] = {}
    per_round = round_iterations(preset, len(cfg.archs))
    if len(candidates) == 1 or per_round == 0:
        model = candidates[-1]  # too few iterations to compare candidates: the last (the largest) goes on
    else:
        rank = score or (lambda candidate: rounded_cost(candidate, target, lmbda, cfg.loss))
        model, scores = warm_up(candidates, target, lmbda, cfg, counter, rank, per_round)
    _main_and_final(model, target, lmbda, cfg, counter, main_iterations, ste_iterations)
    return TrainedModel(model, tuple((candidates[i].arch.name, scores[i]) for i in sorted(scores)))


def _main_and_final(model: FrameModel, target: Target, lmbda: float, cfg: EncoderConfig, counter: _Counter,
                    main_iterations: int, ste_iterations: int) -> None:
    preset = cfg.preset
    lr = preset.learning_rate
    _run_phase(model, target, lmbda, cfg, counter, main_iterations, preset.noise_quantizer, lr,
               _latent_lr(preset, lr), cosine=preset.schedule == "cosine", validate_every=preset.validate_every)
    _run_phase(model, target, lmbda, cfg, counter, ste_iterations, "ste", preset.ste_learning_rate,
               preset.ste_learning_rate, cosine=False, validate_every=0)


def continue_training(model: FrameModel, target: Target, lmbda: float, cfg: EncoderConfig,
                      progress: Callable[[TrainProgress], None] | None = None) -> FrameModel:
    """Train a model that already exists (no new initialisation, no warm-up among candidates): the main and
    final phases of `cfg.preset`, within its `iterations` (its `ste_fraction` of them with true rounding).

    For starting from a state other than random: the previous frame's model (vcodec.encoder.warm_start),
    or a model to refine further. Trains in place and returns the model."""
    retain_freed_memory()
    preset = cfg.preset
    ste_iterations = round(preset.iterations * preset.ste_fraction)
    counter = _Counter(preset.iterations, progress)
    _main_and_final(model, target, lmbda, cfg, counter, preset.iterations - ste_iterations, ste_iterations)
    return model
