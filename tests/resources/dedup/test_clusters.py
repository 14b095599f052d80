import numpy as np

from resources.dedup.clusters import cluster_labels, select_survivors, size_histogram


def test_connected_components():
    labels = cluster_labels(6, np.array([[0, 1], [1, 2], [4, 5]]))
    assert labels[0] == labels[1] == labels[2]
    assert labels[4] == labels[5] != labels[0]
    assert len({labels[3], labels[0], labels[4]}) == 3
    assert size_histogram(labels) == {2: 1, 3: 1}


def test_chain_drops_only_direct_neighbours_of_kept():
    # 0 ~ 1 ~ 2 but 0 and 2 are not similar: 2 stays, 1 names 0.
    rank = np.array([0, 1, 2])
    surv = select_survivors(rank, np.array([[0, 1], [1, 2]]), np.array([0.9, 0.85]))
    assert surv.kept.tolist() == [True, False, True]
    assert surv.duplicate_of.tolist() == [-1, 0, -1]
    assert surv.similarity[1] == 0.9 and surv.edge[1] == 0


def test_rank_decides_who_survives():
    rank = np.array([5, 0, 3])
    edges = np.array([[0, 1], [0, 2], [1, 2]])
    surv = select_survivors(rank, edges, np.array([0.9, 0.95, 0.8]))
    assert surv.kept.tolist() == [False, True, False]
    assert surv.duplicate_of.tolist() == [1, -1, 1]


def test_protected_nodes_are_never_dropped():
    rank = np.array([0, 1])
    surv = select_survivors(rank, np.array([[0, 1]]), np.array([0.9]), np.array([False, True]))
    assert surv.kept.tolist() == [False, True]
    assert surv.duplicate_of[0] == 1


def test_histogram_weights_count_records():
    labels = np.array([0, 0, 2])
    assert size_histogram(labels, weights=np.array([2.0, 1.0, 3.0])) == {3: 2}
