"""Data augmentation for meta-training on images.

Augmentations of Prototypical Networks' Omniglot recipe and its common
refinements:

- :func:`rotations_as_classes`: each 90-degree rotation of a class becomes a
  new class (Santoro et al., 2016; Snell et al., 2017, §3.1), multiplying the
  base classes by four.
- :func:`flips_as_classes`: the mirror image of a class becomes a new class,
  doubling them; with the rotations, each of the 8 symmetries of the square
  gives a class of its own.
- :class:`RandomAffine`: a small random rotation, scale, shear and shift of
  every image of an episode, drawn anew for every image, applied on the
  device the episode lives on. What comes into view from outside the image
  is the image's own background (:func:`border_median`), so dark strokes on
  white and white strokes on black train alike.
- :class:`AffineViews`: test-time augmentation, a fixed set of such
  distortions applied to every image at prediction, whose embeddings are
  averaged.

And the usual augmentation of natural images (photographs), through kornia:

- :class:`NaturalImageAugmentation`: random resized crop, horizontal flip
  and colour jitter (Chen et al., 2019; Tian et al., 2020), with the
  ``images`` extra (``pip install skmeta[images]``).
"""

import math
from numbers import Real

import torch
from torch import nn
from torch.nn import functional as F

__all__ = [
    "AffineViews",
    "NaturalImageAugmentation",
    "RandomAffine",
    "border_median",
    "flips_as_classes",
    "rotations_as_classes",
    "warp",
]


def rotations_as_classes(X, y, n_classes):
    """Add the 90, 180 and 270-degree rotations of images as new classes.

    Parameters
    ----------
    X : torch.Tensor of shape (n_samples, channels, height, width)
        Images, square (``height == width``).
    y : torch.Tensor of shape (n_samples,), dtype int64
        Encoded labels in ``[0, n_classes)``.
    n_classes : int
        Number of classes in ``y``.

    Returns
    -------
    X_rot : torch.Tensor of shape (4 * n_samples, channels, height, width)
        The images, then their rotations by 90, 180 and 270 degrees.
    y_rot : torch.Tensor of shape (4 * n_samples,), dtype int64
        Class ``c`` rotated ``r`` quarter turns becomes ``c + r * n_classes``.

    Raises
    ------
    ValueError
        If the images are not square.

    References
    ----------
    .. [1] A. Santoro et al. "Meta-Learning with Memory-Augmented Neural
       Networks". ICML 2016.
    """
    if X.shape[-1] != X.shape[-2]:
        raise ValueError(
            "rotations=True needs square images; got height x width = "
            f"{X.shape[-2]} x {X.shape[-1]}."
        )
    X_rot = torch.cat([torch.rot90(X, r, dims=(-2, -1)) for r in range(4)])
    y_rot = torch.cat([y + r * n_classes for r in range(4)])
    return X_rot, y_rot


def flips_as_classes(X, y, n_classes):
    """Add the mirror image (left-right flip) of images as new classes.

    A mirrored character is another character, as a rotated one is (on
    Omniglot minimal, flips raised the 20-way 1-shot accuracy of a
    Prototypical Network on novel alphabets; the benchmarks page of the
    documentation has the numbers). For natural images, whose mirror image
    is the same class, leave it off.

    Parameters
    ----------
    X : torch.Tensor of shape (n_samples, channels, height, width)
        Images.
    y, n_classes
        As for :func:`rotations_as_classes`.

    Returns
    -------
    X_flip : torch.Tensor of shape (2 * n_samples, channels, height, width)
        The images, then their mirror images (the width axis reversed).
    y_flip : torch.Tensor of shape (2 * n_samples,), dtype int64
        The mirror image of class ``c`` is class ``c + n_classes``.

    Raises
    ------
    ValueError
        If ``X`` is not a batch of images (4-D).
    """
    if X.ndim != 4:
        raise ValueError(
            "flips=True needs images of shape (n_samples, channels, height, "
            f"width); got shape {tuple(X.shape)}."
        )
    return torch.cat([X, X.flip(-1)]), torch.cat([y, y + n_classes])


class RandomAffine(nn.Module):
    """Random affine distortion of each image in a batch.

    Every image gets its own rotation angle, scale, shear angle and shift,
    each drawn uniformly from ``[-degrees, degrees]``, ``scale``,
    ``[-shear, shear]`` and ``[-translate, translate]`` (a fraction of the
    image size). Pixels from outside the image take ``fill``: by default each
    image's own background, the median of its border pixels, channel by
    channel (:func:`border_median`), so that the polarity of the strokes does
    not matter: the distortion of ``1 - x`` is one minus the distortion of
    ``x``. Draws come from torch's global generator, which estimators seed
    from their ``random_state``.

    Parameters
    ----------
    degrees : float, default=15.0
        Largest rotation, in degrees.
    scale : tuple of float, default=(0.85, 1.15)
        Range of the zoom factor.
    shear : float, default=10.0
        Largest shear angle, in degrees.
    translate : float, default=0.1
        Largest shift, as a fraction of the height and width.
    fill : "border" or float, default="border"
        What comes into view from outside the image: ``"border"``, each
        image's background (:func:`border_median`), or one value for every
        image, for instance 0.0 for images whose border holds strokes on a
        known black background.

    Raises
    ------
    ValueError
        If ``fill`` is neither ``"border"`` nor a finite real number.

    Notes
    -----
    Input and output: float tensor of shape ``(batch, channels, height, width)``.
    """

    def __init__(
        self,
        degrees=15.0,
        scale=(0.85, 1.15),
        shear=10.0,
        translate=0.1,
        fill="border",
    ):
        super().__init__()
        _check_fill(fill)
        self.degrees = degrees
        self.scale = scale
        self.shear = shear
        self.translate = translate
        self.fill = fill

    def draw(self, n, *, device=None, generator=None):
        """Affine matrices of ``n`` random distortions.

        Parameters
        ----------
        n : int
            How many distortions.
        device : torch.device or None, default=None
            Where the matrices are made.
        generator : torch.Generator or None, default=None
            Source of the draws; torch's global generator by default.

        Returns
        -------
        torch.Tensor of shape (n, 2, 3), dtype float32
            Rotation @ shear @ zoom, and the shift, in the normalised
            ``[-1, 1]`` coordinates of :func:`torch.nn.functional.affine_grid`
            (which maps output to input positions: zooming in, zoom > 1,
            samples a smaller input window); see :func:`warp`.
        """

        def uniform(low, high):
            return torch.empty(n, device=device).uniform_(
                low, high, generator=generator
            )

        angle = uniform(-self.degrees, self.degrees) * (math.pi / 180)
        shear = uniform(-self.shear, self.shear) * (math.pi / 180)
        zoom = uniform(*self.scale)
        cos, sin, tan = angle.cos(), angle.sin(), shear.tan()
        theta = torch.stack(
            [
                torch.stack(
                    [cos, cos * tan - sin, 2 * uniform(-1, 1) * self.translate], 1
                ),
                torch.stack(
                    [sin, sin * tan + cos, 2 * uniform(-1, 1) * self.translate], 1
                ),
            ],
            1,
        )
        theta[:, :, :2] /= zoom[:, None, None]
        return theta

    def forward(self, x):
        return warp(x, self.draw(x.shape[0], device=x.device), fill=self.fill)

    def extra_repr(self):
        return (
            f"degrees={self.degrees}, scale={self.scale}, shear={self.shear}, "
            f"translate={self.translate}, fill={self.fill!r}"
        )


def _check_fill(fill):
    if isinstance(fill, str):
        valid = fill == "border"
    else:
        number = isinstance(fill, Real) and not isinstance(fill, bool)
        valid = number and math.isfinite(fill)
    if not valid:
        raise ValueError(
            f'fill must be "border" or a finite real number; got fill={fill!r}.'
        )


def border_median(x):
    """The background of each image: the median of its border pixels.

    The border is the outermost ring of pixels (first and last rows and
    columns), where a centred drawing or object rarely reaches, so its median
    is the background whether the strokes are dark on light or light on dark.
    With an even number of pixels the median is the mean of the two middle
    values, so that ``border_median(1 - x) == 1 - border_median(x)`` (up to
    rounding).

    Parameters
    ----------
    x : torch.Tensor of shape (batch, channels, height, width)
        Float images.

    Returns
    -------
    torch.Tensor of shape (batch, channels, 1, 1), dtype of ``x``
        One value per image and channel.

    Examples
    --------
    >>> import torch
    >>> from skmeta.augmentation import border_median
    >>> x = torch.ones(1, 1, 5, 5)
    >>> x[..., 2, 1:4] = 0.0  # a dark stroke on white
    >>> border_median(x).flatten().tolist()
    [1.0]
    """
    border = torch.cat(
        [x[..., 0, :], x[..., -1, :], x[..., 1:-1, 0], x[..., 1:-1, -1]], dim=-1
    )
    ordered = border.sort(dim=-1).values
    k = ordered.shape[-1]
    median = (ordered[..., (k - 1) // 2] + ordered[..., k // 2]) / 2
    return median[..., None, None]


def warp(x, theta, fill="border"):
    """Images warped by affine matrices, their background brought in from outside.

    Bilinear interpolation (:func:`torch.nn.functional.grid_sample`) of
    ``x - b``, with zeros from outside the image, plus ``b``: exactly the
    warp of ``x`` with the constant ``b`` outside, for ``b`` the fill of each
    image and channel. With the default fill, each image's own background
    (:func:`border_median`), warping commutes with inverting the polarity:
    ``warp(1 - x, theta) == 1 - warp(x, theta)`` (up to rounding). An image
    whose matrix is the identity is returned exactly, not interpolated.

    Parameters
    ----------
    x : torch.Tensor of shape (batch, channels, height, width)
        Float images.
    theta : torch.Tensor of shape (batch, 2, 3) or (2, 3)
        One matrix per image, or one for all, as :meth:`RandomAffine.draw`
        gives them.
    fill : "border" or float, default="border"
        What comes into view from outside the image: ``"border"``, the
        median of each image's border pixels, channel by channel, or one
        value for all.

    Returns
    -------
    torch.Tensor of the shape and dtype of ``x``

    Raises
    ------
    ValueError
        If ``fill`` is neither ``"border"`` nor a finite real number.
    """
    _check_fill(fill)
    theta = theta.to(x.device, x.dtype).expand(x.shape[0], 2, 3)
    background = border_median(x) if fill == "border" else fill
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    warped = F.grid_sample(
        x - background, grid, padding_mode="zeros", align_corners=False
    )
    identity = torch.eye(2, 3, device=x.device, dtype=x.dtype)
    unmoved = (theta == identity).all(dim=(1, 2))
    return torch.where(unmoved[:, None, None, None], x, warped + background)


class AffineViews:
    """A fixed set of views of every image: itself and affine distortions of it.

    Test-time augmentation (TTA): a few-shot classifier averages the
    embeddings of an image's views, for support and query images alike, so
    that the comparison no longer hangs on one drawing's exact position, size
    and slant. The first view is the image itself; the other ``n_views - 1``
    are distortions drawn once from ``distortion``'s ranges by a generator
    seeded with ``seed``, and every image gets the same ones, so outputs are
    deterministic and a sample's views never depend on its batch.

    Whether it helps depends on the model, so measure it on held-out
    classes. On Omniglot minimal, 16 views raised the novel-class accuracy of
    every Prototypical Network measured (the benchmarks page of the
    documentation has the numbers); averaging views of the support set
    alone lowered it (the mean embedding of distorted views is not where an
    undistorted query lands). Fixed views did as well as views drawn afresh
    for every batch, and milder distortions than the training ones did
    worse.

    Parameters
    ----------
    n_views : int
        Views of each image, the image itself included; 1 is the image alone.
    distortion : RandomAffine or None, default=None
        The ranges the distortions are drawn from, and the ``fill`` they
        bring in from outside the image; ``None`` is ``RandomAffine()``, the
        training augmentation of the episodic classifiers.
    seed : int, default=0
        Seeds the draws.

    Raises
    ------
    ValueError
        If ``n_views`` is less than 1.

    Examples
    --------
    >>> import torch
    >>> from skmeta.augmentation import AffineViews
    >>> views = AffineViews(4)
    >>> x = torch.rand(2, 1, 28, 28)
    >>> [tuple(view.shape) for view in views(x)]
    [(2, 1, 28, 28), (2, 1, 28, 28), (2, 1, 28, 28), (2, 1, 28, 28)]
    >>> torch.equal(next(iter(views(x))), x)
    True
    """

    def __init__(self, n_views, distortion=None, seed=0):
        if n_views < 1:
            raise ValueError(f"n_views must be at least 1; got n_views={n_views}.")
        self.n_views = n_views
        distortion = RandomAffine() if distortion is None else distortion
        generator = torch.Generator().manual_seed(seed)
        self.thetas = distortion.draw(n_views - 1, generator=generator)
        self.fill = distortion.fill

    def __len__(self):
        return self.n_views

    def __call__(self, x):
        """Yield the ``n_views`` views of the images ``x``, ``x`` itself first."""
        yield x
        for theta in self.thetas:
            yield warp(x, theta, fill=self.fill)


def _kornia_augmentation():
    """``kornia.augmentation``, or an ImportError that says how to install it."""
    try:
        import kornia.augmentation
    except ImportError as error:
        raise ImportError(
            "NaturalImageAugmentation needs kornia, which the 'images' extra "
            "installs: pip install 'skmeta[images]' (or pip install kornia)."
        ) from error
    return kornia.augmentation


class NaturalImageAugmentation(nn.Module):
    """Random resized crop, horizontal flip and colour jitter of each image.

    The augmentation of natural images (photographs) in few-shot learning:
    every image of a batch gets its own crop of a random area and aspect
    ratio, resized back to the image's height and width, a mirror image
    with probability ``flip``, and random brightness, contrast, saturation
    and hue, in a random order, as torchvision's ``RandomResizedCrop``,
    ``RandomHorizontalFlip`` and ``ColorJitter`` do (Chen et al., 2019, and
    most few-shot work on miniImageNet since). It runs through kornia on
    batched tensors, on the device they live on, and draws from torch's
    global generator, which estimators seed from their ``random_state``: the
    same ``torch.manual_seed`` gives the same images. Unlike
    :class:`RandomAffine`, nothing comes from outside the image.

    Grey images (1 channel) get brightness and contrast only: saturation and
    hue have no meaning without colour.

    Parameters
    ----------
    scale : tuple of float, default=(0.08, 1.0)
        Range of the crop's area, as a fraction of the image's, each in
        ``(0, 1]``.
    ratio : tuple of float, default=(3/4, 4/3)
        Range of the crop's aspect ratio (width over height), positive.
    flip : float, default=0.5
        Probability of the mirror image (the width axis reversed).
    brightness, contrast, saturation : float, default=0.4
        Each factor is drawn uniformly from ``[max(0, 1 - v), 1 + v]``; 0
        leaves that property alone.
    hue : float, default=0.0
        The hue is shifted by a fraction of a turn drawn from
        ``[-hue, hue]``, at most 0.5.

    Raises
    ------
    ImportError
        If kornia is not installed (the ``images`` extra).
    ValueError
        If a parameter is out of its range (the message names it); when
        called, if the input is not a 4-D batch of images, or if it has
        neither 1 nor 3 channels while ``saturation`` or ``hue`` is above 0.

    See Also
    --------
    RandomAffine : The distortion of drawn characters (Omniglot).

    Notes
    -----
    Input and output: float tensor of shape ``(batch, channels, height,
    width)`` with values in [0, 1]; the output stays in [0, 1].

    References
    ----------
    .. [1] W.-Y. Chen, Y.-C. Liu, Z. Kira, Y.-C. F. Wang and J.-B. Huang.
       "A Closer Look at Few-shot Classification". ICLR 2019.
    .. [2] Y. Tian, Y. Wang, D. Krishnan, J. B. Tenenbaum and P. Isola.
       "Rethinking Few-Shot Image Classification: a Good Embedding Is All
       You Need?". ECCV 2020.

    Examples
    --------
    >>> import torch
    >>> from skmeta.augmentation import NaturalImageAugmentation
    >>> augment = NaturalImageAugmentation()
    >>> x = torch.rand(8, 3, 84, 84)
    >>> _ = torch.manual_seed(0)
    >>> out = augment(x)
    >>> tuple(out.shape), bool(out.min() >= 0), bool(out.max() <= 1)
    ((8, 3, 84, 84), True, True)
    """

    def __init__(
        self,
        scale=(0.08, 1.0),
        ratio=(3 / 4, 4 / 3),
        flip=0.5,
        brightness=0.4,
        contrast=0.4,
        saturation=0.4,
        hue=0.0,
    ):
        super().__init__()
        _kornia_augmentation()
        _check_range("scale", scale, low=0.0, high=1.0)
        _check_range("ratio", ratio, low=0.0, high=math.inf)
        _check_number("flip", flip, high=1.0)
        for name, value in [
            ("brightness", brightness),
            ("contrast", contrast),
            ("saturation", saturation),
        ]:
            _check_number(name, value, high=math.inf)
        _check_number("hue", hue, high=0.5)
        self.scale = tuple(scale)
        self.ratio = tuple(ratio)
        self.flip = flip
        self.brightness = brightness
        self.contrast = contrast
        self.saturation = saturation
        self.hue = hue

    def forward(self, x):
        if x.ndim != 4:
            raise ValueError(
                "NaturalImageAugmentation needs images of shape (batch, channels, "
                f"height, width); got shape {tuple(x.shape)}."
            )
        channels = x.shape[1]
        colour = self.saturation > 0 or self.hue > 0
        if colour and channels not in (1, 3):
            raise ValueError(
                "saturation and hue need RGB images (3 channels), or grey ones "
                f"(1 channel), which skip them; got {channels} channels. Set "
                "saturation=0 and hue=0."
            )
        K = _kornia_augmentation()
        rgb = channels == 3
        size = tuple(x.shape[-2:])
        augment = K.AugmentationSequential(
            K.RandomResizedCrop(size, scale=self.scale, ratio=self.ratio),
            K.RandomHorizontalFlip(p=self.flip),
            K.ColorJitter(
                brightness=self.brightness,
                contrast=self.contrast,
                saturation=self.saturation if rgb else 0.0,
                hue=self.hue if rgb else 0.0,
            ),
        )
        return augment(x)

    def extra_repr(self):
        return (
            f"scale={self.scale}, ratio={self.ratio}, flip={self.flip}, "
            f"brightness={self.brightness}, contrast={self.contrast}, "
            f"saturation={self.saturation}, hue={self.hue}"
        )


def _check_number(name, value, *, high):
    """A ValueError naming ``name`` unless ``0 <= value <= high``."""
    number = isinstance(value, Real) and not isinstance(value, bool)
    if not (number and 0 <= value <= high):
        raise ValueError(
            f"{name} must be a number in [0, {high}]; got {name}={value!r}."
        )


def _check_range(name, value, *, low, high):
    """A ValueError naming ``name`` unless ``low < value[0] <= value[1] <= high``."""
    try:
        first, last = value
        ok = low < first <= last <= high
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(
            f"{name} must be a pair (min, max) with {low} < min <= max <= {high}; "
            f"got {name}={value!r}."
        )
