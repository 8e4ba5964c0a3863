"""RAPTOR clustering: reduce embeddings (UMAP), fit Gaussian mixtures, pick the count by BIC, assign softly;
split clusters to the summariser's budget, group papers into corpus topics, estimate a tree's size.

Pure functions of arrays (no I/O, no models), deterministic for a given seed, so tests can pin them
with fixed embeddings. Sarthi et al. 2024 (arXiv 2401.18059) use UMAP to ~10 dimensions, a GMM whose
component count minimises BIC, and a probability threshold so that one node can join several clusters.

UMAP (umap-learn 0.5.12) works with the pinned numpy/numba here, but its first call in a process pays
~17 s of numba compilation and it needs more points than target dimensions; small sets and the
`reducer="pca"` option use PCA instead (deterministic, instant).
"""
from __future__ import annotations

import math
import warnings
from typing import Literal, Mapping, Sequence

import numpy as np
from sklearn.decomposition import PCA
from sklearn.mixture import GaussianMixture

Reducer = Literal["auto", "umap", "pca", "none"]

# Below this many points UMAP's neighbour graph is too thin to mean much: PCA is used.
UMAP_MIN_POINTS = 25


def reduce_dims(vectors: np.ndarray, dim: int = 10, reducer: Reducer = "auto", seed: int = 0) -> np.ndarray:
    """Project rows to at most `dim` dimensions (never more than n-2, so a GMM stays well posed)."""
    x = np.asarray(vectors, dtype=np.float64)
    n = len(x)
    target = max(1, min(dim, n - 2, x.shape[1]))
    if reducer == "none" or n <= 3:
        return x
    if reducer == "umap" or (reducer == "auto" and n >= UMAP_MIN_POINTS):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                # Here, not at the top: umap-learn is the optional [raptor] extra, and its import pulls in numba
                # (seconds) that only a large enough layer needs.
                import umap

                neighbours = max(2, min(int(np.sqrt(n - 1)), n - 1))
                return umap.UMAP(n_neighbors=neighbours, n_components=target, metric="cosine",
                                 random_state=seed, n_jobs=1).fit_transform(x)
        except ImportError:  # no [raptor] extra: PCA keeps the build going (tests/test_packaging.py)
            pass
    return PCA(n_components=target, random_state=seed).fit_transform(x)


def best_k_by_bic(x: np.ndarray, max_k: int, seed: int = 0, patience: int = 3) -> int:
    """The Gaussian-mixture component count in 1..max_k with the lowest BIC.

    Stops once BIC has not improved for `patience` counts in a row: fitting every count up to
    RAPTOR's 50 costs ~20 s for 150 points on 2 cores, and past the minimum BIC only climbs."""
    max_k = max(1, min(max_k, len(x) - 1)) if len(x) > 1 else 1
    best_k, best_bic, worse = 1, np.inf, 0
    for k in range(1, max_k + 1):
        gm = GaussianMixture(n_components=k, random_state=seed, reg_covar=1e-4).fit(x)
        bic = gm.bic(x)
        if bic < best_bic:
            best_k, best_bic, worse = k, bic, 0
        else:
            worse += 1
            if worse >= patience:
                break
    return best_k


def gmm_clusters(vectors: np.ndarray, max_k: int = 50, threshold: float = 0.1, dim: int = 10,
                 reducer: Reducer = "auto", seed: int = 0) -> list[list[int]]:
    """Soft clusters of row indices: a row joins every component whose posterior is >= threshold
    (and always its most likely one). Empty components are dropped; order is by first member."""
    n = len(vectors)
    if n == 0:
        return []
    if n <= 2:
        return [list(range(n))]
    x = reduce_dims(vectors, dim, reducer, seed)
    k = best_k_by_bic(x, max_k, seed)
    if k == 1:
        return [list(range(n))]
    gm = GaussianMixture(n_components=k, random_state=seed, reg_covar=1e-4).fit(x)
    prob = gm.predict_proba(x)
    members: list[list[int]] = [[] for _ in range(k)]
    for i, row in enumerate(prob):
        top = int(np.argmax(row))
        for c in range(k):
            if c == top or row[c] >= threshold:
                members[c].append(i)
    clusters = [m for m in members if m]
    return sorted(clusters, key=lambda m: m[0])


def split_in_two(vectors: np.ndarray, seed: int = 0, iterations: int = 10) -> tuple[list[int], list[int]]:
    """Two-means split of rows (seeded with a far-apart pair, so deterministic); halves in order
    when the split comes out one-sided. Plain numpy: sklearn's KMeans costs ~0.15 s a call here
    (thread start-up on 2 busy cores), and budget splitting calls it dozens of times a layer."""
    x = np.asarray(vectors, dtype=np.float64)
    n = len(x)
    if n >= 4:
        a = int(np.argmax(((x - x.mean(axis=0)) ** 2).sum(axis=1)))
        b = int(np.argmax(((x - x[a]) ** 2).sum(axis=1)))
        centres = x[[a, b]]
        labels = np.zeros(n, dtype=int)
        for _ in range(iterations):
            d = ((x[:, None, :] - centres[None, :, :]) ** 2).sum(axis=2)
            new = np.argmin(d, axis=1)
            if (new == labels).all() and _ > 0:
                break
            labels = new
            if labels.min() == labels.max():
                break
            centres = np.stack([x[labels == c].mean(axis=0) for c in (0, 1)])
        first = [i for i in range(n) if labels[i] == 0]
        second = [i for i in range(n) if labels[i] == 1]
        if first and second:
            return first, second
    half = max(1, n // 2)
    return list(range(half)), list(range(half, n))


def split_to_budget(members: Sequence[int], tokens: Sequence[int], vectors: np.ndarray, budget: int,
                    seed: int = 0) -> list[list[int]]:
    """Split a cluster (indices into tokens/vectors) until each part's tokens fit the budget.

    Parts are split by similarity (two-means) so each stays coherent; a single member larger than
    the budget is returned alone and the caller must split its text (never truncate it silently).
    """
    members = list(members)
    if sum(tokens[i] for i in members) <= budget or len(members) <= 1:
        return [members]
    a, b = split_in_two(vectors[members], seed)
    out: list[list[int]] = []
    for part in (a, b):
        out.extend(split_to_budget([members[i] for i in part], tokens, vectors, budget, seed))
    return out


def pack_in_order(tokens: Sequence[int], budget: int) -> list[list[int]]:
    """Consecutive groups whose tokens fit the budget (at least one item a group)."""
    groups: list[list[int]] = [[]]
    used = 0
    for i, t in enumerate(tokens):
        if groups[-1] and used + t > budget:
            groups.append([])
            used = 0
        groups[-1].append(i)
        used += t
    return [g for g in groups if g]


def cluster_for_summary(vectors: np.ndarray, tokens: Sequence[int], budget: int, max_k: int = 50,
                        threshold: float = 0.1, reducer: Reducer = "auto", seed: int = 0) -> list[list[int]]:
    """One RAPTOR layer: soft GMM clusters, each split until it fits the summariser's token budget.

    Guarantees progress: if clustering would give as many groups as there are nodes (all
    singletons), consecutive nodes are packed together instead, so every layer shrinks.
    """
    n = len(tokens)
    if n == 0:
        return []
    vectors = np.asarray(vectors, dtype=np.float64)
    clusters = gmm_clusters(vectors, max_k=max_k, threshold=threshold, reducer=reducer, seed=seed)
    parts: list[list[int]] = []
    for cluster in clusters:
        parts.extend(split_to_budget(sorted(cluster), tokens, vectors, budget, seed))
    # Drop exact duplicates (a soft member can make two parts identical after splitting).
    unique: list[list[int]] = []
    seen: set[tuple[int, ...]] = set()
    for p in parts:
        key = tuple(sorted(p))
        if key not in seen:
            seen.add(key)
            unique.append(sorted(p))
    if n > 1 and len(unique) >= n:
        unique = pack_in_order(tokens, budget)
    return sorted(unique, key=lambda p: p[0])


def merge_singletons(groups: list[list[str]], vectors: Mapping[str, np.ndarray]) -> list[list[str]]:
    """A topic of one paper says nothing its paper summary does not: join it to the nearest topic."""
    groups = [g for g in groups if g]
    while len(groups) > 1 and any(len(g) == 1 for g in groups):
        lone = next(i for i, g in enumerate(groups) if len(g) == 1)
        v = vectors[groups[lone][0]]
        others = [i for i in range(len(groups)) if i != lone]
        best = max(others, key=lambda i: float(np.mean([vectors[a] for a in groups[i]], axis=0) @ v))
        groups[best] = sorted(groups[best] + groups[lone])
        del groups[lone]
    return groups


def topic_groups(papers: Sequence[str], vectors: np.ndarray, tokens: Sequence[int], kept: Sequence[Sequence[str]],
                 budget: int, reducer: Reducer = "auto", seed: int = 0) -> list[list[str]]:
    """The corpus topics: papers (with their summaries' vectors and token counts) grouped by similarity, each
    group's summaries fitting the budget. With earlier topics (`kept`: their members still present) and few new
    papers, the earlier groups stay and each new paper joins the nearest (near-ties join both); else all are
    clustered afresh. A group of one paper joins its nearest group."""
    papers = list(papers)
    assigned = {a for m in kept for a in m}
    new = [a for a in papers if a not in assigned]
    if not kept or len(new) > max(2, len(papers) // 2):
        clusters = cluster_for_summary(vectors, tokens, budget, reducer=reducer, seed=seed)
        groups = [[papers[i] for i in c] for c in clusters]
    else:
        groups = [list(m) for m in kept]
        index = {a: i for i, a in enumerate(papers)}
        centroids = np.stack([vectors[[index[a] for a in g]].mean(axis=0) for g in groups])
        centroids /= np.linalg.norm(centroids, axis=1, keepdims=True) + 1e-12
        for a in new:
            sims = centroids @ vectors[index[a]]
            best = float(sims.max())
            for gi in np.flatnonzero(sims >= best - 0.02)[:2]:  # soft: near-ties join both
                groups[int(gi)].append(a)
        split: list[list[str]] = []
        for g in groups:
            idx = [index[a] for a in g]
            split.extend([[papers[idx[i]] for i in part] for part in
                          split_to_budget(range(len(idx)), [tokens[i] for i in idx], vectors[idx], budget)])
        groups = split
    return merge_singletons([sorted(set(g)) for g in groups], {a: vectors[i] for i, a in enumerate(papers)})


def estimate_summaries(leaf_tokens: Sequence[int | None], budget: int, summary_tokens: int = 160) -> int:
    """Rough count of summaries a paper's tree needs, from its passages' token counts (for the ETA)."""
    tokens = sum(t or 200 for t in leaf_tokens)
    n, total = max(1, math.ceil(tokens / (0.8 * budget))), 0
    shrink = min(0.5, summary_tokens / (0.8 * budget))
    while n > 1 and total < 100_000:
        total += n
        n = math.ceil(n * shrink)
    return total + 1
