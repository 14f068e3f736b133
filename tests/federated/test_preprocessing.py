import numpy as np
import pytest

from federated.errors import InvalidInputError
from federated.preprocessing import scale_features


def test_scaling_uses_the_profile_bounds_not_the_data() -> None:
    X = np.array([[0.0, 8.0, 16.0], [4.0, 20.0, -1.0]])
    out = scale_features(X, {"shape": [3], "min": "0", "max": "16"})
    assert out.dtype == np.float32
    assert np.allclose(out, [[0.0, 0.5, 1.0], [0.25, 1.0, 0.0]])  # outside values are clipped
    cols = {
        "columns": [
            {"name": "a", "dtype": "float", "min": "-1", "max": "1"},
            {"name": "b", "dtype": "float", "min": "0", "max": "10"},
        ]
    }
    assert np.allclose(scale_features([[0.0, 5.0]], cols), [[0.5, 0.5]])
    assert np.array_equal(
        scale_features([[3.0, 4.0]], {}), np.array([[3.0, 4.0]], dtype=np.float32)
    )
    with pytest.raises(InvalidInputError):
        scale_features([[1.0, 2.0, 3.0]], cols)
