"""fedspec's MLflow layer: tracking layout, verified artifacts, model registry, evaluation.

Importing this package does not import MLflow (about 2 s); functions import it when called.
The pyfunc class lives in :mod:`registry.pyfunc`, which does import MLflow.

- :mod:`registry.tracking`: ``configure``, one experiment per profile (one per profile and
  organization on a server with logins), a parent run per round, a child run per node,
  params / metrics / tags / JSON and table artifacts.
- :mod:`registry.artifacts`: ``log_bytes`` and ``fetch_bytes`` (sha256-verified).
- :mod:`registry.models`: registered model per profile, versions tagged with their hash.
- :mod:`registry.promotion`: ``champion`` / ``challenger`` aliases from the objective.
- :mod:`registry.evaluation`: quality, latency, size and CPU-time metrics of a model.

Names are exported lazily (PEP 562): ``from registry.matching import ...`` or ``from registry
import Objective`` loads only the module that defines the name, so ``fedspec model find``
does not pay for scikit-learn, pandas and SciPy (3 s) through :mod:`registry.evaluation`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fedspec.lazy import lazy_exports

if TYPE_CHECKING:
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

_EXPORTS = {
    "fetch_bytes": "registry.artifacts",
    "log_bytes": "registry.artifacts",
    "log_json": "registry.artifacts",
    "ArtifactIntegrityError": "registry.errors",
    "ArtifactMissingError": "registry.errors",
    "EvaluationError": "registry.errors",
    "InvalidModelError": "registry.errors",
    "ModelNotFoundError": "registry.errors",
    "NotConfiguredError": "registry.errors",
    "RegistryError": "registry.errors",
    "TrackingError": "registry.errors",
    "evaluate_global_model": "registry.evaluation",
    "ModelVersionInfo": "registry.models",
    "fetch_model_bytes": "registry.models",
    "find_version": "registry.models",
    "get_version": "registry.models",
    "load_pyfunc": "registry.models",
    "record_ledger_commit": "registry.models",
    "record_metrics": "registry.models",
    "register_global_model": "registry.models",
    "set_version_tags": "registry.models",
    "Objective": "registry.profiles",
    "load_global_adapter": "registry.profiles",
    "model_hyperparameters": "registry.profiles",
    "objective_of": "registry.profiles",
    "prepare_features": "registry.profiles",
    "resolve_hyperparameters": "registry.profiles",
    "round_params": "registry.profiles",
    "AliasDecision": "registry.promotion",
    "champion": "registry.promotion",
    "decide_alias": "registry.promotion",
    "promote": "registry.promotion",
    "TrackingConfig": "registry.tracking",
    "configure": "registry.tracking",
    "configure_embedded": "registry.tracking",
    "end_run": "registry.tracking",
    "find_round_run": "registry.tracking",
    "log_metrics": "registry.tracking",
    "log_params": "registry.tracking",
    "log_table": "registry.tracking",
    "node_run": "registry.tracking",
    "node_runs": "registry.tracking",
    "round_run": "registry.tracking",
    "set_tags": "registry.tracking",
    "start_node_run": "registry.tracking",
    "start_round_run": "registry.tracking",
}


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())

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
