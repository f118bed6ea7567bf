"""The time-aware split: burn-in, tuning train / validation, final train, held-out test, with label-delay gaps.

    |-- burn-in --|-- tuning train --| gap |-- validation --| gap |-- held-out test --|
                  |------------- final train -------------|
                  |-- fresh start --|

The burn-in lets the state warm up without being trained on: in a history that starts on a fixed
date every customer, terminal and device is "new" at first, and a model trained on those rows
learns the history's start, not fraud. Rows of the burn-in still pass through the feature replay.

An online engine that starts without state (a new deployment, the e2e cluster, a scorer whose
stored state is gone) is in that same cold state, with no calendar to blame: a model that never
saw cold rows takes every one of its customers for a stranger (measured: 17.6% of a 1.1%-fraud
stream flagged). So the first burn-in's length of the training window is replayed a second time by
a fresh engine (`fraudops_training.coldstart`), and those cold rows are trained on too: the same
days and labels as the warm rows beside them, so they teach what cold state looks like without
teaching the calendar.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd

from fraudops.errors import RejectedInputError
from fraudops.features.spec import FIRST_SEEN_CAP_DAYS

#: Without an explicit burn-in, it is the first-seen cap or a quarter of the history, whichever is shorter.
DEFAULT_BURN_IN_SHARE = 0.25


@dataclass(frozen=True)
class WindowBounds:
    label_delay_days: float
    burn_in_days: float | None = None
    validation_days: float | None = None
    train_end: datetime | None = None
    test_start: datetime | None = None
    test_end: datetime | None = None


@dataclass
class Windows:
    """Row masks for the time-aware split; each later window is separated by the label-delay gap."""

    inner_train: np.ndarray
    validation: np.ndarray
    train: np.ndarray
    test: np.ndarray
    #: rows replayed a second time by an engine started without state at `fresh_start_at`
    fresh_start: np.ndarray
    fresh_start_at: pd.Timestamp
    burn_in_days: float
    describe: dict[str, str]


def split_windows(times: pd.Series, bounds: WindowBounds) -> Windows:
    first, end = times.iloc[0], times.iloc[-1]
    span = end - first
    burn_in_days = (
        bounds.burn_in_days
        if bounds.burn_in_days is not None
        else min(FIRST_SEEN_CAP_DAYS, DEFAULT_BURN_IN_SHARE * span / pd.Timedelta(days=1))
    )
    start = first + pd.Timedelta(days=burn_in_days)
    gap = pd.Timedelta(days=bounds.label_delay_days)
    test_start = pd.Timestamp(bounds.test_start) if bounds.test_start else first + span * 0.8
    test_end = pd.Timestamp(bounds.test_end) if bounds.test_end else end + pd.Timedelta(seconds=1)
    # A model that goes live at test_start only knows the labels of transactions before test_start - gap.
    train_end = (
        min(pd.Timestamp(bounds.train_end), test_start - gap) if bounds.train_end else test_start - gap
    )
    validation_length = (
        pd.Timedelta(days=bounds.validation_days) if bounds.validation_days else ((train_end - start) * 0.2)
    )
    validation_start = train_end - validation_length
    inner_train_end = validation_start - gap
    if inner_train_end <= start or validation_start >= train_end or test_start >= test_end:
        raise RejectedInputError(
            "--test-start",
            f"the data ({first:%Y-%m-%d} to {end:%Y-%m-%d}) is too short for a {burn_in_days:g}-day "
            f"burn-in / train / {bounds.label_delay_days:g}-day gap / validation / gap / test windows; give more "
            "history, a shorter --burn-in-days or explicit --train-end/--test-start/--test-end",
        )
    after_burn_in = (times >= start).to_numpy()
    # as long as the burn-in: the time the state takes to warm up (no row of it when there is none)
    fresh_end = min(start + pd.Timedelta(days=burn_in_days), train_end)
    masks = Windows(
        inner_train=after_burn_in & (times < inner_train_end).to_numpy(),
        validation=((times >= validation_start) & (times < train_end)).to_numpy(),
        train=after_burn_in & (times < train_end).to_numpy(),
        test=((times >= test_start) & (times < test_end)).to_numpy(),
        fresh_start=after_burn_in & (times < fresh_end).to_numpy(),
        fresh_start_at=start,
        burn_in_days=float(burn_in_days),
        describe={
            "burn-in (replayed, not trained on)": f"{first:%Y-%m-%d} → {start:%Y-%m-%d %H:%M}",
            "fresh start (replayed again from no state, trained on)": (
                f"{start:%Y-%m-%d %H:%M} → {fresh_end:%Y-%m-%d %H:%M}"
            ),
            "tuning: train": f"{start:%Y-%m-%d %H:%M} → {inner_train_end:%Y-%m-%d %H:%M}",
            "tuning: validation": f"{validation_start:%Y-%m-%d %H:%M} → {train_end:%Y-%m-%d %H:%M}",
            "final model: train": f"{start:%Y-%m-%d %H:%M} → {train_end:%Y-%m-%d %H:%M}",
            "held-out test": f"{test_start:%Y-%m-%d %H:%M} → {test_end:%Y-%m-%d %H:%M}",
            "label-delay gap": f"{bounds.label_delay_days:g} days before validation and before test",
        },
    )
    for name in ("inner_train", "validation", "test"):
        if getattr(masks, name).sum() == 0:
            raise RejectedInputError("--test-start", f"the {name.replace('_', ' ')} window is empty")
    return masks


def sampled(window: np.ndarray, labels: np.ndarray, uniform: np.ndarray, rate: float) -> np.ndarray:
    """Rows of a window kept for training: every fraud and a `rate` share of the legitimate rows."""
    return window & ((labels == 1) | (uniform < rate))


class KeptRows:
    """The features of the rows some window needs, addressed by masks over the whole history.

    A time window whose rows were all kept (validation, test: the history is sorted by time) is one
    block of `features` and comes back as a view: a copy of the test window's features costs 1 GB
    at ten million rows. Other masks (the sampled training rows) come back as copies.
    """

    def __init__(self, features: np.ndarray, kept: np.ndarray) -> None:
        self.features = features
        self._kept = kept
        self._index = np.cumsum(kept) - 1

    def __getitem__(self, mask: np.ndarray) -> np.ndarray:
        if not self._kept[mask].all():
            raise ValueError("some of the rows asked for were not kept when the features were computed")
        positions = self._index[mask]
        if len(positions) and positions[-1] - positions[0] + 1 == len(positions):
            return self.features[positions[0] : positions[-1] + 1]
        return self.features[positions]
