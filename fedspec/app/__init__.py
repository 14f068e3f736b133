"""Application layer: settings, the consortium and its identities, profiles, bootstrap.

Below the orchestration (``flows``) and the interface (``fedspec.cli``, ``fedspec.demo``);
above the adapters (``ledger_client``, ``registry``, ``fabric_network``). Nothing here prints:
functions return data and raise :class:`fedspec.errors.FedspecError` subclasses.
"""
