"""Orchestration layer: the round protocol engine (node agents, coordinator) and the Prefect
flows that run it. Imports the application layer and the adapters, never the interface."""
