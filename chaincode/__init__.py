"""The fedspec chaincode: consortium rules as one Fabric contract.

The contract logic (this package minus :mod:`chaincode.fabric_contract` and
:mod:`chaincode.server`) depends only on a small stub protocol
(:class:`chaincode.context.Stub`) that Fabric's Python shim and fedspec's embedded peer both
provide, so a real Fabric peer and the embedded ledger run the same code.
"""

from chaincode.contract import CONTRACT_NAME, TRANSACTIONS, Transaction, invoke
from chaincode.errors import ChaincodeError

__all__ = ["CONTRACT_NAME", "TRANSACTIONS", "ChaincodeError", "Transaction", "invoke"]
