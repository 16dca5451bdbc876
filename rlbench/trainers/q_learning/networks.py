"""Q-networks and the fast numpy acting path of the PyTorch DQN/IQN trainers."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch
from torch import nn

from rlbench.config import QLearningConfig


# -- devices and networks ----------------------------------------------------------------
def resolve_device(name: str) -> torch.device:
    """``cpu`` | ``cuda`` | ``auto`` (cuda when available) → a torch device."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but torch.cuda.is_available() is False")
    if name not in ("cpu", "cuda"):
        raise ValueError(f"device must be cpu, cuda or auto, got {name!r}")
    return torch.device(name)


def mlp(
    in_dim: int, hidden: Iterable[int], out_dim: int | None, dropout: float = 0.0,
    layer_norm: bool = False,
) -> nn.Sequential:
    """Linear → [LayerNorm] → ReLU → [Dropout] per hidden width, then a linear head to
    `out_dim` (none when `out_dim` is None: the torso ends with an activation)."""
    layers: list[nn.Module] = []
    for width in hidden:
        layers.append(nn.Linear(in_dim, width))
        if layer_norm:
            layers.append(nn.LayerNorm(width))
        layers.append(nn.ReLU())
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        in_dim = width
    if out_dim is not None:
        layers.append(nn.Linear(in_dim, out_dim))
    return nn.Sequential(*layers)


class QNetwork(nn.Module):
    """obs [B, *obs_shape] → Q-values [B, n_actions]."""

    def __init__(self, obs_dim: int, n_actions: int, config: QLearningConfig) -> None:
        super().__init__()
        self.net = mlp(obs_dim, config.hidden_sizes, n_actions, config.dropout, config.layer_norm)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net(obs.flatten(1))


def is_plain_mlp(net: nn.Module) -> bool:
    """True when `net` is a QNetwork/Sequential of nn.Linear and nn.ReLU only: no layer
    whose output depends on train/eval mode, so both fast paths below compute exactly what
    the module computes."""
    mods = [m for m in net.modules() if not isinstance(m, (nn.Sequential, QNetwork))]
    return all(isinstance(m, (nn.Linear, nn.ReLU)) for m in mods)


class MLPGrad:
    """Forward with saved activations and a hand-written backward of a plain Linear/ReLU
    MLP (see `is_plain_mlp`), for the DQN update.

    On a small MLP an autograd update is mostly per-op overhead (graph records, module
    calls, hooks); this runs the same kernels as autograd would (addmm forward; mm, sum and
    the ReLU mask backward), without the bookkeeping. The parameters are the module's own
    tensors, so optimizer steps and clipping see `.grad` as after `loss.backward()`.
    """

    def __init__(self, linears: list[nn.Linear]) -> None:
        self.linears = linears

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Output [B, out] and each layer's input (after ReLU), for `backward`."""
        inputs = []
        last = len(self.linears) - 1
        for i, m in enumerate(self.linears):
            inputs.append(x)
            x = torch.addmm(m.bias, x, m.weight.t())
            if i < last:
                x.relu_()
        return x, inputs

    @torch.no_grad()
    def backward(self, grad_out: torch.Tensor, inputs: list[torch.Tensor]) -> None:
        """Set every parameter's `.grad` from dLoss/dOutput [B, out] (replacing, as after
        `zero_grad(set_to_none=True)` and `backward()`)."""
        g = grad_out
        for i in range(len(self.linears) - 1, -1, -1):
            m, x = self.linears[i], inputs[i]
            m.weight.grad = g.t().mm(x)
            m.bias.grad = g.sum(0)
            if i > 0:  # x = relu(previous output): no gradient where it was clamped, by
                # the kernel autograd uses for ReLU (~8x faster than masked_fill_ here)
                g = torch.ops.aten.threshold_backward(g.mm(m.weight), x, 0)


class NumpyMLP:
    """Greedy action of a plain Linear/ReLU MLP in numpy, for acting one step at a time.

    A single-observation torch forward is mostly dispatch overhead; numpy skips it. The
    arrays are *views* of the CPU parameters, so in-place optimizer steps show up without
    copying; `QAgent` rebuilds it whenever the parameter tensors themselves change.
    Only used when the network has no train/eval-dependent layers (no dropout/LayerNorm),
    where eval-mode torch and this function compute the same thing.
    """

    def __init__(self, linears: list[nn.Linear]) -> None:
        self.layers = [(m.weight.detach().numpy().T, m.bias.detach().numpy()) for m in linears]

    @staticmethod
    def supports(net: nn.Module, device: torch.device) -> bool:
        return device.type == "cpu" and is_plain_mlp(net)

    def __call__(self, obs: np.ndarray) -> int:
        h = np.asarray(obs, dtype=np.float32).reshape(-1)
        last = len(self.layers) - 1
        for i, (w_t, b) in enumerate(self.layers):
            h = h @ w_t
            h += b
            if i < last:
                np.maximum(h, 0.0, out=h)
        return int(h.argmax())


