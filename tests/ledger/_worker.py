"""A separate process writing to a shared embedded ledger (used by the concurrency tests)."""

from __future__ import annotations

import json
import sys

from ledger_client import Consortium, FedspecLedger, connect
from ledger_client.embedded.peer import EmbeddedLedger


def main() -> None:
    mode, ledger_path, consortium_dir, identity, *rest = sys.argv[1:]
    consortium = Consortium.load(consortium_dir)
    service = EmbeddedLedger(ledger_path, consortium)
    msp = consortium.identity(identity)
    ledger = FedspecLedger(
        connect(service, msp.identity, msp.signer).get_network("fedspec").get_contract("fedspec"),
        retries=50,
    )
    if mode == "transfer":
        to, count = rest[0], int(rest[1])
        for _ in range(count):
            ledger.transfer(to, 1)
        print(json.dumps({"done": count, "retried": ledger.conflicts_retried}))
    elif mode == "churn":  # submit until killed
        ledger.volunteer(rest[0])
        ledger.withdraw(rest[0])
        print("ready", flush=True)  # committing: from now on a kill lands among its writes
        while True:
            ledger.volunteer(rest[0])
            ledger.withdraw(rest[0])
    service.close()


if __name__ == "__main__":
    main()
