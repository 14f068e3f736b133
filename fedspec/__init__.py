"""fedspec: federated learning of a family of specialized models on a permissioned ledger."""

__version__ = "0.1.0"
