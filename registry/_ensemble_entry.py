"""The file MLflow runs to load a fedspec ensemble ("models from code", no pickle).

``mlflow.pyfunc.load_model`` executes this file; the ensemble's ``load_context`` then checks
every member's bytes against the sha256 in the model's config before decoding them.
"""

import mlflow

from registry.ensemble import FedspecEnsemble

mlflow.models.set_model(FedspecEnsemble())
