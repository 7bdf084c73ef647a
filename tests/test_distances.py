"""Specifications of the pairwise distances in skmeta.distances."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from skmeta.distances import (
    DISTANCES,
    Cosine,
    Euclidean,
    Mahalanobis,
    Manhattan,
    SquaredEuclidean,
    get_distance,
    l2_normalize,
)

# Factories, so that no test sees a module another test converted or trained.
ALL = [SquaredEuclidean, Euclidean, Cosine, Manhattan, lambda: Mahalanobis(3)]
IDS = ["sqeuclidean", "euclidean", "cosine", "manhattan", "mahalanobis"]

# a = [[0, 0], [1, 1]], b = [[3, 4]]: differences (-3, -4) and (-2, -3).
A = [[0.0, 0.0], [1.0, 1.0]]
B = [[3.0, 4.0]]


def t(rows, dtype=torch.float64):
    return torch.tensor(rows, dtype=dtype)


def random_batch(e=3, n=5, m=4, d=6, seed=0, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    a = torch.randn(e, n, d, generator=gen, dtype=dtype)
    b = torch.randn(e, m, d, generator=gen, dtype=dtype)
    return a, b


def loop(a, b, fn):
    """Brute force: fn on every (episode, i, j) pair of rows."""
    out = torch.empty(a.shape[0], a.shape[1], b.shape[1], dtype=a.dtype)
    for e in range(a.shape[0]):
        for i in range(a.shape[1]):
            for j in range(b.shape[1]):
                out[e, i, j] = fn(a[e, i], b[e, j])
    return out


# -- values computed by hand ----------------------------------------------------


def test_sqeuclidean_by_hand():
    # 3^2 + 4^2 = 25; 2^2 + 3^2 = 13
    torch.testing.assert_close(SquaredEuclidean()(t(A), t(B)), t([[25.0], [13.0]]))


def test_euclidean_by_hand():
    expected = t([[5.0], [math.sqrt(13)]])
    torch.testing.assert_close(Euclidean()(t(A), t(B)), expected)


def test_manhattan_by_hand():
    # |3| + |4| = 7; |2| + |3| = 5
    torch.testing.assert_close(Manhattan()(t(A), t(B)), t([[7.0], [5.0]]))


def test_cosine_by_hand():
    # [0, 0] has no direction: normalised to 0, so cosine similarity 0, distance 1.
    # [1, 1] . [3, 4] = 7, |[1, 1]| = sqrt(2), |[3, 4]| = 5.
    expected = t([[1.0], [1 - 7 / (5 * math.sqrt(2))]])
    torch.testing.assert_close(Cosine()(t(A), t(B)), expected)


def test_cosine_of_parallel_orthogonal_and_opposite_vectors():
    a = t([[1.0, 0.0]])
    b = t([[5.0, 0.0], [0.0, 2.0], [-3.0, 0.0]])
    torch.testing.assert_close(Cosine()(a, b), t([[0.0, 1.0, 2.0]]))


def test_cosine_ignores_scale():
    a, b = random_batch()
    torch.testing.assert_close(Cosine()(3 * a, 0.5 * b), Cosine()(a, b))


def test_manhattan_and_euclidean_differ_on_the_diagonal():
    a, b = t([[0.0, 0.0]]), t([[1.0, 1.0]])
    torch.testing.assert_close(Manhattan()(a, b), t([[2.0]]))
    torch.testing.assert_close(Euclidean()(a, b), t([[math.sqrt(2)]]))


# -- no cancellation: a common offset, in float32 ------------------------------


def expanded_form(a, b):
    """The uncentred |a|^2 - 2 a.b + |b|^2, to show what the inputs provoke."""
    return (a * a).sum(-1, keepdim=True) - 2 * a @ b.mT + (b * b).sum(-1)[..., None, :]


# 1e6 + 0.5, 1e6 and 1e6 + 2 are float32 numbers (spacing 0.0625 at 1e6).
FAR_QUERY = t([[1e6 + 0.5]], torch.float32)
FAR_POINTS = t([[1e6], [1e6 + 2.0]], torch.float32)


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (SquaredEuclidean, [[0.25, 2.25]]),
        (Euclidean, [[0.5, 1.5]]),
        (Manhattan, [[0.5, 1.5]]),
        (lambda: Mahalanobis(1), [[0.25, 2.25]]),  # L = 1
    ],
    ids=["sqeuclidean", "euclidean", "manhattan", "mahalanobis"],
)
def test_distances_far_from_the_origin_are_exact_in_float32(make, expected):
    out = make()(FAR_QUERY, FAR_POINTS)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, t(expected, torch.float32), rtol=0, atol=0)
    # (1e6 + 0.5)^2 is 1e12 + 1e6 + 0.25, where float32's spacing is 65536
    naive = expanded_form(FAR_QUERY, FAR_POINTS).clamp_min(0)
    assert not torch.equal(naive[0, :1], t([0.25], torch.float32))


def test_cosine_of_nearly_parallel_vectors_is_not_rounded_to_zero():
    # 1 - cos = 1 - 1 / sqrt(1 + 1e-8) = 5e-9 - 3.75e-17: below float32's
    # resolution at 1, so 1 - a.b of the unit vectors rounds it to 0.
    a, b = t([[1.0, 0.0]], torch.float32), t([[1.0, 1e-4]], torch.float32)
    torch.testing.assert_close(
        Cosine()(a, b), t([[5e-9]], torch.float32), rtol=1e-6, atol=0
    )
    naive = (
        1 - nn.functional.normalize(a, dim=-1) @ nn.functional.normalize(b, dim=-1).T
    )
    assert naive.item() == 0


def cosine_form(a, b):
    """1 - a.b of the unit vectors: an absolute rounding error of about 1e-7."""
    unit = nn.functional.normalize
    return 1 - unit(a, dim=-1) @ unit(b, dim=-1).mT


def explicit(name, a, b):
    """Distances in float64 from the explicit differences (no cancellation)."""
    a, b = a.double(), b.double()
    if name == "cosine":
        a, b = a / a.norm(dim=-1, keepdim=True), b / b.norm(dim=-1, keepdim=True)
    diff = a.unsqueeze(-2) - b.unsqueeze(-3)
    return {
        "sqeuclidean": diff.pow(2).sum(-1),
        "mahalanobis": diff.pow(2).sum(-1),  # L = I
        "euclidean": diff.pow(2).sum(-1).sqrt(),
        "manhattan": diff.abs().sum(-1),
        "cosine": diff.pow(2).sum(-1) / 2,
    }[name]


@pytest.mark.parametrize("offset", [0.0, 1e3, 1e4, 1e5, 1e6])
@pytest.mark.parametrize("name", IDS)
def test_float32_distances_of_offset_points_match_float64(name, offset):
    # Each episode its own offset: the centring point is per episode.
    a, b = random_batch(e=2, n=7, m=4, d=6, seed=3, dtype=torch.float32)
    shift = t([[[offset]], [[-offset / 2]]], torch.float32)
    a, b = a + shift, b + shift  # the float32 inputs; the float64 reference
    out = get_distance(name, 6)(a, b)  # sees the same rounded values
    expected = explicit(name, a, b)
    if name == "cosine":
        # Unit vectors hold a direction to float32's resolution, so the
        # relative error grows as offset / spread (1e-2 at 1e5); the form
        # 1 - a.b, whose error is absolute, is wrong from 1e3.
        if offset > 1e4:
            return  # the classification test covers larger offsets
        rtol = 1e-6 + 1e-6 * offset
        naive = (
            1
            - nn.functional.normalize(a, dim=-1) @ nn.functional.normalize(b, dim=-1).mT
        )
        assert offset == 0 or not torch.allclose(naive.double(), expected, rtol=rtol)
    else:
        rtol = 1e-6
        naive = expanded_form(a, b).clamp_min(0)
        if name in ("sqeuclidean", "mahalanobis") and offset >= 1e3:
            assert not torch.allclose(naive.double(), expected, rtol=0.1)
    torch.testing.assert_close(out.double(), expected, rtol=rtol, atol=0)


@pytest.mark.parametrize("make", ALL, ids=IDS)
def test_gradients_of_offset_points_equal_those_without_offset(make):
    # In training the gradient is what matters; dyadic values so that the
    # offset inputs are the same points, exactly.
    gen = torch.Generator().manual_seed(5)
    a = (torch.randint(-64, 64, (5, 3), generator=gen) / 16).float()
    b = (torch.randint(-64, 64, (4, 3), generator=gen) / 16).float()
    grads = []
    for offset in (0.0, 1e4):
        if make is Cosine:  # not translation invariant: scale instead
            x, y = (a * (1 + offset)).requires_grad_(), (b * (1 + offset))
        else:
            x, y = (a + offset).requires_grad_(), (b + offset)
        make()(x, y.requires_grad_()).sum().backward()
        scale = 1 + offset if make is Cosine else 1  # d(x/c) = dx / c
        grads.append((x.grad * scale, y.grad * scale))
    for got, expected in zip(grads[1], grads[0], strict=True):
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


# -- no overflow or underflow ------------------------------------------------------


@pytest.mark.parametrize("magnitude", [1e19, 1e-30, 1e30, 1e-38])
def test_l2_normalize_gives_unit_vectors_at_any_magnitude(magnitude):
    x = t([[3.0, 4.0], [-1.0, 0.0], [1.0, 1.0]], torch.float32)
    out = l2_normalize(x * magnitude)
    expected = t([[0.6, 0.8], [-1.0, 0.0], [0.5**0.5, 0.5**0.5]], torch.float32)
    torch.testing.assert_close(out, expected)
    # where F.normalize squares 1e19 to inf (zeros) or 1e-30 to 0 (no unit)
    if magnitude in (1e19, 1e-30):
        naive = nn.functional.normalize(x * magnitude, dim=-1)
        assert not torch.allclose(naive, expected)


def test_l2_normalize_keeps_zero_vectors_and_follows_dim():
    x = t([[0.0, 0.0, 0.0], [2.0, 0.0, 0.0]], torch.float32)
    torch.testing.assert_close(
        l2_normalize(x), t([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]], torch.float32)
    )
    # along dim 0: columns (0, 2), (0, 0), (0, 0)
    torch.testing.assert_close(
        l2_normalize(x, dim=0), t([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]], torch.float32)
    )
    images = torch.randn(2, 3, 4, 5)
    torch.testing.assert_close(
        l2_normalize(images, dim=1), nn.functional.normalize(images, dim=1)
    )
    assert l2_normalize(torch.empty(3, 0)).shape == (3, 0)


def test_l2_normalize_has_the_gradient_of_x_over_its_norm():
    x = torch.randn(4, 5, dtype=torch.float64)
    w = torch.randn(4, 5, dtype=torch.float64)
    ours, theirs = x.clone().requires_grad_(), x.clone().requires_grad_()
    (l2_normalize(ours) * w).sum().backward()
    (nn.functional.normalize(theirs, dim=-1) * w).sum().backward()
    torch.testing.assert_close(ours.grad, theirs.grad)
    zero = torch.zeros(1, 3, requires_grad=True)
    l2_normalize(zero).sum().backward()
    assert torch.isfinite(zero.grad).all()


@pytest.mark.parametrize("magnitude", [1e19, 1e-30, 1e30])
@pytest.mark.parametrize(
    ("make", "power"),
    [(Euclidean, 1), (Manhattan, 1), (Cosine, 0)],
    ids=["euclidean", "manhattan", "cosine"],
)
def test_distances_of_huge_or_tiny_points_scale_with_them(make, power, magnitude):
    # distances that float32 holds, though squares of the points it does not
    a, b = random_batch(e=2, n=5, m=3, d=4, seed=6, dtype=torch.float32)
    # eps would clamp Euclidean distances below 1e-6
    distance = Euclidean(eps=0) if make is Euclidean else make()
    expected = distance(a, b).double() * magnitude**power
    out = distance(a * magnitude, b * magnitude)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out.double(), expected, rtol=1e-5, atol=0)


def test_squared_distances_are_inf_only_where_they_exceed_float32():
    # Squared norms of 1.3e19 (1.7e38) are finite, but twice their product
    # (3.6e38) is not: the uncentred form gives 0 where the answer is 1e36.
    query = t([[1.4e19]], torch.float32)
    points = t([[1.3e19], [-1.3e19]], torch.float32)
    for distance in (SquaredEuclidean(), Mahalanobis(1)):
        out = distance(query, points).double()
        # the spread of 2.6e19 cancels: 1e36 to about 100 float32 epsilons
        torch.testing.assert_close(out[0, 0], t(1e36), rtol=1e-4, atol=0)
        assert out[0, 1] == float("inf")  # 2.7e19 squared: 7.3e38
    naive = expanded_form(query, points).clamp_min(0)
    assert naive[0, 0] == 0


def test_euclidean_of_tiny_points_is_clamped_at_the_root_of_eps():
    a, b = t([[0.0, 0.0]], torch.float32), t([[3e-30, 4e-30]], torch.float32)
    assert Euclidean()(a, b).item() == pytest.approx(1e-6)
    assert Euclidean(eps=0)(a, b).item() == pytest.approx(5e-30)


# -- brute force on batched episodes ------------------------------------------------


@pytest.mark.parametrize(
    ("distance", "pair"),
    [
        (SquaredEuclidean(), lambda x, y: ((x - y) ** 2).sum()),
        (Euclidean(), lambda x, y: ((x - y) ** 2).sum().sqrt()),
        (Manhattan(), lambda x, y: (x - y).abs().sum()),
        (Cosine(), lambda x, y: 1 - x @ y / (x.norm() * y.norm())),
    ],
    ids=["sqeuclidean", "euclidean", "manhattan", "cosine"],
)
def test_batched_distances_match_explicit_loops(distance, pair):
    a, b = random_batch(e=3, n=5, m=4, d=6)
    out = distance(a, b)
    assert out.shape == (3, 5, 4)
    torch.testing.assert_close(out, loop(a, b, pair))


@pytest.mark.parametrize(
    ("distance", "p", "power"),
    [(SquaredEuclidean(), 2, 2), (Euclidean(), 2, 1), (Manhattan(), 1, 1)],
    ids=["sqeuclidean", "euclidean", "manhattan"],
)
def test_batched_distances_match_torch_cdist(distance, p, power):
    a, b = random_batch(e=4, n=7, m=3, d=5, seed=1)
    torch.testing.assert_close(distance(a, b), torch.cdist(a, b, p=p) ** power)


@pytest.mark.parametrize("make", ALL, ids=IDS)
def test_output_shape_and_dtype_follow_the_inputs(make):
    a, b = random_batch(e=2, n=5, m=4, d=3, dtype=torch.float32)
    distance = make()
    out = distance(a, b)
    assert out.shape == (2, 5, 4)
    assert out.dtype == torch.float32
    out2d = distance(a[0], b[0])
    assert out2d.shape == (5, 4)
    torch.testing.assert_close(out2d, out[0])


@pytest.mark.parametrize("make", ALL, ids=IDS)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_inputs_and_autocast_compute_in_float32(make, dtype):
    a, b = random_batch(e=2, n=5, m=4, d=3, dtype=torch.float32)
    a, b = a.to(dtype), b.to(dtype)  # values that half precision holds exactly
    distance = make()
    expected = distance(a.float(), b.float())
    out = distance(a, b)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, expected, rtol=0, atol=0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        torch.testing.assert_close(
            distance(a.float(), b.float()), expected, rtol=0, atol=0
        )


def test_sqeuclidean_tells_apart_near_prototypes_far_from_the_origin_in_autocast():
    # |q|^2 = 10000.25: bfloat16 holds 10000 or 10048, nothing between, so the
    # expanded form in bfloat16 cannot see squared distances of 0.25 and 2.25.
    query, prototypes = (
        t([[100.0, 0.5]], torch.float32),
        t([[100.0, 0.0], [100.0, 2.0]], torch.float32),
    )
    with torch.autocast("cpu", dtype=torch.bfloat16):
        d = SquaredEuclidean()(query, prototypes)
    torch.testing.assert_close(d, t([[0.25, 2.25]], torch.float32))


@pytest.mark.parametrize("make", ALL, ids=IDS)
def test_distance_is_smallest_for_identical_points(make):
    a, _ = random_batch(e=1, n=6, m=1, d=3)
    d = make().double()(a[0], a[0])
    # the diagonal (a point against itself) is the minimum of each row
    torch.testing.assert_close(d.diagonal(), d.min(dim=1).values)
    # Euclidean clamps the squared distance at eps = 1e-12: sqrt(eps) = 1e-6
    assert (d.diagonal().abs() <= 1e-6 + 1e-12).all()


@pytest.mark.parametrize("make", ALL, ids=IDS)
def test_distance_is_symmetric_and_non_negative(make):
    a, b = random_batch(e=2, n=4, m=4, d=3)
    distance = make().double()
    torch.testing.assert_close(distance(a, b), distance(b, a).transpose(-1, -2))
    assert (distance(a, b) >= -1e-12).all()


def test_sqeuclidean_is_never_negative_for_identical_points():
    # Large, nearly equal rows: ||a||^2 - 2 a.b + ||b||^2 cancels catastrophically
    # in float32 and would round below 0 without the clamp.
    gen = torch.Generator().manual_seed(0)
    a = 1000 + torch.randn(64, 32, generator=gen)
    d = SquaredEuclidean()(a, a)
    assert (d >= 0).all()
    assert (d.diagonal() == d.diagonal().clamp_min(0)).all()
    unclamped = (a * a).sum(-1, keepdim=True) - 2 * a @ a.T + (a * a).sum(-1)
    assert (unclamped.diagonal() < 0).any(), "the input should provoke rounding"


def test_euclidean_gradient_is_finite_at_zero_distance():
    a = t([[1.0, 2.0], [1.0, 2.0]]).requires_grad_()
    b = t([[1.0, 2.0]]).requires_grad_()
    d = Euclidean()(a, b)
    assert (d >= 0).all()
    d.sum().backward()
    assert torch.isfinite(a.grad).all()
    assert torch.isfinite(b.grad).all()


def test_euclidean_gradient_is_finite_at_zero_distance_in_float32():
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(8, 16, generator=gen).requires_grad_()
    Euclidean()(a, a.detach().clone()).sum().backward()
    assert torch.isfinite(a.grad).all()


def test_euclidean_gradient_away_from_zero_is_the_unit_difference():
    a = t([[0.0, 0.0]]).requires_grad_()
    Euclidean()(a, t([[3.0, 4.0]])).sum().backward()
    torch.testing.assert_close(a.grad, t([[-0.6, -0.8]]))


# -- Mahalanobis ------------------------------------------------------------------


def test_mahalanobis_starts_equal_to_sqeuclidean():
    a, b = random_batch(e=2, n=5, m=4, d=6)
    maha = Mahalanobis(6).double()
    torch.testing.assert_close(maha(a, b), SquaredEuclidean()(a, b))
    torch.testing.assert_close(maha.matrix, torch.eye(6, dtype=torch.float64))


def test_mahalanobis_l_has_shape_rank_by_dim_and_is_a_parameter():
    maha = Mahalanobis(5, rank=2)
    assert isinstance(maha.L, nn.Parameter)
    assert maha.L.shape == (2, 5)
    assert [p for p in maha.parameters()] == [maha.L]
    torch.testing.assert_close(maha.L.detach(), torch.eye(5)[:2])


def perturbed(dim, rank=None, seed=0):
    maha = Mahalanobis(dim, rank=rank).double()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        maha.L.add_(torch.randn(maha.L.shape, generator=gen, dtype=torch.float64))
    return maha


@pytest.mark.parametrize("rank", [None, 2])
def test_mahalanobis_matrix_is_symmetric_psd_after_perturbing_l(rank):
    maha = perturbed(4, rank=rank)
    m = maha.matrix.detach()
    assert m.shape == (4, 4)
    torch.testing.assert_close(m, m.T)
    assert (torch.linalg.eigvalsh(m) >= -1e-6).all()
    torch.testing.assert_close(m, maha.L.detach().T @ maha.L.detach())


def test_mahalanobis_equals_the_quadratic_form_by_hand():
    maha = Mahalanobis(2).double()
    with torch.no_grad():
        maha.L.copy_(t([[1.0, 2.0], [0.0, 3.0]]))
    # M = L^T L = [[1, 2], [2, 13]]; a - b = [1, -1]:
    # (a-b)^T M (a-b) = 1 - 2 - 2 + 13 = 10
    torch.testing.assert_close(maha.matrix.detach(), t([[1.0, 2.0], [2.0, 13.0]]))
    torch.testing.assert_close(maha(t([[1.0, 0.0]]), t([[0.0, 1.0]])), t([[10.0]]))


@pytest.mark.parametrize("rank", [None, 3])
def test_mahalanobis_matches_the_quadratic_form_on_batches(rank):
    maha = perturbed(5, rank=rank, seed=1)
    a, b = random_batch(e=2, n=4, m=3, d=5, seed=2)
    m = maha.matrix.detach()
    expected = loop(a, b, lambda x, y: (x - y) @ m @ (x - y))
    torch.testing.assert_close(maha(a, b).detach(), expected)


def test_mahalanobis_gradient_reaches_l():
    maha = perturbed(3)
    a, b = random_batch(e=1, n=4, m=2, d=3)
    maha(a, b).sum().backward()
    assert maha.L.grad is not None
    assert maha.L.grad.shape == (3, 3)
    assert torch.isfinite(maha.L.grad).all()
    assert maha.L.grad.abs().sum() > 0


def test_mahalanobis_gradient_of_the_quadratic_form():
    # d/dL (a-b)^T L^T L (a-b) = 2 L (a-b)(a-b)^T
    maha = perturbed(3, seed=4)
    a, b = t([[1.0, 2.0, 3.0]]), t([[0.5, -1.0, 2.0]])
    maha(a, b).sum().backward()
    diff = (a - b)[0]
    expected = 2 * maha.L.detach() @ torch.outer(diff, diff)
    torch.testing.assert_close(maha.L.grad, expected)


def test_mahalanobis_with_rank_below_dim_projects_to_rank_dimensions():
    maha = Mahalanobis(4, rank=2).double()
    a = t([[1.0, 2.0, 7.0, -3.0]])
    b = t([[0.0, 0.0, 0.0, 0.0]])
    # L = first 2 rows of I: only the first 2 coordinates count: 1 + 4 = 5
    torch.testing.assert_close(maha(a, b), t([[5.0]]))
    assert torch.linalg.matrix_rank(maha.matrix.detach()) == 2


@pytest.mark.parametrize(
    ("params", "name"),
    [({"dim": 0}, "dim"), ({"dim": 2.0}, "dim"), ({"dim": 3, "rank": 0}, "rank")],
)
def test_mahalanobis_rejects_non_positive_int_sizes(params, name):
    with pytest.raises(ValueError, match=rf"{name} must be a positive int"):
        Mahalanobis(**params)


# -- get_distance -----------------------------------------------------------------


def test_registry_names_every_distance():
    assert {
        "sqeuclidean": SquaredEuclidean,
        "euclidean": Euclidean,
        "cosine": Cosine,
        "manhattan": Manhattan,
        "mahalanobis": Mahalanobis,
    } == DISTANCES


@pytest.mark.parametrize("name", ["sqeuclidean", "euclidean", "cosine", "manhattan"])
def test_get_distance_builds_each_name(name):
    distance = get_distance(name)
    assert type(distance) is DISTANCES[name]
    assert get_distance(name) is not distance


def test_get_distance_mahalanobis_uses_dim():
    distance = get_distance("mahalanobis", dim=7)
    assert isinstance(distance, Mahalanobis)
    assert distance.L.shape == (7, 7)


def test_get_distance_passes_a_module_through_unchanged():
    maha = Mahalanobis(3)
    assert get_distance(maha) is maha
    custom = nn.PairwiseDistance()
    assert get_distance(custom, dim=5) is custom


def test_get_distance_unknown_name_lists_the_names():
    with pytest.raises(ValueError, match=r"Unknown distance 'chebyshev'") as info:
        get_distance("chebyshev")
    for name in DISTANCES:
        assert repr(name) in str(info.value)


@pytest.mark.parametrize("bad", [None, 3, SquaredEuclidean, ["cosine"]])
def test_get_distance_non_string_non_module_is_a_type_error(bad):
    with pytest.raises(TypeError, match=r"distance must be a name in .*'cosine'"):
        get_distance(bad)


def test_get_distance_mahalanobis_without_dim_is_an_error():
    with pytest.raises(ValueError, match=r"'mahalanobis' distance needs"):
        get_distance("mahalanobis")


# -- shape errors -------------------------------------------------------------


@pytest.mark.parametrize("make", ALL, ids=IDS)
def test_mismatched_last_dimensions_are_an_error(make):
    a = torch.zeros(2, 4, 3)
    b = torch.zeros(2, 5, 2)
    with pytest.raises(ValueError, match=r"last dimension.*\(2, 4, 3\).*\(2, 5, 2\)"):
        make()(a, b)


def test_mahalanobis_accepts_numpy_integer_sizes():
    distance = get_distance("mahalanobis", dim=np.int64(8))
    assert distance.L.shape == (8, 8)
    assert Mahalanobis(np.int32(4), rank=np.int64(2)).L.shape == (2, 4)
