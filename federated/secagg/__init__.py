"""Secure aggregation's protocol core (Bonawitz et al. 2017, SecAgg+ of Bell et al. 2020,
here with every node paired with every other): the coordinator learns only the sum of the
surviving nodes' inputs.

A pure library with no I/O: :class:`SecAggClient` is a node's side, :func:`unmask` the
coordinator's, :func:`simulate` runs all parties in one process. The messages, the
guarantee and what is not wired yet are in ``docs/privacy.md`` ("Secure aggregation").
"""

from federated.secagg.client import SecAggClient
from federated.secagg.context import RoundContext, seeded_entropy, system_entropy
from federated.secagg.encoding import FixedPoint
from federated.secagg.keys import KeyDirectory, NodeKeys, PublicKeys, agree
from federated.secagg.messages import MaskedInput, ShareBundle, UnmaskResponse
from federated.secagg.params import SecAggParams, check_threshold
from federated.secagg.simulation import SimulationResult, simulate
from federated.secagg.unmasking import ShareRejection, UnmaskResult, check_masked, unmask

__all__ = [
    "FixedPoint",
    "KeyDirectory",
    "MaskedInput",
    "NodeKeys",
    "PublicKeys",
    "RoundContext",
    "SecAggClient",
    "SecAggParams",
    "ShareBundle",
    "ShareRejection",
    "SimulationResult",
    "UnmaskResponse",
    "UnmaskResult",
    "agree",
    "check_masked",
    "check_threshold",
    "seeded_entropy",
    "simulate",
    "system_entropy",
    "unmask",
]
