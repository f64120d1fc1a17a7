"""Frame format 6's upsampling and synthesis in fixed point, so that the decoded picture is exact everywhere.

Formats 1-5 run the float32 modules to decode, and the CPU's kernels (MKL, oneDNN) round their sums in
their own order: on an AMD EPYC 3 of 28 golden files decoded to another picture than on the machine that
wrote them. Here every activation is an integer count of 2^-F (F = PICTURE_FRAC_BITS) and every weight
its coded integer q times 2^-k, held in float64. A layer's sum is then a multiple of 2^-max(k, 1) (the
1/2 of the rounding included), and the bounds below keep it under 2^(52 - max(k, 1)), so float64 holds
every partial sum exactly, whatever order BLAS, the thread count or the CPU sums in (the integer ARM's
argument, vcodec.entropy.fixed_point):

- activations are clamped to |a| <= PICTURE_ACT_LIMIT = 2^30 (1024 in value) after every layer;
- coded integers are |q| < 2^15 (the parameter coder's range) and a fan-in is at most 96 (the widest
  synthesis layer; the upsampling has 16 taps per output, a 3x3 residual convolution 27):
  96 * 2^15 * 2^30 < 1.5 * 2^51;
- a bias q_b 2^-k_b enters as q_b 2^(F - k_b), an integer since k_b <= 16 <= F, below 2^35.

Each layer's sum (plus 1/2) is floored back to an integer: rounding half up, exact too. Only products and
sums of such values are used (matrix products, shifted copies, padding, 2x2 sums), never a transform that
would round.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from vcodec.format import PICTURE_ACT_LIMIT, PICTURE_FRAC_BITS
from vcodec.model.synthesis import OUTPUT_PLANES, Synthesis
from vcodec.model.upsampling import BORDER, Upsampling

_ONE = float(1 << PICTURE_FRAC_BITS)
_HALF = 0.5
# The 1x1 layers run on this many pixels at a time, so the widest hidden activation is not the whole
# frame's (every pixel's column is computed alone: the result does not depend on it).
_CHUNK_PIXELS = 16384
# The shifted-copy sums (upsampling, 3x3 convolutions) run on bands of this many rows, for the cache.
_BAND_ROWS = 32
# The 2x upsampling as four 5x5 correlations of the padded input, one per output phase (row parity a,
# column parity b): output row 2p + a takes input rows p + t for the (t, kernel row) pairs of parity a.
# (The transposed convolution with stride 2 and the crop of vcodec.model.upsampling, written out.)
_PHASE_TAPS: tuple[tuple[tuple[int, int], ...], ...] = (
    ((0, 7), (1, 5), (2, 3), (3, 1)),
    ((1, 6), (2, 4), (3, 2), (4, 0)),
)


@contextmanager
def _one_intra_op_thread() -> Iterator[None]:
    """Meanwhile each torch op runs on one thread.

    The fixed-point stages are thousands of small, memory-bound ops (a band's shifted copies). With
    torch's threads each op wakes the pool, and with OMP_WAIT_POLICY=PASSIVE (which the command line sets)
    that costs more than the op: on the 2-core machine the 1080p synthesis took 0.89 s on 2 threads against
    0.42 s on one. (Bands on 2 Python threads gained nothing either: the ops are bound by memory.)"""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@dataclass(frozen=True)
class FixedPointLayer:
    """One coded weight tensor (and bias), scaled so that a layer's sum is in units of 2^-F.

    weight: q_w 2^-k_w; bias: q_b 2^(F - k_b) + 1/2, so that floor(sum) rounds half up. Scaling by powers
    of two changes no significand bit: the sums stay exact (module docstring)."""

    weight: torch.Tensor   # float64, in the module's shape
    bias: torch.Tensor     # float64, one per output channel (1/2 where the module has no bias)


def _layer(coded: Mapping[str, tuple[np.ndarray, int]], weight_name: str, bias_name: str | None,
           shape: torch.Size) -> FixedPointLayer:
    integers, step_exp = coded[weight_name]
    weight = torch.from_numpy(np.ldexp(np.asarray(integers, dtype=np.float64), -step_exp).reshape(tuple(shape)))
    if bias_name is None:
        return FixedPointLayer(weight, torch.full((shape[0],), _HALF, dtype=torch.float64))
    integers, step_exp = coded[bias_name]  # step_exp <= PARAM_STEP_EXP_MAX <= F: an integer below
    bias = np.ldexp(np.asarray(integers, dtype=np.float64), PICTURE_FRAC_BITS - step_exp) + _HALF
    return FixedPointLayer(weight, torch.from_numpy(bias))


@dataclass(frozen=True)
class FixedPointPicture:
    """The upsampling kernel, the 1x1 layers and the 3x3 residual convolutions of one frame, in fixed point."""

    kernel: FixedPointLayer
    pointwise: tuple[FixedPointLayer, ...]
    residual: tuple[FixedPointLayer, ...]

    @classmethod
    def from_coded(cls, upsampling: Upsampling, synthesis: Synthesis,
                   coded: Mapping[str, tuple[np.ndarray, int]]) -> FixedPointPicture:
        """coded: (integers, step exponent) of every upsampling and synthesis tensor, keyed by its
        qualified name ("upsampling.kernel", "synthesis.pointwise.0.weight", ...); the modules give shapes."""
        if not synthesis.preactivated:
            raise ValueError("the fixed-point synthesis has pre-activated residual blocks only (format >= 2)")
        kernel = _layer(coded, "upsampling.kernel", None, upsampling.kernel.shape)
        pointwise = tuple(_layer(coded, f"synthesis.pointwise.{i}.weight", f"synthesis.pointwise.{i}.bias",
                                 layer.weight.shape) for i, layer in enumerate(synthesis.pointwise))
        residual = tuple(_layer(coded, f"synthesis.residual.{i}.weight", f"synthesis.residual.{i}.bias",
                                conv.weight.shape) for i, conv in enumerate(synthesis.residual))
        return cls(kernel, pointwise, residual)

    def upsample(self, grids: list[np.ndarray]) -> torch.Tensor:
        """Integer grids, finest first -> (1, L, H, W) activations, coarsest first (as Upsampling.forward)."""
        with _one_intra_op_thread():
            as_activations = [torch.from_numpy(g.astype(np.float64) * _ONE).view(1, *g.shape) for g in grids]
            stack = as_activations[-1]
            for grid in reversed(as_activations[:-1]):
                channels, (height, width) = stack.shape[0], grid.shape[-2:]
                joined = torch.empty(channels + 1, height, width, dtype=torch.float64)
                self._upsample2x(stack, height, width, out=joined[:channels])
                joined[channels] = grid[0]
                stack = joined
        return stack[None]

    def _upsample2x(self, x: torch.Tensor, height: int, width: int, out: torch.Tensor | None = None) -> torch.Tensor:
        """(C, h, w) -> (C, height, width), height <= 2h, width <= 2w: each output phase a sum of 16
        shifted copies of the padded input (elementwise products and sums: exact in any order), computed
        in bands of rows so that the band's copies stay in the cache. Written into `out` if given (a
        contiguous (C, height, width) tensor: at even sizes directly, saving a copy of the largest stack)."""
        channels, rows, cols = x.shape
        padded = F.pad(x[None], (BORDER,) * 4, mode="replicate")[0]
        kernel = self.kernel.weight[0, 0].tolist()
        direct = out is not None and (height, width) == (2 * rows, 2 * cols)
        up = out.view(channels, rows, 2, cols, 2) if direct else torch.empty(channels, rows, 2, cols, 2, dtype=torch.float64)
        for top in range(0, rows, _BAND_ROWS):
            band = min(_BAND_ROWS, rows - top)
            for a, row_taps in enumerate(_PHASE_TAPS):
                for b, col_taps in enumerate(_PHASE_TAPS):
                    phase = torch.full((channels, band, cols), _HALF, dtype=torch.float64)
                    for dy, ky in row_taps:
                        for dx, kx in col_taps:
                            if kernel[ky][kx]:
                                source = padded[:, top + dy : top + dy + band, dx : dx + cols]
                                phase.add_(source, alpha=kernel[ky][kx])
                    up[:, top : top + band, a, :, b] = phase.floor_().clamp_(-PICTURE_ACT_LIMIT, PICTURE_ACT_LIMIT)
        result = up.view(channels, 2 * rows, 2 * cols)[:, :height, :width]
        if out is not None and not direct:
            out.copy_(result)
        return out if out is not None else result

    def _pointwise(self, x: torch.Tensor) -> torch.Tensor:
        last = len(self.pointwise) - 1
        for index, layer in enumerate(self.pointwise):
            x = torch.addmm(layer.bias[:, None], layer.weight, x).floor_()
            x = x.clamp_(0.0 if index < last else -PICTURE_ACT_LIMIT, PICTURE_ACT_LIMIT)  # ReLU but the last
        return x

    def synthesize(self, upsampled: torch.Tensor) -> torch.Tensor:
        """(1, L, H, W) activations -> (1, 3, H, W) output planes, in units of 2^-F (1.0 = the peak)."""
        _, channels, height, width = upsampled.shape
        with _one_intra_op_thread():
            columns = upsampled.reshape(channels, height * width)
            x = torch.empty(OUTPUT_PLANES, height * width, dtype=torch.float64)
            for start in range(0, height * width, _CHUNK_PIXELS):
                x[:, start : start + _CHUNK_PIXELS] = self._pointwise(columns[:, start : start + _CHUNK_PIXELS])
            x = x.reshape(OUTPUT_PLANES, height, width)
            for index, layer in enumerate(self.residual):
                x = self._residual(x, layer, preactivate=index > 0)
        return x[None]

    @staticmethod
    def _residual(x: torch.Tensor, layer: FixedPointLayer, preactivate: bool) -> torch.Tensor:
        """x + round(conv3x3(b)), clamped, with b = relu(x) if `preactivate` else x."""
        branch = torch.relu(x) if preactivate else x
        return FixedPointPicture._conv3x3(branch, layer, skip=x)

    @staticmethod
    def _conv3x3(x: torch.Tensor, layer: FixedPointLayer, skip: torch.Tensor | None = None) -> torch.Tensor:
        """(3, H, W) -> (3, H, W): replicate-padded 3x3 convolution, rounded (27 shifted products, each into
        the 3 output planes, in bands of rows); with `skip`, skip + that, clamped (a residual block)."""
        channels, height, width = x.shape
        padded = F.pad(x[None], (1, 1, 1, 1), mode="replicate")[0]
        taps = [(i, dy, dx, layer.weight[:, i, dy, dx].reshape(OUTPUT_PLANES, 1, 1).clone())
                for i in range(channels) for dy in range(3) for dx in range(3)
                if bool(layer.weight[:, i, dy, dx].any())]
        bias = layer.bias.reshape(OUTPUT_PLANES, 1, 1)
        out = torch.empty(OUTPUT_PLANES, height, width, dtype=torch.float64)
        for top in range(0, height, _BAND_ROWS):
            band = min(_BAND_ROWS, height - top)
            rows = out[:, top : top + band]
            rows.copy_(bias.expand_as(rows))
            for i, dy, dx, column in taps:  # one input sample times its 3 output weights (exact products)
                rows.addcmul_(padded[i, top + dy : top + dy + band, dx : dx + width][None], column)
            rows.floor_()
            if skip is not None:
                rows.add_(skip[:, top : top + band]).clamp_(-PICTURE_ACT_LIMIT, PICTURE_ACT_LIMIT)
        return out


def activations_to_samples(plane: torch.Tensor, bitdepth: int) -> np.ndarray:
    """Activations (units of 2^-F, 1.0 = the peak) -> integer samples: floor(a peak 2^-F + 1/2), clipped."""
    peak = float((1 << bitdepth) - 1)
    samples = torch.floor(plane * (peak / _ONE) + _HALF).clamp_(0.0, peak)
    return samples.numpy().astype(np.uint16)
