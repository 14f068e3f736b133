"""The file MLflow runs to load a fedspec global model ("models from code").

``mlflow.pyfunc.load_model`` and ``mlflow models serve`` execute this file instead of
unpickling a Python object: the logged model carries no pickle.
"""

import mlflow

from registry.pyfunc import FedspecGlobalModel

mlflow.models.set_model(FedspecGlobalModel())
