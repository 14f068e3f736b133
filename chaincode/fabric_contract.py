"""The fedspec contract declared with ``fabric-chaincode-python``'s contract API.

Every transaction of :data:`chaincode.contract.TRANSACTIONS` becomes a method with typed
``str`` parameters (the contract API reads signatures to build its metadata and to decode
arguments) that hands the shim's stub to :func:`chaincode.contract.invoke`. A failure raises,
so the contract API answers with an error response (status 500) whose message is the typed
error's wire form; nothing is endorsed.

Import this module only in the chaincode's own process: importing the shim configures the
root logger at DEBUG level.
"""

from __future__ import annotations

import inspect
from typing import Any

from fabric_chaincode_python.fabric_contract_api.contractapi import (
    Contract,
    ContractChaincode,
    TransactionContext,
)

from chaincode.contract import CONTRACT_NAME, TRANSACTIONS, Transaction, invoke


def _method(spec: Transaction) -> Any:
    async def method(self: Any, ctx: TransactionContext, *args: str) -> str:
        result = await invoke(ctx.get_stub(), spec.name, list(args))
        return result.decode()

    params = [
        inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD),
        inspect.Parameter(
            "ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=TransactionContext
        ),
        *(
            inspect.Parameter(p, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=str)
            for p in spec.params
        ),
    ]
    method.__signature__ = inspect.Signature(params, return_annotation=str)  # type: ignore[attr-defined]
    method.__annotations__ = {
        "ctx": TransactionContext,
        **dict.fromkeys(spec.params, str),
        "return": str,
    }
    method.__name__ = method.__qualname__ = spec.name
    method.__doc__ = spec.description
    return method


class FedspecContract(Contract):  # type: ignore[misc]  # the shim ships no type information
    Name = CONTRACT_NAME

    def get_evaluate_transactions(self) -> list[str]:
        return [name for name, spec in TRANSACTIONS.items() if spec.evaluate]


for _name, _spec in TRANSACTIONS.items():
    setattr(FedspecContract, _name, _method(_spec))


def new_chaincode() -> ContractChaincode:
    return ContractChaincode.new_chaincode(FedspecContract())
