"""Embedding networks (backbones) and the choice of a default from X's shape.

A backbone maps a batch of inputs to a batch of flat embeddings
``(batch, embedding_dim)``. Estimators take a backbone as a name
(``"conv4"``, ``"resnet12"``, ``"mlp"``, ``"identity"``), a
``torch.nn.Module`` class (built with the input shape and ``embedding_dim``),
a ready ``torch.nn.Module`` instance, or ``None`` to pick :class:`Conv4` for
images and :class:`MLP` for tabular data.

A backbone for images derives from :class:`ImageBackbone` and declares the
images it takes (``min_image_size``, or its own ``check_input_shape``);
:func:`build_backbone` asks every such class before building it, so a new
backbone with limits is one class plus its entry in :data:`BACKBONES`.
"""

import copy
import inspect
import warnings
from numbers import Integral

import torch
from torch import nn

from .text import TextBackbone

__all__ = [
    "embedding_size",
    "output_shape",
    "BACKBONES",
    "ImageBackbone",
    "MLP",
    "Conv4",
    "ResNet12",
    "build_backbone",
    "conv_block",
]


def _channels_last_hint(input_shape):
    """A sentence naming a channels-last layout, or ``""`` if it does not look so.

    A sample looks channels-last when it has three axes, the last is 1, 3 or
    4 long (grey, RGB, RGBA) and the first is longer than the last.
    """
    shape = tuple(input_shape)
    if len(shape) != 3 or shape[-1] not in (1, 3, 4) or shape[0] <= shape[-1]:
        return ""
    return (
        f" X looks channels-last: samples of shape {shape} read as (height, "
        "width, channels), where skmeta takes images channels first, (n_samples, "
        "channels, height, width). Pass X.transpose(0, 3, 1, 2) (for a torch "
        "tensor, X.permute(0, 3, 1, 2))."
    )


def conv_block(in_channels, out_channels, pool=True, stride=1):
    """3x3 convolution (padding 1), batch norm, ReLU, then 2x2 max-pooling.

    The block of Conv4 (Snell et al., 2017) and of the Relation Networks
    encoder, which leaves out the pooling of its last two blocks
    (``pool=False``). ``stride=2, pool=False`` is the block of the Omniglot
    network of Finn et al. (2017) and Nichol et al. (2018), which halves the
    height and width (rounding up) by the convolution's stride instead.
    """
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, stride=stride),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2) if pool else nn.Identity(),
    )


class ImageBackbone(nn.Module):
    """Base of the backbones for images: declares the inputs they take.

    A subclass sets :attr:`min_image_size`, or overrides
    :meth:`check_input_shape` for other limits; :func:`build_backbone` calls
    ``check_input_shape`` before it builds the class, and on the class of an
    instance it is given.
    """

    #: Smallest height and width the network takes, in pixels.
    min_image_size = 1

    #: Whether :func:`build_backbone` gives the network channels-last memory
    #: (weights and inputs, NHWC): oneDNN's and cuDNN's preferred layout for
    #: convolutions. Only for a network whose ``forward`` takes any memory
    #: layout (``reshape``, ``flatten``; not ``view`` after a convolution).
    channels_last = False

    @classmethod
    def check_input_shape(cls, input_shape):
        """Raise unless samples of ``input_shape`` are images this network takes.

        Parameters
        ----------
        input_shape : tuple of int
            Shape of one sample, without the batch axis.

        Raises
        ------
        ValueError
            If the sample is not ``(channels, height, width)``; if it looks
            channels-last (see below), with the transpose to use; or if its
            height or width is under :attr:`min_image_size`.

        Notes
        -----
        A sample looks channels-last when its last axis is 1, 3 or 4 long and
        its first axis is longer: ``(28, 28, 1)`` is a 28x28 grey image stored
        as ``(height, width, channels)``, not 28 channels of 28x1 pixels.
        """
        shape = tuple(input_shape)
        if len(shape) != 3:
            raise ValueError(
                f"{cls.__name__} needs images X of shape (n_samples, channels, "
                f"height, width); got samples of shape {shape}."
            )
        hint = _channels_last_hint(shape)
        if hint:
            raise ValueError(f"{cls.__name__} cannot take X as it is.{hint}")
        if min(shape[1:]) < cls.min_image_size:
            size = cls.min_image_size
            raise ValueError(
                f"{cls.__name__} needs images of at least {size}x{size} pixels; "
                f"got images of {shape[1]}x{shape[2]}. Upsample X, use "
                "backbone='mlp' on the flattened pixels, or pass your own module."
            )


class Conv4(ImageBackbone):
    """The four-block convolutional encoder of Prototypical Networks.

    Each block is a 3x3 convolution with ``hidden_channels`` filters (padding
    1), batch normalisation, ReLU and 2x2 max-pooling (Snell et al., 2017,
    §3.1; the same encoder as Vinyals et al., 2016). The last block has
    ``out_channels`` filters. Each block halves the height and width (floor),
    so the embedding has ``out_channels * (H // 16) * (W // 16)`` features,
    on images of any size from 16x16: a 28x28 Omniglot image gives
    ``out_channels`` features (a 1x1 map), and an 84x84 RGB miniImageNet
    image gives the usual 64 x 5 x 5 = 1600 (the 5x5 maps flattened, as
    Snell et al. and Vinyals et al. do).

    ``downsample="stride"`` gives the Omniglot network of MAML and Reptile
    (Finn et al., 2017, §5.1; Nichol et al., 2018, Appendix A): the
    convolutions have stride 2 and there is no pooling. Each block then
    halves the height and width rounding up (28 -> 14 -> 7 -> 4 -> 2), so a
    28x28 image gives ``out_channels * 2 * 2`` features. Each convolution
    computes a quarter as many output positions as with max-pooling, so a
    forward pass takes about a quarter of the multiply-adds (a Reptile
    meta-batch on Omniglot ran 2.3 times as fast on one CPU core).

    Parameters
    ----------
    in_channels : int, default=1
        Channels of the input images.
    hidden_channels : int, default=64
        Filters of the first three blocks.
    out_channels : int, default=64
        Filters of the last block.
    downsample : {"maxpool", "stride"}, default="maxpool"
        How each block halves the height and width: 2x2 max-pooling after a
        stride-1 convolution, or a convolution of stride 2.

    Raises
    ------
    ValueError
        If ``downsample`` is not one of the two options.

    Notes
    -----
    Input: float tensor of shape ``(batch, in_channels, H, W)`` with H, W >= 16
    (:attr:`min_image_size`, checked by :func:`build_backbone`).
    Output: float tensor of shape ``(batch, out_channels * (H // 16) * (W // 16))``
    with max-pooling; with strides, each of H and W is replaced by
    ``ceil(ceil(ceil(ceil(H / 2) / 2) / 2) / 2)``.

    References
    ----------
    .. [1] J. Snell, K. Swersky, R. Zemel. "Prototypical Networks for Few-shot
       Learning". NeurIPS 2017.
    .. [2] C. Finn, P. Abbeel, S. Levine. "Model-Agnostic Meta-Learning for
       Fast Adaptation of Deep Networks". ICML 2017.
    .. [3] A. Nichol, J. Achiam, J. Schulman. "On First-Order Meta-Learning
       Algorithms". arXiv:1803.02999, 2018.
    """

    #: Four halvings (2x2 poolings or stride-2 convolutions) leave one pixel.
    min_image_size = 16
    channels_last = True

    def __init__(
        self, in_channels=1, hidden_channels=64, out_channels=64, downsample="maxpool"
    ):
        super().__init__()
        if downsample not in ("maxpool", "stride"):
            raise ValueError(
                "downsample must be 'maxpool' or 'stride'; "
                f"got downsample={downsample!r}."
            )
        strided = downsample == "stride"
        block = dict(pool=not strided, stride=2 if strided else 1)
        self.encoder = nn.Sequential(
            conv_block(in_channels, hidden_channels, **block),
            conv_block(hidden_channels, hidden_channels, **block),
            conv_block(hidden_channels, hidden_channels, **block),
            conv_block(hidden_channels, out_channels, **block),
        )

    def forward(self, x):
        return self.encoder(x).flatten(1)


def _conv3x3(in_channels, out_channels):
    """3x3 convolution, padding 1, no bias (a batch norm follows)."""
    return nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)


class _ResidualBlock(nn.Module):
    """One ResNet-12 block: three conv-BN-LeakyReLU, a 1x1 shortcut, max-pool.

    ``y = maxpool(lrelu(bn3(conv3(h2)) + bn(conv1x1(x))))`` with
    ``h1 = lrelu(bn1(conv1(x)))``, ``h2 = lrelu(bn2(conv2(h1)))``, LeakyReLU
    of slope 0.1 and 2x2 max-pooling (floor): the block of Lee et al.
    (2019) and Tian et al. (2020), without their DropBlock.
    """

    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.conv1 = _conv3x3(in_channels, out_channels)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = _conv3x3(out_channels, out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.conv3 = _conv3x3(out_channels, out_channels)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.shortcut = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
        )
        self.relu = nn.LeakyReLU(0.1)
        self.pool = nn.MaxPool2d(2)

    def forward(self, x):
        h = self.relu(self.bn1(self.conv1(x)))
        h = self.relu(self.bn2(self.conv2(h)))
        h = self.bn3(self.conv3(h))
        return self.pool(self.relu(h + self.shortcut(x)))


class ResNet12(ImageBackbone):
    """The ResNet-12 of few-shot image classification, globally average-pooled.

    Four residual blocks, each three 3x3 convolutions (padding 1, no bias)
    with batch norm and LeakyReLU (slope 0.1), a 1x1 convolution with batch
    norm as the shortcut, the sum through LeakyReLU, then 2x2 max-pooling
    (Lee et al., 2019; Tian et al., 2020, whose code this follows, weight
    initialisation included). The blocks have ``channels`` filters,
    64-160-320-640 by default: 12,424,320 parameters, the "12.4M" the field
    quotes.

    The 84x84 image of miniImageNet leaves a 640 x 5 x 5 map; as Tian et al.
    do, it is averaged over its positions, so the embedding has
    ``channels[-1]`` features (640) whatever the image size. (Lee et al.
    flatten the map instead, 16,000 features at 84x84.) A 28x28 grey image
    leaves a 1x1 map (28 -> 14 -> 7 -> 3 -> 1), so it gives 640 features too.

    ``embedding_dim`` does not size this network: its embedding is
    ``channels[-1]`` wide; set ``backbone__channels`` instead.

    Parameters
    ----------
    in_channels : int, default=3
        Channels of the input images (3 for RGB, 1 for grey).
    channels : tuple of 4 int, default=(64, 160, 320, 640)
        Filters of the four blocks; smaller ones give a smaller network (for
        tests, or a CPU).

    Raises
    ------
    ValueError
        If ``channels`` is not four positive integers, or ``in_channels`` is
        not a positive integer.

    Notes
    -----
    Input: float tensor of shape ``(batch, in_channels, H, W)`` with
    H, W >= 16 (:attr:`min_image_size`, checked by :func:`build_backbone`).
    Output: float tensor of shape ``(batch, channels[-1])``.

    DropBlock (Ghiasi et al., 2018), which both papers apply in the last
    blocks while training, is left out.

    References
    ----------
    .. [1] K. Lee, S. Maji, A. Ravichandran, S. Soatto. "Meta-Learning with
       Differentiable Convex Optimization". CVPR 2019 (MetaOptNet).
    .. [2] Y. Tian, Y. Wang, D. Krishnan, J. B. Tenenbaum, P. Isola.
       "Rethinking Few-Shot Image Classification: a Good Embedding Is All You
       Need?". ECCV 2020 (RFS).

    Examples
    --------
    >>> import torch
    >>> from skmeta.backbones import ResNet12
    >>> ResNet12(in_channels=3)(torch.zeros(1, 3, 84, 84)).shape
    torch.Size([1, 640])
    >>> small = ResNet12(in_channels=1, channels=(8, 8, 16, 16))
    >>> small(torch.zeros(2, 1, 28, 28)).shape
    torch.Size([2, 16])
    """

    #: Four 2x2 max-poolings (floor) leave one pixel.
    min_image_size = 16
    channels_last = True

    def __init__(self, in_channels=3, channels=(64, 160, 320, 640)):
        super().__init__()
        channels = tuple(channels)
        if len(channels) != 4 or not all(
            isinstance(c, Integral) and c >= 1 for c in channels
        ):
            raise ValueError(
                "channels must be 4 positive integers, the filters of the four "
                f"blocks; got channels={channels!r}."
            )
        if not (isinstance(in_channels, Integral) and in_channels >= 1):
            raise ValueError(
                f"in_channels must be a positive integer; got {in_channels!r}."
            )
        widths = (in_channels, *channels)
        pairs = zip(widths[:-1], widths[1:], strict=True)
        self.blocks = nn.Sequential(*(_ResidualBlock(a, b) for a, b in pairs))
        self.pool = nn.AdaptiveAvgPool2d(1)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(
                    module.weight, mode="fan_out", nonlinearity="leaky_relu"
                )

    def forward(self, x):
        return self.pool(self.blocks(x)).flatten(1)


class MLP(nn.Module):
    """A multilayer perceptron embedding for tabular data.

    ``Linear -> ReLU`` for each hidden layer, then a linear output layer
    (no activation, so embeddings may take any sign).

    Parameters
    ----------
    in_features : int
        Features of the input.
    out_features : int, default=64
        Embedding dimension.
    hidden_dims : tuple of int, default=(128,)
        Widths of the hidden layers; empty for a linear embedding.

    Notes
    -----
    Input: float tensor of shape ``(batch, in_features)``.
    Output: float tensor of shape ``(batch, out_features)``.
    """

    def __init__(self, in_features, out_features=64, hidden_dims=(128,)):
        super().__init__()
        layers, width = [], in_features
        for hidden in hidden_dims:
            layers += [nn.Linear(width, hidden), nn.ReLU(inplace=True)]
            width = hidden
        layers.append(nn.Linear(width, out_features))
        self.layers = nn.Sequential(*layers)

    def forward(self, x):
        return self.layers(x.flatten(1))


#: Backbones by the name estimators accept for their ``backbone`` parameter.
#: ``"identity"`` passes the input through: for features computed beforehand
#: (a pretrained model's embeddings), with nothing to train.
BACKBONES = {
    "conv4": Conv4,
    "resnet12": ResNet12,
    "mlp": MLP,
    "identity": nn.Identity,
    "text": TextBackbone,
}

#: Constructor arguments that receive ``embedding_dim``.
_OUTPUT_ARGUMENTS = ("out_channels", "out_features")

_CONVOLUTIONS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


def _shape_kwargs(cls, input_shape, embedding_dim):
    """Constructor arguments a backbone class takes from the data's shape."""
    accepted = inspect.signature(cls).parameters
    candidates = {
        "in_channels": input_shape[0],
        "in_features": int(torch.Size(input_shape).numel()),
        "out_channels": embedding_dim,
        "out_features": embedding_dim,
    }
    return {name: value for name, value in candidates.items() if name in accepted}


#: How to turn X's channels into a network's, by (X's channels, the network's).
_CHANNEL_CONVERSIONS = {
    (1, 3): "grey to RGB: np.repeat(X, 3, axis=1)",
    (3, 1): "RGB to grey: X.mean(axis=1, keepdims=True)",
}


def _forward_error(backbone, input_shape, first_convolution, error):
    """The message for a backbone that failed on a sample of ``input_shape``."""
    name = type(backbone).__name__
    shape = tuple(input_shape)
    hint = _channels_last_hint(shape)
    if first_convolution is not None:
        conv, received = first_convolution
        if received == shape[0] != conv.in_channels:
            message = (
                f"The backbone {name} takes images of {conv.in_channels} "
                "channels (its first convolution's in_channels), but X's have "
                f"{shape[0]} (samples of shape {shape})."
            )
            if hint:
                return message + hint
            conversion = _CHANNEL_CONVERSIONS.get((shape[0], conv.in_channels))
            how = f" ({conversion})" if conversion else ""
            return (
                f"{message} Give X {conv.in_channels} channels{how}, or use a "
                f"backbone whose first convolution takes {shape[0]}."
            )
    torch_message = str(error).rstrip(".")
    return (
        f"The backbone {name} cannot take samples of shape {shape}: "
        f"{torch_message}.{hint}"
    )


def output_shape(backbone, input_shape):
    """Shape of the output of ``backbone`` for one sample, without the batch axis.

    One forward pass of a zero sample of ``input_shape``, in eval mode (batch
    norm needs no batch statistics) and without gradient, on the device and
    in the floating dtype of the backbone's first parameter; the module's
    mode is restored.

    Parameters
    ----------
    backbone : torch.nn.Module
    input_shape : tuple of int
        Shape of one sample: ``(n_features,)`` or ``(channels, height, width)``.

    Returns
    -------
    tuple of int
        ``(d,)`` for flat embeddings, ``(c, h, w)`` for feature maps.

    Raises
    ------
    ValueError
        If the forward pass fails (torch's ``RuntimeError``): naming both
        channel counts when X's channels differ from the ``in_channels`` of
        the first convolution the sample meets, with the transpose to use when
        the samples look channels-last, and with torch's message otherwise.
    """
    first_convolution = []

    def record(module, args):
        if not first_convolution:
            first_convolution.append((module, args[0].shape[1]))

    hooks = [
        module.register_forward_pre_hook(record)
        for module in backbone.modules()
        if isinstance(module, _CONVOLUTIONS)
    ]
    parameter = next(backbone.parameters(), None)
    options = {}
    if parameter is not None:
        options["device"] = parameter.device
        if parameter.is_floating_point():
            options["dtype"] = parameter.dtype
    training = backbone.training
    try:
        with torch.no_grad():
            out = backbone.eval()(torch.zeros(1, *input_shape, **options))
    except RuntimeError as error:
        first = first_convolution[0] if first_convolution else None
        raise ValueError(_forward_error(backbone, input_shape, first, error)) from error
    finally:
        for hook in hooks:
            hook.remove()
        backbone.train(training)
    return tuple(out.shape[1:])


def embedding_size(backbone, input_shape):
    """The ``d`` of a backbone that maps samples to flat embeddings ``(batch, d)``.

    Raises
    ------
    ValueError
        If the backbone's output for one sample is not 1-D, or the backbone
        does not take samples of ``input_shape`` (see :func:`output_shape`).
    """
    shape = output_shape(backbone, input_shape)
    if len(shape) != 1:
        raise ValueError(
            "The backbone must give embeddings of shape (batch, d); got one of "
            f"shape {(1, *shape)}. End it with torch.nn.Flatten() to use it here."
        )
    return shape[0]


def _use_channels_last(module):
    """Give ``module`` channels-last weights, and inputs on every call.

    The same values in NHWC memory, which convolutions run faster in (the
    Speed section of the benchmarks page). Converting the inputs alone gains
    nothing: the convolution follows the weights' layout.
    """
    module.to(memory_format=torch.channels_last)
    module.register_forward_pre_hook(_channels_last_input)


def _channels_last_input(module, args):
    x = args[0]
    if isinstance(x, torch.Tensor) and x.dim() == 4:
        return (x.contiguous(memory_format=torch.channels_last), *args[1:])
    return None


def build_backbone(
    backbone, input_shape, embedding_dim, params=None, *, embedding_dim_is_default=False
):
    """Build the embedding network an estimator trains.

    Parameters
    ----------
    backbone : None, str, torch.nn.Module class or instance
        ``None`` picks ``"conv4"`` for image input (``len(input_shape) == 3``)
        and ``"mlp"`` otherwise. A name is looked up in :data:`BACKBONES`. A
        class is called with the arguments it accepts among ``in_channels`` /
        ``out_channels`` (``input_shape[0]``, ``embedding_dim``) or
        ``in_features`` / ``out_features`` (the flat input size,
        ``embedding_dim``), plus ``params``. An instance is deep-copied and
        used as it is (``embedding_dim`` and ``params`` do not apply).
    input_shape : tuple of int
        Shape of one sample: ``(n_features,)`` or ``(channels, height, width)``.
    embedding_dim : int
        Output features of a built backbone, given to its ``out_channels`` or
        ``out_features`` argument.
    params : dict or None, default=None
        Extra constructor arguments, e.g. ``{"hidden_dims": (256, 256)}``;
        they override the arguments taken from the shape.
    embedding_dim_is_default : bool, default=False
        Whether ``embedding_dim`` is the caller's default rather than a value
        its user chose. Then a backbone that ``embedding_dim`` cannot size
        (an instance, a class without ``out_channels`` or ``out_features``,
        or one whose ``params`` set them) gets no warning.

    Returns
    -------
    torch.nn.Module

    Raises
    ------
    ValueError
        If ``backbone`` is an unknown name; if an :class:`ImageBackbone` (by
        name, class or instance) is given samples it does not take (see
        :meth:`ImageBackbone.check_input_shape`: not images, channels-last,
        too small); or if the backbone fails on one zero sample of
        ``input_shape``, for instance because X's channels differ from its
        first convolution's (see :func:`output_shape`).
    TypeError
        If ``backbone`` is of another type, or ``params`` is given with an
        instance.

    Warns
    -----
    UserWarning
        If ``embedding_dim`` is not the default, cannot size the backbone, and
        the backbone's output for one sample is not ``(embedding_dim,)``: the
        warning names the backbone and the shape it gives.
    """
    params = dict(params or {})
    if isinstance(backbone, nn.Module):
        if params:
            raise TypeError(
                "backbone_params apply to a backbone name or class, not to a "
                f"module instance; got backbone_params={params!r}."
            )
        if isinstance(backbone, ImageBackbone):
            type(backbone).check_input_shape(input_shape)
        module = copy.deepcopy(backbone)
        unsized = (
            f"the {type(backbone).__name__} instance given is used as it is; "
            "build it with the size you want"
        )
    else:
        if backbone is None:
            backbone = "conv4" if len(input_shape) == 3 else "mlp"
        if isinstance(backbone, str):
            if backbone not in BACKBONES:
                raise ValueError(
                    f"Unknown backbone {backbone!r}; expected one of "
                    f"{sorted(BACKBONES)}, a torch.nn.Module class or instance, "
                    "or None."
                )
            backbone = BACKBONES[backbone]
        if not (isinstance(backbone, type) and issubclass(backbone, nn.Module)):
            raise TypeError(
                "backbone must be None, a name in "
                f"{sorted(BACKBONES)}, or a torch.nn.Module class or instance; "
                f"got {backbone!r}."
            )
        if issubclass(backbone, ImageBackbone):
            backbone.check_input_shape(input_shape)
        kwargs = _shape_kwargs(backbone, input_shape, embedding_dim)
        sizes = [name for name in _OUTPUT_ARGUMENTS if name in kwargs]
        overridden = [name for name in sizes if name in params]
        kwargs.update(params)
        module = backbone(**kwargs)
        if overridden:
            unsized = f"backbone_params sets {overridden[0]}={params[overridden[0]]!r}"
        elif not sizes:
            unsized = (
                f"{backbone.__name__}() takes neither out_channels nor "
                "out_features; size it through backbone_params"
            )
        else:
            unsized = None
    if isinstance(module, ImageBackbone) and module.channels_last:
        _use_channels_last(module)
    shape = output_shape(module, input_shape)
    if unsized and not embedding_dim_is_default and shape != (embedding_dim,):
        warnings.warn(
            f"embedding_dim={embedding_dim} does not apply to the backbone "
            f"{type(module).__name__}: {unsized}. Its output for one sample has "
            f"shape {shape}.",
            UserWarning,
            stacklevel=2,
        )
    return module
