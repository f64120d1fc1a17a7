"""A group of the float modules' parameters as one flat vector (the parameter coder's view), both ways."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn


def flat_parameters(tensors: Sequence[nn.Parameter]) -> np.ndarray:
    """The tensors' values as one float64 vector, in order (a group's stored order)."""
    if not tensors:
        return np.zeros(0)
    return torch.cat([p.detach().reshape(-1).double().cpu() for p in tensors]).numpy()


def load_flat_parameters(tensors: Sequence[nn.Parameter], values: np.ndarray) -> None:
    """Write a group's values (flat_parameters' order) into its tensors."""
    position = 0
    with torch.no_grad():
        for parameter in tensors:
            count = parameter.numel()
            chunk = torch.from_numpy(values[position : position + count].astype(np.float32))
            parameter.copy_(chunk.view_as(parameter))
            position += count
