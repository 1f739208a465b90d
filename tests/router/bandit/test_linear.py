"""Per-arm ridge statistics: Sherman-Morrison updates, discounting, warm starts."""

from __future__ import annotations

import numpy as np
import pytest

from fleetroute_router.policies.linear import PRIOR_MEAN, ArmStatistics, LinearModel


def _fed(model: LinearModel, steps: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    xs, rs = rng.random((steps, 4)), rng.random(steps)
    for x, r in zip(xs, rs, strict=True):
        model.update("a", x, {"quality": float(r)})
    return xs, rs


def test_sherman_morrison_matches_the_direct_ridge_solution() -> None:
    model = LinearModel(regularization=2.0)
    xs, rs = _fed(model, 300)
    gram = 2.0 * np.eye(4) + xs.T @ xs
    np.testing.assert_allclose(model.gram[0, 0], gram)
    np.testing.assert_allclose(model.gram_inv[0, 0], np.linalg.inv(gram), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(
        model.theta[0, 0], np.linalg.solve(gram, xs.T @ (rs - 1.0)), rtol=1e-9
    )
    mean, variance = model.mean_and_variance(xs[0])
    assert mean[0, 0] == pytest.approx(PRIOR_MEAN + model.theta[0, 0] @ xs[0])
    assert variance[0, 0] == pytest.approx(xs[0] @ np.linalg.inv(gram) @ xs[0])


def test_discount_forgets_towards_the_prior_and_stays_well_conditioned() -> None:
    model = LinearModel(regularization=1.0, discount=0.9)
    _fed(model, 2000)
    eigenvalues = np.linalg.eigvalsh(model.gram[0, 0])
    assert eigenvalues.min() >= 1.0 - 1e-9
    assert model.observations[0, 0] == pytest.approx(1 / (1 - 0.9), rel=1e-6)
    np.testing.assert_allclose(model.gram_inv[0, 0] @ model.gram[0, 0], np.eye(4), atol=1e-9)


def test_warm_start_statistics_replace_the_prior() -> None:
    model = LinearModel()
    stats = ArmStatistics("a", 3.0 * np.eye(2), np.array([-1.5, 0.0]), 10.0, 5.0)
    model.set_statistics(stats)
    assert model.dimension == 2
    np.testing.assert_allclose(model.theta[0, 0], [-0.5, 0.0])
    assert model.mean_and_variance(np.array([1.0, 0.0]))[0][0, 0] == pytest.approx(PRIOR_MEAN - 0.5)
    with pytest.raises(ValueError, match="not of dimension 2"):
        model.set_statistics(ArmStatistics("b", np.eye(3), np.zeros(3), 0.0, 0.0))


def test_an_arm_cannot_be_added_before_the_dimension_is_known() -> None:
    with pytest.raises(ValueError, match="dimension is unknown"):
        LinearModel().add_arm("a")


def test_each_objective_learns_only_from_the_requests_that_measured_it() -> None:
    model = LinearModel(objectives=("quality", "latency"))
    x = np.array([1.0, 0.5])
    for _ in range(50):
        model.update("a", x, {"latency": 0.2})
    model.update("a", x, {"quality": 0.9, "latency": 0.2})
    mean, variance = model.mean_and_variance(x)
    assert model.observations[:, 0].tolist() == [1.0, 51.0]
    assert mean[1, 0] == pytest.approx(0.2, abs=0.02)
    # One label: quality is still mostly the prior, and far more uncertain than latency.
    assert mean[0, 0] > 0.9
    assert variance[0, 0] > 10 * variance[1, 0]


def test_an_objective_the_model_does_not_learn_is_refused() -> None:
    model = LinearModel(objectives=("latency",))
    with pytest.raises(ValueError, match="objective 'quality' is not learned"):
        model.update("a", np.ones(2), {"quality": 1.0})


@pytest.mark.parametrize("discount", [1.0, 0.9], ids=["undiscounted", "discounted"])
@pytest.mark.parametrize(
    "measured",
    [("latency", "energy", "cost"), ("cost", "latency"), ("energy", "quality")],
    ids=["adjacent", "reordered", "apart"],
)
def test_several_objectives_learned_at_once_equal_one_at_a_time(
    measured: tuple[str, ...], discount: float
) -> None:
    names = ("quality", "latency", "energy", "cost")
    together, apart = (
        LinearModel(objectives=names, discount=discount, regularization=2.0) for _ in range(2)
    )
    rng = np.random.default_rng(3)
    for _ in range(40):
        x = rng.random(5)
        scores = dict(zip(measured, rng.random(len(measured)).tolist(), strict=True))
        together.update("a", x, scores)
        for name, score in scores.items():
            apart.update("a", x, {name: score})
    for left, right in zip(together.statistics(), apart.statistics(), strict=True):
        assert left.objective == right.objective
        assert np.allclose(left.gram, right.gram)
        assert np.allclose(left.target, right.target)
        assert left.observations == pytest.approx(right.observations)
        assert left.reward_sum == pytest.approx(right.reward_sum)
    assert np.allclose(together.gram_inv, apart.gram_inv)
    assert np.allclose(together.theta, apart.theta)
    unmeasured = [names.index(n) for n in names if n not in measured]
    assert (together.observations[unmeasured, 0] == 0.0).all()  # those learned nothing


def test_columns_select_every_arm_by_slice_only_while_they_are_all_the_arms_in_order() -> None:
    model = LinearModel()
    x = np.ones(4)
    assert model.columns(["a", "b"], x) == slice(None)
    np.testing.assert_array_equal(model.columns(["b", "a"], x), [1, 0])
    model.update("a", x, {"quality": 1.0})
    wide = model.mean(x)[:, model.columns(["a", "b"], x)]
    assert wide.shape == (1, 2)
    assert model.columns(["a", "b", "c"], x) == slice(None)  # c added: the slice covers three
    narrow = model.mean(x)[:, model.columns(["a", "b"], x)]
    np.testing.assert_array_equal(narrow, wide)  # no longer every arm: gathered, still two
    model.forget("a")
    assert model.columns(["b", "c"], x) == slice(None)
