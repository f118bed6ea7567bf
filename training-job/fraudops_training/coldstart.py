"""Training rows as an online engine that starts without state computes them (the fresh start).

The burn-in keeps the rows whose state the history's start cut short out of training, so every
trained row has weeks of history behind it. An online engine started from nothing (a new
deployment, a scorer whose stored state is gone) sees only such cut-short rows: every device,
merchant and customer is "first seen", amounts dwarf a two-transaction maximum. A model that never
saw that state reads it as fraud, which on its warm training rows it mostly was (measured on the
default simulated history: 14.8% of the burn-in's legitimate rows and 17.6% of a fresh engine's
1.1%-fraud stream above the threshold, against 3.7% of the warm training rows).

So the first days of the training window are replayed a second time by a fresh engine, exactly as
one started at that instant would compute them: it sees the transactions from then on and the labels
that become known from then on. Those rows are trained on beside the warm ones. They cover the same
days and carry the same labels, so a feature's cold-state values cannot stand in for the calendar
(what the burn-in is there to prevent); they only show the model what cold state looks like.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from fraudops.features.engine import FeatureEngine, labels_from_history
from fraudops.features.spec import N_FEATURES, FeatureConfig


def fresh_engine_features(
    history: pd.DataFrame,
    window: np.ndarray,
    started_at: pd.Timestamp,
    keep: np.ndarray,
    config: FeatureConfig,
    entity_table: bool,
) -> np.ndarray:
    """Features of the kept rows of `window` (a time range of the history sorted by event time) from an
    engine started at `started_at` with no state: every window row passes through it."""
    rows = np.flatnonzero(window)
    if not len(rows):
        return np.empty((0, N_FEATURES), dtype=np.float32)
    labels = None
    if "is_fraud" in history.columns:
        # what a label feed joined at `started_at` delivers: the labels known from then on, of any
        # transaction up to the window's end (the labels of later ones cannot take effect inside it)
        known = labels_from_history(history.iloc[: rows[-1] + 1], config)
        labels = known.take(np.flatnonzero(known.known_at >= started_at.timestamp()))
    engine = FeatureEngine(config, entity_table=entity_table)
    return engine.replay(
        history.iloc[rows[0] : rows[-1] + 1], keep=keep[rows[0] : rows[-1] + 1], labels=labels
    )
