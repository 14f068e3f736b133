"""Secure aggregation's cost per round against plain summation, measured in the same run.

For a vector the size of the demo's digits MLP (64 → 64 → 10, counted from the model itself)
and 10, 50 and 100 nodes, all parties run in one process (:func:`federated.secagg.simulate`):

- client: key generation, sharing and decrypting peers' shares (``setup``), then masking
  (``mask``), mean per node;
- server: unmasking, with no dropout and with 10 % of the nodes dropping after they dealt
  their shares (their pairwise masks must be rebuilt);
- bytes a node sends and receives, against the float32 vector it would send in the clear.

Baseline: the coordinator's plain sum of the N float32 vectors
(:func:`federated.strategies.aggregate.weighted_mean`), timed in the same run.

Run: ``.venv/bin/python -m benchmarks.secagg [--nodes 10 50 100] [--repeat 3]``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np

from federated.secagg import simulate
from federated.strategies import aggregate

DEFAULT_NODES = (10, 50, 100)


def digits_mlp_parameters() -> int:
    """Parameters of the demo's digits MLP (``hidden_sizes: [64]``, 64 features, 10 labels)."""
    from federated.models.torch_nets import build_mlp  # torch: imported only here

    return sum(p.numel() for p in build_mlp(64, [64], 10).parameters())


def best_of(repeat: int, fn: Callable[[], object]) -> tuple[float, object]:
    """The fastest of ``repeat`` timed calls, and the last call's value."""
    best, value = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        value = fn()
        best = min(best, time.perf_counter() - start)
    return best, value


def run(nodes: int, dimension: int, repeat: int, seed: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    inputs = {f"node-{i:03d}": rng.normal(0, 0.05, dimension) for i in range(nodes)}
    float32 = [[v.astype(np.float32)] for v in inputs.values()]
    plain, _ = best_of(20, lambda: aggregate.weighted_mean(float32, [1.0] * nodes))
    threshold = nodes // 2 + 1
    dropped = sorted(inputs)[: nodes // 10]
    timings: dict[str, list[float]] = {"setup": [], "mask": [], "unmask": [], "unmask_drop": []}
    bytes_sent = bytes_received = 0.0
    for r in range(repeat):
        full = simulate(inputs, threshold=threshold, seed=seed + r)
        drop = simulate(inputs, threshold=threshold, dropped=dropped, seed=seed + r)
        timings["setup"].append(full.timings["client_setup"])
        timings["mask"].append(full.timings["client_mask"])
        timings["unmask"].append(full.timings["server_unmask"])
        timings["unmask_drop"].append(drop.timings["server_unmask"])
        bytes_sent, bytes_received = full.bytes_per_node["sent"], full.bytes_per_node["received"]
    best = {k: min(v) for k, v in timings.items()}
    return {
        "nodes": nodes,
        "threshold": threshold,
        "dropped": len(dropped),
        "plain_sum_s": plain,
        **{f"{k}_s": v for k, v in best.items()},
        "sent": bytes_sent,
        "received": bytes_received,
        "plain_bytes": dimension * 4,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, nargs="+", default=list(DEFAULT_NODES))
    parser.add_argument("--repeat", type=int, default=3, help="repetitions below 100 nodes")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    dimension = digits_mlp_parameters()
    print(f"vector: {dimension} parameters (digits MLP 64→64→10), k = 32, t = ⌊n/2⌋ + 1")
    header = (
        f"{'n':>4} {'t':>3} {'plain sum':>10} {'setup/node':>11} {'mask/node':>10} {'× plain':>8} "
        f"{'unmask':>9} {'× plain':>8} {'unmask 10%':>11} {'× plain':>8} "
        f"{'sent/node':>10} {'recv/node':>10} {'× plain':>8}"
    )
    print(header)
    for nodes in args.nodes:
        repeat = 1 if nodes >= 100 else args.repeat
        row = run(nodes, dimension, repeat, args.seed)
        plain = row["plain_sum_s"]
        print(
            f"{nodes:>4} {row['threshold']:>3} {plain * 1e3:>8.3f}ms "
            f"{row['setup_s'] * 1e3:>9.1f}ms {row['mask_s'] * 1e3:>8.2f}ms "
            f"{(row['setup_s'] + row['mask_s']) / plain:>8.0f} "
            f"{row['unmask_s'] * 1e3:>7.1f}ms {row['unmask_s'] / plain:>8.0f} "
            f"{row['unmask_drop_s'] * 1e3:>9.1f}ms {row['unmask_drop_s'] / plain:>8.0f} "
            f"{row['sent'] / 1024:>8.1f}KB {row['received'] / 1024:>8.1f}KB "
            f"{row['sent'] / row['plain_bytes']:>8.2f}"
        )
    print(
        "setup/node: keys, Shamir sharing, AES-GCM of shares, decrypting the peers' shares; "
        "× plain: (setup + mask) of one node, unmasking, and unmasking with 10 % dropped, each "
        "against the coordinator's plain float32 sum of all n vectors; sent × plain: against "
        "the float32 vector a node sends in the clear."
    )


if __name__ == "__main__":
    main()
