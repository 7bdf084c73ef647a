"""Specifications of the tuple miners in skmeta.miners."""

import itertools

import pytest
import torch

from skmeta.miners import (
    PAIR_MINERS,
    TRIPLET_MINERS,
    AllPairsMiner,
    AllTripletsMiner,
    BatchHardMiner,
    PairMarginMiner,
    SemiHardMiner,
    get_miner,
    pair_masks,
)


def line_dist(xs):
    """Distance matrix of points on a line, float64."""
    x = torch.tensor(xs, dtype=torch.float64)
    return (x[:, None] - x[None, :]).abs()


@pytest.fixture
def batch():
    gen = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 4, (14,), generator=gen)
    emb = torch.randn(14, 3, generator=gen, dtype=torch.float64)
    return torch.cdist(emb, emb), labels


def test_pair_masks_positive_excludes_self_negative_is_label_mismatch():
    pos, neg = pair_masks(torch.tensor([0, 0, 1]))
    assert pos.tolist() == [
        [False, True, False],
        [True, False, False],
        [False, False, False],
    ]
    assert neg.tolist() == [
        [False, False, True],
        [False, False, True],
        [True, True, False],
    ]


def test_all_pairs_are_i_less_than_j_in_lexicographic_order():
    labels = torch.tensor([0, 1, 0, 1])
    i, j = AllPairsMiner()(torch.zeros(4, 4), labels)
    assert list(zip(i.tolist(), j.tolist(), strict=True)) == list(
        itertools.combinations(range(4), 2)
    )
    assert i.dtype == torch.int64


def test_pair_margin_miner_keeps_far_positives_and_close_negatives():
    #            0    1    2    3
    dist = line_dist([0.0, 0.5, 0.8, 3.0])
    labels = torch.tensor([0, 0, 1, 1])
    i, j = PairMarginMiner(pos_margin=0.6, neg_margin=1.0)(dist, labels)
    # positives: (0,1) d=0.5 <= 0.6 dropped; (2,3) d=2.2 kept.
    # negatives: (0,2) d=0.8 kept, (0,3) 3.0 dropped, (1,2) 0.3 kept, (1,3) dropped.
    assert list(zip(i.tolist(), j.tolist(), strict=True)) == [(0, 2), (1, 2), (2, 3)]


def test_all_triplets_match_itertools_enumeration(batch):
    dist, labels = batch
    a, p, n = AllTripletsMiner()(dist, labels)
    y = labels.tolist()
    expected = [
        (i, j, k)
        for i, j, k in itertools.product(range(len(y)), repeat=3)
        if i != j and y[i] == y[j] and y[i] != y[k]
    ]
    assert list(zip(a.tolist(), p.tolist(), n.tolist(), strict=True)) == expected


def test_batch_hard_matches_a_loop_over_anchors(batch):
    dist, labels = batch
    a, p, n = BatchHardMiner()(dist, labels)
    y = labels.tolist()
    expected = []
    for i in range(len(y)):
        pos = [j for j in range(len(y)) if j != i and y[j] == y[i]]
        neg = [k for k in range(len(y)) if y[k] != y[i]]
        if pos and neg:
            hp = max(pos, key=lambda j: (dist[i, j].item(), -j))
            hn = min(neg, key=lambda k: (dist[i, k].item(), k))
            expected.append((i, hp, hn))
    assert list(zip(a.tolist(), p.tolist(), n.tolist(), strict=True)) == expected


def test_batch_hard_breaks_ties_toward_the_lowest_index_and_skips_lonely_anchors():
    #                 0    1    2    3    4
    dist = line_dist([0.0, 1.0, -1.0, 1.0, 7.0])
    labels = torch.tensor([0, 1, 1, 0, 2])
    a, p, n = BatchHardMiner()(dist, labels)
    # anchor 0: positive 3; negatives 1 and 2 both at distance 1 -> 1 wins.
    # anchor 1: nearest negative 3 (same point); anchor 2: 0 (d=1) before 3 (d=2);
    # anchor 3: 1 (same point). Anchor 4 (label 2) has no positive: no triplet.
    assert a.tolist() == [0, 1, 2, 3]
    assert p.tolist() == [3, 2, 1, 0]
    assert n.tolist() == [1, 3, 0, 1]


def test_semi_hard_matches_brute_force(batch):
    dist, labels = batch
    margin = 0.7
    a, p, n = SemiHardMiner(margin)(dist, labels)
    y = labels.tolist()
    expected = [
        (i, j, k)
        for i, j, k in itertools.product(range(len(y)), repeat=3)
        if i != j
        and y[i] == y[j]
        and y[i] != y[k]
        and dist[i, j] < dist[i, k] < dist[i, j] + margin
    ]
    assert expected, "the fixture should have semi-hard triplets"
    assert list(zip(a.tolist(), p.tolist(), n.tolist(), strict=True)) == expected


def test_semi_hard_is_strict_on_both_sides():
    #                 0    1    2    3    4
    dist = line_dist([0.0, 1.0, 1.0, 1.5, 1.2])
    labels = torch.tensor([0, 0, 1, 1, 1])
    a, p, n = SemiHardMiner(margin=0.5)(dist, labels)
    triplets = set(zip(a.tolist(), p.tolist(), n.tolist(), strict=True))
    # anchor 0, positive 1 (d=1): negative 2 (d=1, equal) and 3 (d=1.5 = 1 + m)
    # are not semi-hard; negative 4 (d=1.2) is.
    assert (0, 1, 4) in triplets
    assert (0, 1, 2) not in triplets
    assert (0, 1, 3) not in triplets


def test_mining_does_not_track_gradients():
    emb = torch.randn(6, 2, requires_grad=True)
    dist = torch.cdist(emb, emb)
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    for miner in (AllPairsMiner(), AllTripletsMiner(), BatchHardMiner()):
        for idx in miner(dist, labels):
            assert not idx.requires_grad
            assert idx.dtype == torch.int64


def test_no_valid_triplet_gives_empty_indices():
    dist = line_dist([0.0, 1.0, 2.0])
    labels = torch.tensor([0, 1, 2])
    for miner in (AllTripletsMiner(), BatchHardMiner(), SemiHardMiner()):
        a, p, n = miner(dist, labels)
        assert len(a) == len(p) == len(n) == 0


def test_get_miner_builds_names_with_the_loss_margin():
    assert isinstance(get_miner("all", TRIPLET_MINERS, 0.2), AllTripletsMiner)
    assert isinstance(get_miner("hard", TRIPLET_MINERS, 0.2), BatchHardMiner)
    semi = get_miner("semi-hard", TRIPLET_MINERS, 0.3)
    assert isinstance(semi, SemiHardMiner) and semi.margin == 0.3
    assert isinstance(get_miner("all", PAIR_MINERS, 0.5), AllPairsMiner)
    pairs = get_miner("margin", PAIR_MINERS, 0.5)
    assert isinstance(pairs, PairMarginMiner)
    assert (pairs.pos_margin, pairs.neg_margin) == (0.0, 0.5)

    def custom(dist, labels):
        return dist, dist, dist

    assert get_miner(custom, TRIPLET_MINERS, 0.2) is custom


def test_margin_miner_keeps_exactly_the_pairs_of_nonzero_contrastive_loss():
    # Positives at 0 and 0.3, negatives at 0.4 and 0.9 (margin 0.5).
    dist = torch.tensor(
        [
            [0.0, 0.0, 0.4, 0.9],
            [0.0, 0.0, 0.9, 0.9],
            [0.4, 0.9, 0.0, 0.3],
            [0.9, 0.9, 0.3, 0.0],
        ]
    )
    labels = torch.tensor([0, 0, 1, 1])
    i, j = get_miner("margin", PAIR_MINERS, 0.5)(dist, labels)
    assert list(zip(i.tolist(), j.tolist(), strict=True)) == [(0, 2), (2, 3)]


def test_get_miner_errors_name_the_choices():
    with pytest.raises(ValueError, match=r"Unknown miner 'hardest'.*'semi-hard'"):
        get_miner("hardest", TRIPLET_MINERS, 0.2)
    with pytest.raises(ValueError, match=r"Unknown miner 'hard'.*\['all', 'margin'\]"):
        get_miner("hard", PAIR_MINERS, 0.2)
    with pytest.raises(TypeError, match="miner must be .* got int"):
        get_miner(3, TRIPLET_MINERS, 0.2)


def test_miner_parameter_errors():
    with pytest.raises(ValueError, match=r"margin must be > 0.0; got 0.0"):
        SemiHardMiner(0.0)
    with pytest.raises(TypeError, match="margin must be a real number"):
        SemiHardMiner("0.2")
    with pytest.raises(ValueError, match="neg_margin must be >= 0.0; got -1.0"):
        PairMarginMiner(neg_margin=-1.0)


def test_miner_input_errors():
    labels = torch.tensor([0, 1, 0])
    with pytest.raises(ValueError, match=r"dist must be a square \(n, n\).*\(3, 2\)"):
        AllTripletsMiner()(torch.zeros(3, 2), labels)
    with pytest.raises(ValueError, match=r"labels must have shape \(4,\).*\(3,\)"):
        BatchHardMiner()(torch.zeros(4, 4), labels)
    with pytest.raises(TypeError, match="labels must have an integer dtype"):
        AllPairsMiner()(torch.zeros(3, 3), labels.float())
