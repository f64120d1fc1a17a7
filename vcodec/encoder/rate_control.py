"""Rate control: code a frame at a target bpp or PSNR-YUV by a search over lambda.

Every probe is a training run, so the search spends few of them:
1. predict lambda from the preset's fitted model (cfg/rate_control.toml: y = a + s ln(lambda) + c ln(g),
   y the log bpp or the PSNR, g the frame's luma gradient energy);
2. probe: train the first `probe_fraction` of the main phase at that lambda and measure the probe's real
   bitstream (parameters quantised, latents range-coded) and its quantised model's PSNR; the fitted
   offset between a probe and the finished frame turns the target into the probe's target;
3. if the probe misses, a second probe from scratch at the lambda the model's slope points to, then a
   secant between the two (its slope clipped near the model's);
4. continue the probe nearest the chosen lambda (a warm start: model, optimiser state and schedules are
   kept); at the middle of the main phase measure the model again, forecast the finished y with the
   fitted `mid_offset`, and where the forecast misses, steer the second half of the training to a lambda
   corrected along the slope a change that late still has (`mid_slope`). A probe's forecast is good to
   about +-12 % in bpp, the middle's to about +-9 %; the start of the tail forecasts no better than the
   middle (its fitted spread is 10 %), so the search does not steer there;
5. finish and code it as a plain encode does; if it misses the tolerance by a little, code its
   parameters again at other lambdas (`trim_factors`; no training, a second or so) and keep the nearest;
6. if the frame still misses, retrain only the tail of the main phase (kept as a snapshot) at a
   corrected lambda, trim that too, and keep whichever result is nearest the target.

A target the lambda range cannot reach is coded at the end of the range as best effort: the result says
what was reached, and `within` is false.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from vcodec.config import EncoderConfig, RateControlConfig, RateModel, load_rate_control
from vcodec.encoder.encode import EncodedFrame, code_model, model_reconstruction, start_training, write_bitstream
from vcodec.encoder.quantize import quantize_parameters
from vcodec.encoder.target import make_target
from vcodec.encoder.train import FrameTraining, TrainProgress
from vcodec.metrics import frame_psnr
from vcodec.model.frame_model import FrameModel
from vcodec.types import Frame, RateTarget

def tolerance(target: RateTarget, rc: RateControlConfig) -> float:
    """The target's tolerance in its searched quantity: ln(1 + relative) for bpp, dB for PSNR."""
    return math.log1p(rc.bpp_tolerance) if target.metric == "bpp" else rc.psnr_tolerance


@dataclass(frozen=True)
class RateControlResult:
    encoded: EncodedFrame
    lmbda: float          # the lambda the written frame finished its training at
    probes: int           # training runs: probes from scratch, plus corrections
    corrections: int      # tail retrainings among them
    within: bool          # the written frame meets the target's tolerance
    predicted_lmbda: float  # the model's first guess


def gradient_energy(frame: Frame) -> float:
    """Mean squared horizontal and vertical luma difference, samples scaled to [0, 1]: the content feature
    of the rate model (busy frames need more bits at any lambda)."""
    luma = frame.y.astype(np.float64) / float(frame.max_value)
    dx = np.diff(luma, axis=1)
    dy = np.diff(luma, axis=0)
    return float(max((np.mean(dx * dx) + np.mean(dy * dy)) / 2.0, 1e-8))


def predict_lambda(model: RateModel, goal: float, feature: float) -> float:
    """Lambda at which the fitted model puts the finished frame's y at `goal`."""
    return math.exp((goal - model.intercept - model.feature * math.log(feature)) / model.slope)


def measure_model(frame: Frame, training: FrameTraining, lmbda: float, cfg: EncoderConfig) -> tuple[float, float]:
    """(bpp, PSNR-YUV) of coding the training's model as it stands: a copy's parameters quantised, its real
    bitstream written, and its integer-rounded reconstruction (what the decoder gives to within 1 LSB)."""
    trial = copy.deepcopy(training.model).cpu()
    params = quantize_parameters(trial, make_target(frame, "cpu"), lmbda, cfg.preset.quantization_patience)
    data, _ = write_bitstream(frame, trial, params, cfg.latent_substreams or None)
    psnr = frame_psnr(frame, model_reconstruction(trial, frame.bitdepth)).yuv
    return 8 * len(data) / (frame.width * frame.height), psnr


@dataclass
class _Probe:
    lmbda: float
    training: FrameTraining
    y: float  # measured, as the target measures


def _clip(lmbda: float, rc: RateControlConfig) -> float:
    return min(max(lmbda, rc.lmbda_min), rc.lmbda_max)


def _step(lmbda: float, error: float, slope: float, rc: RateControlConfig) -> float:
    """Lambda moved so that y changes by `error` along `slope` (dy / d ln lambda)."""
    return _clip(lmbda * math.exp(error / slope), rc)


def _secant_slope(a: _Probe, b: _Probe, model_slope: float, rc: RateControlConfig) -> float:
    """The measured slope between two probes, kept within [1/clip, clip] x the model's (noise, or two
    probes at one clipped lambda, must not send lambda off)."""
    span = math.log(b.lmbda) - math.log(a.lmbda)
    if abs(span) < 1e-9:
        return model_slope
    measured = (b.y - a.y) / span
    low, high = sorted((model_slope / rc.slope_clip, model_slope * rc.slope_clip), key=abs)
    if measured * model_slope <= 0:
        return low
    return math.copysign(min(max(abs(measured), abs(low)), abs(high)), model_slope)


def encode_to_target(frame: Frame, target: RateTarget, cfg: EncoderConfig,
                     progress: Callable[[TrainProgress], None] | None = None,
                     rc: RateControlConfig | None = None) -> RateControlResult:
    """Encode one frame at the lambda that meets `target` (see the module docstring for the search)."""
    rc = rc or load_rate_control()
    model = rc.model(cfg.preset.name, target.metric)
    start = time.perf_counter()
    goal, allowed = target.goal, tolerance(target, rc)
    probe_goal = goal - model.probe_offset

    def probe(lmbda: float) -> _Probe:
        training = start_training(frame, lmbda, cfg, progress)
        until = max(1, round(rc.probe_fraction * training.main.iterations))
        training.train_main(until, lmbda)
        bpp, psnr = measure_model(frame, training, lmbda, cfg)
        return _Probe(lmbda, training, target.measure(bpp, psnr))

    predicted = _clip(predict_lambda(model, goal, gradient_energy(frame)), rc)
    probes = [probe(predicted)]
    lmbda = _step(predicted, probe_goal - probes[0].y, model.slope, rc)
    while abs(probe_goal - probes[-1].y) > rc.probe_accuracy * allowed and len(probes) < rc.max_probes:
        if lmbda == probes[-1].lmbda:
            break  # pinned at the end of the lambda range: another probe would measure the same
        probes.append(probe(lmbda))
        slope = _secant_slope(probes[-2], probes[-1], model.slope, rc)
        lmbda = _step(probes[-1].lmbda, probe_goal - probes[-1].y, slope, rc)
    nearest = min(probes, key=lambda p: abs(math.log(p.lmbda) - math.log(lmbda)))
    training = nearest.training
    main = training.main.iterations
    tail_start = main - max(1, round(rc.tail_fraction * main))
    trained_from, began = training.main.done, time.perf_counter()
    training.train_main(max(round(rc.mid_fraction * main), training.main.done), lmbda)
    training_seconds = time.perf_counter() - began
    forecast = target.measure(*measure_model(frame, training, lmbda, cfg)) + model.mid_offset
    if abs(goal - forecast) > rc.steer_accuracy * allowed:  # steer the second half of the training
        lmbda = _step(lmbda, goal - forecast, model.late_slope("mid"), rc)
    began = time.perf_counter()
    training.train_main(tail_start, lmbda)
    training_seconds += time.perf_counter() - began
    per_iteration = training_seconds / max(1, tail_start - trained_from)
    tail = training.snapshot()
    coding_began = time.perf_counter()
    finished = _finish(training, lmbda)
    encoded = _code(frame, finished, lmbda, cfg, start)
    finish_seconds = time.perf_counter() - coding_began
    # A plain encode at this lambda, by this encode's own pace: the preset's iterations and one coding.
    tail_iterations = main - tail_start + training.ste_iterations
    plain = per_iteration * cfg.preset.iterations + finish_seconds - per_iteration * tail_iterations
    correction_seconds = per_iteration * (main - tail_start) + finish_seconds  # the tail again, and its finish
    untrimmed_y = _y(target, encoded)
    best = (_trim(frame, finished, lmbda, encoded, goal, allowed, target, model.slope, cfg, rc, start), lmbda)
    corrections = 0
    tail_slope = model.late_slope("tail")
    while abs(goal - _y(target, best[0])) > allowed and corrections < rc.max_corrections:
        if time.perf_counter() - start + correction_seconds > rc.time_budget * plain:
            break  # another tail retraining would take the encode past its time budget
        retry = _step(lmbda, goal - untrimmed_y, tail_slope, rc)
        if retry == lmbda:
            break
        training.restore(tail)
        corrections += 1
        finished = _finish(training, retry)
        encoded = _code(frame, finished, retry, cfg, start)
        measured = (_y(target, encoded) - untrimmed_y) / (math.log(retry) - math.log(lmbda))
        if measured * tail_slope > 0:  # the slope the correction met, for a next one
            tail_slope = measured
        lmbda, untrimmed_y = retry, _y(target, encoded)
        encoded = _trim(frame, finished, lmbda, encoded, goal, allowed, target, model.slope, cfg, rc, start)
        if abs(goal - _y(target, encoded)) < abs(goal - _y(target, best[0])):
            best = (encoded, lmbda)
    written, written_lmbda = best
    return RateControlResult(
        encoded=written, lmbda=written_lmbda, probes=len(probes) + corrections, corrections=corrections,
        within=abs(goal - _y(target, written)) <= allowed, predicted_lmbda=predicted,
    )


def _y(target: RateTarget, encoded: EncodedFrame) -> float:
    return target.measure(encoded.bpp(), encoded.psnr.yuv)


@dataclass(frozen=True)
class _Finished:
    model: FrameModel                      # the trained float model (a copy: training may go on)
    candidate_scores: tuple[tuple[str, float], ...]


def _finish(training: FrameTraining, lmbda: float) -> _Finished:
    """Complete the training at `lmbda`; the model is copied, as a correction may go back to the snapshot
    and train the same model again."""
    trained = training.finish(lmbda)
    return _Finished(copy.deepcopy(trained.model).cpu(), trained.candidate_scores)


def _code(frame: Frame, finished: _Finished, parameter_lmbda: float, cfg: EncoderConfig, start: float) -> EncodedFrame:
    """Code a finished model as a plain encode does, its parameters quantised at `parameter_lmbda` (a copy:
    coding writes the quantised values into the model)."""
    return code_model(frame, copy.deepcopy(finished.model), make_target(frame, "cpu"), parameter_lmbda, cfg,
                      finished.candidate_scores, start)


def _trim(frame: Frame, finished: _Finished, lmbda: float, encoded: EncodedFrame, goal: float, allowed: float,
          target: RateTarget, slope: float, cfg: EncoderConfig, rc: RateControlConfig, start: float) -> EncodedFrame:
    """A coded frame that misses the target by a little: quantise its parameters again at other lambdas
    (`trim_factors` x the training's, in the direction of the miss) and keep the result nearest the goal.

    No training: a coding costs well under a second at 208x120, and the parameters' step sizes move the
    rate by a few per cent (coffee 208x120 at lambda 1e-3: 0.602 .. 0.566 bpp over 1/4 .. 8x), which is
    the size of the noise a correction's retraining leaves."""
    best = encoded
    for factor in rc.trim_factors:
        miss = goal - _y(target, best)
        if abs(miss) <= allowed:
            break
        if (factor > 1.0) != (miss * slope > 0):  # y falls with lambda: a larger one lowers the rate
            continue
        trial = _code(frame, finished, lmbda * factor, cfg, start)
        if abs(goal - _y(target, trial)) < abs(miss):
            best = trial
    return best
