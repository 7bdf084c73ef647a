"""Embedding networks (backbones) and the choice of a default from X's shape.

A backbone maps a batch of inputs to a batch of flat embeddings
``(batch, embedding_dim)``. Estimators take a backbone as a name
(``"conv4"``, ``"mlp"``), a ``torch.nn.Module`` class (built with the input
shape and ``embedding_dim``), a ready ``torch.nn.Module`` instance, or
``None`` to pick :class:`Conv4` for images and :class:`MLP` for tabular data.
"""

import copy
import inspect

import torch
from torch import nn

__all__ = [
    "embedding_size",
    "output_shape",
    "BACKBONES",
    "MLP",
    "Conv4",
    "build_backbone",
    "conv_block",
]


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


class Conv4(nn.Module):
    """The four-block convolutional encoder of Prototypical Networks.

    Each block is a 3x3 convolution with ``hidden_channels`` filters (padding
    1), batch normalisation, ReLU and 2x2 max-pooling (Snell et al., 2017,
    §3.1; the same encoder as Vinyals et al., 2016). The last block has
    ``out_channels`` filters. Each block halves the height and width (floor),
    so a 28x28 image gives a 1x1 map and a ``out_channels``-d embedding; in
    general the embedding has ``out_channels * (H // 16) * (W // 16)``
    features.

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
    Input: float tensor of shape ``(batch, in_channels, H, W)`` with H, W >= 16.
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
BACKBONES = {"conv4": Conv4, "mlp": MLP, "identity": nn.Identity}


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


def output_shape(backbone, input_shape):
    """Shape of the output of ``backbone`` for one sample, without the batch axis.

    One forward pass of a zero sample of ``input_shape``, in eval mode (batch
    norm needs no batch statistics) and without gradient; the module's mode
    is restored.

    Returns
    -------
    tuple of int
        ``(d,)`` for flat embeddings, ``(c, h, w)`` for feature maps.
    """
    training = backbone.training
    with torch.no_grad():
        shape = tuple(backbone.eval()(torch.zeros(1, *input_shape)).shape[1:])
    backbone.train(training)
    return shape


def embedding_size(backbone, input_shape):
    """The ``d`` of a backbone that maps samples to flat embeddings ``(batch, d)``.

    Raises
    ------
    ValueError
        If the backbone's output for one sample is not 1-D.
    """
    shape = output_shape(backbone, input_shape)
    if len(shape) != 1:
        raise ValueError(
            "The backbone must give embeddings of shape (batch, d); got one of "
            f"shape {(1, *shape)}. End it with torch.nn.Flatten() to use it here."
        )
    return shape[0]


#: Smallest image side Conv4 takes: four 2x2 poolings (or stride-2 convolutions).
CONV4_MIN_SIZE = 16


def build_backbone(backbone, input_shape, embedding_dim, params=None):
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
        Output features of a built backbone.
    params : dict or None, default=None
        Extra constructor arguments, e.g. ``{"hidden_dims": (256, 256)}``.

    Returns
    -------
    torch.nn.Module

    Raises
    ------
    ValueError
        If ``backbone`` is an unknown name, or ``"conv4"`` is asked for
        non-image input or images smaller than 16x16 pixels.
    TypeError
        If ``backbone`` is of another type, or ``params`` is given with an
        instance.
    """
    params = dict(params or {})
    if isinstance(backbone, nn.Module):
        if params:
            raise TypeError(
                "backbone_params apply to a backbone name or class, not to a "
                f"module instance; got backbone_params={params!r}."
            )
        return copy.deepcopy(backbone)
    if backbone is None:
        backbone = "conv4" if len(input_shape) == 3 else "mlp"
    if isinstance(backbone, str):
        if backbone not in BACKBONES:
            raise ValueError(
                f"Unknown backbone {backbone!r}; expected one of {sorted(BACKBONES)}, "
                "a torch.nn.Module class or instance, or None."
            )
        if backbone == "conv4" and len(input_shape) != 3:
            raise ValueError(
                "backbone='conv4' needs images X of shape (n_samples, channels, "
                f"height, width); got samples of shape {tuple(input_shape)}."
            )
        if backbone == "conv4" and min(input_shape[1:]) < CONV4_MIN_SIZE:
            raise ValueError(
                f"backbone='conv4' halves images 4 times and needs at least "
                f"{CONV4_MIN_SIZE}x{CONV4_MIN_SIZE} pixels; got images of "
                f"{input_shape[1]}x{input_shape[2]}. Upsample X, use "
                "backbone='mlp' on the flattened pixels, or pass your own module."
            )
        backbone = BACKBONES[backbone]
    if not (isinstance(backbone, type) and issubclass(backbone, nn.Module)):
        raise TypeError(
            "backbone must be None, a name in "
            f"{sorted(BACKBONES)}, or a torch.nn.Module class or instance; "
            f"got {backbone!r}."
        )
    kwargs = _shape_kwargs(backbone, input_shape, embedding_dim)
    kwargs.update(params)
    return backbone(**kwargs)
