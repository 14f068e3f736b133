"""Run an expectation list on a frame with an ephemeral Great Expectations context.

Great Expectations is imported here, lazily (~4 s): modules that only describe suites or
summaries do not pay for it. Nothing is written to disk; analytics and progress bars are
off.
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from federated.validation.expectations import Expectation


def warm_up() -> None:
    """Import Great Expectations now (seconds, once per process), so that a node pays for it
    before a round's deadlines run, not inside its coordinator's window."""
    import great_expectations  # noqa: F401  # deferred until a node is about to need it


def _context() -> Any:
    # Deferred: loads great_expectations only when used.
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    config = DataContextConfig(
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False),
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
    )
    return gx.get_context(project_config=config, mode="ephemeral")


def run_expectations(
    frame: pd.DataFrame, expectations: list[Expectation], suite_name: str
) -> dict[str, Any]:
    """Great Expectations' suite result as plain JSON data (``BASIC`` result format)."""
    # Deferred: loads great_expectations only when used.
    import great_expectations as gx

    # A fresh context per call (~10 ms) keeps concurrent validations from sharing names.
    context = _context()
    batch_definition = (
        context.data_sources.add_pandas("node")
        .add_dataframe_asset("local")
        .add_batch_definition_whole_dataframe("all-rows")
    )
    suite = gx.ExpectationSuite(name=suite_name)
    for class_name, kwargs in expectations:
        suite.add_expectation(getattr(gx.expectations, class_name)(**kwargs))
    batch = batch_definition.get_batch(batch_parameters={"dataframe": frame})
    result = batch.validate(suite, result_format="BASIC")
    # Round-trip through JSON: the caller gets plain lists, dicts, numbers and strings.
    plain: dict[str, Any] = json.loads(json.dumps(result.to_json_dict(), default=str))
    return plain
