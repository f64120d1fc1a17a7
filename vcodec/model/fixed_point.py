"""Frame format 6's upsampling and synthesis in fixed point, so that the decoded picture is exact everywhere.

Formats 1-5 run the float32 modules to decode, and the CPU's kernels (MKL, oneDNN) round their sums in
their own order: on an AMD EPYC 3 of 28 golden files decoded to another picture than on the machine that
wrote them. Here every activation is an integer count of 2^-F (F = PICTURE_FRAC_BITS) and every weight
its coded integer q times 2^-k. A layer's sum is then a multiple of 2^-max(k, 1) (the 1/2 of the rounding
included), and the bounds below keep it under 2^(52 - max(k, 1)), so a double holds every partial sum
exactly, whatever order, vector width or fused multiply-add computes it (the integer ARM's argument,
vcodec.entropy.fixed_point):

- activations are clamped to |a| <= PICTURE_ACT_LIMIT = 2^30 (1024 in value) after every layer, so they
  are stored as int32;
- coded integers are |q| < 2^15 (the parameter coder's range) and a fan-in is at most 96 (the widest
  synthesis layer; the upsampling has 16 taps per output, a 3x3 residual convolution 27):
  96 * 2^15 * 2^30 < 1.5 * 2^51;
- a bias q_b 2^-k_b enters as q_b 2^(F - k_b), an integer since k_b <= 16 <= F, below 2^35.

Each layer's sum (plus 1/2) is floored back to an integer: rounding half up, exact too. The loops are
compiled (`_picture_kernels.c`) and share a frame's rows among threads; this module lays out the weights,
runs the levels and layers in order, and needs no torch.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from vcodec.format import PICTURE_FRAC_BITS
from vcodec.model import _picture_kernels
from vcodec.shapes import OUTPUT_PLANES, RESIDUAL_KERNEL
from vcodec.thread_pool import shared_pool
from vcodec.types import Frame

_KERNEL_SIZE = 8   # the upsampling's transposed-convolution kernel (vcodec.model.upsampling)
_HALF = 0.5
# Rows (pixels for the 1x1 layers) a thread takes at most at a time: enough to amortise a call, few enough
# that both cores finish together (pieces are then evened out: see _in_parallel).
_ROWS_PER_TASK = 64
_PIXELS_PER_TASK = 1 << 16


def _threads() -> int:
    return max(1, min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1))


def _in_parallel(task: Callable[[int, int], None], total: int, per_task: int) -> None:
    """task(start, stop) over [0, total) on the cores' threads (the kernels release the GIL), in equal pieces
    of at most per_task, as many as a multiple of the threads (so that no thread is left with a longer
    tail). Every output sample is computed by one call alone, so the split changes no value."""
    threads = _threads()
    count = max(1, -(-total // per_task))
    if threads > 1 and total >= threads:
        count = -(-count // threads) * threads
    bounds = [total * k // count for k in range(count + 1)]
    pieces = [(start, stop) for start, stop in zip(bounds[:-1], bounds[1:]) if start < stop]
    if threads <= 1 or count == 1:
        for start, stop in pieces:
            task(start, stop)
        return
    pool = shared_pool(threads)
    for done in [pool.submit(task, start, stop) for start, stop in pieces]:
        done.result()


@dataclass(frozen=True)
class FixedPointLayer:
    """One coded weight tensor (and bias), scaled so that a layer's sum is in units of 2^-F.

    weight: q_w 2^-k_w; bias: q_b 2^(F - k_b) + 1/2, so that floor(sum) rounds half up. Scaling by powers
    of two changes no significand bit: the sums stay exact (module docstring)."""

    weight: np.ndarray   # float64, in the module's shape
    bias: np.ndarray     # float64, one per output channel (1/2 where the module has no bias)


def _layer(coded: Mapping[str, tuple[np.ndarray, int]], weight_name: str, bias_name: str | None,
           shape: tuple[int, ...]) -> FixedPointLayer:
    integers, step_exp = coded[weight_name]
    weight = np.ldexp(np.asarray(integers, dtype=np.float64), -step_exp).reshape(shape)
    if bias_name is None:
        return FixedPointLayer(weight, np.full(shape[0], _HALF))
    integers, step_exp = coded[bias_name]  # step_exp <= PARAM_STEP_EXP_MAX <= F: an integer below
    return FixedPointLayer(weight, np.ldexp(np.asarray(integers, dtype=np.float64), PICTURE_FRAC_BITS - step_exp) + _HALF)


@dataclass(frozen=True)
class FixedPointPicture:
    """The upsampling kernel, the 1x1 layers and the 3x3 residual convolutions of one frame, in fixed point."""

    kernel: FixedPointLayer
    pointwise: tuple[FixedPointLayer, ...]
    residual: tuple[FixedPointLayer, ...]

    @classmethod
    def from_coded(cls, coded: Mapping[str, tuple[np.ndarray, int]], widths: Sequence[int],
                   residual_blocks: int) -> FixedPointPicture:
        """coded: (integers, step exponent) of every upsampling and synthesis tensor, keyed by its qualified
        name ("upsampling.kernel", "synthesis.pointwise.0.weight", ...); widths: the 1x1 layers' widths,
        latent levels first, OUTPUT_PLANES last; residual_blocks: the 3x3 convolutions that follow them."""
        kernel = _layer(coded, "upsampling.kernel", None, (1, 1, _KERNEL_SIZE, _KERNEL_SIZE))
        pointwise = tuple(_layer(coded, f"synthesis.pointwise.{i}.weight", f"synthesis.pointwise.{i}.bias",
                                 (widths[i + 1], widths[i])) for i in range(len(widths) - 1))
        residual = tuple(_layer(coded, f"synthesis.residual.{i}.weight", f"synthesis.residual.{i}.bias",
                                (OUTPUT_PLANES, OUTPUT_PLANES, RESIDUAL_KERNEL, RESIDUAL_KERNEL))
                         for i in range(residual_blocks))
        return cls(kernel, pointwise, residual)

    def upsample(self, grids: list[np.ndarray]) -> np.ndarray:
        """Integer grids, finest first -> (L, H, W) int32 activations, coarsest first (as Upsampling.forward)."""
        stack = (np.asarray(grids[-1], dtype=np.int32) << PICTURE_FRAC_BITS)[None]  # |latent| < 2^7: no overflow
        for grid in reversed(grids[:-1]):
            channels, (height, width) = stack.shape[0], grid.shape
            joined = np.empty((channels + 1, height, width), dtype=np.int32)
            self._upsample2x(stack, height, width, out=joined[:channels])
            np.left_shift(np.asarray(grid, dtype=np.int32), PICTURE_FRAC_BITS, out=joined[channels])
            stack = joined
        return stack

    def _upsample2x(self, x: np.ndarray, height: int, width: int, out: np.ndarray | None = None) -> np.ndarray:
        """(C, h, w) -> (C, height, width), height <= 2h, width <= 2w: the stride-2 transposed convolution and
        crop of Upsampling, each output phase a sum of 16 taps of the replicate-padded input."""
        x = np.ascontiguousarray(x, dtype=np.int32)
        channels, rows, cols = x.shape
        out = np.empty((channels, height, width), dtype=np.int32) if out is None else out
        kernel = np.ascontiguousarray(self.kernel.weight[0, 0], dtype=np.float64)
        _in_parallel(lambda p0, p1: _picture_kernels.upsample2x(x, channels, rows, cols, kernel, out, height, width,
                                                                p0, p1), rows, _ROWS_PER_TASK // 2)
        return out

    def _pointwise(self, x: np.ndarray) -> np.ndarray:
        """(C, N) int32 activations -> (3, N): the 1x1 layers, ReLU but after the last, each rounded."""
        x = np.ascontiguousarray(x, dtype=np.int32)
        widths = np.array([x.shape[0], *(layer.weight.shape[0] for layer in self.pointwise)], dtype=np.int32)
        weights = np.concatenate([layer.weight.ravel() for layer in self.pointwise])
        biases = np.concatenate([layer.bias.ravel() for layer in self.pointwise])
        pixels = x.shape[1]
        out = np.empty((int(widths[-1]), pixels), dtype=np.int32)
        _in_parallel(lambda n0, n1: _picture_kernels.pointwise(x, pixels, widths, weights, biases, out, n0, n1),
                     pixels, _PIXELS_PER_TASK)
        return out

    def synthesize(self, upsampled: np.ndarray, reuse_input: bool = False) -> np.ndarray:
        """(L, H, W) int32 activations -> (3, H, W) int32 output planes, in units of 2^-F (2^F = the peak).

        reuse_input: the residual blocks write into `upsampled`'s memory, dead once the 1x1 layers have
        read it (a decoder's: at 1080p 25 MB fewer new pages to fault in, the first decode's largest cost)."""
        channels, height, width = upsampled.shape
        x = self._pointwise(upsampled.reshape(channels, height * width)).reshape(OUTPUT_PLANES, height, width)
        spares = []
        if reuse_input and channels >= 2 * OUTPUT_PLANES and upsampled.dtype == np.int32 and upsampled.flags.c_contiguous:
            spares = [upsampled[:OUTPUT_PLANES], upsampled[OUTPUT_PLANES : 2 * OUTPUT_PLANES]]
        for index, layer in enumerate(self.residual):
            out = spares[index % 2] if spares else None
            x = self._residual(x, layer, preactivate=index > 0, out=out)
        return x

    @staticmethod
    def _residual(x: np.ndarray, layer: FixedPointLayer, preactivate: bool, out: np.ndarray | None = None
                  ) -> np.ndarray:
        """(3, H, W) -> x + round(conv3x3(b)), clamped, with b = relu(x) if `preactivate` else x (replicate
        padding); into `out` if given (int32, C-contiguous, not x's memory)."""
        x = np.ascontiguousarray(x, dtype=np.int32)
        _, height, width = x.shape
        weight = np.ascontiguousarray(layer.weight, dtype=np.float64)
        bias = np.ascontiguousarray(layer.bias, dtype=np.float64)
        out = np.empty_like(x) if out is None else out
        _in_parallel(lambda y0, y1: _picture_kernels.residual3x3(x, height, width, weight, bias, preactivate, out, y0, y1),
                     height, _ROWS_PER_TASK)
        return out


def planes_to_frame(planes: np.ndarray, chroma_downscale: str, bitdepth: int) -> Frame:
    """(3, H, W) output activations -> the 4:2:0 frame: chroma by the 2x2 mean (or the top-left sample),
    then every sample floor(a peak 2^-F + 1/2), clipped; in integers (the mean is a quarter of a sum, two
    more fractional bits), so exact."""
    _, height, width = planes.shape
    mean = chroma_downscale == "mean"
    rows, cols = (height // 2, width // 2) if mean else ((height + 1) // 2, (width + 1) // 2)
    y = np.empty((height, width), dtype=np.uint16)
    u = np.empty((rows, cols), dtype=np.uint16)
    v = np.empty((rows, cols), dtype=np.uint16)
    _picture_kernels.to_samples(np.ascontiguousarray(planes, dtype=np.int32), height, width, mean, bitdepth,
                                PICTURE_FRAC_BITS, y, u, v)
    return Frame(y, u, v, bitdepth)
