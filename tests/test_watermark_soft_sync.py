"""The exact weighted sign test behind the learned mark's soft decisions."""
import itertools

import numpy as np
import pytest
from scipy import stats

from provenance.watermark import payload, soft_sync


def _balanced(n: int, rng: np.random.Generator) -> np.ndarray:
    pattern = np.zeros(n, bool)
    pattern[rng.choice(n, n // 2, replace=False)] = True
    return pattern


@pytest.mark.parametrize("seed", range(4))
def test_p_value_is_the_exact_tail_over_every_balanced_pattern(seed):
    rng = np.random.default_rng(seed)
    votes = soft_sync.signed_weights(rng.normal(0, 2, 10))
    observed = _balanced(10, rng)
    every = []
    for ones in itertools.combinations(range(10), 5):
        pattern = np.zeros(10, bool)
        pattern[list(ones)] = True
        every.append(soft_sync.statistic(votes, pattern))
    assert soft_sync.p_value(votes, observed) == pytest.approx(np.mean(np.array(every) >= soft_sync.statistic(votes, observed)))


def test_equal_votes_give_the_hypergeometric_tail_of_the_hard_count():
    rng = np.random.default_rng(1)
    logits = np.where(rng.random(64) < 0.6, 9.0, -9.0)  # every vote clipped to the same weight
    pattern = _balanced(64, rng)
    matches = int(np.count_nonzero((logits > 0) == pattern))
    ones = int(np.count_nonzero(logits > 0))
    need = int(np.ceil((matches - 32 + ones) / 2))  # shared ones giving >= matches
    assert soft_sync.p_value(soft_sync.signed_weights(logits), pattern) == pytest.approx(
        stats.hypergeom.sf(need - 1, 64, 32, ones))


def test_random_keys_reach_a_level_no_more_often_than_it_says():
    rng = np.random.default_rng(2)
    votes = soft_sync.signed_weights(rng.standard_t(3, 64) * 2)  # heavy-tailed, like real logits
    patterns = np.stack([_balanced(64, rng) for _ in range(4000)])
    p = soft_sync.p_values(votes, patterns)
    for level in (0.2, 0.05, 0.01):
        assert (p <= level).mean() <= level + 3 * np.sqrt(level / len(p))
    assert (p <= 0.5).mean() > 0.4  # and is not merely conservative


def test_unsure_bits_weigh_little_and_one_sure_bit_cannot_decide():
    rng = np.random.default_rng(3)
    pattern = _balanced(64, rng)
    sure = np.where(pattern, 3.0, -3.0)
    half_lost = sure.copy()
    half_lost[32:] = rng.normal(0, 0.05, 32)  # a region the crop removed: near-zero, random signs
    hard_matches = int(np.count_nonzero((half_lost > 0) == pattern))
    hard_p = stats.hypergeom.sf(np.ceil((hard_matches - 32 + np.count_nonzero(half_lost > 0)) / 2) - 1, 64, 32,
                                np.count_nonzero(half_lost > 0))
    soft_p = soft_sync.p_value(soft_sync.signed_weights(half_lost), pattern)
    assert soft_p < hard_p / 100
    one_loud = np.zeros(64)
    one_loud[np.argmax(pattern)] = 1000.0
    assert soft_sync.signed_weights(one_loud).max() == soft_sync.CLIP * soft_sync.STEPS_PER_LOGIT
    assert soft_sync.p_value(soft_sync.signed_weights(one_loud), pattern) >= 0.4
    assert soft_sync.p_value(np.zeros(64, np.int64), pattern) == 1.0


def test_best_view_is_the_most_confident_for_each_key_and_its_p_is_exact():
    rng = np.random.default_rng(4)
    keys = ["a", "b", "c"]
    patterns = payload.sync_patterns(keys, "learned", 64)
    views = rng.normal(0, 1, (5, 64))
    views[3] += np.where(patterns[1], 2.0, -2.0)  # view 3 carries key b's pattern
    votes = soft_sync.signed_weights(views)
    chosen, p = soft_sync.best_view_p_values(votes, patterns)
    assert chosen[1] == 3 and p[1] < 1e-6
    for k in range(3):
        z = [soft_sync.statistic(v, patterns[k]) / np.sqrt((v.astype(float) ** 2).sum()) for v in votes]
        assert chosen[k] == int(np.argmax(z)) == int(np.argmax(soft_sync.z_scores(votes, patterns)[k]))
        assert p[k] == pytest.approx(soft_sync.p_value(votes[chosen[k]], patterns[k]))
