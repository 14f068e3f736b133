"""fedspec: registry."""
