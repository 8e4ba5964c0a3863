"""Weighted reciprocal-rank fusion on hand-made rankings with known fused order."""
from __future__ import annotations

import pytest

from assistant.engine.fusion import rrf


def test_equal_weights_known_order():
    rankings = {
        "dense": [("a", 0.9), ("b", 0.8), ("c", 0.7)],
        "bm25": [("b", 12.0), ("c", 11.0), ("d", 3.0)],
    }
    fused = rrf(rankings, {"dense": 1.0, "bm25": 1.0}, k=0, limit=10)
    # b: 1/2 + 1/1 = 1.5; a: 1/1 = 1.0; c: 1/3 + 1/2 = 0.833; d: 1/3
    assert [d for d, _ in fused] == ["b", "a", "c", "d"]
    assert fused[0][1] == pytest.approx(1.5)
    assert fused[2][1] == pytest.approx(1 / 3 + 1 / 2)


def test_weights_change_the_order_and_zero_or_missing_weight_drops_a_retriever():
    rankings = {"dense": [("a", 1.0), ("b", 0.5)], "bm25": [("b", 2.0), ("a", 1.0)], "colbert": [("z", 1.0)]}
    assert [d for d, _ in rrf(rankings, {"dense": 2.0, "bm25": 1.0}, k=60)] == ["a", "b"]
    assert [d for d, _ in rrf(rankings, {"dense": 1.0, "bm25": 2.0}, k=60)] == ["b", "a"]
    assert "z" not in {d for d, _ in rrf(rankings, {"dense": 1.0, "bm25": 1.0, "colbert": 0.0})}
    assert "z" not in {d for d, _ in rrf(rankings, {"dense": 1.0, "bm25": 1.0})}


def test_k_limit_ties_and_duplicates():
    rankings = {"x": [("a", 1.0), ("b", 0.9), ("c", 0.8)], "y": [("c", 1.0), ("b", 0.9), ("a", 0.8)]}
    fused = rrf(rankings, {"x": 1.0, "y": 1.0}, k=60, limit=2)
    # a and c tie (1/61 + 1/63), b is 2/62 which is less; ties break by best rank then id
    assert len(fused) == 2 and [d for d, _ in fused] == ["a", "c"]
    # large k flattens rank differences: one list's #1 vs an item ranked #2 in both lists
    r = {"x": [("p", 1.0), ("q", 0.9)], "y": [("r", 1.0), ("q", 0.9)]}
    assert rrf(r, {"x": 1, "y": 1}, k=0)[0][0] == "p"  # p = 1/1 ties q = 1/2 + 1/2; p has the better best rank
    assert rrf(r, {"x": 1, "y": 1}, k=60)[0][0] == "q"  # 2/62 > 1/61
    # a duplicate id inside one ranking counts once, at its best rank
    dup = rrf({"x": [("a", 1.0), ("a", 0.5), ("b", 0.4)]}, {"x": 1.0}, k=0)
    assert dup == [("a", 1.0), ("b", pytest.approx(1 / 3))]
    assert rrf({}, {"x": 1.0}) == []
    with pytest.raises(ValueError):
        rrf(rankings, {"x": 1.0}, k=-1)
