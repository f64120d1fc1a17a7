"""Training-time stand-ins for rounding the latents: soft rounding with noise, and the epsilon-STE.

The decoder only ever sees true rounding; these exist so that gradients reach the latents during
training, which is why they live with the encoder and not in the model.
"""

from __future__ import annotations

import math

import torch

from vcodec.config import NOISES

QUANTIZERS: tuple[str, ...] = ("noise", "softround", "ste", "round")


class RoundWithEpsilonGradient(torch.autograd.Function):
    """Forward: true rounding. Backward: the gradient scaled by epsilon (the paper's epsilon-STE)."""

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, x: torch.Tensor, epsilon: float) -> torch.Tensor:
        ctx.epsilon = epsilon
        return torch.round(x)

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad * ctx.epsilon, None


def soft_round(x: torch.Tensor, temperature: float) -> torch.Tensor:
    """A differentiable rounding (Agustsson & Theis 2020, used by C3 / Cool-chic 3): tends to round(x) as
    the temperature goes to 0 and to x as it grows."""
    floor = torch.floor(x)
    return floor + 0.5 + torch.tanh((x - floor - 0.5) / temperature) / (2.0 * math.tanh(0.5 / temperature))


def quantization_noise(like: torch.Tensor, kind: str, parameter: float) -> torch.Tensor:
    """Noise added between the two soft roundings.

    uniform: U[-1/2, 1/2) (parameter unused); gaussian: N(0, parameter^2) (Cool-chic 4's main phase);
    kumaraswamy: shape a = parameter, mode 1/2, shifted to (-1/2, 1/2); a = 1 is uniform, larger a
    concentrates the noise near 0 (C3).
    """
    if kind == "uniform":
        return torch.rand_like(like) - 0.5
    if kind == "gaussian":
        return torch.randn_like(like) * parameter
    if kind == "kumaraswamy":
        a = parameter
        b = (2.0**a * (a - 1.0) + 1.0) / a
        uniform = torch.rand_like(like).clamp_(1e-6, 1.0 - 1e-6)
        return (1.0 - (1.0 - uniform) ** (1.0 / b)) ** (1.0 / a) - 0.5
    raise ValueError(f"unknown quantization noise {kind!r} (known: {', '.join(NOISES)})")


def quantize(latent: torch.Tensor, quantizer: str, temperature: float = 0.3, noise: str = "uniform",
             noise_parameter: float = 1.0, ste_epsilon: float = 0.01) -> torch.Tensor:
    """noise: latent + noise; softround: soft_round(soft_round(y) + noise) at the temperature;
    ste: rounding with an epsilon gradient; round: exact, no gradient. Any other name raises."""
    if quantizer == "noise":
        return latent + quantization_noise(latent, noise, noise_parameter)
    if quantizer == "softround":
        noisy = soft_round(latent, temperature) + quantization_noise(latent, noise, noise_parameter)
        return soft_round(noisy, temperature)
    if quantizer == "ste":
        return RoundWithEpsilonGradient.apply(latent, ste_epsilon)
    if quantizer == "round":
        return torch.round(latent).detach()
    raise ValueError(f"unknown quantizer {quantizer!r} (known: {', '.join(QUANTIZERS)})")
