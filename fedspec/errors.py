"""Errors of the ``fedspec`` application layer (CLI, settings, consortium, demo).

Hierarchy::

    FedspecError                 root: ``code`` is stable, ``str()`` is one readable line
    ├── ConsortiumError          CONSORTIUM_INVALID   (fedspec.app.consortium)
    └── SettingsError            CONFIG_INVALID       (fedspec.app.settings)

Errors from the ledger client (:mod:`ledger_client.errors`), the chaincode
(:mod:`chaincode.errors`) and the learning core (:mod:`federated.errors`) keep their own
hierarchies; the CLI turns all of them into one line and exit code 2.
"""

from __future__ import annotations


class FedspecError(Exception):
    code: str = "FEDSPEC_ERROR"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
