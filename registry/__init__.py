"""fedspec's MLflow layer: tracking layout, verified artifacts, model registry, evaluation.

Importing this package does not import MLflow (about 2 s); functions import it when called.
The pyfunc class lives in :mod:`registry.pyfunc`, which does import MLflow.

- :mod:`registry.tracking`: ``configure``, one experiment per profile, a parent run per
  round, a child run per node, params / metrics / tags / JSON and table artifacts.
- :mod:`registry.artifacts`: ``log_bytes`` and ``fetch_bytes`` (sha256-verified).
- :mod:`registry.models`: registered model per profile, versions tagged with their hash.
- :mod:`registry.promotion`: ``champion`` / ``challenger`` aliases from the objective.
- :mod:`registry.evaluation`: quality, latency, size and CPU-time metrics of a model.
"""

from registry.artifacts import fetch_bytes, log_bytes, log_json
from registry.errors import (
    ArtifactIntegrityError,
    ArtifactMissingError,
    EvaluationError,
    InvalidModelError,
    ModelNotFoundError,
    NotConfiguredError,
    RegistryError,
    TrackingError,
)
from registry.evaluation import evaluate_global_model
from registry.models import (
    ModelVersionInfo,
    fetch_model_bytes,
    find_version,
    get_version,
    load_pyfunc,
    record_ledger_commit,
    record_metrics,
    register_global_model,
    set_version_tags,
)
from registry.profiles import (
    Objective,
    load_global_adapter,
    model_hyperparameters,
    objective_of,
    prepare_features,
    resolve_hyperparameters,
    round_params,
)
from registry.promotion import AliasDecision, champion, decide_alias, promote
from registry.tracking import (
    TrackingConfig,
    configure,
    configure_embedded,
    end_run,
    find_round_run,
    log_metrics,
    log_params,
    log_table,
    node_run,
    node_runs,
    round_run,
    set_tags,
    start_node_run,
    start_round_run,
)

__all__ = [
    "AliasDecision",
    "ArtifactIntegrityError",
    "ArtifactMissingError",
    "EvaluationError",
    "InvalidModelError",
    "ModelNotFoundError",
    "ModelVersionInfo",
    "NotConfiguredError",
    "Objective",
    "RegistryError",
    "TrackingConfig",
    "TrackingError",
    "champion",
    "configure",
    "configure_embedded",
    "decide_alias",
    "end_run",
    "evaluate_global_model",
    "fetch_bytes",
    "fetch_model_bytes",
    "find_round_run",
    "find_version",
    "get_version",
    "load_global_adapter",
    "load_pyfunc",
    "log_bytes",
    "log_json",
    "log_metrics",
    "log_params",
    "log_table",
    "model_hyperparameters",
    "node_run",
    "node_runs",
    "objective_of",
    "prepare_features",
    "promote",
    "record_ledger_commit",
    "record_metrics",
    "register_global_model",
    "resolve_hyperparameters",
    "round_params",
    "round_run",
    "set_tags",
    "set_version_tags",
    "start_node_run",
    "start_round_run",
]
