"""fedspec: ledger_client."""
