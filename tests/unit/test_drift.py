"""Feature drift: decile reference histograms and an incremental PSI that sees shifts and forgets them."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from fraudops import drift
from fraudops.drift import (
    DriftMonitor,
    ReferenceHistograms,
    bin_counts,
    build_reference,
    read_reference,
    write_reference,
)

NAMES = ("amount", "is_night", "merchant_risk")


def traffic(rows: int, seed: int, amount_scale: float = 1.0, missing_share: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    matrix = np.column_stack(
        [rng.lognormal(3.5, 1.0, rows) * amount_scale, rng.random(rows) < 0.2, rng.beta(2, 5, rows)]
    ).astype(np.float32)
    matrix[rng.random(rows) < missing_share, 2] = np.nan
    return matrix


def monitor_of(reference: ReferenceHistograms, **options: float) -> DriftMonitor:
    """A monitor that counts every row (the statistical tests feed big batches at once)."""
    return DriftMonitor(reference, **{"sample_rows": 10**9, **options})  # type: ignore[arg-type]


def test_traffic_like_training_has_a_psi_near_zero() -> None:
    monitor = monitor_of(build_reference(traffic(50_000, seed=1), NAMES))
    monitor.observe(traffic(20_000, seed=2))
    psi = monitor.psi()
    assert psi is not None and np.all(psi < 0.02)


def test_shifted_amounts_drift_past_the_alert_line_and_only_that_feature() -> None:
    monitor = monitor_of(build_reference(traffic(50_000, seed=1), NAMES))
    monitor.observe(traffic(20_000, seed=2, amount_scale=3.0))
    psi = monitor.psi()
    assert psi is not None
    assert psi[0] > 0.25
    assert psi[1] < 0.02 and psi[2] < 0.02


def test_missing_values_have_a_bin_of_their_own() -> None:
    monitor = monitor_of(build_reference(traffic(50_000, seed=1), NAMES))
    monitor.observe(traffic(20_000, seed=2, missing_share=0.4))
    psi = monitor.psi()
    assert psi is not None and psi[2] > 0.25 and psi[0] < 0.02


def test_a_binary_feature_gets_two_edges_at_most_and_every_row_is_counted() -> None:
    reference = build_reference(traffic(10_000, seed=1), NAMES)
    assert np.isfinite(reference.edges[1]).sum() <= 2
    counts = bin_counts(reference.edges, traffic(1000, seed=3))
    assert np.all(counts.sum(axis=1) == 1000)


def test_the_psi_recovers_once_the_drift_is_over() -> None:
    monitor = monitor_of(build_reference(traffic(50_000, seed=1), NAMES), half_life_rows=5_000)
    monitor.observe(traffic(10_000, seed=2, amount_scale=3.0))
    drifted = monitor.psi()
    for seed in range(3, 13):
        monitor.observe(traffic(5_000, seed=seed))
    recovered = monitor.psi()
    assert drifted is not None and recovered is not None
    assert drifted[0] > 0.25 > 0.05 > recovered[0]


def test_batches_are_sampled_and_a_shift_is_still_seen(monkeypatch: pytest.MonkeyPatch) -> None:
    monitor = DriftMonitor(build_reference(traffic(50_000, seed=1), NAMES), sample_rows=100)
    binned: list[int] = []
    real = drift.bin_counts

    def counted(edges: np.ndarray, matrix: np.ndarray) -> np.ndarray:
        binned.append(len(matrix))
        return real(edges, matrix)

    monkeypatch.setattr(drift, "bin_counts", counted)
    for seed in range(2, 42):
        monitor.observe(traffic(1000, seed=seed, amount_scale=3.0))
    psi = monitor.psi()
    assert binned == [100] * 40
    assert psi is not None and psi[0] > 0.25 and psi[1] < 0.05


def test_no_psi_before_enough_rows() -> None:
    monitor = monitor_of(build_reference(traffic(10_000, seed=1), NAMES), min_rows=500)
    monitor.observe(traffic(100, seed=2))
    assert monitor.psi() is None


def test_the_reference_survives_the_artifact_file(tmp_path: Path) -> None:
    reference = build_reference(traffic(10_000, seed=1), NAMES)
    write_reference(reference, tmp_path)
    loaded = read_reference(tmp_path)
    assert loaded is not None and loaded.feature_names == NAMES and loaded.rows == 10_000
    np.testing.assert_allclose(loaded.edges, reference.edges, rtol=1e-6)
    np.testing.assert_allclose(loaded.shares, reference.shares, atol=1e-6)
    assert read_reference(tmp_path / "elsewhere") is None


def test_small_and_large_batches_are_binned_alike(monkeypatch: pytest.MonkeyPatch) -> None:
    reference = build_reference(traffic(10_000, seed=1, missing_share=0.1), NAMES)
    batch = traffic(12, seed=5, missing_share=0.3)
    small = bin_counts(reference.edges, batch)
    monkeypatch.setattr(drift, "_SMALL_BATCH", 0)
    np.testing.assert_array_equal(bin_counts(reference.edges, batch), small)


def test_a_row_weighs_the_same_whatever_the_size_of_its_batch() -> None:
    """Quiet traffic comes in small batches, a burst in full ones: sampling does not dilute the burst."""
    reference = build_reference(traffic(50_000, seed=1), NAMES)
    normal, shifted = traffic(5_000, seed=2), traffic(5_000, seed=3, amount_scale=3.0)
    sampled, every_row = DriftMonitor(reference, sample_rows=100), monitor_of(reference)
    for monitor in (sampled, every_row):
        for start in range(0, 5_000, 50):
            monitor.observe(normal[start : start + 50])
        for start in range(0, 5_000, 1_000):
            monitor.observe(shifted[start : start + 1_000])

    sampled_psi, exact_psi = sampled.psi(), every_row.psi()

    assert sampled_psi is not None and exact_psi is not None
    assert sampled_psi[0] == pytest.approx(exact_psi[0], rel=0.1)


def test_a_reference_of_many_rows_holds_about_two_float64_copies_of_the_rows_it_keeps_at_most() -> None:
    # training builds it from hundreds of thousands of rows at the end of a 10M-row run (8 GiB budget):
    # a float64 copy of every row, then the bins of every value at once, took three times as much
    rows = np.random.default_rng(5).lognormal(size=(400_000, 16)).astype(np.float32)
    kept_bytes = 200_000 * 16 * 8  # the rows it keeps (max_rows), as float64
    tracemalloc.start()
    try:
        reference = build_reference(rows, [f"f{i}" for i in range(16)], max_rows=200_000)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert reference.rows == 200_000
    assert peak < 2.5 * kept_bytes, f"peak {peak / 2**20:.0f} MiB for {kept_bytes / 2**20:.0f} MiB of rows"
