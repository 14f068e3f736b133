"""``torch-mlp`` and ``torch-cnn``: torch classifiers in the adapter shape (CPU only).

Parameters are the module's ``state_dict`` arrays in order, what FedAvg-style strategies
average. Serialized as safetensors (float32, exact) plus the hyper-parameters as JSON.
"""

from __future__ import annotations

import math
import secrets
from abc import abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Self

import numpy as np
import torch
from torch import nn

from federated.errors import IncompatibleModelError, InvalidInputError, NotFittedError
from federated.models.base import (
    ParametricClassifier,
    check_parameters,
    normalized_probabilities,
)
from federated.models.inputs import check_features, check_labels, encode_labels
from federated.models.serialization import pack, unpack
from federated.models.torch_nets import (
    build_cnn,
    build_mlp,
    reset_parameters,
    torch_threads,
    train_classifier,
    train_classifier_dp_sgd,
)
from federated.types import NDArray, NDArrays

_OPTIMIZERS = ("adam", "sgd")
_PREDICT_CHUNK = 4096  # rows per forward pass at prediction: bounds memory for 28×28 CNNs


class TorchClassifier(ParametricClassifier):
    """Shared training, prediction, parameters and serialization of the torch families.

    ``num_threads`` (default 1) is torch's intra-op thread count during ``fit`` and
    prediction, restored afterwards; ``None`` leaves torch's setting alone. These networks
    are small: one thread was fastest here, and several threads slowed down 2–20× when
    other processes shared the cores.

    Subclasses define the network (``_build``) and where the input width comes from
    (``_declared_inputs``); ``n_features_in_`` is the flattened input width once known.
    """

    classes: Sequence[int] | None
    epochs: int
    batch_size: int
    learning_rate: float
    optimizer: str
    weight_decay: float
    proximal_mu: float
    warm_start: bool
    random_state: int | None
    num_threads: int | None

    module_: nn.Module
    n_features_in_: int
    train_loss_: float
    local_steps_: int
    control_correction_: NDArrays | None = None

    @abstractmethod
    def _declared_inputs(self) -> int | None:
        """Input width fixed by hyper-parameters, if any."""

    @abstractmethod
    def _build(self, n_inputs: int, n_outputs: int) -> nn.Module:
        """The untrained network for ``n_inputs`` features and ``n_outputs`` classes."""

    def _resolved_params(self) -> dict[str, Any]:
        """Hyper-parameters with what fit inferred filled in (stored in the bytes)."""
        return {**self.get_params(), "classes": self.classes_.tolist()}

    def _as_rows(self, X: object) -> object:
        """Input reshaped to ``(n, features)`` before validation; the CNN flattens images."""
        return X

    def _check_hyperparameters(self) -> None:
        if self.optimizer not in _OPTIMIZERS:
            raise InvalidInputError(f"{self.family}: optimizer must be one of {_OPTIMIZERS}")
        if self.epochs < 0 or self.batch_size < 1 or self.learning_rate <= 0:
            raise InvalidInputError(
                f"{self.family}: need epochs >= 0, batch_size >= 1 and learning_rate > 0"
            )
        if self.proximal_mu < 0:
            raise InvalidInputError(f"{self.family}: proximal_mu must be >= 0")

    def _generator(self) -> torch.Generator:
        generator = torch.Generator()
        if self.random_state is None:
            generator.seed()
        else:
            generator.manual_seed(self.random_state)
        return generator

    def _check_X(self, X: object, *, fitting: bool = False) -> NDArray:
        expected = self._declared_inputs()
        if expected is None and hasattr(self, "module_") and (self.warm_start or not fitting):
            expected = self.n_features_in_
        return check_features(self._as_rows(X), n_features=expected, family=self.family)

    def _initialize(self, n_inputs: int, classes: NDArray, generator: torch.Generator) -> None:
        module = self._build(n_inputs, int(classes.size))
        reset_parameters(module, generator)
        module.eval()
        self.module_, self.classes_, self.n_features_in_ = module, classes, n_inputs

    def _ensure_module(self) -> None:
        """Build seeded initial weights from the hyper-parameters when there are none yet."""
        if hasattr(self, "module_"):
            return
        n_inputs = self._declared_inputs()
        if n_inputs is None or (self.classes is None):
            raise NotFittedError(
                f"{self.family}: no network yet; declare `classes` and the input size "
                f"hyper-parameter, or fit first"
            )
        self._initialize(n_inputs, self._resolve_classes(None), self._generator())

    def fit(self, X: NDArray, y: NDArray) -> Self:
        """Train for ``epochs`` passes, from the current parameters when ``warm_start``."""
        self._check_hyperparameters()
        features = self._check_X(X, fitting=True)
        labels = check_labels(y, n_rows=features.shape[0], family=self.family)
        classes = self._resolve_classes(labels)
        targets = encode_labels(labels, classes, family=self.family)
        generator = self._generator()
        reuse = (
            self.warm_start
            and hasattr(self, "module_")
            and np.array_equal(self.classes_, classes)
            and self.n_features_in_ == features.shape[1]
        )
        if not reuse:
            self._initialize(features.shape[1], classes, generator)
        # Optimizer steps this fit takes: SCAFFOLD's K in its control-variate update.
        self.local_steps_ = self.epochs * math.ceil(features.shape[0] / self.batch_size)
        with torch_threads(self.num_threads), self._corrected_gradients():
            self.train_loss_ = train_classifier(
                self.module_,
                torch.from_numpy(features.astype(np.float32)),
                torch.from_numpy(targets),
                epochs=self.epochs,
                batch_size=self.batch_size,
                optimizer=self.optimizer,
                learning_rate=self.learning_rate,
                weight_decay=self.weight_decay,
                proximal_mu=self.proximal_mu,
                generator=generator,
            )
        return self

    def set_control_correction(self, correction: NDArrays | None) -> Self:
        """SCAFFOLD's drift correction ``c − c_i`` (``get_parameters`` order): every gradient
        of the next ``fit`` becomes ``g + c − c_i``; ``None`` switches it off.

        Not a hyper-parameter: it changes every round and is no part of the saved model.
        """
        if correction is None:
            self.control_correction_ = None
            return self
        self._ensure_module()
        state = self.module_.state_dict()
        check_parameters(self.family, correction, [tuple(t.shape) for t in state.values()])
        self.control_correction_ = [np.array(c, dtype=np.float32) for c in correction]
        return self

    @contextmanager
    def _corrected_gradients(self) -> Iterator[None]:
        """Add the control correction to each parameter's gradient while training.

        A gradient hook rather than a term in the loss: the correction is a constant vector
        added to ``g``, exactly SCAFFOLD's ``y ← y − η(g − c_i + c)`` step under SGD, and the
        training loop (FedProx's term, the optimizer) stays the same for every strategy.
        """
        if self.control_correction_ is None:
            yield
            return
        by_name = dict(zip(self.module_.state_dict(), self.control_correction_, strict=True))
        handles = [
            # torch ships Tensor.register_hook without annotations.
            param.register_hook(_adding(torch.from_numpy(by_name[name])))  # type: ignore[no-untyped-call]
            for name, param in self.module_.named_parameters()
        ]
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()

    def fit_dp_sgd(
        self,
        X: NDArray,
        y: NDArray,
        *,
        noise_multiplier: float,
        max_grad_norm: float,
        sample_rate: float,
        steps: int,
        noise_seed: int | None = None,
    ) -> Self:
        """Train by DP-SGD (:func:`train_classifier_dp_sgd`) instead of ``epochs`` passes:
        ``steps`` Poisson-sampled steps with per-sample clipping and Gaussian noise, from the
        current parameters. ``batch_size``, ``epochs`` and ``proximal_mu`` do not apply.

        ``noise_seed`` seeds the batches and the noise and must stay ``None`` (OS entropy)
        outside tests. ``train_loss_`` is not set: it would be a data-dependent release."""
        self._check_hyperparameters()
        features = self._check_X(X, fitting=True)
        labels = check_labels(y, n_rows=features.shape[0], family=self.family)
        classes = self._resolve_classes(labels)
        targets = encode_labels(labels, classes, family=self.family)
        reuse = (
            self.warm_start
            and hasattr(self, "module_")
            and np.array_equal(self.classes_, classes)
            and self.n_features_in_ == features.shape[1]
        )
        if not reuse:
            self._initialize(features.shape[1], classes, self._generator())
        secret = torch.Generator()
        secret.manual_seed(secrets.randbits(63) if noise_seed is None else noise_seed)
        with torch_threads(self.num_threads):
            train_classifier_dp_sgd(
                self.module_,
                torch.from_numpy(features.astype(np.float32)),
                torch.from_numpy(targets),
                noise_multiplier=noise_multiplier,
                max_grad_norm=max_grad_norm,
                sample_rate=sample_rate,
                steps=steps,
                optimizer=self.optimizer,
                learning_rate=self.learning_rate,
                weight_decay=self.weight_decay,
                generator=secret,
            )
        return self

    def predict_proba(self, X: NDArray) -> NDArray:
        """Softmax of the logits, float64, one column per declared class."""
        self._require_fitted("module_")
        features = torch.from_numpy(self._check_X(X).astype(np.float32))
        with torch.inference_mode(), torch_threads(self.num_threads):
            chunks = [
                torch.softmax(self.module_(features[i : i + _PREDICT_CHUNK]).double(), dim=1)
                for i in range(0, features.shape[0], _PREDICT_CHUNK)
            ]
        # softmax subtracts the row's maximum (log-sum-exp), so large finite logits give
        # finite rows; NaN or inf logits (diverged weights) raise PredictionError.
        return normalized_probabilities(torch.cat(chunks).numpy(), self.family)

    def get_parameters(self) -> NDArrays:
        """The ``state_dict`` arrays (float32), seeded initial weights if not fitted yet."""
        self._ensure_module()
        return [t.detach().cpu().numpy().copy() for t in self.module_.state_dict().values()]

    def set_parameters(self, parameters: NDArrays) -> Self:
        """Load weight arrays in ``get_parameters`` order (cast to float32)."""
        self._ensure_module()
        state = self.module_.state_dict()
        check_parameters(self.family, parameters, [tuple(t.shape) for t in state.values()])
        loaded = {
            name: torch.from_numpy(np.array(array, dtype=np.float32))
            for name, array in zip(state, parameters, strict=True)
        }
        self.module_.load_state_dict(loaded)
        return self

    def to_bytes(self) -> bytes:
        """safetensors of the ``state_dict`` plus the resolved hyper-parameters as JSON."""
        self._require_fitted("module_")
        arrays = {name: t.detach().cpu().numpy() for name, t in self.module_.state_dict().items()}
        return pack(self.family, self._resolved_params(), arrays)

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        """Rebuild the model from :meth:`to_bytes` output; other families raise."""
        hyperparameters, arrays = unpack(data, cls.family)
        try:
            model = cls(**hyperparameters)
        except TypeError as exc:
            raise IncompatibleModelError(f"{cls.family}: unknown hyper-parameters: {exc}") from exc
        model._ensure_module()
        expected = model.module_.state_dict()
        if set(expected) != set(arrays):
            raise IncompatibleModelError(
                f"{cls.family}: stored arrays {sorted(arrays)} do not match the network"
            )
        # safetensors orders arrays by name; the network's own order is the parameter order.
        return model.set_parameters([arrays[name] for name in expected])


def _adding(correction: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """A gradient hook that adds ``correction`` to the gradient it receives."""

    def hook(grad: torch.Tensor) -> torch.Tensor:
        return grad + correction

    return hook


class TorchMLPClassifier(TorchClassifier):
    """``torch-mlp``: a multi-layer perceptron over tabular rows or flattened images.

    ``n_features`` (``None``: taken from the first ``fit``) and ``classes`` fix the shape;
    declare both to get initial parameters before any fit. ``proximal_mu`` > 0 adds the
    FedProx term μ/2·‖w − w_global‖², ``w_global`` being the weights ``fit`` started from.
    """

    family = "torch-mlp"

    def __init__(
        self,
        *,
        classes: Sequence[int] | None = None,
        n_features: int | None = None,
        hidden_sizes: Sequence[int] = (64,),
        epochs: int = 10,
        batch_size: int = 32,
        learning_rate: float = 1e-3,
        optimizer: str = "adam",
        weight_decay: float = 0.0,
        proximal_mu: float = 0.0,
        warm_start: bool = True,
        random_state: int | None = None,
        num_threads: int | None = 1,
    ) -> None:
        self.classes = classes
        self.n_features = n_features
        self.hidden_sizes = hidden_sizes
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.optimizer = optimizer
        self.weight_decay = weight_decay
        self.proximal_mu = proximal_mu
        self.warm_start = warm_start
        self.random_state = random_state
        self.num_threads = num_threads

    def _declared_inputs(self) -> int | None:
        return self.n_features

    def _build(self, n_inputs: int, n_outputs: int) -> nn.Module:
        return build_mlp(n_inputs, self.hidden_sizes, n_outputs)

    def _resolved_params(self) -> dict[str, Any]:
        return {**super()._resolved_params(), "n_features": self.n_features_in_}


class TorchCNNClassifier(TorchClassifier):
    """``torch-cnn``: a small CNN for 1-channel square images of side ``image_size``.

    ``X`` may be ``(n, s*s)``, ``(n, s, s)`` or ``(n, 1, s, s)``. ``image_size`` ``None``
    takes the side from the first ``fit`` (the width must be a perfect square).
    ``channels`` lists the conv blocks' widths; each block halves the side.
    """

    family = "torch-cnn"

    def __init__(
        self,
        *,
        classes: Sequence[int] | None = None,
        image_size: int | None = None,
        channels: Sequence[int] = (16, 32),
        epochs: int = 10,
        batch_size: int = 32,
        learning_rate: float = 1e-3,
        optimizer: str = "adam",
        weight_decay: float = 0.0,
        proximal_mu: float = 0.0,
        warm_start: bool = True,
        random_state: int | None = None,
        num_threads: int | None = 1,
    ) -> None:
        self.classes = classes
        self.image_size = image_size
        self.channels = channels
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.optimizer = optimizer
        self.weight_decay = weight_decay
        self.proximal_mu = proximal_mu
        self.warm_start = warm_start
        self.random_state = random_state
        self.num_threads = num_threads

    def _declared_inputs(self) -> int | None:
        return None if self.image_size is None else self.image_size**2

    def _as_rows(self, X: object) -> object:
        array = np.asarray(X)
        if array.ndim == 4 and array.shape[1] == 1:
            array = array[:, 0]
        if array.ndim == 3:
            if array.shape[1] != array.shape[2]:
                raise InvalidInputError(f"{self.family}: images must be square, got {array.shape}")
            return array.reshape(array.shape[0], -1)
        return X  # rows already, or something check_features refuses with a clear message

    def _build(self, n_inputs: int, n_outputs: int) -> nn.Module:
        side = math.isqrt(n_inputs)
        if side * side != n_inputs:
            raise IncompatibleModelError(
                f"{self.family}: {n_inputs} features are not a square image; set image_size"
            )
        if side < 2 ** len(self.channels):
            raise InvalidInputError(
                f"{self.family}: image side {side} is too small for {len(self.channels)} "
                f"pooling blocks"
            )
        return build_cnn(side, self.channels, n_outputs)

    def _resolved_params(self) -> dict[str, Any]:
        return {**super()._resolved_params(), "image_size": math.isqrt(self.n_features_in_)}
