"""SCAFFOLD (Karimireddy et al., 2020, "SCAFFOLD: Stochastic Controlled Averaging for
Federated Learning", Algorithm 1 with option II control variates).

Under non-IID data each node's local steps drift towards its own optimum. SCAFFOLD gives the
server a control variate ``c`` (an estimate of the global gradient) and each node one of its
own, ``c_i`` (its local gradient); a node's local step is ``y ← y − η(g(y) − c_i + c)``, which
steers it along the global direction. After ``K`` local steps the node sets (option II)

    c_i⁺ = c_i − c + (x − y) / (K·η)

and returns ``Δy = y − x`` (as its parameters ``y``) and ``Δc_i = c_i⁺ − c_i``. The server
steps ``x ← x + η_g·mean(Δy)`` and ``c ← c + (|S|/N)·mean(Δc_i)``.

Where the state lives:

- ``c`` travels in ``GlobalModel.server_state["scaffold.c"]``, like FedAdam's moments: it is
  part of the exchanged global-model file (``state.scaffold.c.*`` tensors), so the hash the
  ledger records covers the parameters *and* the ``c`` the next round's nodes correct with;
  a coordinator cannot hand out a model with another ``c`` unnoticed.
- ``c_i`` stays at the node (in :func:`federated.simulation.run_simulation`: a dict by node
  id; in a real round: a file in the node's private state, :mod:`flows.control_variates`);
  only ``Δc_i`` leaves it, in ``FitResult.control_delta`` (in a real round: ``control.<i>``
  tensors of the update file whose hash the node commits, :mod:`federated.exchange`).

Choices: both means are weighted by ``num_examples``, as FedAvg's is, so that with
``η_g = 1`` and no correction SCAFFOLD is exactly FedAvg, and with every node in every round
``c`` stays the example-weighted mean of the ``c_i``. ``N`` is ``num_nodes`` when given (a
real round's coordinator gives the profile's volunteers unless the profile states it), else
the distinct nodes among the round's results and failures (a node that failed is still one
of the federation's nodes). A node that misses a round keeps its ``c_i``. The correction is
an SGD step: local training must use ``optimizer="sgd"`` (with Adam, ``(x − y)/(Kη)`` is no
gradient estimate).

Refused with ``IncompatibleModelError``: families without torch gradients, optimizers other
than SGD, and privacy (``Δc_i`` is a second, un-noised release of the node's gradients). The
ledger refuses the same profiles at proposal (``chaincode.schema.validate_scaffold``), and
``aggregation.secure`` too: its masked sum carries the weights only, so each ``Δc_i`` would
reach the coordinator in the clear. Behind :class:`~federated.strategies.screen.UpdateScreen`
an update without a usable ``Δc_i`` is that node's failure (:func:`check_control_delta`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import numpy as np

from federated.errors import IncompatibleModelError, InvalidUpdateError
from federated.strategies._common import (
    aggregated,
    array_parameters,
    array_updates,
    empty_round,
    like_current,
)
from federated.strategies.aggregate import global_norm, subtract, weighted_mean
from federated.types import (
    AggregateResult,
    FitFailure,
    FitResult,
    GlobalModel,
    NDArrays,
    Scalar,
    as_float_arrays,
)

CONTROL_KEY = "scaffold.c"
"""The ``server_state`` entry holding the server's control variate ``c``."""

TORCH_FAMILIES = frozenset({"torch-mlp", "torch-cnn"})
"""Families whose local training applies the control correction to its gradients."""


class Scaffold:
    """SCAFFOLD on the coordinator: FedAvg of the parameters (stepped by ``global_lr``) and
    the update of the control variate ``c`` in ``server_state``.

    ``global_lr`` is the paper's ``η_g`` (1 gives FedAvg's mean); ``num_nodes`` the
    federation's ``N`` for the ``|S|/N`` factor (``None``: the nodes the round saw).
    """

    name: ClassVar[str] = "scaffold"

    def __init__(self, *, global_lr: float = 1.0, num_nodes: int | None = None) -> None:
        if not global_lr > 0:
            raise ValueError(f"global_lr must be > 0, got {global_lr}")
        if num_nodes is not None and num_nodes < 1:
            raise ValueError(f"num_nodes must be >= 1, got {num_nodes}")
        self.global_lr = global_lr
        self.num_nodes = num_nodes

    def node_config(self, server_round: int) -> dict[str, Scalar]:
        """No scalar hyper-parameters: the correction comes from ``server_state`` and ``c_i``."""
        del server_round
        return {}

    def unwrapped(self) -> Scaffold:
        """Itself: a bare strategy."""
        return self

    def aggregate_fit(
        self,
        server_round: int,
        current: GlobalModel,
        results: Sequence[FitResult],
        failures: Sequence[FitFailure],
    ) -> AggregateResult:
        """``x + η_g·(mean(y_i) − x)`` and ``c + (|S|/N)·mean(Δc_i)``, example-weighted."""
        del server_round
        check_family(current.family)
        base = array_parameters(current, self.name)
        if not results:
            return empty_round(self.name, failures)
        updates = array_updates(base, results, self.name)
        control = server_control(current)
        deltas = [control_delta(result, base) for result in results]
        weights = [r.num_examples for r in results]
        averaged = weighted_mean(updates, weights)
        if self.global_lr == 1.0:
            stepped = averaged  # exactly FedAvg's mean, no round trip through a delta
        else:
            step = subtract(averaged, base)
            stepped = [
                x + self.global_lr * d for x, d in zip(as_float_arrays(base), step, strict=True)
            ]
        fraction = len(results) / self._federation_size(results, failures)
        mean_delta = weighted_mean(deltas, weights)
        control = [c + fraction * d for c, d in zip(control, mean_delta, strict=True)]
        # Stored in the model's dtype: c is a gradient-sized estimate, float32 is plenty,
        # and the exchanged file then grows by one model's size, not two.
        state = {**current.server_state, CONTROL_KEY: like_current(control, base)}
        model = GlobalModel(current.family, like_current(stepped, base), state)
        result = aggregated(model, self.name, results, failures)
        return result.with_metrics(
            {"control_norm": global_norm(control), "control_delta_norm": global_norm(mean_delta)}
        )

    def _federation_size(self, results: Sequence[FitResult], failures: Sequence[FitFailure]) -> int:
        seen = len({r.node_id for r in results} | {f.node_id for f in failures})
        if self.num_nodes is None:
            return seen
        if self.num_nodes < len(results):
            raise IncompatibleModelError(
                f"scaffold: {len(results)} results but num_nodes={self.num_nodes}",
                strategy=self.name,
            )
        return self.num_nodes

    def __repr__(self) -> str:
        return f"Scaffold(global_lr={self.global_lr}, num_nodes={self.num_nodes})"


def check_family(family: str) -> None:
    """Refuse a family whose training cannot apply SCAFFOLD's gradient correction."""
    if family not in TORCH_FAMILIES:
        raise IncompatibleModelError(
            f"scaffold corrects the gradients of local SGD steps; family {family!r} has no "
            f"such steps here (use {' or '.join(sorted(TORCH_FAMILIES))})",
            family=family,
            strategy=Scaffold.name,
        )


def server_control(current: GlobalModel) -> NDArrays:
    """``c`` from ``server_state`` (float64), zeros before the first SCAFFOLD round."""
    base = array_parameters(current, Scaffold.name)
    stored = current.server_state.get(CONTROL_KEY)
    if stored is None:
        return [np.zeros(np.shape(x)) for x in base]
    control = as_float_arrays(stored)
    if [a.shape for a in control] != [np.shape(x) for x in base]:
        raise IncompatibleModelError(
            f"scaffold: server_state[{CONTROL_KEY!r}] does not match the model's layer shapes",
            strategy=Scaffold.name,
        )
    return control


def control_delta(result: FitResult, base: NDArrays) -> NDArrays:
    """The result's ``Δc_i`` as float64, refused when missing, misshapen or not finite."""
    if result.control_delta is None:
        # A node that trained without SCAFFOLD (another flow, an older agent): its update
        # drifted uncorrected and it kept no c_i, so averaging it in would be silently wrong.
        raise InvalidUpdateError(
            "scaffold needs the node's control-variate change (control_delta); the update "
            "has none (it was trained without its c_i)",
            node_id=result.node_id,
        )
    delta = as_float_arrays(result.control_delta)
    if [a.shape for a in delta] != [np.shape(x) for x in base]:
        raise InvalidUpdateError(
            "control_delta does not match the model's layer shapes", node_id=result.node_id
        )
    if not all(np.isfinite(a).all() for a in delta):
        raise InvalidUpdateError("control_delta has NaN or inf", node_id=result.node_id)
    return delta


def check_control_delta(current: GlobalModel, result: FitResult) -> None:
    """Raise :class:`InvalidUpdateError` unless ``result`` carries a usable ``Δc_i`` for
    ``current`` (what :class:`~federated.strategies.screen.UpdateScreen` checks per node)."""
    control_delta(result, array_parameters(current, Scaffold.name))


def control_update(
    node_control: NDArrays,
    server: NDArrays,
    start: NDArrays,
    trained: NDArrays,
    *,
    steps: int,
    learning_rate: float,
) -> NDArrays:
    """Option II on the node: ``c_i⁺ = c_i − c + (x − y)/(K·η)``; returns ``Δc_i = c_i⁺ − c_i``.

    ``start`` is ``x`` (the global parameters the node started from), ``trained`` is ``y``.
    With no local step (``K = 0``) the node learnt nothing about its gradient: ``Δc_i = 0``.
    """
    if steps <= 0:
        return [np.zeros(np.shape(c)) for c in as_float_arrays(node_control)]
    scale = 1.0 / (steps * learning_rate)
    return [
        -c + (x - y) * scale
        for c, x, y in zip(
            as_float_arrays(server), as_float_arrays(start), as_float_arrays(trained), strict=True
        )
    ]
