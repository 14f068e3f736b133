"""Interface layer: the end-to-end demo, its consortium setup, the ledger tour, the family
comparison and the mixed-digits scenario that tests and benchmarks share.

Scenarios live here rather than in ``flows`` so the deployable flows hold only the protocol
engine and the Prefect flows.
"""
