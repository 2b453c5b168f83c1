"""Prediction metrics and drift statistics against scipy and hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import ks_2samp, pearsonr, spearmanr

from marketboss.ml.drift import ks, psi
from marketboss.ml.metrics import hit_rate, ic, mse, rank_ic, scores, summarize


def test_ic_and_rank_ic_equal_scipy_on_known_inputs() -> None:
    pred = np.array([0.3, -0.1, 0.2, 0.2, 0.5, -0.4, 0.0, 0.1])  # ties in the predictions
    y = np.array([0.02, -0.01, 0.00, 0.03, 0.04, -0.02, -0.01, 0.00])  # and in the outcomes
    assert ic(pred, y) == pytest.approx(pearsonr(pred, y).statistic, abs=1e-12)
    assert rank_ic(pred, y) == pytest.approx(spearmanr(pred, y).statistic, abs=1e-12)
    # by hand, so scipy is not the only judge: deviations from the means 0.1 and 0.00625, then their products
    assert ic(pred, y) == pytest.approx(0.036 / np.sqrt(0.52 * 0.0031875), abs=1e-12)
    assert rank_ic(-pred, y) == pytest.approx(-rank_ic(pred, y))
    assert np.isnan(ic(np.ones(5), np.arange(5.0)))  # no variation, no correlation


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(-5, 5), st.integers(-5, 5)), min_size=3, max_size=60))
def test_ic_and_rank_ic_equal_scipy_with_many_ties(pairs: list[tuple[int, int]]) -> None:
    pred = np.array([p for p, _ in pairs], dtype=float)
    y = np.array([q for _, q in pairs], dtype=float)
    if pred.std() == 0 or y.std() == 0:
        assert np.isnan(ic(pred, y))
        return
    assert ic(pred, y) == pytest.approx(pearsonr(pred, y).statistic, abs=1e-9)
    assert rank_ic(pred, y) == pytest.approx(spearmanr(pred, y).statistic, abs=1e-9)


def test_hit_rate_mse_and_fold_summary() -> None:
    pred = np.array([0.1, -0.2, 0.3, -0.1])
    y = np.array([0.2, 0.1, 0.1, -0.3])
    assert hit_rate(pred, y) == 0.75
    assert mse(pred, y) == pytest.approx((0.01 + 0.09 + 0.04 + 0.04) / 4)
    s = scores(pred, y)
    assert set(s) == {"mse", "ic", "rank_ic", "hit_rate"}
    folds = [{"mse": 1.0, "ic": 0.1, "rank_ic": 0.2, "hit_rate": 0.5}, {"mse": 3.0, "ic": 0.3, "rank_ic": float("nan"),
             "hit_rate": 0.7}]  # fmt: skip
    summary = summarize(folds)
    assert summary["mse"] == {"mean": 2.0, "std": pytest.approx(np.sqrt(2.0))}
    assert summary["ic"]["mean"] == pytest.approx(0.2)
    assert summary["ic"]["std"] == pytest.approx(np.std([0.1, 0.3], ddof=1))
    assert summary["rank_ic"]["mean"] == 0.2 and np.isnan(summary["rank_ic"]["std"])  # one finite fold: no spread


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(-20, 20), min_size=1, max_size=80),
    st.lists(st.integers(-20, 20), min_size=1, max_size=80),
)
def test_ks_equals_scipy(a: list[int], b: list[int]) -> None:
    x, y = np.array(a, dtype=float) / 4, np.array(b, dtype=float) / 4
    assert ks(x, y) == pytest.approx(ks_2samp(x, y).statistic, abs=1e-12)


def test_psi_by_hand_and_its_floor() -> None:
    ref = np.arange(1000, dtype=float)  # deciles at 99.9, 199.8, ...: ten equal bins
    assert psi(ref, ref) == pytest.approx(0.0, abs=1e-12)
    half = np.r_[np.full(50, 50.0), np.full(50, 150.0)]  # half in bin 0, half in bin 1
    expected = 2 * (0.5 - 0.1) * np.log(0.5 / 0.1) + 8 * (1e-4 - 0.1) * np.log(1e-4 / 0.1)
    assert psi(ref, half) == pytest.approx(expected, rel=1e-9)
    assert np.isnan(psi(ref, np.array([np.nan])))
