"""Run the fedspec contract as a chaincode-as-a-service server (Fabric's ccaas builder).

Fabric's peer connects to this server; it reads ``CHAINCODE_ID`` (the package id the peer
installed) and ``CHAINCODE_SERVER_ADDRESS`` (host:port to listen on) from the environment,
plus ``CHAINCODE_TLS_KEY``/``CHAINCODE_TLS_CERT``/``CHAINCODE_TLS_CLIENT_CA`` file paths for TLS.
"""

from __future__ import annotations

import logging
import os
import sys


def main() -> int:
    cc_id = os.environ.get("CHAINCODE_ID", "")
    address = os.environ.get("CHAINCODE_SERVER_ADDRESS", "")
    if not cc_id or not address:
        print("fedspec chaincode: set CHAINCODE_ID and CHAINCODE_SERVER_ADDRESS", file=sys.stderr)
        return 2
    from chaincode import shim_fixes
    from chaincode.fabric_contract import new_chaincode

    shim_fixes.apply()

    # The shim turns the root logger up to DEBUG on import; a server logs warnings and errors.
    logging.getLogger().setLevel(os.environ.get("CHAINCODE_LOG_LEVEL", "WARNING"))
    chaincode = new_chaincode()
    chaincode.start(
        cc_id=cc_id,
        address=address,
        key=os.environ.get("CHAINCODE_TLS_KEY"),
        cert=os.environ.get("CHAINCODE_TLS_CERT"),
        client_ca_certs=os.environ.get("CHAINCODE_TLS_CLIENT_CA"),
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
