"""Specifications of the deep metric learning losses in skmeta.losses."""

import io
import itertools
import math

import pytest
import torch
from torch.nn import functional as F

from skmeta.distances import Cosine, Euclidean, Mahalanobis
from skmeta.losses import (
    ArcFaceLoss,
    ContrastiveLoss,
    CosFaceLoss,
    NPairLoss,
    NTXentLoss,
    TripletMarginLoss,
)
from skmeta.miners import BatchHardMiner, PairMarginMiner


def t(rows):
    return torch.tensor(rows, dtype=torch.float64, requires_grad=True)


def labels_of(values):
    return torch.tensor(values, dtype=torch.int64)


def sgd_step(module, loss, lr):
    """One plain gradient step (torch.optim costs seconds to import)."""
    module.zero_grad()
    loss.backward()
    with torch.no_grad():
        for param in module.parameters():
            param -= lr * param.grad


@pytest.fixture
def random_batch():
    gen = torch.Generator().manual_seed(0)
    emb = torch.randn(16, 5, generator=gen, dtype=torch.float64)
    labels = torch.randint(0, 4, (16,), generator=gen)
    return emb.requires_grad_(), labels


# The 4-point triplet example: points on the x-axis.
#   index:  0        1        2          3
#   x:      0        1        0.5        3
#   label:  0        0        1          1
LINE = [[0.0, 0.0], [1.0, 0.0], [0.5, 0.0], [3.0, 0.0]]
LINE_LABELS = [0, 0, 1, 1]


# ---------------------------------------------------------------------------
# ContrastiveLoss
# ---------------------------------------------------------------------------


def test_contrastive_hand_computed():
    emb = t([[0.0, 0.0], [3.0, 4.0], [0.0, 0.5]])
    labels = labels_of([0, 0, 1])
    # (0,1) positive, D=5 -> 25; (0,2) negative, D=0.5 -> (1-0.5)^2 = 0.25;
    # (1,2) negative, D=sqrt(21.25) > 1 -> 0. Mean over the 3 pairs.
    loss = ContrastiveLoss(margin=1.0)(emb, labels)
    assert loss.item() == pytest.approx((25 + 0.25 + 0) / 3)


def test_contrastive_with_cosine_distance():
    emb = t([[1.0, 0.0], [0.0, 2.0], [-1.0, 0.0]])
    labels = labels_of([0, 0, 1])
    # cosine distances: (0,1)=1 positive -> 1; (0,2)=2 negative -> 0;
    # (1,2)=1 negative, margin 1.5 -> 0.25.
    loss = ContrastiveLoss(margin=1.5, distance="cosine")(emb, labels)
    assert loss.item() == pytest.approx((1 + 0 + 0.25) / 3)


def test_contrastive_matches_a_loop_over_pairs(random_batch):
    emb, labels = random_batch
    margin = 2.5
    loss = ContrastiveLoss(margin=margin)(emb, labels)
    terms = []
    for i, j in itertools.combinations(range(len(labels)), 2):
        d = torch.linalg.norm(emb[i] - emb[j]).item()
        if labels[i] == labels[j]:
            terms.append(d**2)
        else:
            terms.append(max(0.0, margin - d) ** 2)
    assert loss.item() == pytest.approx(sum(terms) / len(terms))


def test_contrastive_with_a_miner_averages_over_the_mined_pairs(random_batch):
    emb, labels = random_batch
    margin = 2.5
    per_pair = []
    for i, j in itertools.combinations(range(len(labels)), 2):
        d = torch.linalg.norm(emb[i] - emb[j]).item()
        per_pair.append(d**2 if labels[i] == labels[j] else max(0, margin - d) ** 2)
    nonzero = [v for v in per_pair if v > 0]
    loss = ContrastiveLoss(margin, miner=PairMarginMiner(0.0, margin))(emb, labels)
    assert loss.item() == pytest.approx(sum(nonzero) / len(nonzero))


def test_contrastive_gradient_pulls_positives_and_pushes_negatives():
    emb = t([[0.0, 0.0], [1.0, 0.0], [0.2, 0.0]])
    labels = labels_of([0, 0, 1])
    ContrastiveLoss(margin=1.0)(emb, labels).backward()
    # Sample 1 is pulled toward 0 (gradient points away, +x); sample 2 is pushed
    # away from 0 (its gradient points toward 0, -x).
    assert emb.grad[1, 0] > 0
    assert emb.grad[2, 0] < 0


def test_contrastive_single_sample_is_zero_with_a_gradient_path():
    emb = t([[1.0, 2.0]])
    loss = ContrastiveLoss()(emb, labels_of([0]))
    assert loss.item() == 0
    loss.backward()
    assert torch.equal(emb.grad, torch.zeros_like(emb))


# ---------------------------------------------------------------------------
# TripletMarginLoss
# ---------------------------------------------------------------------------


def test_triplet_all_hand_computed():
    # Valid triplets (a, p, n) and max(0, d(a,p) - d(a,n) + 0.2):
    # (0,1,2) 0.7  (0,1,3) 0  (1,0,2) 0.7  (1,0,3) 0
    # (2,3,0) 2.2  (2,3,1) 2.2  (3,2,0) 0  (3,2,1) 0.7  -> mean 6.5 / 8.
    loss = TripletMarginLoss(margin=0.2, miner="all")(t(LINE), labels_of(LINE_LABELS))
    assert loss.item() == pytest.approx(6.5 / 8)


def test_triplet_batch_hard_hand_computed():
    # Per anchor: hardest positive, nearest negative:
    # 0: d=1, d=0.5 -> 0.7; 1: d=1, d=min(0.5, 2) -> 0.7;
    # 2: d=2.5, d=0.5 -> 2.2; 3: d=2.5, d=min(3, 2) -> 0.7.  Mean 4.3 / 4.
    loss = TripletMarginLoss(margin=0.2, miner="hard")(t(LINE), labels_of(LINE_LABELS))
    assert loss.item() == pytest.approx(4.3 / 4)


def test_triplet_semi_hard_hand_computed():
    # With m = 0.6 the only triplet with d(a,p) < d(a,n) < d(a,p) + m is
    # (3, 2, 0): 2.5 < 3 < 3.1, loss 2.5 - 3 + 0.6 = 0.1.
    loss = TripletMarginLoss(margin=0.6, miner="semi-hard")(
        t(LINE), labels_of(LINE_LABELS)
    )
    assert loss.item() == pytest.approx(0.1)


def test_triplet_all_matches_itertools_enumeration(random_batch):
    emb, labels = random_batch
    margin = 0.5
    y = labels.tolist()
    terms = [
        max(
            0.0,
            torch.linalg.norm(emb[a] - emb[p]).item()
            - torch.linalg.norm(emb[a] - emb[n]).item()
            + margin,
        )
        for a, p, n in itertools.product(range(len(y)), repeat=3)
        if a != p and y[a] == y[p] and y[a] != y[n]
    ]
    loss = TripletMarginLoss(margin=margin, miner="all")(emb, labels)
    assert loss.item() == pytest.approx(sum(terms) / len(terms))


def test_triplet_batch_hard_matches_a_loop_over_anchors(random_batch):
    emb, labels = random_batch
    margin = 0.5
    terms = []
    for a in range(len(labels)):
        d = [torch.linalg.norm(emb[a] - emb[j]).item() for j in range(len(labels))]
        pos = [d[j] for j in range(len(labels)) if j != a and labels[j] == labels[a]]
        neg = [d[j] for j in range(len(labels)) if labels[j] != labels[a]]
        if pos and neg:
            terms.append(max(0.0, max(pos) - min(neg) + margin))
    loss = TripletMarginLoss(margin=margin, miner="hard")(emb, labels)
    assert loss.item() == pytest.approx(sum(terms) / len(terms))


def test_triplet_accepts_a_miner_object_and_a_distance_module(random_batch):
    emb, labels = random_batch
    by_name = TripletMarginLoss(0.3, distance="cosine", miner="hard")(emb, labels)
    by_object = TripletMarginLoss(0.3, distance=Cosine(), miner=BatchHardMiner())(
        emb, labels
    )
    assert by_object.item() == pytest.approx(by_name.item())


def test_triplet_no_valid_triplet_is_zero_with_a_gradient_path():
    emb = t([[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]])
    for miner in ("all", "hard", "semi-hard"):
        loss = TripletMarginLoss(miner=miner)(emb, labels_of([0, 1, 2]))
        assert loss.item() == 0
        assert loss.requires_grad
        loss.backward()
        assert torch.equal(emb.grad, torch.zeros_like(emb))


def test_triplet_gradient_reaches_a_learnable_distance(random_batch):
    emb, labels = random_batch
    loss_fn = TripletMarginLoss(margin=1.0, distance=Mahalanobis(5))
    assert [name for name, _ in loss_fn.named_parameters()] == ["distance.L"]
    loss_fn(emb.float(), labels).backward()
    assert loss_fn.distance.L.grad.abs().sum() > 0


def test_triplet_mahalanobis_by_name_needs_embedding_dim(random_batch):
    loss_fn = TripletMarginLoss(distance="mahalanobis", embedding_dim=5)
    assert isinstance(loss_fn.distance, Mahalanobis)
    with pytest.raises(ValueError, match="mahalanobis"):
        TripletMarginLoss(distance="mahalanobis")


def test_sgd_steps_on_the_batch_hard_triplet_loss_lower_it():
    torch.manual_seed(0)
    x = torch.randn(40, 4)
    labels = torch.arange(40) % 4
    net = torch.nn.Linear(4, 2)
    loss_fn = TripletMarginLoss(margin=0.5, miner="hard")
    first = loss_fn(net(x), labels).item()
    for _ in range(30):
        loss = loss_fn(net(x), labels)
        sgd_step(net, loss, lr=0.1)
    assert torch.isfinite(loss)
    assert loss.item() < first


# ---------------------------------------------------------------------------
# NPairLoss
# ---------------------------------------------------------------------------


def test_npair_hand_computed():
    emb = t([[1.0, 0.0], [0.0, 1.0], [2.0, 0.0], [0.0, 1.0]])
    labels = labels_of([0, 1, 0, 1])
    # Pairs (anchor, positive): class 0 -> (0, 2), class 1 -> (1, 3).
    # Similarities anchor_i . positive_j = [[2, 0], [0, 1]];
    # cross-entropy: row 0 log(1 + e^-2), row 1 log(1 + e^-1).
    # Squared norms of the 4 paired embeddings: 1, 4, 1, 1 -> mean 7/4.
    expected = 0.5 * (math.log1p(math.exp(-2)) + math.log1p(math.exp(-1)))
    expected += 0.002 * 7 / 4
    assert NPairLoss()(emb, labels).item() == pytest.approx(expected)


def test_npair_takes_the_first_two_samples_of_each_class_in_label_order():
    labels = labels_of([5, 3, 5, 3, 5, 7, 3])
    anchor, positive = NPairLoss.pairs(labels)
    # class 3 -> samples 1, 3; class 5 -> samples 0, 2; class 7 has one sample.
    assert anchor.tolist() == [1, 0]
    assert positive.tolist() == [3, 2]


def test_npair_ignores_samples_outside_the_pairs(random_batch):
    emb, labels = random_batch
    anchor, positive = NPairLoss.pairs(labels)
    used = torch.cat([anchor, positive])
    loss_fn = NPairLoss(l2_reg=0.01)
    full = loss_fn(emb, labels)
    # Same loss on the paired samples alone.
    assert full.item() == pytest.approx(loss_fn(emb[used], labels[used]).item())
    full.backward()
    unused = torch.ones(len(labels), dtype=torch.bool)
    unused[used] = False
    assert torch.equal(emb.grad[unused], torch.zeros_like(emb.grad[unused]))


def test_npair_matches_cross_entropy_definition(random_batch):
    emb, labels = random_batch
    anchor, positive = NPairLoss.pairs(labels)
    f, fp = emb[anchor], emb[positive]
    ce = sum(
        -(f[i] @ fp[i] - torch.logsumexp(f[i] @ fp.T, 0)) for i in range(len(f))
    ) / len(f)
    reg = (f.pow(2).sum(1).sum() + fp.pow(2).sum(1).sum()) / (2 * len(f))
    loss = NPairLoss(l2_reg=0.1)(emb, labels)
    assert loss.item() == pytest.approx((ce + 0.1 * reg).item())


def test_npair_without_two_pairs_is_zero_with_a_gradient_path():
    emb = t([[1.0, 0.0], [0.0, 1.0], [2.0, 0.0]])
    loss = NPairLoss()(emb, labels_of([0, 0, 1]))
    assert loss.item() == 0
    loss.backward()
    assert torch.equal(emb.grad, torch.zeros_like(emb))


# ---------------------------------------------------------------------------
# ArcFaceLoss / CosFaceLoss
# ---------------------------------------------------------------------------


def with_weights(loss_fn, W):
    with torch.no_grad():
        loss_fn.W.copy_(torch.as_tensor(W, dtype=loss_fn.W.dtype))
    return loss_fn


def test_arcface_hand_computed():
    s, m = 2.0, 0.5
    loss_fn = with_weights(ArcFaceLoss(2, 2, scale=s, margin=m), [[3.0, 0.0], [0, 1]])
    emb = torch.tensor([[2.0, 0.0], [1.0, 1.0]])
    labels = labels_of([0, 0])
    # Sample 0: theta_0 = 0, theta_1 = pi/2 -> logits [s cos(m), 0].
    # Sample 1: theta_0 = theta_1 = pi/4 -> [s cos(pi/4 + m), s cos(pi/4)].
    l0 = -math.log(math.exp(s * math.cos(m)) / (math.exp(s * math.cos(m)) + 1))
    z = [s * math.cos(math.pi / 4 + m), s * math.cos(math.pi / 4)]
    l1 = -(z[0] - math.log(math.exp(z[0]) + math.exp(z[1])))
    assert loss_fn(emb, labels).item() == pytest.approx((l0 + l1) / 2, rel=1e-5)


def test_cosface_hand_computed():
    s, m = 3.0, 0.35
    loss_fn = with_weights(CosFaceLoss(2, 2, scale=s, margin=m), [[1.0, 0.0], [0, 1]])
    emb = torch.tensor([[1.0, 1.0]])
    # cos theta = 1/sqrt(2) for both classes; target logit s (cos - m).
    c = 1 / math.sqrt(2)
    z0, z1 = s * (c - m), s * c
    expected = -(z0 - math.log(math.exp(z0) + math.exp(z1)))
    assert loss_fn(emb, labels_of([0])).item() == pytest.approx(expected, rel=1e-5)


def test_zero_margin_arcface_equals_cosface_equals_scaled_cosine_softmax(
    random_batch,
):
    emb, labels = random_batch
    arc = ArcFaceLoss(4, 5, scale=10.0, margin=0.0).double()
    cos = with_weights(CosFaceLoss(4, 5, scale=10.0, margin=0.0).double(), arc.W)
    logits = 10.0 * F.normalize(emb, dim=1) @ F.normalize(arc.W, dim=1).T
    reference = F.cross_entropy(logits, labels)
    assert arc(emb, labels).item() == pytest.approx(reference.item())
    assert cos(emb, labels).item() == pytest.approx(reference.item())


def test_margins_penalise_the_true_class_only(random_batch):
    emb, labels = random_batch
    for loss_fn in (ArcFaceLoss(4, 5, margin=0.3), CosFaceLoss(4, 5, margin=0.3)):
        loss_fn = loss_fn.double()
        cos = loss_fn.cosines(emb)
        logits = loss_fn.logits(emb, labels)
        true = F.one_hot(labels, 4).bool()
        assert torch.allclose(logits[~true], loss_fn.scale * cos[~true])
        assert (logits[true] < loss_fn.scale * cos[true]).all()


def test_arcface_target_logit_decreases_with_the_angle_past_pi_minus_m():
    m = 0.5
    loss_fn = with_weights(ArcFaceLoss(2, 2, scale=1.0, margin=m), [[1.0, 0], [0, 1]])
    theta = torch.linspace(0, math.pi, 2001)
    emb = torch.stack([torch.cos(theta), torch.sin(theta)], dim=1)
    target = loss_fn.logits(emb, torch.zeros(len(theta), dtype=torch.int64))[:, 0]
    assert (target[1:] <= target[:-1] + 1e-6).all()
    # Below the threshold it is cos(theta + m); at theta = pi it is
    # cos(pi) - m sin(m), the reference implementation's fallback.
    below = theta < math.pi - m - 1e-3
    assert torch.allclose(target[below], torch.cos(theta[below] + m), atol=1e-5)
    assert target[-1].item() == pytest.approx(-1 - m * math.sin(m), abs=1e-5)


def test_arcface_easy_margin_leaves_obtuse_angles_alone():
    loss_fn = with_weights(
        ArcFaceLoss(2, 2, scale=1.0, margin=0.5, easy_margin=True), [[1.0, 0], [0, 1]]
    )
    emb = torch.tensor([[-1.0, 1.0], [1.0, 1.0]])
    target = loss_fn.logits(emb, labels_of([0, 0]))[:, 0]
    assert target[0].item() == pytest.approx(-1 / math.sqrt(2), abs=1e-6)
    assert target[1].item() == pytest.approx(math.cos(math.pi / 4 + 0.5), abs=1e-6)


@pytest.mark.parametrize("cls", [ArcFaceLoss, CosFaceLoss])
def test_gradients_flow_to_the_class_weights_and_embeddings(cls):
    torch.manual_seed(0)
    loss_fn = cls(3, 4)
    # Include an embedding exactly on its class weight (theta = 0) and one
    # exactly opposite (theta = pi), where sin(theta) = 0.
    emb = torch.cat([loss_fn.W.detach()[:2].clone(), -loss_fn.W.detach()[2:]])
    emb = torch.cat([emb, torch.randn(5, 4)]).requires_grad_()
    labels = labels_of([0, 1, 2, 0, 1, 2, 0, 1])
    loss = loss_fn(emb, labels)
    loss.backward()
    assert torch.isfinite(loss_fn.W.grad).all()
    assert torch.isfinite(emb.grad).all()
    assert loss_fn.W.grad.abs().sum() > 0
    assert emb.grad.abs().sum() > 0


@pytest.mark.parametrize("cls", [ArcFaceLoss, CosFaceLoss])
def test_class_weights_train_and_save_with_the_module(cls):
    torch.manual_seed(0)
    loss_fn = cls(3, 2, scale=8.0)
    assert loss_fn.W.shape == (3, 2)
    assert [name for name, _ in loss_fn.named_parameters()] == ["W"]
    emb = torch.randn(12, 2)
    labels = torch.arange(12) % 3
    first = loss_fn(emb, labels).item()
    for _ in range(20):
        sgd_step(loss_fn, loss_fn(emb, labels), lr=0.5)
    assert loss_fn(emb, labels).item() < first

    buffer = io.BytesIO()
    torch.save(loss_fn.state_dict(), buffer)
    buffer.seek(0)
    restored = cls(3, 2, scale=8.0)
    restored.load_state_dict(torch.load(buffer))
    assert torch.equal(restored.W, loss_fn.W)


# ---------------------------------------------------------------------------
# NTXentLoss
# ---------------------------------------------------------------------------


def test_ntxent_hand_computed():
    # Two samples, two views each (labels: the sample); tau = 0.5, so a
    # cosine s gives the logit 2 s. Cosines: s02 = s12 = 1/sqrt2, s01 = s13 = 0,
    # s03 = -1, s23 = -1/sqrt2.
    views = t([[1.0, 0.0], [0.0, 1.0], [3.0, 3.0], [-2.0, 0.0]])
    r = math.sqrt(2)
    expected = [
        -math.log(math.exp(r) / (math.exp(r) + 1 + math.exp(-2))),  # 0 -> 2
        -math.log(1 / (1 + 1 + math.exp(r))),  # 1 -> 3
        -math.log(math.exp(r) / (2 * math.exp(r) + math.exp(-r))),  # 2 -> 0
        -math.log(1 / (1 + math.exp(-2) + math.exp(-r))),  # 3 -> 1
    ]
    loss = NTXentLoss(temperature=0.5)(views, labels_of([0, 1, 0, 1]))
    torch.testing.assert_close(
        loss, torch.tensor(sum(expected) / 4, dtype=torch.float64)
    )


def test_ntxent_of_two_views_is_simclr_cross_entropy_over_the_other_views():
    # SimCLR's formulation: 2N rows of logits s_ik / tau, k != i, and the
    # other view of the same sample as the target class.
    gen = torch.Generator().manual_seed(0)
    n = 6
    views = torch.randn(2 * n, 5, generator=gen, dtype=torch.float64)
    z = F.normalize(views, dim=1)
    logits = (z @ z.T / 0.1).fill_diagonal_(-math.inf)
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(n)])
    expected = F.cross_entropy(logits, target)
    samples = torch.arange(n).repeat(2)
    torch.testing.assert_close(NTXentLoss(0.1)(views, samples), expected)


def test_ntxent_matches_pytorch_metric_learning(random_batch):
    pml = pytest.importorskip("pytorch_metric_learning.losses")
    emb, labels = random_batch
    for views, classes in [(emb, torch.arange(8).repeat(2)), (emb, labels)]:
        theirs = pml.NTXentLoss(temperature=0.2)(views, classes)
        torch.testing.assert_close(NTXentLoss(0.2)(views, classes), theirs)


@pytest.mark.parametrize("miner", ["all", "hard"])
@pytest.mark.parametrize("reduction", ["mean", "mean-nonzero"])
def test_triplet_matches_pytorch_metric_learning(random_batch, miner, reduction):
    pml = pytest.importorskip("pytorch_metric_learning")
    emb, labels = random_batch
    mined = None
    if miner == "hard":  # PML mines on its own: hand it our batch-hard triplets
        dist = torch.cdist(emb, emb)
        mined = BatchHardMiner()(dist, labels)
    reducer = {
        "mean": pml.reducers.MeanReducer(),
        "mean-nonzero": pml.reducers.AvgNonZeroReducer(),
    }[reduction]
    theirs = pml.losses.TripletMarginLoss(
        margin=0.3,
        distance=pml.distances.LpDistance(normalize_embeddings=False),
        reducer=reducer,
    )(emb, labels, mined)
    ours = TripletMarginLoss(0.3, miner=miner, reduction=reduction)(emb, labels)
    torch.testing.assert_close(ours, theirs)


def test_npair_without_l2_matches_pytorch_metric_learning():
    pml = pytest.importorskip("pytorch_metric_learning")
    gen = torch.Generator().manual_seed(1)
    emb = torch.randn(10, 4, generator=gen, dtype=torch.float64)
    labels = torch.arange(5).repeat(2)  # two samples a class: one pair each
    products = pml.distances.DotProductSimilarity(normalize_embeddings=False)
    theirs = pml.losses.NPairsLoss(distance=products)(emb, labels)
    torch.testing.assert_close(NPairLoss(l2_reg=0.0)(emb, labels), theirs)


def test_ntxent_is_invariant_to_the_scale_of_each_embedding(random_batch):
    emb, labels = random_batch
    scales = torch.linspace(0.1, 30, len(emb), dtype=torch.float64)[:, None]
    loss_fn = NTXentLoss()
    torch.testing.assert_close(loss_fn(emb * scales, labels), loss_fn(emb, labels))


def test_ntxent_gradient_pulls_the_views_of_a_sample_together():
    views = t([[1.0, 0.2], [0.3, 1.0], [0.8, 0.9], [-1.0, 0.1]])
    samples = labels_of([0, 1, 0, 1])
    loss_fn = NTXentLoss(temperature=0.5)
    before = F.cosine_similarity(views[0], views[2], dim=0).item()
    first = loss_fn(views, samples).item()
    module = torch.nn.Module()
    module.views = torch.nn.Parameter(views.detach().clone())
    for _ in range(20):
        sgd_step(module, loss_fn(module.views, samples), lr=0.5)
    after = module.views.detach()
    assert loss_fn(after, samples).item() < first
    assert F.cosine_similarity(after[0], after[2], dim=0).item() > before


def test_ntxent_without_negatives_or_positives_is_a_connected_zero():
    # One sample's two views: a positive, no negative; two samples of one
    # view each: no positive.
    for labels in ([0, 0], [0, 1]):
        views = t([[1.0, 0.0], [0.6, 0.8]])
        loss = NTXentLoss()(views, labels_of(labels))
        loss.backward()
        assert loss.item() == 0
        assert torch.equal(views.grad, torch.zeros(2, 2))


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda: ContrastiveLoss(),
        lambda: TripletMarginLoss(),
        lambda: NPairLoss(),
        lambda: NTXentLoss(),
        lambda: ArcFaceLoss(3, 2),
        lambda: CosFaceLoss(3, 2),
    ],
)
def test_batch_errors_name_the_parameter(make):
    loss_fn = make()
    emb = torch.randn(4, 2)
    labels = labels_of([0, 1, 0, 1])
    with pytest.raises(ValueError, match=r"embeddings must be 2-D.*got shape \(8,\)"):
        loss_fn(emb.reshape(-1), labels)
    with pytest.raises(ValueError, match=r"labels must have shape \(4,\).*\(3,\)"):
        loss_fn(emb, labels[:3])
    with pytest.raises(TypeError, match="labels must have an integer dtype"):
        loss_fn(emb, labels.float())
    with pytest.raises(TypeError, match="labels must be a torch.Tensor.*got list"):
        loss_fn(emb, [0, 1, 0, 1])
    with pytest.raises(TypeError, match="embeddings must have a floating-point"):
        loss_fn(emb.long(), labels)
    with pytest.raises(TypeError, match="embeddings must be a torch.Tensor"):
        loss_fn(emb.numpy(), labels)
    with pytest.raises(TypeError, match="integer dtype, int64; got torch.int32"):
        loss_fn(emb, labels.int())
    for value in (math.nan, math.inf):
        bad = emb.clone()
        bad[2, 1] = value
        with pytest.raises(ValueError, match=r"finite; got 1 NaN or infinite"):
            loss_fn(bad, labels)


@pytest.mark.parametrize(
    ("loss_fn", "expected"),
    [
        (ContrastiveLoss(), "margin=1.0, miner=AllPairsMiner(), reduction='mean'"),
        (
            ArcFaceLoss(3, 2),
            "n_classes=3, embedding_dim=2, scale=64.0, margin=0.5, easy_margin=False",
        ),
    ],
)
def test_repr_lists_the_hyperparameters(loss_fn, expected):
    assert loss_fn.extra_repr() == expected


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (
            lambda: ContrastiveLoss(margin=-1),
            ValueError,
            r"margin must be >= 0.0; got -1",
        ),
        (
            lambda: ContrastiveLoss(margin=float("nan")),
            ValueError,
            "margin must be fin",
        ),
        (lambda: ContrastiveLoss(miner="hard"), ValueError, "Unknown miner 'hard'"),
        (lambda: ContrastiveLoss(miner=3), TypeError, "miner must be a name"),
        (lambda: ContrastiveLoss(reduction="sum"), ValueError, "reduction must be"),
        (lambda: TripletMarginLoss(margin=-0.1), ValueError, "margin must be >= 0.0"),
        (lambda: TripletMarginLoss(margin="1"), TypeError, "margin must be a real"),
        (lambda: TripletMarginLoss(miner="easy"), ValueError, "Unknown miner 'easy'"),
        (lambda: TripletMarginLoss(distance="l2"), ValueError, "Unknown distance"),
        (lambda: TripletMarginLoss(distance=2), TypeError, "distance must be a name"),
        (lambda: NPairLoss(l2_reg=-1e-3), ValueError, "l2_reg must be >= 0.0"),
        (lambda: NTXentLoss(temperature=0), ValueError, "temperature must be > 0.0"),
        (lambda: NTXentLoss(temperature="1"), TypeError, "temperature must be a"),
        (lambda: ArcFaceLoss(0, 2), ValueError, "n_classes must be a positive int"),
        (lambda: ArcFaceLoss(2, 2.0), ValueError, "embedding_dim must be a positive"),
        (lambda: ArcFaceLoss(2, 2, scale=0), ValueError, r"scale must be > 0.0; got 0"),
        (lambda: ArcFaceLoss(2, 2, margin=4.0), ValueError, r"margin must be < 3.14"),
        (lambda: CosFaceLoss(2, 2, margin=-0.1), ValueError, "margin must be >= 0.0"),
    ],
)
def test_parameter_errors_name_the_parameter(make, error, match):
    with pytest.raises(error, match=match):
        make()


@pytest.mark.parametrize("cls", [ArcFaceLoss, CosFaceLoss])
def test_margin_losses_reject_labels_out_of_range_and_wrong_width(cls):
    loss_fn = cls(3, 2)
    emb = torch.randn(2, 2)
    with pytest.raises(ValueError, match=r"labels must be in \[0, n_classes=3\)"):
        loss_fn(emb, labels_of([0, 3]))
    with pytest.raises(ValueError, match=r"labels must be in \[0, n_classes=3\)"):
        loss_fn(emb, labels_of([-1, 0]))
    with pytest.raises(
        ValueError, match=r"embedding_dim=2 columns; got shape \(2, 5\)"
    ):
        loss_fn(torch.randn(2, 5), labels_of([0, 1]))


def test_distance_modules_are_submodules():
    loss_fn = ContrastiveLoss(distance="euclidean")
    assert isinstance(loss_fn.distance, Euclidean)
    assert "distance" in dict(loss_fn.named_children())


@pytest.mark.parametrize(
    "reduction, expected", [("mean", 0.03), ("mean-nonzero", 0.09)]
)
def test_reduction_averages_over_all_pairs_or_the_nonzero_ones(reduction, expected):
    # Same class at distance 0.3: loss 0.09; two negatives beyond the margin
    # 0.5 (distances 1.0 and 0.7): loss 0.
    embeddings = torch.tensor([[0.0], [0.3], [1.0]], requires_grad=True)
    loss = ContrastiveLoss(margin=0.5, reduction=reduction)
    value = loss(embeddings, torch.tensor([0, 0, 1]))
    torch.testing.assert_close(value, torch.tensor(expected))


def test_the_old_name_nonzero_warns_and_reduces_as_mean_nonzero():
    embeddings = torch.tensor([[0.0], [0.3], [1.0]])
    with pytest.warns(FutureWarning, match="renamed 'mean-nonzero' in 0.1 .* 0.3"):
        loss = ContrastiveLoss(margin=0.5, reduction="nonzero")
    assert loss.reduction == "mean-nonzero"
    value = loss(embeddings, torch.tensor([0, 0, 1]))
    torch.testing.assert_close(value, torch.tensor(0.09))


def test_nonzero_reduction_of_satisfied_tuples_is_a_connected_zero():
    embeddings = torch.tensor([[0.0], [0.0], [5.0]], requires_grad=True)
    value = TripletMarginLoss(margin=0.2, reduction="mean-nonzero")(
        embeddings, torch.tensor([0, 0, 1])
    )
    value.backward()
    assert value.item() == 0 and torch.equal(embeddings.grad, torch.zeros(3, 1))
