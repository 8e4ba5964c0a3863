"""RAPTOR clustering and the collapsed-tree selection on fixed embeddings (no models)."""
import numpy as np
import pytest

from assistant.summaries.text import clean_summary, cut_to_sentence, looks_runaway, split_text
from indexes.raptor import TOPIC_LEVEL, fill_budget, parse_levels
from indexes.raptor.clustering import (best_k_by_bic, cluster_for_summary, estimate_summaries, gmm_clusters,
                                       merge_singletons, pack_in_order, reduce_dims, split_in_two, split_to_budget,
                                       topic_groups)


def blobs(n_per=12, centres=((0, 0), (10, 0), (0, 10)), seed=0, dim=2):
    rng = np.random.RandomState(seed)
    pts = [np.array(c + (0,) * (dim - 2), dtype=float) + rng.randn(n_per, dim) * 0.3 for c in centres]
    return np.vstack(pts)


def test_gmm_finds_the_blobs_with_bic():
    x = blobs()
    assert best_k_by_bic(x, 10) == 3
    clusters = gmm_clusters(x, reducer="none")
    assert sorted(map(sorted, clusters)) == [list(range(0, 12)), list(range(12, 24)), list(range(24, 36))]


def test_soft_assignment_lets_a_point_join_two_clusters():
    rng = np.random.RandomState(0)
    a = rng.randn(20, 2) * 0.5
    x = np.vstack([a, [4.0, 0.0] - a, [[2.0, 0.0]]])  # point-symmetric blobs; the last point is the centre
    clusters = gmm_clusters(x, reducer="none", threshold=0.1)
    holding = [c for c in clusters if 40 in c]
    assert len(clusters) == 2 and len(holding) == 2


def test_clusters_are_deterministic_and_cover_everything_in_high_dimensions():
    x = blobs(n_per=10, centres=[tuple([i * 5] * 2) for i in range(4)], dim=2)
    x = np.hstack([x, np.zeros((len(x), 30))])
    a = gmm_clusters(x, reducer="pca")
    assert a == gmm_clusters(x, reducer="pca")
    assert set().union(*a) == set(range(len(x)))


def test_tiny_inputs():
    assert gmm_clusters(np.zeros((0, 4))) == []
    assert gmm_clusters(np.ones((1, 4))) == [[0]]
    assert gmm_clusters(np.eye(2)) == [[0, 1]]
    assert cluster_for_summary(np.ones((1, 4)), [50], 100) == [[0]]
    assert reduce_dims(np.eye(3), dim=10).shape == (3, 3)


def test_budget_split_keeps_every_member_and_fits():
    x = blobs(n_per=10)
    tokens = [100] * len(x)
    parts = split_to_budget(range(len(x)), tokens, x, budget=350)
    assert sorted(i for p in parts for i in p) == list(range(len(x)))
    assert all(sum(tokens[i] for i in p) <= 350 for p in parts)
    # A similarity split keeps blobs apart: no part mixes points of different blobs.
    assert all(len({i // 10 for i in p}) == 1 for p in parts)


def test_a_single_member_over_budget_comes_back_alone():
    assert split_to_budget([0], [900], np.ones((1, 3)), budget=100) == [[0]]


def test_split_in_two_is_one_sided_safe():
    a, b = split_in_two(np.ones((5, 3)))
    assert a and b and sorted(a + b) == list(range(5))


def test_each_layer_fits_the_budget_and_shrinks():
    x = blobs(n_per=20, dim=2)
    tokens = [180] * len(x)
    clusters = cluster_for_summary(x, tokens, budget=1000, reducer="none")
    assert set().union(*map(set, clusters)) == set(range(len(x)))
    assert all(sum(tokens[i] for i in c) <= 1000 for c in clusters)
    assert len(clusters) < len(x)


def test_no_progress_falls_back_to_packing():
    # Every node alone in its own cluster would not shrink the layer: pack in order instead.
    assert pack_in_order([60, 60, 60, 60, 60], 130) == [[0, 1], [2, 3], [4]]


@pytest.mark.slow
def test_umap_reduces_real_sized_sets():
    x = np.random.RandomState(1).randn(40, 384)
    assert reduce_dims(x, dim=10, reducer="umap").shape == (40, 10)


# --- collapsed tree with fixed embeddings
def test_collapsed_fills_budget_best_first_over_all_levels():
    ranked = [("leaf-a", 0.99), ("sum-1", 0.98), ("leaf-b", 0.9), ("paper", 0.7), ("topic", 0.1)]
    tokens = {"leaf-a": 200, "leaf-b": 200, "sum-1": 120, "paper": 150, "topic": 100}
    got = fill_budget(ranked, tokens, budget=530)
    assert [cid for cid, _ in got] == ["leaf-a", "sum-1", "leaf-b"]  # 520 tokens; "paper" would pass 530
    assert fill_budget(ranked, {**tokens, "leaf-a": 600}, budget=530) == []  # the best node alone is too big
    assert [c for c, _ in fill_budget([("gone", 1.0), *ranked], tokens, 10_000)][0] == "leaf-a"  # unknown ids skipped


def test_fill_budget_skips_unknown_ids():
    assert fill_budget([("x", 0.9), ("a", 0.8)], {"a": 10}, 20) == [("a", 0.8)]


def test_level_filters_in_mode_names():
    assert parse_levels("collapsed") is None
    assert parse_levels("collapsed:0,1") == [0, 1]
    assert parse_levels("collapsed:1-3,topic") == [1, 2, 3, TOPIC_LEVEL]
    with pytest.raises(ValueError):
        parse_levels("collapsed:x")


# --- reply hygiene
def test_summary_cleanup():
    assert clean_summary("Summary: A is B. A is B. C holds.") == "A is B. C holds."
    assert cut_to_sentence("One full sentence here. And a cut-off tail that") == "One full sentence here."
    assert looks_runaway("the model the model the model the model " * 20)
    assert not looks_runaway("A normal summary with varied words about attention heads and speed-ups. " * 2)


def test_split_text_drops_nothing():
    text = " ".join(f"Sentence number {i} has some words." for i in range(40))
    pieces = split_text(text, 30, lambda s: len(s.split()))
    assert " ".join(pieces).split() == text.split()
    assert all(len(p.split()) <= 30 for p in pieces)


def _unit(*rows: list[float]) -> np.ndarray:
    x = np.asarray(rows, dtype=np.float64)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_topic_groups_keep_earlier_topics_and_join_a_new_paper_to_the_nearest():
    papers = ["a", "b", "c", "d", "e"]
    vectors = _unit([1, 0.1, 0], [1, 0, 0.1], [0, 1, 0.1], [0.1, 1, 0], [0.05, 1, 0.05])  # e sits with c and d
    groups = topic_groups(papers, vectors, [50] * 5, kept=[["a", "b"], ["c", "d"]], budget=1000)
    assert groups == [["a", "b"], ["c", "d", "e"]]


def test_a_topic_of_one_paper_joins_its_nearest_topic():
    vectors = dict(zip("abcde", _unit([1, 0, 0], [0.9, 0.1, 0], [1, 0.1, 0], [0, 1, 0], [0, 1, 0.1])))
    assert merge_singletons([["a"], ["b", "c"], ["d", "e"]], vectors) == [["a", "b", "c"], ["d", "e"]]


def test_estimate_grows_with_the_paper_and_counts_the_root():
    assert estimate_summaries([100], budget=1500) == 1  # fits one prompt: the paper summary alone
    small, large = estimate_summaries([200] * 20, 1500), estimate_summaries([200] * 200, 1500)
    assert 1 < small < large
