"""Overfitting one frame: Adam on D + lambda * R in three phases.

1. Warm-up (optional): several initialisations, and with `--arch auto` several architectures, train
   briefly; the best goes on.
2. Main phase: soft rounding with annealed temperature and noise (C3 / Cool-chic), cosine learning rate,
   optionally scored with true rounding every `validate_every` iterations, the best state kept.
3. Final phase: epsilon-STE with true rounding in the forward pass, scored every step, the best kept.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from vcodec.config import ConfigError, EncoderConfig, PresetConfig
from vcodec.allocator import retain_freed_memory
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


class PhaseRun:
    """One training phase that can stop between iterations and go on, at another lambda if asked: its
    optimiser state, its position in the learning-rate and temperature schedules and its best state are
    kept. A phase run in one go is what a plain encode does; stopping and continuing it draws the same
    random numbers, so it trains exactly as one go at an unchanged lambda."""

    def __init__(self, model: FrameModel, cfg: EncoderConfig, iterations: int, quantizer: str, network_lr: float,
                 latent_lr: float, cosine: bool, validate_every: int) -> None:
        self.model = model
        self.cfg = cfg
        self.iterations = iterations
        self.quantizer = quantizer
        self.cosine = cosine
        self.validate_every = validate_every
        self.optimizer = _Optimizers(model, cfg.preset.optimizer, network_lr, latent_lr)
        self.done = 0
        self.best: tuple[float, dict[str, torch.Tensor]] | None = None
        self._best_lmbda: float | None = None

    def advance(self, target: Target, lmbda: float, counter: _Counter, until: int | None = None) -> None:
        """Train up to iteration `until` of the phase (its end by default) at `lmbda`. A best state scored at
        another lambda is forgotten: its score is another cost."""
        if self._best_lmbda != lmbda:
            self.best, self._best_lmbda = None, lmbda
        preset = self.cfg.preset
        parameters = [p for group in self.optimizer.param_groups for p in group["params"]]
        stop = self.iterations if until is None else min(until, self.iterations)
        for iteration in range(self.done, stop):
            if self.cosine:
                for group in self.optimizer.param_groups:
                    floor = preset.learning_rate_floor * group["base_lr"] / preset.learning_rate
                    group["lr"] = _cosine(group["base_lr"], floor, iteration, self.iterations)
            fraction = iteration / max(1, self.iterations - 1)
            setting = QuantizerSetting(self.quantizer, _interpolate(preset.softround_temperature, fraction),
                                       preset.noise, _interpolate(preset.noise_parameter, fraction))
            loss, mse, bpp = rd_loss(self.model, target, lmbda, self.cfg.loss, setting)
            if self.quantizer == "ste":  # the forward pass is the coded model: its loss is the score
                self._keep_if_best(float(loss.detach()))
            self.optimizer.zero_grad()
            loss.backward()
            if preset.gradient_clip > 0:
                torch.nn.utils.clip_grad_norm_(parameters, preset.gradient_clip)
            self.optimizer.step()
            counter.step(loss, mse, bpp)
            if self.validate_every and self.quantizer != "ste" and ((iteration + 1) % self.validate_every == 0):
                self._keep_if_best(rounded_cost(self.model, target, lmbda, self.cfg.loss))
        self.done = max(self.done, stop)

    def _keep_if_best(self, score: float) -> None:
        if self.best is None or score < self.best[0]:
            self.best = (score, _state(self.model))

    def settle(self, target: Target, lmbda: float) -> None:
        """Leave the model in the best state scored, if it beats the present one (phases that score)."""
        if self.best is not None and (self.quantizer == "ste" or self.validate_every):
            if self.best[0] < rounded_cost(self.model, target, lmbda, self.cfg.loss):
                self.model.load_state_dict(self.best[1])


def _run_phase(model: FrameModel, target: Target, lmbda: float, cfg: EncoderConfig, counter: _Counter,
               iterations: int, quantizer: str, network_lr: float, latent_lr: float, cosine: bool,
               validate_every: int) -> None:
    """Train for `iterations` steps in one go; with validate_every > 0, score true rounding that often (and
    at the end) and leave the model in the best state scored."""
    phase = PhaseRun(model, cfg, iterations, quantizer, network_lr, latent_lr, cosine, validate_every)
    phase.advance(target, lmbda, counter)
    phase.settle(target, lmbda)


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


class FrameTraining:
    """One frame's training that can stop inside its main phase and go on at another lambda.

    The warm-up (if any) runs when it is made; `train_main` then advances the main phase, and `finish`
    completes it and runs the final phase. Between calls the lambda may change: the model, its optimiser
    state and the schedules' position are kept (a warm start), so a rate controller can probe the first
    part of a training and continue it rather than train afresh. `snapshot`/`restore` keep a point of the
    main phase to go back to (a correction retrains only the tail)."""

    def __init__(self, target: Target, lmbda: float, cfg: EncoderConfig, score: Score | None = None,
                 progress: Callable[[TrainProgress], None] | None = None, model: FrameModel | None = None) -> None:
        """With `model`, training continues that model (a warm start from another frame's): no new
        initialisation and no warm-up, the main and final phases take all the preset's iterations."""
        retain_freed_memory()
        preset = cfg.preset
        self.target = target
        self.cfg = cfg
        self.counter = _Counter(preset.iterations, progress)
        self.ste_iterations = round(preset.iterations * preset.ste_fraction)
        if model is not None:
            self.model = model
            self.candidate_scores: tuple[tuple[str, float], ...] = ()
            self.warmup_iterations = 0
            self._start_main(preset.iterations - self.ste_iterations)
            return
        height, width = target.luma.shape[-2:]
        gain = preset.latent_gain or 1.0
        candidates = []
        for arch in cfg.archs:
            for index in range(preset.warmup_candidates):
                torch.manual_seed(cfg.seed + 1000 * index)
                candidates.append(FrameModel(arch, height, width, gain, preset.memory_saving_pixels)
                                  .to(target.luma.device))
        main_iterations = preset.iterations - self.ste_iterations - warmup_iterations(preset, len(cfg.archs))
        if main_iterations <= 0:
            raise ConfigError(f"{preset.iterations} iterations leave none for the main phase after the warm-up of "
                              f"{len(candidates)} candidates and the final phase")
        scores: dict[int, float] = {}
        per_round = round_iterations(preset, len(cfg.archs))
        if len(candidates) == 1 or per_round == 0:
            model = candidates[-1]  # too few iterations to compare candidates: the last (the largest) goes on
        else:
            rank = score or (lambda candidate: rounded_cost(candidate, target, lmbda, cfg.loss))
            model, scores = warm_up(candidates, target, lmbda, cfg, counter=self.counter, score=rank,
                                    iterations=per_round)
        self.model = model
        self.candidate_scores = tuple((candidates[i].arch.name, scores[i]) for i in sorted(scores))
        self.warmup_iterations = self.counter.done
        self._start_main(main_iterations)

    def _start_main(self, main_iterations: int) -> None:
        preset = self.cfg.preset
        lr = preset.learning_rate
        self.main = PhaseRun(self.model, self.cfg, main_iterations, preset.noise_quantizer, lr,
                             _latent_lr(preset, lr), cosine=preset.schedule == "cosine",
                             validate_every=preset.validate_every)

    def train_main(self, until: int, lmbda: float) -> None:
        """Advance the main phase to its iteration `until` at `lmbda`."""
        self.main.advance(self.target, lmbda, self.counter, until)

    def snapshot(self) -> dict[str, Any]:
        """The model, optimiser state and position of the main phase, for `restore`."""
        return {"model": _state(self.model), "optimizer": [copy.deepcopy(part.state_dict()) for part in
                                                           self.main.optimizer.parts], "done": self.main.done}

    def restore(self, snapshot: dict[str, Any]) -> None:
        self.model.load_state_dict(snapshot["model"])
        for part, state in zip(self.main.optimizer.parts, snapshot["optimizer"]):
            part.load_state_dict(copy.deepcopy(state))
        self.main.done = snapshot["done"]
        self.main.best = None
        self.main._best_lmbda = None

    def finish(self, lmbda: float) -> TrainedModel:
        """The rest of the main phase and the final phase at `lmbda`."""
        self.main.advance(self.target, lmbda, self.counter)
        self.main.settle(self.target, lmbda)
        preset = self.cfg.preset
        _run_phase(self.model, self.target, lmbda, self.cfg, self.counter, self.ste_iterations, "ste",
                   preset.ste_learning_rate, preset.ste_learning_rate, cosine=False, validate_every=0)
        return TrainedModel(self.model, self.candidate_scores)


def train_frame_model(target: Target, lmbda: float, cfg: EncoderConfig, score: Score | None = None,
                      progress: Callable[[TrainProgress], None] | None = None) -> TrainedModel:
    """Overfit a model to the target: warm-up among the candidates (cfg.archs x warmup_candidates
    initialisations), then the main and final phases on the winner, all within the preset's iterations.

    `score` ranks warm-up candidates (lower is better); by default the rounded RD cost, which ignores the
    parameters' bits and so suits candidates of one architecture only."""
    return FrameTraining(target, lmbda, cfg, score, progress).finish(lmbda)


def continue_training(model: FrameModel, target: Target, lmbda: float, cfg: EncoderConfig,
                      progress: Callable[[TrainProgress], None] | None = None) -> FrameModel:
    """Train a model that already exists (no new initialisation, no warm-up among candidates): the main and
    final phases of `cfg.preset`, within its `iterations` (its `ste_fraction` of them with true rounding).

    For starting from a state other than random: the previous frame's model (vcodec.encoder.warm_start),
    or a model to refine further. Trains in place and returns the model."""
    return FrameTraining(target, lmbda, cfg, progress=progress, model=model).finish(lmbda).model
