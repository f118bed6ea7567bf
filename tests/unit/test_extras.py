"""Extra model inputs: codes learned on training rows, applied identically at serving, never a silent OTHER."""

from __future__ import annotations

import numpy as np
import pandas as pd

from fraudops.extras import RARE, ExtraInputs


def training_rows() -> pd.DataFrame:
    return pd.DataFrame({"mcc": ["5411"] * 50 + ["5732"] * 30 + ["7995"] * 3, "age": np.arange(83.0)})


def test_frequent_values_get_their_own_codes_by_frequency_and_rare_ones_share_one() -> None:
    extras = ExtraInputs.learn(training_rows(), numeric=["age"], categorical=["mcc"])
    assert extras.categorical["mcc"] == {"5411": 1, "5732": 2}
    assert extras.names == ["extra_age", "extra_mcc"]
    encoded = extras.encode({"mcc": ["5411", "7995", "9999", None], "age": [30, "n/a", 41.5, None]}, 4)
    assert encoded[:, 1].tolist()[:3] == [1.0, RARE, RARE] and np.isnan(encoded[3, 1])
    assert encoded[0, 0] == 30.0 and np.isnan(encoded[1, 0]) and encoded[2, 0] == 41.5


def test_case_and_padding_do_not_change_a_code() -> None:
    frame = pd.DataFrame({"entry": ["Chip"] * 25 + ["contactless"] * 25})
    extras = ExtraInputs.learn(frame, numeric=[], categorical=["entry"])
    encoded = extras.encode({"entry": ["chip", " CHIP ", "Contactless", "magstripe"]}, 4)[:, 0]
    assert encoded[0] == encoded[1] == extras.categorical["entry"]["chip"]
    assert encoded[2] == extras.categorical["entry"]["contactless"] and encoded[3] == RARE


def test_the_mapping_round_trips_through_the_artifact_metadata() -> None:
    extras = ExtraInputs.learn(training_rows(), numeric=["age"], categorical=["mcc"])
    assert ExtraInputs.from_dict(extras.as_dict()) == extras
    assert not ExtraInputs.from_dict({})
