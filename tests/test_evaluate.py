"""Evaluation on small made-up numbers: metrics, intervals, paired tests, the Pareto front and the recommendation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from results import model_result, scored_on

from core.evaluate import (
    Scores,
    classification_metrics,
    fastest_text,
    images_to_resolve,
    mcnemar_p,
    paired_difference_interval,
    pareto_front,
    recommend,
    wilson_interval,
)
from core.records import ClassMetrics, Failed, Latency, ModelResult, NotRun, ScreenedOut, Status

Z = 1.959964  # the 97.5th percentile of the standard normal


def nested(correct: int, total: int) -> np.ndarray:
    """Which of `total` test images a model gets right: the first `correct`. Two such models disagree only
    on the images between their scores, all in the better one's favour: a consistent gap."""
    return np.arange(total) < correct


def paired(both: int, only_first: int, only_second: int, neither: int) -> tuple[np.ndarray, np.ndarray]:
    """Two models' right answers on the same images, from the four cells of their 2x2 table."""
    first = [True] * both + [True] * only_first + [False] * only_second + [False] * neither
    second = [True] * both + [False] * only_first + [True] * only_second + [False] * neither
    return np.array(first), np.array(second)


def _result(
    model: str,
    right: np.ndarray,
    params: float,
    latency: float | dict[str, float] | None = None,
    status: Status = Status.OK,
) -> ModelResult:
    """A trained model with what the recommendation looks at: its answers on the test images, its parameters and
    its latency (ms in TensorFlow, or by engine)."""
    labels = np.arange(len(right)) % 2
    timed = latency if isinstance(latency, dict) else ({} if latency is None else {"tf": latency})
    return model_result(
        model=model,
        params=int(params),
        base_params=int(params),
        size_mb=round(params * 4 / 1e6, 2),
        **scored_on(labels, np.where(right, labels, 1 - labels)),
        val_accuracy=float(right.mean()),
        latency={engine: ms and Latency(ms, 1000 / ms) for engine, ms in timed.items()},
        subset_accuracy=None,
        status=status,
    )


# ---------------------------------------------------------------------------------------------------
# Metrics


def test_classification_metrics_from_known_predictions():
    labels = np.array([0, 0, 0, 1, 1, 2])
    predicted = np.array([0, 0, 1, 1, 1, 0])
    metrics = classification_metrics(labels, np.eye(3)[predicted], ["a", "b", "c"])
    assert isinstance(metrics, Scores) and all(isinstance(item, ClassMetrics) for item in metrics.per_class)
    assert metrics.accuracy == pytest.approx(4 / 6)
    assert metrics.confusion == [[2, 1, 0], [0, 2, 0], [1, 0, 0]]
    assert metrics.predictions == predicted.tolist()
    a, b, c = metrics.per_class
    assert (a.name, b.name, c.name) == ("a", "b", "c")
    assert (a.precision, a.recall, a.support) == (pytest.approx(2 / 3), pytest.approx(2 / 3), 3)
    assert (b.precision, b.recall) == (pytest.approx(2 / 3), 1.0)
    assert (c.precision, c.recall, c.f1) == (0.0, 0.0, 0.0)
    assert metrics.balanced_accuracy == pytest.approx((2 / 3 + 1 + 0) / 3)
    assert metrics.macro_f1 == pytest.approx((2 / 3 + 0.8 + 0) / 3)  # F1 of b: 2 * (2/3 * 1) / (2/3 + 1)


def test_balanced_accuracy_and_macro_f1_see_through_imbalance():
    """90 cats and 10 dogs: accuracy rewards calling everything a cat; balanced accuracy and macro-F1 do not."""
    labels = np.array([0] * 90 + [1] * 10)
    lazy = classification_metrics(labels, np.eye(2)[np.zeros(100, int)], ["cat", "dog"])
    assert lazy.accuracy == 0.9 and lazy.confusion == [[90, 0], [10, 0]]
    assert lazy.balanced_accuracy == pytest.approx(0.5)  # recall 1.0 on cats, 0.0 on dogs
    assert lazy.macro_f1 == pytest.approx((2 * 0.9 / 1.9 + 0) / 2)  # cats: precision 0.9, recall 1

    # 85 of the cats right, 5 called dogs; 4 of the dogs right, 6 called cats.
    predicted = np.array([0] * 85 + [1] * 5 + [0] * 6 + [1] * 4)
    mixed = classification_metrics(labels, np.eye(2)[predicted], ["cat", "dog"])
    assert mixed.confusion == [[85, 5], [6, 4]] and mixed.accuracy == pytest.approx(0.89)
    assert mixed.balanced_accuracy == pytest.approx((85 / 90 + 4 / 10) / 2)
    cat_f1 = 2 * (85 / 91) * (85 / 90) / (85 / 91 + 85 / 90)
    dog_f1 = 2 * (4 / 9) * (4 / 10) / (4 / 9 + 4 / 10)
    assert mixed.macro_f1 == pytest.approx((cat_f1 + dog_f1) / 2)
    assert mixed.balanced_accuracy < mixed.accuracy and mixed.macro_f1 < mixed.accuracy


def test_a_class_absent_from_the_test_images_is_left_out_of_the_averages():
    labels = np.array([0, 0, 1, 1])
    metrics = classification_metrics(labels, np.eye(3)[[0, 1, 1, 1]], ["a", "b", "c"])
    assert metrics.per_class[2].support == 0
    assert metrics.balanced_accuracy == pytest.approx((0.5 + 1.0) / 2)  # not divided by 3


# ---------------------------------------------------------------------------------------------------
# The 95% interval of an accuracy, and paired tests


def wilson_by_hand(correct: int, total: int) -> tuple[float, float]:
    """Wilson's interval as (x + z^2/2 -+ z sqrt(x (n - x) / n + z^2/4)) / (n + z^2), in counts."""
    x, n, z2 = correct, total, Z * Z
    half = Z * math.sqrt(x * (n - x) / n + z2 / 4)
    return (x + z2 / 2 - half) / (n + z2), (x + z2 / 2 + half) / (n + z2)


@pytest.mark.parametrize(
    ("correct", "total", "published"),
    [
        (95, 100, (0.8882, 0.9785)),
        (0, 10, (0.0, 0.2775)),  # upper: z^2 / (n + z^2)
        (10, 10, (0.7225, 1.0)),  # lower: n / (n + z^2)
        (81, 263, (0.2553, 0.3662)),  # Newcombe (1998), Statistics in Medicine 17, table I, example (a)
        (1, 29, (0.0061, 0.1718)),  # ibid., example (e)
    ],
)
def test_wilson_interval_against_the_formula(correct, total, published):
    low, high = wilson_interval(correct, total)
    assert (low, high) == pytest.approx(wilson_by_hand(correct, total), abs=1e-9)
    assert (low, high) == pytest.approx(published, abs=1e-4)
    assert 0 <= low <= correct / total <= high + 1e-12 and high <= 1  # at 10/10, high is 1 - 1e-16


def test_an_interval_on_153_images_at_90_percent_is_about_five_points_either_way():
    """The ants/bees case of the issue: models 2-4 points apart on 153 images cannot be ranked."""
    low, high = wilson_interval(138, 153)  # 90.2%
    assert (high - low) / 2 == pytest.approx(0.0476, abs=5e-4)
    assert low == pytest.approx(0.8445, abs=1e-4) and high == pytest.approx(0.9397, abs=1e-4)
    assert wilson_interval(0, 0) == (0.0, 1.0)  # no images: nothing known


def binomial_tail(k: int, n: int) -> float:
    """P(X <= k) for X ~ Binomial(n, 1/2)."""
    return sum(math.comb(n, i) for i in range(k + 1)) / 2**n


def test_mcnemar_exact_p_against_the_binomial():
    first, second = paired(both=40, only_first=10, only_second=2, neither=8)
    expected = 2 * binomial_tail(2, 12)  # 2 * (1 + 12 + 66) / 4096
    assert expected == pytest.approx(0.0386, abs=1e-4)
    assert mcnemar_p(first, second) == pytest.approx(expected) == mcnemar_p(second, first)
    assert mcnemar_p(*paired(50, 4, 2, 4)) == pytest.approx(2 * (1 + 6 + 15) / 64)  # 0.6875
    assert mcnemar_p(*paired(50, 1, 0, 9)) == 1.0  # one image apart: 2 * 1/2
    assert mcnemar_p(*paired(50, 3, 3, 4)) == 1.0  # as many each way: capped at 1
    assert mcnemar_p(*paired(50, 0, 0, 10)) == 1.0  # they never disagree
    assert mcnemar_p(*paired(0, 20, 0, 0)) == pytest.approx(2 / 2**20)


def test_images_to_resolve_scales_the_disagreements_to_a_significant_difference():
    # b = 4, c = 2 on 60 images: chi-square k (b - c)^2 / (b + c) reaches 3.84 at k = 3.84 * 6 / 4 = 5.76.
    assert images_to_resolve(*paired(51, 4, 2, 3)) == math.ceil(60 * 5.76) == 346
    assert images_to_resolve(*paired(51, 3, 3, 3)) is None  # no direction to grow
    assert images_to_resolve(*paired(0, 100, 0, 0)) == 100  # already significant: as many as there are


# ---------------------------------------------------------------------------------------------------
# Pareto front


def test_pareto_front_in_increasing_size():
    # (params, accuracy): "dominated" is bigger and worse than "mid"; a tie in size keeps the more accurate one
    points = [(20e6, 0.97), (5e6, 0.96), (8e6, 0.955), (0.5e6, 0.90), (5e6, 0.5)]
    assert pareto_front(points) == [3, 1, 0]
    assert pareto_front([]) == []


# ---------------------------------------------------------------------------------------------------
# The recommendation


def test_recommend_picks_smallest_and_fastest_within_tolerance():
    """On 2,000 test images every gap here is significant: the tolerance alone makes the ties."""
    results = [
        _result("big", nested(1960, 2000), 20e6, 30.0),  # 98.0%
        _result("small", nested(1950, 2000), 1e6, 12.0),  # 97.5%
        _result("tiny", nested(1880, 2000), 0.2e6, 5.0),  # 94.0%
        _result("quick", nested(1944, 2000), 3e6, 8.0),  # 97.2%
        Failed("broken", "no weights"),
    ]
    recommendation = recommend(results, tolerance=0.01)
    assert (recommendation.model, recommendation.fastest, recommendation.best) == ("small", {"tf": "quick"}, "big")
    assert recommendation.tied == ["big", "small", "quick"] and all(p < 0.05 for p in recommendation.p_values.values())
    assert recommendation.tolerance == 0.01 and recommendation.screening is None
    assert "small is the smallest of the 3 models not clearly below the best test accuracy" in recommendation.reason
    assert "20.0x fewer" in recommendation.reason and "noise" not in recommendation.reason
    assert (
        fastest_text(recommendation, results, "tf") == "Fastest by the same rule in TensorFlow: quick at 8.0 ms/image."
    )
    alone = recommend(results[:1], tolerance=0.01)
    assert alone.reason.startswith(
        "big has the best test accuracy, 98.0% (95% CI 97.3%-98.5%) on 2,000 test images, with 20.00M parameters"
    )
    assert recommend(results, tolerance=0.05).model == "tiny"
    assert recommend([Failed("broken", "no weights")], tolerance=0.01) is None


def test_recommend_without_latency_has_no_fastest():
    results = [_result("a", nested(1800, 2000), 1e6), _result("b", nested(1900, 2000), 2e6)]
    recommendation = recommend(results, tolerance=0.01)
    assert (recommendation.model, recommendation.fastest, recommendation.tied) == ("b", {}, ["b"])
    assert recommendation.reason.endswith("within 1 point of it.")
    assert fastest_text(recommendation, results, "tf") is None


def test_a_tie_on_few_test_images_goes_to_the_smaller_model():
    """60 test images: the bigger model is 2 images better (4 to 2 where they disagree), 3.3 points: above the
    tolerance, and noise all the same."""
    big, small = paired(both=51, only_first=4, only_second=2, neither=3)
    results = [_result("big", big, 20e6, 30.0), _result("small", small, 4.4e6, 6.0)]
    recommendation = recommend(results, tolerance=0.01)
    assert (recommendation.model, recommendation.best) == ("small", "big")
    assert recommendation.tied == ["big", "small"] and recommendation.statistically_tied
    assert recommendation.p_values == {"small": pytest.approx(0.6875)}
    assert recommendation.images_to_resolve == 346
    reason = recommendation.reason
    assert "statistically tied" in reason and "McNemar p = 0.69" in reason
    assert "about 346 test images would settle it" in reason
    assert "91.7% (95% CI" in reason and "on 60 test images" in reason and "4.5x fewer" in reason


def test_the_same_gap_on_many_test_images_is_no_tie():
    """The same disagreements, 100/3 times over (133 to 67 on 2,000 images): the bigger model is really better."""
    big, small = paired(both=1700, only_first=133, only_second=67, neither=100)
    results = [_result("big", big, 20e6, 30.0), _result("small", small, 4.4e6, 6.0)]
    assert big.mean() - small.mean() == pytest.approx(0.033)
    recommendation = recommend(results, tolerance=0.01)
    assert (recommendation.model, recommendation.best, recommendation.tied) == ("big", "big", ["big"])
    assert recommendation.p_values["small"] < 1e-4 and recommendation.images_to_resolve is None
    assert not recommendation.statistically_tied and "noise" not in recommendation.reason
    assert recommendation.reason.startswith("big has the best test accuracy, 91.6% (95% CI 90.4%-92.8%)")  # +-1.2
    assert "no smaller model is statistically tied with it (McNemar p < 0.05)" in recommendation.reason
    assert recommendation.fastest == {"tf": "big"}  # the fastest of the tied models: only the best is left


def test_a_partial_model_is_never_recommended_even_when_best():
    """Cut short by Cancel after 2 of 20 epochs, it may even score best: it is not a finished answer."""
    results = [
        _result("cut", nested(1990, 2000), 0.5e6, 2.0, status=Status.PARTIAL),
        _result("big", nested(1960, 2000), 20e6, 30.0),
        _result("small", nested(1955, 2000), 5e6, 12.0),
        NotRun("never"),
    ]
    recommendation = recommend(results, tolerance=0.01)
    assert (recommendation.model, recommendation.best) == ("small", "big")
    assert "cut" not in recommendation.tied and "cut" not in recommendation.p_values
    assert "cut" not in recommendation.fastest.values() and "cut" not in recommendation.reason
    assert recommend([results[0], results[3]], tolerance=0.01) is None


def test_screened_out_models_are_not_candidates():
    screened = ScreenedOut.of(_result("tiny", nested(1999, 2000), 0.1e6), images=200)
    recommendation = recommend([screened, _result("big", nested(1900, 2000), 20e6)], tolerance=0.01)
    assert (recommendation.model, recommendation.tied) == ("big", ["big"])


def test_fastest_per_engine_among_the_tied_models_only():
    right = {
        "big": paired(both=51, only_first=4, only_second=2, neither=3)[0],  # best, 55/60
        "tied": paired(both=51, only_first=4, only_second=2, neither=3)[1],  # 53/60, p = 0.69
        "close": nested(55, 60),  # 55/60, within the tolerance
        "far": nested(40, 60),  # 40/60: clearly below (p < 0.001), and the fastest everywhere
    }
    results = [
        _result("big", right["big"], 20e6, {"tf": 30.0, "onnx": 10.0}),
        _result("tied", right["tied"], 3e6, {"tf": 12.0, "onnx": 3.0}),
        _result("close", right["close"], 5e6, {"tf": 8.0, "onnx": None}),  # cannot run in ONNX Runtime
        _result("far", right["far"], 0.5e6, {"tf": 2.0, "onnx": 0.5}),
    ]
    recommendation = recommend(results, tolerance=0.01)
    assert recommendation.tied == ["big", "tied", "close"] and recommendation.model == "tied"
    assert recommendation.p_values["far"] < 0.001
    assert recommendation.fastest == {"tf": "close", "onnx": "tied"}
    assert fastest_text(recommendation, results, "onnx") == (
        "Fastest by the same rule in ONNX Runtime: tied at 3.0 ms/image."
    )
    assert (
        fastest_text(recommendation, results, "tf") == "Fastest by the same rule in TensorFlow: close at 8.0 ms/image."
    )


def test_paired_difference_interval_comes_from_the_discordant_images():
    first = np.array([True] * 88 + [True] * 2 + [False] * 10)  # 90 right
    second = np.array([True] * 88 + [False] * 2 + [True] * 10)  # 98 right: 10 gained, 2 lost
    low, high = paired_difference_interval(first, second)
    assert (low, high) == pytest.approx((0.08 - 0.066060, 0.08 + 0.066060), abs=1e-5)
    assert paired_difference_interval(first, first) == [0.0, 0.0]  # never disagreeing: no doubt left
    assert paired_difference_interval(second, first) == pytest.approx([-high, -low])
