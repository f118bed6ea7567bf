"""Extra model inputs: codes learned on training rows, applied identically at serving, never a silent OTHER;
a transaction's extra fields encode to the very float32 training's columns encode to."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fraudops.errors import ConfigurationError
from fraudops.extras import RARE, ExtraFields, ExtraInputs, ExtraKind


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


# --- the same encoding online and offline ------------------------------------------------------------

#: Raw values as a bank's export and a client may give them: case, padding, numbers read as floats from
#: a CSV with gaps, empty text, missing values, numbers beyond float32, text that is no number.
RAW_CATEGORIES = [
    "Grocery",
    " grocery ",
    "GROCERY",
    "5411",
    5411,
    5411.0,
    "",
    "   ",
    None,
    np.nan,
    "never-seen",
]
RAW_NUMBERS = [30, 30.5, -0.0, 1e-40, 3.5e38, None, np.nan, "n/a", "12", 2**60 + 1]


def learned() -> ExtraInputs:
    frame = pd.DataFrame({"mcc": ["grocery"] * 30 + ["5411"] * 25 + ["Crypto"] * 21, "age": np.arange(76.0)})
    return ExtraInputs.learn(frame, numeric=["age"], categorical=["mcc"])


def test_a_transactions_extra_fields_encode_value_for_value_as_trainings_columns() -> None:
    extras = learned()
    values = list(zip(RAW_CATEGORIES * 10, (RAW_NUMBERS * 11)[: len(RAW_CATEGORIES) * 10], strict=True))
    frame = pd.DataFrame(
        {"mcc": [c for c, _ in values], "age": pd.Series([n for _, n in values], dtype=object)}
    )
    offline = extras.encode_frame(frame)  # training: columns of 110 rows (per distinct value, pandas)
    online = np.vstack(  # serving: one transaction's `extras` at a time (value by value)
        [extras.encode_rows([{"mcc": c, "age": n}]) for c, n in values]
    )
    np.testing.assert_array_equal(online, offline)  # NaN where NaN, every other bit equal
    # a column of text only (the common case) goes through pandas' distinct values: the same codes
    text = pd.DataFrame({"mcc": [c if isinstance(c, str) else None for c, _ in values]})
    np.testing.assert_array_equal(
        extras.encode_frame(text), np.vstack([extras.encode_rows([{"mcc": c}]) for c in text["mcc"]])
    )


def test_a_category_is_trimmed_case_folded_and_an_mcc_read_as_a_float_is_its_integer() -> None:
    extras = learned()
    codes = extras.encode_rows([{"mcc": value} for value in RAW_CATEGORIES])[:, 1]
    grocery, mcc = extras.categorical["mcc"]["grocery"], extras.categorical["mcc"]["5411"]
    assert codes[:6].tolist() == [grocery, grocery, grocery, mcc, mcc, mcc]
    assert np.isnan(codes[6:10]).all(), "empty, blank and missing are missing, not a category"
    assert codes[10] == RARE, "a category never seen in training gets the learned rare code"


def test_numbers_beyond_float32_and_text_that_is_no_number_are_missing() -> None:
    encoded = learned().encode_rows([{"age": value} for value in RAW_NUMBERS])[:, 0]
    assert encoded[:4].tolist() == [30.0, 30.5, 0.0, np.float32(1e-40)]
    assert np.isnan(encoded[4:8]).all()
    assert encoded[8] == 12.0, "a file's number written as text is that number (the API takes numbers only)"
    assert encoded[9] == np.float32(2**60)


def test_a_transaction_without_extras_is_missing_every_extra_input() -> None:
    assert np.isnan(learned().encode_rows([None, {}, {"other": "x"}])).all()


def test_names_that_cannot_be_api_fields_are_refused_when_training() -> None:
    frame = pd.DataFrame({"POS entry": ["chip"] * 30})
    with pytest.raises(ValueError, match="1 to 64 letters, digits and underscores"):
        ExtraInputs.learn(frame, numeric=[], categorical=["POS entry"])


def test_an_artifact_encoded_before_serving_took_extra_inputs_is_refused() -> None:
    before = {"numeric": ["age"], "categorical": {"mcc": {"5411.0": 1}}}  # no encoding_version: version 1
    with pytest.raises(ConfigurationError, match="retrain"):
        ExtraInputs.from_dict(before)


def test_a_value_of_the_wrong_kind_for_its_model_input_is_refused_with_its_field() -> None:
    fields = learned().fields
    assert fields.refusal({"age": "thirty"}) == (
        "extras.age",
        "must be a number or null: age is a numeric model input",
    )
    assert fields.refusal({"mcc": 5411.0}) == (
        "extras.mcc",
        "must be text or null: mcc is a categorical model input",
    )
    assert fields.refusal({"age": None, "mcc": None, "unread": "kept"}) is None


def test_variants_that_read_one_field_as_different_kinds_cannot_be_served_together() -> None:
    numeric = ExtraFields({"mcc": ExtraKind.NUMERIC})
    with pytest.raises(ConfigurationError, match="'mcc' is categorical for stable and numeric for canary"):
        ExtraFields.union({"stable": learned().fields, "canary": numeric})
    assert ExtraFields.union({"stable": learned().fields, "canary": ExtraFields()}) == learned().fields
