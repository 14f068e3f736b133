"""fedspec: federated learning of a family of specialized models on a permissioned ledger."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("fedspec")
except PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"
