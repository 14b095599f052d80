"""Clusters (connected components) over verified duplicate edges, and the survivors within them.

Clusters are what the metadata reports. Removal is decided edge by edge, not cluster by
cluster: in rank order a node is kept unless a verified edge links it to a node already kept,
and then it names that node as the one it duplicates. So every dropped record is directly
above the threshold against its survivor (no chains A~B~C dropping C for A), and no two kept
records share a verified edge.
"""

from dataclasses import dataclass

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components


def cluster_labels(n: int, edges: np.ndarray) -> np.ndarray:
    """Connected-component label of each of n nodes, given (k x 2) edges."""
    edges = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
    graph = coo_matrix((np.ones(len(edges), np.int8), (edges[:, 0], edges[:, 1])), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    return labels.astype(np.int64)


@dataclass(frozen=True)
class Survivors:
    kept: np.ndarray
    """bool per node"""
    duplicate_of: np.ndarray
    """index of the kept node a dropped node duplicates, -1 for kept nodes"""
    similarity: np.ndarray
    """similarity of the edge to duplicate_of, NaN for kept nodes"""
    edge: np.ndarray
    """index of that edge in the input edges, -1 for kept nodes"""


def select_survivors(
    rank: np.ndarray,
    edges: np.ndarray,
    similarity: np.ndarray,
    protected: np.ndarray | None = None,
) -> Survivors:
    """Keep nodes in rank order (lower first) unless an edge links them to a kept node.

    protected nodes (already accepted in an earlier run) are always kept and go first.
    Among several kept neighbours, the most similar one is named.
    """
    n = rank.size
    kept = np.ones(n, dtype=bool)
    dup_of = np.full(n, -1, dtype=np.int64)
    sim_of = np.full(n, np.nan)
    via = np.full(n, -1, dtype=np.int64)
    if edges.size == 0:
        return Survivors(kept, dup_of, sim_of, via)
    prot = np.zeros(n, bool) if protected is None else protected
    adjacency: dict[int, list[tuple[int, float, int]]] = {}
    for i, ((a, b), s) in enumerate(zip(edges.tolist(), similarity.tolist(), strict=True)):
        adjacency.setdefault(a, []).append((b, s, i))
        adjacency.setdefault(b, []).append((a, s, i))
    nodes = np.fromiter(adjacency.keys(), np.int64)
    order = nodes[np.lexsort((nodes, rank[nodes], ~prot[nodes]))]
    done = np.zeros(n, dtype=bool)
    for node in order.tolist():
        done[node] = True
        if prot[node]:
            continue
        best, best_sim, best_edge = -1, -1.0, -1
        for other, s, i in adjacency[node]:
            if done[other] and kept[other] and s > best_sim:
                best, best_sim, best_edge = other, s, i
        if best >= 0:
            kept[node] = False
            dup_of[node] = best
            sim_of[node] = best_sim
            via[node] = best_edge
    return Survivors(kept, dup_of, sim_of, via)


def size_histogram(labels: np.ndarray, weights: np.ndarray | None = None) -> dict[int, int]:
    """cluster size -> number of clusters, for clusters of two or more members."""
    sizes = np.bincount(labels, weights=weights).astype(np.int64)
    sizes = sizes[sizes > 1]
    values, counts = np.unique(sizes, return_counts=True)
    return {int(v): int(c) for v, c in zip(values, counts, strict=True)}
