"""fedspec: flows."""
