"""A throw-away directory for a benchmark run, with Prefect's local API kept inside it."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def bench_dir(prefix: str, *, fedspec_home: bool = True) -> Path:
    """A fresh temporary directory; Prefect's database (and, with ``fedspec_home``, fedspec's
    home) inside it, so that a benchmark never touches the user's own stores."""
    root = Path(tempfile.mkdtemp(prefix=prefix))
    os.environ.update(
        PREFECT_HOME=str(root / "prefect"),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_LOGGING_LEVEL="WARNING",
        # The local API starts slowly on 2 busy cores; Prefect's default gives up first.
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="180",
        MLFLOW_DISABLE_TELEMETRY="true",
    )
    if fedspec_home:
        os.environ["FEDSPEC_HOME"] = str(root)
    return root
