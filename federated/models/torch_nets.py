"""The torch networks behind ``torch-mlp`` and ``torch-cnn``, and their local training loop.

Randomness comes only from an explicit ``torch.Generator`` (weight initialization and batch
shuffling), never from torch's process-wide generator: Prefect runs tasks in threads, and a
global ``torch.manual_seed`` in one task would reseed every other task's model.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import nn
from torch.nn import functional


def build_mlp(n_features: int, hidden_sizes: Sequence[int], n_outputs: int) -> nn.Sequential:
    """``Linear → ReLU`` per hidden size, then a linear output layer of ``n_outputs`` logits."""
    layers: list[nn.Module] = []
    width = n_features
    for size in hidden_sizes:
        layers += [nn.Linear(width, int(size)), nn.ReLU()]
        width = int(size)
    layers.append(nn.Linear(width, n_outputs))
    return nn.Sequential(*layers)


def build_cnn(image_size: int, channels: Sequence[int], n_outputs: int) -> nn.Sequential:
    """A small CNN over flattened 1-channel ``image_size``×``image_size`` images.

    Each entry of ``channels`` adds ``3×3 conv (padding 1) → ReLU → 2×2 max-pool``, halving
    the side; a linear layer maps the flattened features to ``n_outputs`` logits. The input
    is ``(n, image_size²)``, unflattened by the first layer.
    """
    layers: list[nn.Module] = [nn.Unflatten(1, (1, image_size, image_size))]
    side, width = image_size, 1
    for count in channels:
        layers += [
            nn.Conv2d(width, int(count), kernel_size=3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        ]
        side, width = side // 2, int(count)
    layers += [nn.Flatten(), nn.Linear(width * side * side, n_outputs)]
    return nn.Sequential(*layers)


def reset_parameters(module: nn.Module, generator: torch.Generator) -> None:
    """Re-draw every Linear/Conv2d weight with torch's default scheme, from ``generator``."""
    for layer in module.modules():
        if isinstance(layer, nn.Linear | nn.Conv2d):
            # torch's own default initialization (see nn.Linear.reset_parameters).
            nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=generator)
            if layer.bias is not None:
                bound = 1.0 / math.sqrt(layer.weight[0].numel())
                nn.init.uniform_(layer.bias, -bound, bound, generator=generator)


@contextmanager
def torch_threads(num_threads: int | None) -> Iterator[None]:
    """Run with ``num_threads`` intra-op threads (unchanged when ``None``), then restore."""
    if num_threads is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(num_threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def train_classifier(
    module: nn.Module,
    X: torch.Tensor,
    y: torch.Tensor,
    *,
    epochs: int,
    batch_size: int,
    optimizer: str,
    learning_rate: float,
    weight_decay: float,
    proximal_mu: float,
    generator: torch.Generator,
) -> float:
    """Minimize cross-entropy (+ the FedProx term) by mini-batch descent; mean last-epoch loss.

    With ``proximal_mu > 0`` the loss of each batch gains ``μ/2·‖w − w₀‖²``, where ``w₀`` are
    the parameters ``module`` held when this call started (the global model in a round).
    The returned loss is the data loss alone, comparable across values of ``μ``.
    """
    params = list(module.parameters())
    anchor = [p.detach().clone() for p in params]
    opt: torch.optim.Optimizer
    if optimizer == "adam":
        opt = torch.optim.Adam(params, lr=learning_rate, weight_decay=weight_decay)
    else:
        opt = torch.optim.SGD(params, lr=learning_rate, weight_decay=weight_decay)
    module.train()
    n_rows = X.shape[0]
    epoch_loss = 0.0
    for _ in range(epochs):
        order = torch.randperm(n_rows, generator=generator)
        total = 0.0
        for start in range(0, n_rows, batch_size):
            batch = order[start : start + batch_size]
            opt.zero_grad(set_to_none=True)
            data_loss = functional.cross_entropy(module(X[batch]), y[batch])
            loss = data_loss
            if proximal_mu > 0:
                drift = torch.stack(
                    [((p - a) ** 2).sum() for p, a in zip(params, anchor, strict=True)]
                ).sum()
                loss = data_loss + proximal_mu / 2 * drift
            torch.autograd.backward(loss)  # typed twin of loss.backward()
            opt.step()
            total += float(data_loss.detach()) * batch.numel()
        epoch_loss = total / n_rows
    module.eval()
    return epoch_loss


def train_classifier_dp_sgd(
    module: nn.Module,
    X: torch.Tensor,
    y: torch.Tensor,
    *,
    noise_multiplier: float,
    max_grad_norm: float,
    sample_rate: float,
    steps: int,
    optimizer: str,
    learning_rate: float,
    weight_decay: float,
    generator: torch.Generator,
) -> None:
    """``steps`` steps of DP-SGD (Abadi et al. 2016) with opacus: Poisson sampling at rate
    ``sample_rate`` (each row in each step independently), each row's gradient clipped to
    L2 norm ``max_grad_norm``, ``N(0, (noise_multiplier·max_grad_norm)²)`` added to the sum,
    divided by the expected batch ``sample_rate·n`` (n is public: the ledger records it).

    That is the Poisson-subsampled Gaussian mechanism the ledger's RDP accountant composes.
    ``generator`` draws both the batches and the noise: it must be secret (seeded from OS
    entropy outside tests), since whoever can replay it can remove the noise. An empty batch
    still takes a (noise-only) step: skipping it would reveal that it was empty.
    """
    # Deferred: opacus loads only on nodes that train under DP-SGD.
    import copy

    from opacus import GradSampleModule
    from opacus.optimizers import DPOptimizer

    # A copy carries opacus's hooks; the caller's module only receives the trained weights.
    work = copy.deepcopy(module)
    wrapped = GradSampleModule(work, batch_first=True, loss_reduction="sum")
    params = list(wrapped.parameters())
    inner: torch.optim.Optimizer
    if optimizer == "adam":
        inner = torch.optim.Adam(params, lr=learning_rate, weight_decay=weight_decay)
    else:
        inner = torch.optim.SGD(params, lr=learning_rate, weight_decay=weight_decay)
    n_rows = X.shape[0]
    opt = DPOptimizer(
        inner,
        noise_multiplier=noise_multiplier,
        max_grad_norm=max_grad_norm,
        expected_batch_size=max(1, round(sample_rate * n_rows)),
        loss_reduction="mean",
        generator=generator,
    )
    wrapped.train()
    with warnings.catch_warnings():
        # Inputs never require gradients here; torch warns that the hook fires anyway.
        warnings.filterwarnings("ignore", "Full backward hook", UserWarning)
        _dp_steps(wrapped, opt, X, y, sample_rate=sample_rate, steps=steps, generator=generator)
    module.load_state_dict(work.state_dict())
    module.eval()


def _dp_steps(
    wrapped: nn.Module,
    opt: torch.optim.Optimizer,
    X: torch.Tensor,
    y: torch.Tensor,
    *,
    sample_rate: float,
    steps: int,
    generator: torch.Generator,
) -> None:
    n_rows = X.shape[0]
    for _ in range(steps):
        chosen = torch.rand(n_rows, generator=generator) < sample_rate
        opt.zero_grad(set_to_none=True)
        # Summed per-row losses: opacus's per-sample gradients are then each row's own.
        loss = functional.cross_entropy(wrapped(X[chosen]), y[chosen], reduction="sum")
        torch.autograd.backward(loss)
        opt.step()
