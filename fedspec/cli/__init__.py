"""The ``fedspec`` command line."""
