"""Specifications of the image augmentations in skmeta.augmentation."""

import re
import sys

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from skmeta.augmentation import (
    AffineViews,
    NaturalImageAugmentation,
    RandomAffine,
    border_median,
    flips_as_classes,
    rotations_as_classes,
    warp,
)

IDENTITY = {"degrees": 0.0, "scale": (1.0, 1.0), "shear": 0.0, "translate": 0.0}


def random_images(n=3, c=1, h=6, w=6, seed=0, dtype=torch.float32):
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(n, c, h, w, generator=gen, dtype=dtype)


def blob(n=1, size=28, radius=4, dtype=torch.float32):
    """Centred disc of ones on a zero background, repeated n times."""
    coords = torch.arange(size, dtype=dtype) - (size - 1) / 2
    disc = (coords[:, None] ** 2 + coords[None, :] ** 2 <= radius**2).to(dtype)
    return disc.expand(n, 1, size, size).clone()


def strokes(n=1, size=28, dtype=torch.float32):
    """A centred cross of 2-pixel strokes, like an Omniglot character."""
    image = torch.zeros(size, size, dtype=dtype)
    mid = size // 2
    image[mid - 1 : mid + 1, 8:20] = 1
    image[8:20, mid - 1 : mid + 1] = 1
    return image.expand(n, 1, size, size).clone()


# -- rotations_as_classes ------------------------------------------------------------


def test_rotations_quadruple_samples_and_keep_image_shape():
    X = random_images(n=5, c=2, h=4, w=4)
    y = torch.tensor([0, 1, 2, 0, 1])
    X_rot, y_rot = rotations_as_classes(X, y, n_classes=3)
    assert X_rot.shape == (20, 2, 4, 4)
    assert y_rot.shape == (20,)
    assert y_rot.dtype == torch.int64
    assert X_rot.dtype == X.dtype


def test_rotation_r_of_class_c_is_class_c_plus_r_times_n_classes():
    y = torch.tensor([0, 1, 2, 0, 1])
    _, y_rot = rotations_as_classes(random_images(n=5), y, n_classes=3)
    expected = torch.cat([y, y + 3, y + 6, y + 9])
    assert torch.equal(y_rot, expected)


def test_the_first_block_is_the_input_unchanged():
    X = random_images(n=3)
    X_rot, y_rot = rotations_as_classes(X, torch.tensor([0, 1, 0]), n_classes=2)
    assert torch.equal(X_rot[:3], X)
    assert torch.equal(y_rot[:3], torch.tensor([0, 1, 0]))


def test_each_block_r_is_torch_rot90_r_times():
    X = random_images(n=3, c=2, h=5, w=5)
    X_rot, _ = rotations_as_classes(X, torch.tensor([0, 1, 2]), n_classes=3)
    for r in range(4):
        assert torch.equal(X_rot[3 * r : 3 * (r + 1)], torch.rot90(X, r, dims=(2, 3)))


def test_a_quarter_turn_by_hand():
    # rot90 turns counter-clockwise: the top row [1, 2] becomes the left column.
    X = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    X_rot, _ = rotations_as_classes(X, torch.tensor([0]), n_classes=1)
    assert torch.equal(X_rot[1, 0], torch.tensor([[2.0, 4.0], [1.0, 3.0]]))
    assert torch.equal(X_rot[2, 0], torch.tensor([[4.0, 3.0], [2.0, 1.0]]))
    assert torch.equal(X_rot[3, 0], torch.tensor([[3.0, 1.0], [4.0, 2.0]]))


def test_four_rotations_of_a_class_are_four_distinct_new_classes():
    n_classes = 5
    y = torch.arange(n_classes).repeat_interleave(2)
    _, y_rot = rotations_as_classes(random_images(n=10), y, n_classes=n_classes)
    # all 4 * n_classes labels are used, and they are all distinct classes
    assert set(y_rot.tolist()) == set(range(4 * n_classes))
    for c in range(n_classes):
        rotated_labels = {int(y_rot[r * 10 + 2 * c]) for r in range(4)}
        assert len(rotated_labels) == 4
    # each new class holds exactly the rotations of one original class
    for label in range(4 * n_classes):
        assert (y_rot == label).sum() == 2


def test_non_square_images_are_a_value_error():
    X = random_images(n=2, h=4, w=5)
    with pytest.raises(ValueError, match=r"square images.*4 x 5"):
        rotations_as_classes(X, torch.tensor([0, 1]), n_classes=2)


# -- flips_as_classes ----------------------------------------------------------------


def test_a_flip_by_hand_is_the_mirror_image_and_a_new_class():
    X = torch.tensor([[[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]]])
    X_flip, y_flip = flips_as_classes(X, torch.tensor([1]), n_classes=2)
    assert torch.equal(X_flip[0], X[0])
    assert torch.equal(X_flip[1, 0], torch.tensor([[3.0, 2.0, 1.0], [6.0, 5.0, 4.0]]))
    assert torch.equal(y_flip, torch.tensor([1, 3]))


def test_flips_then_rotations_give_the_eight_symmetries_of_the_square_as_classes():
    # An image with no symmetry: its 8 images under the dihedral group differ.
    X = torch.arange(9.0).reshape(1, 1, 3, 3)
    X8, y8 = rotations_as_classes(*flips_as_classes(X, torch.tensor([0]), 1), 2)
    assert y8.tolist() == list(range(8))
    assert len({tuple(x.flatten().tolist()) for x in X8}) == 8
    # a flip is its own inverse; rotating a flipped image is not a rotation
    assert torch.equal(X8[1].flip(-1), X[0])
    for r in range(4):
        assert not torch.equal(X8[2 * r + 1], torch.rot90(X[0], r, dims=(1, 2)))


def test_flips_need_images():
    with pytest.raises(ValueError, match=r"flips=True needs images.*\(4, 6\)"):
        flips_as_classes(torch.zeros(4, 6), torch.zeros(4, dtype=torch.int64), 1)


# -- RandomAffine --------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_affine_preserves_shape_and_dtype(dtype):
    torch.manual_seed(0)
    x = random_images(n=4, c=3, h=28, w=28, dtype=dtype)
    out = RandomAffine()(x)
    assert out.shape == x.shape
    assert out.dtype == dtype
    assert torch.isfinite(out).all()


def test_affine_preserves_non_square_shape():
    torch.manual_seed(0)
    x = random_images(n=2, c=1, h=20, w=32)
    assert RandomAffine()(x).shape == (2, 1, 20, 32)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_affine_without_distortion_is_exactly_the_identity(dtype):
    torch.manual_seed(0)
    x = random_images(n=3, c=2, h=28, w=28, dtype=dtype)
    assert torch.equal(RandomAffine(**IDENTITY)(x), x)


def test_affine_with_defaults_changes_images():
    torch.manual_seed(0)
    x = strokes(n=4)
    out = RandomAffine()(x)
    assert ((out - x).abs().amax(dim=(1, 2, 3)) > 0.1).all()


def test_affine_is_reproducible_under_torch_manual_seed():
    x = strokes(n=5)
    torch.manual_seed(123)
    first = RandomAffine()(x)
    torch.manual_seed(123)
    second = RandomAffine()(x)
    assert torch.equal(first, second)
    torch.manual_seed(124)
    third = RandomAffine()(x)
    assert not torch.equal(first, third)


def test_each_image_of_a_batch_gets_its_own_transform():
    torch.manual_seed(0)
    out = RandomAffine()(strokes(n=2))
    assert not torch.allclose(out[0], out[1], atol=1e-3)


@pytest.mark.parametrize(
    "params",
    [
        {"degrees": 30.0},
        {"shear": 20.0},
        {"translate": 0.2},
        {"scale": (0.7, 1.3)},
    ],
    ids=["rotation", "shear", "translation", "scale"],
)
def test_each_distortion_alone_changes_the_image(params):
    torch.manual_seed(0)
    x = strokes(n=4)
    out = RandomAffine(**(IDENTITY | params))(x)
    change = (out - x).abs().amax(dim=(1, 2, 3))
    # every image moves; a draw near 0 may move it only a little
    assert (change > 1e-3).all()
    assert change.max() > 0.3


def test_background_zero_stays_zero_at_the_borders():
    torch.manual_seed(0)
    out = RandomAffine()(blob(n=16, size=28, radius=4))
    border = torch.cat(
        [out[..., :3, :].flatten(1), out[..., -3:, :].flatten(1)]
        + [out[..., :, :3].flatten(1), out[..., :, -3:].flatten(1)],
        dim=1,
    )
    assert (border == 0).all()
    # the blob itself is still there in every image
    assert (out.amax(dim=(1, 2, 3)) > 0.9).all()


def test_mass_is_roughly_preserved_for_a_centred_stroke_image():
    torch.manual_seed(0)
    x = strokes(n=32)
    out = RandomAffine()(x)
    ratio = out.sum(dim=(1, 2, 3)) / x.sum(dim=(1, 2, 3))
    # On average the mass is kept within 30% (E[zoom^2] is about 1.01) ...
    assert 0.7 < ratio.mean() < 1.3
    # ... and each image's mass changes by its zoom^2, in [0.85^2, 1.15^2] =
    # [0.72, 1.32], give or take interpolation: a strict 30% per image would
    # not hold for zooms above sqrt(1.3) = 1.14.
    assert ((ratio > 0.65) & (ratio < 1.45)).all()


def test_rotation_shear_and_shift_preserve_mass_closely():
    torch.manual_seed(0)
    x = strokes(n=32)
    params = IDENTITY | {"degrees": 15.0, "shear": 10.0, "translate": 0.1}
    out = RandomAffine(**params)(x)
    ratio = out.sum(dim=(1, 2, 3)) / x.sum(dim=(1, 2, 3))
    assert ((ratio > 0.85) & (ratio < 1.15)).all()


@pytest.mark.parametrize(("zoom", "area"), [(1.25, 1.25**2), (0.8, 0.8**2)])
def test_zoom_above_one_enlarges_and_below_one_shrinks(zoom, area):
    torch.manual_seed(0)
    x = blob(n=2, size=40, radius=6)
    out = RandomAffine(**(IDENTITY | {"scale": (zoom, zoom)}))(x)
    ratio = out.sum(dim=(1, 2, 3)) / x.sum(dim=(1, 2, 3))
    torch.testing.assert_close(ratio, torch.full((2,), area), rtol=0.1, atol=0)


def test_a_translation_moves_the_centre_of_mass_by_at_most_translate():
    torch.manual_seed(0)
    size, translate = 40, 0.1
    x = blob(n=64, size=size, radius=4)
    out = RandomAffine(**(IDENTITY | {"translate": translate}))(x)
    coords = torch.arange(size, dtype=torch.float32)
    mass = out.sum(dim=(1, 2, 3))
    row = (out.sum(dim=(1, 3)) * coords).sum(1) / mass
    col = (out.sum(dim=(1, 2)) * coords).sum(1) / mass
    centre = (size - 1) / 2
    shift = torch.stack([row - centre, col - centre])
    # up to translate * size = 4 pixels in each direction, and used in full
    assert shift.abs().max() <= translate * size + 0.5
    assert shift.abs().max() > translate * size / 2


def test_affine_has_no_parameters_and_shows_its_settings():
    module = RandomAffine(degrees=5.0, scale=(0.9, 1.1), shear=2.0, translate=0.05)
    assert list(module.parameters()) == []
    assert repr(module) == (
        "RandomAffine(degrees=5.0, scale=(0.9, 1.1), shear=2.0, translate=0.05, "
        "fill='border')"
    )


def test_affine_is_differentiable_through_its_input():
    torch.manual_seed(0)
    x = strokes(n=2).requires_grad_()
    RandomAffine()(x).sum().backward()
    assert x.grad is not None
    assert torch.isfinite(x.grad).all()


# -- draw, warp and AffineViews ------------------------------------------------------


def test_draw_with_a_seeded_generator_is_reproducible_and_leaves_the_global_one():
    affine = RandomAffine()
    torch.manual_seed(0)
    before = torch.get_rng_state()
    first = affine.draw(5, generator=torch.Generator().manual_seed(3))
    again = affine.draw(5, generator=torch.Generator().manual_seed(3))
    assert first.shape == (5, 2, 3) and first.dtype == torch.float32
    assert torch.equal(first, again)
    assert torch.equal(torch.get_rng_state(), before)


def test_warp_by_one_matrix_or_by_the_same_matrix_per_image_is_the_same():
    X = random_images(n=4, h=10, w=10)
    theta = RandomAffine().draw(1, generator=torch.Generator().manual_seed(0))[0]
    torch.testing.assert_close(warp(X, theta), warp(X, theta.expand(4, 2, 3)))


def test_a_random_affine_is_a_warp_by_the_matrices_it_draws():
    X = random_images(n=4, h=10, w=10)
    affine = RandomAffine()
    torch.manual_seed(1)
    theta = affine.draw(4)
    torch.manual_seed(1)
    torch.testing.assert_close(affine(X), warp(X, theta))


def test_the_first_view_is_the_image_and_the_others_fixed_distortions_of_it():
    X = strokes(n=3)
    views = AffineViews(5)
    first, *others = list(views(X))
    assert len(views) == 5 and len(others) == 4
    assert first is X
    for view, theta in zip(others, views.thetas, strict=True):
        assert not torch.equal(view, X)
        torch.testing.assert_close(view, warp(X, theta))
    # The same seed gives the same views; each image gets the same ones.
    again = list(AffineViews(5)(X))
    for view, other in zip(others, again[1:], strict=True):
        assert torch.equal(view, other)
    assert torch.equal(others[0][0], others[0][2])


def test_a_samples_views_do_not_depend_on_its_batch():
    X = random_images(n=6, h=12, w=12)
    views = AffineViews(3, seed=7)
    batch = list(views(X))
    for i in range(6):
        for alone, in_batch in zip(views(X[i : i + 1]), batch, strict=True):
            torch.testing.assert_close(alone[0], in_batch[i], rtol=0, atol=0)


def test_views_follow_the_ranges_of_their_distortion():
    X = strokes(n=1)
    still = RandomAffine(**IDENTITY)
    for view in AffineViews(4, distortion=still)(X):
        torch.testing.assert_close(view, X)


@pytest.mark.parametrize("n_views", [0, -2])
def test_fewer_than_one_view_is_a_value_error(n_views):
    with pytest.raises(
        ValueError, match=f"n_views must be at least 1; got n_views={n_views}"
    ):
        AffineViews(n_views)


# -- the fill: each image's own background -------------------------------------------

#: Turns a quarter turn and zooms out twice: every corner of the output comes
#: from outside the image.
TURN_AND_SHRINK = torch.tensor([[0.0, -2.0, 0.0], [2.0, 0.0, 0.0]])


def corners(x):
    return torch.stack(
        [x[..., 0, 0], x[..., 0, -1], x[..., -1, 0], x[..., -1, -1]], dim=-1
    )


def test_the_border_median_by_hand():
    # A 4x4 image: its 12 border pixels, 4 of them 0.2, 8 of them 0.6 and the
    # 4 inner pixels 9 (ignored); the middle two of the 12 are 0.6 and 0.6.
    x = torch.full((1, 1, 4, 4), 0.6)
    x[..., 0, :] = 0.2
    x[..., 1:3, 1:3] = 9.0
    assert border_median(x).tolist() == [[[[pytest.approx(0.6)]]]]
    # With 6 of each, the median is the mean of the two middle values.
    x[..., 3, 1:3] = 0.2
    assert border_median(x).flatten().tolist() == [pytest.approx(0.4)]


def test_the_border_median_is_per_image_and_per_channel():
    x = torch.zeros(2, 3, 7, 5)
    x[0, 1] = 0.5
    x[1, 2] = 1.0
    x[:, :, 2:5, 2] = 0.9  # strokes inside change nothing
    assert border_median(x).shape == (2, 3, 1, 1)
    assert border_median(x).flatten().tolist() == [0.0, 0.5, 0.0, 0.0, 0.0, 1.0]


def test_a_dark_on_light_image_is_filled_with_white_and_a_light_on_dark_with_black():
    light_on_dark = strokes(n=2)
    dark_on_light = 1 - light_on_dark
    assert (corners(warp(dark_on_light, TURN_AND_SHRINK)) == 1.0).all()
    assert (corners(warp(light_on_dark, TURN_AND_SHRINK)) == 0.0).all()
    # and what was the image is still there: a white cross on black, turned,
    # and its inverse
    out = warp(light_on_dark, TURN_AND_SHRINK)
    assert out.amax() > 0.4
    torch.testing.assert_close(warp(dark_on_light, TURN_AND_SHRINK), 1 - out)


def test_random_distortions_of_a_dark_on_light_image_keep_a_white_border():
    torch.manual_seed(0)
    out = RandomAffine()(1 - blob(n=16, size=28, radius=4))
    border = torch.cat([out[..., :3, :].flatten(1), out[..., -3:, :].flatten(1)], 1)
    assert (border == 1).all()
    assert (out.amin(dim=(1, 2, 3)) < 0.1).all()  # the dark blob is still there


def test_each_image_and_channel_is_filled_with_its_own_background():
    x = torch.zeros(2, 2, 16, 16)
    x[0, 0], x[0, 1], x[1, 0], x[1, 1] = 1.0, 0.25, 0.5, 0.0
    x[:, :, 6:10, 6:10] = 0.75
    fills = corners(warp(x, TURN_AND_SHRINK))
    assert torch.equal(fills, x[..., :1, :1].expand(2, 2, 1, 4)[:, :, 0])


@pytest.mark.parametrize("shape", [(4, 1, 28, 28), (3, 3, 20, 32)])
def test_warping_commutes_with_inverting_the_polarity(shape):
    x = random_images(*shape)
    theta = RandomAffine(degrees=40.0).draw(
        shape[0], generator=torch.Generator().manual_seed(0)
    )
    torch.testing.assert_close(warp(1 - x, theta), 1 - warp(x, theta))


def test_random_affine_and_views_treat_an_image_and_its_inverse_alike():
    x = strokes(n=4)
    torch.manual_seed(5)
    light = RandomAffine()(x)
    torch.manual_seed(5)
    dark = RandomAffine()(1 - x)
    torch.testing.assert_close(dark, 1 - light)
    views = AffineViews(4)
    for view, inverse in zip(views(x), views(1 - x), strict=True):
        torch.testing.assert_close(inverse, 1 - view)


def test_the_identity_returns_each_image_exactly_and_moves_the_others():
    x = random_images(n=2, c=2, h=9, w=9)
    theta = torch.stack([torch.eye(2, 3), TURN_AND_SHRINK])
    out = warp(x, theta)
    assert torch.equal(out[0], x[0])
    assert torch.equal(out[1:], warp(x[1:], TURN_AND_SHRINK))
    assert not torch.equal(out[1], x[1])


def test_a_constant_fill_is_grid_samples_zero_padding_shifted_by_it():
    x = random_images(n=3, h=10, w=10)
    theta = RandomAffine().draw(3, generator=torch.Generator().manual_seed(2))
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    zeros = F.grid_sample(x, grid, padding_mode="zeros", align_corners=False)
    assert torch.equal(warp(x, theta, fill=0.0), zeros)
    ones = F.grid_sample(x - 1, grid, padding_mode="zeros", align_corners=False) + 1
    torch.testing.assert_close(warp(x, theta, fill=1.0), ones)
    assert (corners(warp(x, TURN_AND_SHRINK, fill=0.3)) == 0.3).all()


def test_views_bring_in_the_fill_of_their_distortion():
    dark_on_light = 1 - strokes(n=1)
    wide = {"degrees": 90.0, "scale": (0.5, 0.6)}
    views = list(AffineViews(3, distortion=RandomAffine(**wide))(dark_on_light))
    zero = list(
        AffineViews(3, distortion=RandomAffine(**wide, fill=0.0))(dark_on_light)
    )
    for view, zero_filled in zip(views[1:], zero[1:], strict=True):
        assert (corners(view) == 1.0).all()
        assert (corners(zero_filled) == 0.0).all()


@pytest.mark.parametrize(
    "fill", ["median", float("nan"), True, None, np.zeros(2), torch.tensor(0.5)]
)
def test_a_fill_that_is_not_border_or_a_number_is_a_value_error(fill):
    message = f'fill must be "border" or a finite real number; got fill={fill!r}'
    with pytest.raises(ValueError, match=re.escape(message)):
        RandomAffine(fill=fill)
    with pytest.raises(ValueError, match="fill must be"):
        warp(strokes(n=1), torch.eye(2, 3), fill=fill)


# -- NaturalImageAugmentation --------------------------------------------------------

#: Every part of the natural-image augmentation off: the identity.
STILL = {
    "scale": (1.0, 1.0),
    "ratio": (1.0, 1.0),
    "flip": 0.0,
    "brightness": 0.0,
    "contrast": 0.0,
    "saturation": 0.0,
}


@pytest.fixture
def kornia():
    return pytest.importorskip("kornia")


@pytest.mark.parametrize("shape", [(5, 3, 24, 24), (4, 1, 28, 28), (2, 3, 20, 32)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_natural_keeps_shape_dtype_and_the_unit_range(kornia, shape, dtype):
    torch.manual_seed(0)
    x = random_images(*shape, dtype=dtype)
    out = NaturalImageAugmentation()(x)
    assert out.shape == x.shape
    assert out.dtype == dtype
    assert out.min() >= 0 and out.max() <= 1
    assert ((out - x).abs().amax(dim=(1, 2, 3)) > 0.01).all()


def test_natural_is_reproducible_under_torch_manual_seed(kornia):
    x = random_images(n=4, c=3, h=16, w=16)
    augment = NaturalImageAugmentation()
    torch.manual_seed(7)
    first = augment(x)
    torch.manual_seed(7)
    assert torch.equal(augment(x), first)
    torch.manual_seed(8)
    assert not torch.equal(augment(x), first)


def test_natural_draws_anew_for_each_image(kornia):
    torch.manual_seed(0)
    out = NaturalImageAugmentation()(
        random_images(n=1, c=3, h=16, w=16).expand(2, -1, -1, -1)
    )
    assert not torch.allclose(out[0], out[1], atol=1e-3)


def test_natural_with_everything_off_is_the_identity(kornia):
    x = random_images(n=3, c=3, h=12, w=12)
    torch.testing.assert_close(NaturalImageAugmentation(**STILL)(x), x)


def test_a_certain_flip_is_the_mirror_image(kornia):
    x = random_images(n=3, c=3, h=12, w=12)
    out = NaturalImageAugmentation(**(STILL | {"flip": 1.0}))(x)
    torch.testing.assert_close(out, x.flip(-1))


def test_a_crop_of_a_quarter_of_the_area_spans_half_a_ramp(kornia):
    # Columns 0..15: a square crop of a quarter of the area is 8 columns wide,
    # resized back to 16, so each row spans 7 of the original's 15 steps.
    ramp = torch.arange(16.0).expand(5, 1, 16, 16) / 15
    torch.manual_seed(0)
    out = NaturalImageAugmentation(**(STILL | {"scale": (0.25, 0.25)}))(ramp) * 15
    torch.testing.assert_close(
        out.amax(dim=(1, 2, 3)) - out.amin(dim=(1, 2, 3)), torch.full((5,), 7.0)
    )
    torch.testing.assert_close(out[:, :, 0], out[:, :, -1])  # still a ramp


def test_brightness_scales_each_grey_image_by_one_factor(kornia):
    x = random_images(n=8, c=1, h=10, w=10) * 0.5 + 0.25  # no clamping at 1.4
    torch.manual_seed(0)
    ratio = NaturalImageAugmentation(**(STILL | {"brightness": 0.4}))(x) / x
    factor = ratio.amax(dim=(1, 2, 3))
    torch.testing.assert_close(ratio.amin(dim=(1, 2, 3)), factor)
    assert ((factor >= 0.6) & (factor <= 1.4)).all()
    assert factor.std() > 0.01


def test_contrast_scales_each_grey_image_about_its_mean(kornia):
    x = random_images(n=8, c=1, h=10, w=10) * 0.5 + 0.25
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    torch.manual_seed(0)
    out = NaturalImageAugmentation(**(STILL | {"contrast": 0.4}))(x)
    ratio = (out - mean) / (x - mean)
    factor = ratio.median(dim=-1).values.median(dim=-1).values
    torch.testing.assert_close(
        ratio, factor[..., None, None].expand_as(ratio), atol=1e-3, rtol=1e-3
    )
    torch.testing.assert_close(out.mean(dim=(1, 2, 3), keepdim=True), mean)
    assert ((factor >= 0.6) & (factor <= 1.4)).all()


def test_saturation_and_hue_leave_grey_images_alone(kornia):
    x = random_images(n=4, c=1, h=10, w=10)
    colour = {"saturation": 0.9, "hue": 0.4}
    torch.manual_seed(0)
    torch.testing.assert_close(NaturalImageAugmentation(**(STILL | colour))(x), x)


def test_saturation_changes_colours_and_leaves_greys(kornia):
    colour = random_images(n=4, c=3, h=10, w=10)
    grey = colour[:, :1].expand(-1, 3, -1, -1)
    augment = NaturalImageAugmentation(**(STILL | {"saturation": 0.9}))
    torch.manual_seed(0)
    torch.testing.assert_close(augment(grey), grey)
    torch.manual_seed(0)
    assert ((augment(colour) - colour).abs().amax(dim=(1, 2, 3)) > 0.01).all()


def test_colour_on_other_channel_counts_is_a_value_error(kornia):
    x = random_images(n=2, c=2, h=8, w=8)
    with pytest.raises(ValueError, match="saturation and hue need RGB.*got 2 channels"):
        NaturalImageAugmentation()(x)
    plain = NaturalImageAugmentation(saturation=0.0)
    assert plain(x).shape == x.shape


def test_natural_needs_a_batch_of_images(kornia):
    with pytest.raises(ValueError, match=r"needs images.*got shape \(3, 8, 8\)"):
        NaturalImageAugmentation()(torch.rand(3, 8, 8))


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("scale", (0.5, 0.2)),
        ("scale", (0.0, 1.0)),
        ("scale", (0.5, 1.5)),
        ("scale", 0.5),
        ("ratio", (0.0, 1.0)),
        ("flip", 1.5),
        ("brightness", -0.1),
        ("contrast", "high"),
        ("saturation", True),
        ("hue", 0.6),
    ],
)
def test_a_parameter_out_of_range_is_a_value_error_naming_it(kornia, name, value):
    with pytest.raises(ValueError, match=f"^{name} must be .*got {name}="):
        NaturalImageAugmentation(**{name: value})


def test_natural_shows_its_settings(kornia):
    assert repr(NaturalImageAugmentation(flip=0.0, hue=0.1)) == (
        "NaturalImageAugmentation(scale=(0.08, 1.0), ratio=(0.75, 1.3333333333333333), "
        "flip=0.0, brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1)"
    )


def test_without_kornia_the_error_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "kornia", None)
    monkeypatch.setitem(sys.modules, "kornia.augmentation", None)
    with pytest.raises(ImportError, match=r"pip install 'skmeta\[images\]'"):
        NaturalImageAugmentation()
