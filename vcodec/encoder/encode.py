"""encode_frame: a short pipeline of named steps — fit, quantise, write, verify by decoding."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from vcodec.bitstream.frame_header import FrameHeader, pack_header
from vcodec.config import ConfigError, EncoderConfig, load_config
from vcodec.decoder import decode_frame
from vcodec.encoder.quantize import QuantizedParameters, quantize_parameters
from vcodec.encoder.rdoq import rdoq_parameters
from vcodec.encoder.target import Target, make_target
from vcodec.encoder.train import FrameTraining, TrainProgress
from vcodec.encoder.warm_start import WarmState, capture, warm_config, warm_model
from vcodec.entropy.latent_coder import Canvas, encode_latents, information_bits
from vcodec.entropy.substreams import default_substreams
from vcodec.entropy.param_coder import encode_parameters, integer_arm
from vcodec.metrics import YUV_WEIGHTS, FramePsnr, frame_mse, frame_psnr
from vcodec.model.complexity import macs_per_pixel
from vcodec.model.frame_model import FrameModel, planes_to_frame
from vcodec.types import Frame, VcodecError


@dataclass(frozen=True)
class EncodedFrame:
    data: bytes
    reconstruction: Frame          # decode_frame(data): decoded from the bytes by the real decoder
    decode_seconds: float          # time of that decode
    psnr: FramePsnr                # of the reconstruction against the source (HM peak)
    header_bits: int
    parameter_bits: int
    latent_bits: int
    predicted_latent_bits: float   # information content of the latents under the coded model
    step_exps: tuple[int, ...]
    arch_name: str                 # the architecture written (the one --arch auto picked)
    candidate_costs: tuple[tuple[str, float], ...]  # --arch auto: each candidate's coded cost in the warm-up
    mac_per_pixel: float
    seconds: float

    @property
    def bits(self) -> int:
        return 8 * len(self.data)

    def bpp(self) -> float:
        return self.bits / (self.reconstruction.width * self.reconstruction.height)


def coded_cost(frame: Frame, model: FrameModel, lmbda: float, cfg: EncoderConfig) -> float:
    """The RD cost of writing this model now: D (6:1:1 MSE of the real decoder's output, samples scaled
    to [0, 1]) + lambda * (real bitstream bits) / pixels. Works on a CPU copy; the model is untouched."""
    trial = copy.deepcopy(model).cpu()
    target = make_target(frame, "cpu")
    params = quantize_parameters(trial, target, lmbda, cfg.preset.quantization_patience)
    data, _ = write_bitstream(frame, trial, params, cfg.latent_substreams or None)
    decoded = decode_frame(data)
    peak = float(frame.max_value)
    weights = YUV_WEIGHTS
    mse = sum(w * m for w, m in zip(weights, frame_mse(frame, decoded))) / sum(weights) / (peak * peak)
    return mse + lmbda * 8 * len(data) / (frame.width * frame.height)


def check_device(device: str) -> None:
    """The one check that a requested training device exists (a one-line error, before any work)."""
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA device is available here")


def start_training(frame: Frame, lmbda: float, cfg: EncoderConfig,
                   progress: Callable[[TrainProgress], None] | None, start: WarmState | None = None
                   ) -> FrameTraining:
    """Set up the frame's training on the configured device and run its warm-up (which, with --arch auto,
    ranks the candidates by their coded cost at `lmbda`); the main and final phases are the caller's.

    With `start` (and the preset's warm_start not off), training begins from that model, the previous
    frame's, with the preset's warm schedule, in its architecture (no warm-up)."""
    check_device(cfg.device)
    torch.manual_seed(cfg.seed)
    if cfg.device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    if start is not None and cfg.preset.warm_start != "off":
        warm = warm_config(cfg, start.arch)
        model = warm_model(start, frame.height, frame.width, cfg.preset.warm_start, cfg.preset.latent_gain or 1.0,
                           cfg.preset.memory_saving_pixels)
        return FrameTraining(make_target(frame, cfg.device), lmbda, warm, progress=progress,
                             model=model.to(cfg.device))
    several_archs = len(cfg.archs) > 1
    score = (lambda candidate: coded_cost(frame, candidate, lmbda, cfg)) if several_archs else None
    return FrameTraining(make_target(frame, cfg.device), lmbda, cfg, score, progress)


def fit(frame: Frame, lmbda: float, cfg: EncoderConfig,
        progress: Callable[[TrainProgress], None] | None, start: WarmState | None = None
        ) -> tuple[FrameModel, Target, tuple[tuple[str, float], ...]]:
    """Overfit a model (of the architecture the warm-up picks, with --arch auto) to the frame; returns it
    on the CPU with the CPU target, and the warm-up's candidate scores (none without a warm-up).

    With `start` (and the preset's warm_start not off), training begins from that model, the previous
    frame's, with the preset's warm schedule, in its architecture."""
    trained = start_training(frame, lmbda, cfg, progress, start).finish(lmbda)
    return trained.model.cpu(), make_target(frame, "cpu"), trained.candidate_scores


def rounded_latents(model: FrameModel) -> list[np.ndarray]:
    return [grid[0, 0].numpy().astype(np.int32) for grid in model.rounded_grids()]


def write_bitstream(frame: Frame, model: FrameModel, params: QuantizedParameters,
                    substreams: int | None = None) -> tuple[bytes, dict[str, float]]:
    """Range-code parameters and latents and assemble the bytes (encode_frame_report checks they decode).

    substreams: latent substreams that decoders may run in parallel (None: default_substreams)."""
    arch = model.arch
    grids = rounded_latents(model)
    coded = [bool(np.any(grid)) for grid in grids]
    substreams = default_substreams(frame.height) if substreams is None else substreams
    canvas = Canvas.build([g.shape for g in grids], coded, model.arm.offsets, substreams)
    arm = integer_arm(model.arm.layer_shapes, params.integers[0], params.integers[1], params.step_exps[0], params.step_exps[1])
    latent_streams, symbols, (means, scales) = encode_latents(grids, arm, canvas)
    latent_stream = b"".join(latent_streams)
    param_stream = encode_parameters(list(zip(params.integers, params.scale_indices)))
    header = pack_header(FrameHeader(
        width=frame.width, height=frame.height, bitdepth=frame.bitdepth, arch=arch,
        coded_grids=tuple(coded), step_exps=params.step_exps, scale_indices=params.scale_indices,
        param_stream_bytes=len(param_stream), latent_stream_bytes=len(latent_stream),
        substream_bytes=tuple(len(stream) for stream in latent_streams[:-1]),
    ))
    symbols = symbols.astype(np.float64)
    sizes = {
        "header_bits": 8 * len(header), "parameter_bits": 8 * len(param_stream),
        "latent_bits": 8 * len(latent_stream), "predicted_latent_bits": information_bits(symbols, means, scales),
    }
    return header + param_stream + latent_stream, sizes


# The decoder must reproduce the encoder's own model: at most this far from it on any sample, and exact
# on at least this share of samples. The encoder's model is float32; the decoder computes the picture in
# fixed point (format 6, 20 fractional bits: 0.01-0.05 % of samples one code value away, measured) or,
# for older formats, in float32 with the CPU's own rounding.
MAX_DECODER_DEVIATION = 1
MIN_EXACT_SHARE = 0.999


class EncoderDecoderMismatch(RuntimeError):
    """The bitstream would not decode to what the encoder trained for: an internal error, never bad input."""


def model_reconstruction(model: FrameModel, bitdepth: int) -> Frame:
    """What the encoder's own model produces: rounded latents, dequantised parameters, float modules."""
    with torch.no_grad():
        luma, chroma = model.decode_planes(model.rounded_grids())
    return planes_to_frame(luma, chroma, bitdepth)


def check_decoder_matches(expected: Frame, decoded: Frame) -> float:
    """Raise EncoderDecoderMismatch unless the decoded frame is within MAX_DECODER_DEVIATION of the
    encoder's model everywhere and exact on MIN_EXACT_SHARE of samples; returns the exact share."""
    exact = total = 0
    for name, a, b in zip("YUV", expected.planes(), decoded.planes()):
        if a.shape != b.shape:
            raise EncoderDecoderMismatch(f"decoder gives a {b.shape} {name} plane, the encoder {a.shape}")
        difference = np.abs(a.astype(np.int32) - b.astype(np.int32))
        worst = int(difference.max(initial=0))
        if worst > MAX_DECODER_DEVIATION:
            raise EncoderDecoderMismatch(f"decoded {name} plane is up to {worst} away from the encoder's model")
        exact += int(np.count_nonzero(difference == 0))
        total += difference.size
    share = exact / max(total, 1)
    if share < MIN_EXACT_SHARE:
        raise EncoderDecoderMismatch(f"only {100 * share:.2f} % of decoded samples equal the encoder's model")
    return share


def encode_frame_report(frame: Frame, lmbda: float, cfg: EncoderConfig | None = None,
                        progress: Callable[[TrainProgress], None] | None = None) -> EncodedFrame:
    """Encode one frame and report its reconstruction (decoded from the bytes) and its bit budget."""
    return encode_frame_and_model(frame, lmbda, cfg, progress)[0]


def encode_frame_and_model(frame: Frame, lmbda: float, cfg: EncoderConfig | None = None,
                           progress: Callable[[TrainProgress], None] | None = None) -> tuple[EncodedFrame, FrameModel]:
    """encode_frame_report, and the quantised model the bitstream codes (for checks and analysis)."""
    encoded, model, _ = _encode(frame, lmbda, cfg or load_config(), progress, None)
    return encoded, model


def encode_frame_chained(frame: Frame, lmbda: float, cfg: EncoderConfig, previous: WarmState | None,
                         progress: Callable[[TrainProgress], None] | None = None) -> tuple[EncodedFrame, WarmState]:
    """encode_frame_report for a frame of a chain: warm-started from `previous` (the float model of the
    frame before it; None starts cold), and the float model the next frame of the chain starts from."""
    encoded, _, trained = _encode(frame, lmbda, cfg, progress, previous)
    return encoded, trained


def _encode(frame: Frame, lmbda: float, cfg: EncoderConfig, progress: Callable[[TrainProgress], None] | None,
            previous: WarmState | None) -> tuple[EncodedFrame, FrameModel, WarmState]:
    if not 0.0 < lmbda < 1.0:
        raise VcodecError(f"lambda must be within (0, 1), got {lmbda}")
    start = time.perf_counter()
    model, target, candidate_costs = fit(frame, lmbda, cfg, progress, previous)
    trained = capture(model)
    return code_model(frame, model, target, lmbda, cfg, candidate_costs, start), model, trained


def code_model(frame: Frame, model: FrameModel, target: Target, lmbda: float, cfg: EncoderConfig,
               candidate_costs: tuple[tuple[str, float], ...], start: float) -> EncodedFrame:
    """Quantise a trained model (on the CPU) at `lmbda`, write its bitstream and decode it back; `start`
    is when the frame's encode began (perf_counter), for its time. The model keeps the coded values."""
    params = quantize_parameters(model, target, lmbda, cfg.preset.quantization_patience)
    if cfg.preset.rdoq_passes:
        params = rdoq_parameters(model, target, lmbda, params, cfg.preset.rdoq_passes).params
    data, sizes = write_bitstream(frame, model, params, cfg.latent_substreams or None)
    decode_start = time.perf_counter()
    reconstruction = decode_frame(data)
    decode_seconds = time.perf_counter() - decode_start
    check_decoder_matches(model_reconstruction(model, frame.bitdepth), reconstruction)
    return EncodedFrame(
        data=data, reconstruction=reconstruction, decode_seconds=decode_seconds,
        psnr=frame_psnr(frame, reconstruction),
        header_bits=int(sizes["header_bits"]), parameter_bits=int(sizes["parameter_bits"]),
        latent_bits=int(sizes["latent_bits"]), predicted_latent_bits=sizes["predicted_latent_bits"],
        step_exps=params.step_exps, arch_name=model.arch.name, candidate_costs=candidate_costs,
        mac_per_pixel=macs_per_pixel(model.arch, frame.height, frame.width)["total"],
        seconds=time.perf_counter() - start,
    )


def encode_frame(frame: Frame, lmbda: float, cfg: EncoderConfig | None = None) -> bytes:
    """The self-contained frame bitstream."""
    return encode_frame_report(frame, lmbda, cfg).data
