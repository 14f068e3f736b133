"""Every party of one secure aggregation in one process: for tests and the benchmark."""

from __future__ import annotations

import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from federated.secagg.client import SecAggClient
from federated.secagg.context import Entropy, seeded_entropy, system_entropy
from federated.secagg.encoding import FixedPoint
from federated.secagg.keys import KeyDirectory
from federated.secagg.messages import MaskedInput, ShareBundle, UnmaskResponse
from federated.secagg.params import SecAggParams
from federated.secagg.unmasking import UnmaskResult, unmask
from federated.types import NDArray


@dataclass(frozen=True)
class SimulationResult:
    """The unmasking result, the messages the coordinator saw, timings and traffic.

    ``timings`` (seconds): ``client_setup`` (keys, shares, decrypting peers' shares) and
    ``client_mask`` are means per node; ``server_unmask`` is the coordinator's unmasking.
    ``bytes_per_node``: mean bytes a node sends (``sent``) and receives (``received``).
    """

    result: UnmaskResult
    masked: Mapping[str, MaskedInput]
    timings: Mapping[str, float]
    bytes_per_node: Mapping[str, float]


def simulate(
    inputs: Mapping[str, NDArray],
    *,
    threshold: int,
    dropped: Collection[str] = (),
    silent: Collection[str] = (),
    encoding: FixedPoint | None = None,
    profile_id: str = "simulation",
    round_: int = 1,
    seed: int | None = None,
) -> SimulationResult:
    """Run one round over ``inputs`` (node id → vector, all the same size).

    ``dropped`` nodes deal their shares, then never send a masked vector (their inputs are
    not in the sum; their pairwise masks are recovered). ``silent`` nodes send their masked
    vector, then do not answer the unmasking request (their inputs are in the sum; their
    self-masks are recovered from the others' shares). ``seed`` makes every key and mask
    reproducible (tests only: see :func:`seeded_entropy`).
    """
    dimension = len(next(iter(inputs.values())).ravel())
    params = SecAggParams.create(
        profile_id, round_, list(inputs), threshold=threshold, dimension=dimension,
        encoding=encoding,
    )  # fmt: skip
    entropy: Entropy = system_entropy if seed is None else seeded_entropy(seed)
    n = len(params.cohort)
    sent = dict.fromkeys(params.cohort, 0)
    received = dict.fromkeys(params.cohort, 0)

    start = time.perf_counter()
    clients = {node: SecAggClient(params, node, entropy=entropy) for node in params.cohort}
    directory = KeyDirectory()
    for node, client in clients.items():
        keys = client.advertise()
        directory.register(keys, registrant=node)
        sent[node] += keys.nbytes
    for node in params.cohort:
        received[node] += sum(directory[v].nbytes for v in params.cohort if v != node)
    bundles: dict[str, ShareBundle] = {}
    for node, client in clients.items():
        bundles[node] = client.share_keys(directory)
        sent[node] += bundles[node].nbytes
    for node, client in clients.items():
        for dealer, bundle in bundles.items():
            if dealer != node:
                client.receive(bundle)
                received[node] += len(bundle.ciphertexts[node]) + 2 * 32
    setup = (time.perf_counter() - start) / n

    start = time.perf_counter()
    masked: dict[str, MaskedInput] = {}
    for node, client in clients.items():
        if node not in dropped:
            masked[node] = client.mask(inputs[node])
            sent[node] += masked[node].nbytes
    mask_time = (time.perf_counter() - start) / max(1, len(masked))

    survivors = sorted(masked)
    responses: dict[str, UnmaskResponse] = {}
    for node in survivors:
        received[node] += sum(len(v.encode()) for v in survivors)
        if node not in silent:
            responses[node] = clients[node].unmask_response(survivors)
            sent[node] += responses[node].nbytes

    start = time.perf_counter()
    result = unmask(params, directory, bundles, masked, responses)
    server = time.perf_counter() - start
    return SimulationResult(
        result=result,
        masked=masked,
        timings={"client_setup": setup, "client_mask": mask_time, "server_unmask": server},
        bytes_per_node={
            "sent": sum(sent.values()) / n,
            "received": sum(received.values()) / n,
        },
    )
