"""Relation Networks (Sung, Yang, Zhang, Xiang, Torr & Hospedales, 2018)."""

from numbers import Integral

import numpy as np
import torch
from sklearn.utils.validation import check_is_fitted
from torch import nn
from torch.nn import functional as F

from .._catalogue import episodic_parameters
from .._docs import METRIC_BASED
from .._params import Param
from .._sklearn import Interval, StrOptions
from ..backbones import conv_block, output_shape
from ._base import EpisodicNetwork
from ._episodic import EpisodicClassifier
from ._segments import class_counts, class_sums

__all__ = [
    "ConvRelation",
    "MLPRelation",
    "RelationClassifier",
    "RelationEncoder",
    "RelationLoss",
    "RelationNetwork",
    "class_features",
    "pair_layer",
]


def class_features(z, y, n_classes, k_shot):
    """Class feature of each class: the sum of its ``k_shot`` shot features.

    Sung et al. (2018, §3.2) sum the embeddings of the K shots of a class
    element-wise. A class with ``n_c`` support samples gets
    ``(k_shot / n_c) * sum``: exactly the paper's sum when ``n_c == k_shot``
    (every training episode), and on the scale the relation module was
    trained on when a support set has another number of shots per class.

    Parameters
    ----------
    z : torch.Tensor of shape (n, ...)
        Support embeddings: flat ``(n, d)`` or feature maps ``(n, c, h, w)``.
    y : torch.Tensor of shape (n,), dtype int64, values in [0, n_classes)
    n_classes : int
    k_shot : int
        Shots per class in training episodes.

    Returns
    -------
    torch.Tensor of shape (n_classes, ...)
    """
    scale = k_shot / class_counts(y, n_classes, z.dtype)
    return class_sums(z, y, n_classes) * scale.reshape(-1, *[1] * (z.dim() - 1))


def pair_layer(layer, class_features, z_query):
    """A linear first layer applied to every (class, query) concatenation.

    The relation module reads ``C(x_class, x_query)``, the concatenation of
    a class feature and a query embedding along the feature (channel) axis.
    Its first layer, a :class:`torch.nn.Linear` or :class:`torch.nn.Conv2d`
    with zero padding, is linear in its input, so on a concatenation it is
    the sum of its two halves: ``W [a; b] + β = (W_a a + β) + W_b b``. Each
    half is computed once per class and once per query, then every pair is
    one addition: ``n_way + n_query`` layer evaluations instead of
    ``n_way * n_query``, the same result up to rounding.

    Parameters
    ----------
    layer : torch.nn.Linear or torch.nn.Conv2d
        With ``2d`` inputs or ``2c`` input channels.
    class_features : torch.Tensor of shape (n_way, d) or (n_way, c, h, w)
    z_query : torch.Tensor of shape (n_query, d) or (n_query, c, h, w)

    Returns
    -------
    torch.Tensor of shape (n_query * n_way, ...)
        ``layer(C(class_features[i], z_query[j]))`` at row ``j * n_way + i``.
    """
    c = class_features.shape[1]
    weight = layer.weight
    if isinstance(layer, nn.Conv2d):

        def apply(x, w, b):
            return F.conv2d(x, w, b, layer.stride, layer.padding, layer.dilation)

    else:
        apply = F.linear
    per_class = apply(class_features, weight[:, :c], layer.bias)
    per_query = apply(z_query, weight[:, c:], None)
    return (per_query.unsqueeze(1) + per_class.unsqueeze(0)).flatten(0, 1)


class RelationEncoder(nn.Module):
    """The embedding module of Relation Networks: Conv4 keeping feature maps.

    Four blocks of 3x3 convolution (padding 1), batch normalisation and ReLU;
    the first two end with 2x2 max-pooling, the last two do not (Sung et al.,
    2018, Fig. 2). A 28x28 image gives a ``out_channels x 7 x 7`` feature map,
    which the relation module compares with convolutions. (The authors' code
    leaves the first two convolutions unpadded, 5x5 maps; the padding here
    matches :class:`skmeta.backbones.Conv4` and works on small images.)

    Parameters
    ----------
    in_channels, hidden_channels, out_channels : int, default=1, 64, 64
        As for :class:`skmeta.backbones.Conv4`.

    Notes
    -----
    Input: ``(batch, in_channels, H, W)`` with H, W >= 4.
    Output: ``(batch, out_channels, H // 4, W // 4)``.
    """

    def __init__(self, in_channels=1, hidden_channels=64, out_channels=64):
        super().__init__()
        self.encoder = nn.Sequential(
            conv_block(in_channels, hidden_channels, pool=True),
            conv_block(hidden_channels, hidden_channels, pool=True),
            conv_block(hidden_channels, hidden_channels, pool=False),
            conv_block(hidden_channels, out_channels, pool=False),
        )

    def forward(self, x):
        return self.encoder(x)


class ConvRelation(nn.Module):
    """Relation module for feature maps: two conv blocks, two linear layers.

    Each block is a 3x3 convolution with ``c`` filters (padding 1), batch
    normalisation, ReLU and 2x2 max-pooling; then a ReLU layer of
    ``hidden_dim`` units (the paper's 8) and one output unit (Sung et al.,
    2018, §3.4). On the 7x7 maps of a 28x28 image the blocks pool to 1x1, so
    the first linear layer has ``c`` inputs, as in the paper. A pooling that
    would shrink a side below 1 is skipped.

    Parameters
    ----------
    feature_shape : tuple of int
        ``(c, h, w)``, the shape of one embedding map.
    hidden_dim : int, default=8
        Units of the hidden linear layer.

    Notes
    -----
    Called as ``relation(class_features, z_query)`` with class features
    ``(n_way, c, h, w)`` and query maps ``(n_query, c, h, w)``; returns the
    relation logits, before the sigmoid, of every pair ``C(class, query)``
    (``2c`` channels): ``(n_query, n_way)``. The first convolution runs once
    per class and per query, not per pair (:func:`pair_layer`).
    """

    def __init__(self, feature_shape, hidden_dim=8):
        super().__init__()
        c, h, w = feature_shape
        blocks = []
        for in_channels in (2 * c, c):
            pool = min(h, w) >= 2
            blocks.append(conv_block(in_channels, c, pool))
            h, w = (h // 2, w // 2) if pool else (h, w)
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Sequential(
            nn.Flatten(),
            nn.Linear(c * h * w, hidden_dim),
            nn.ReLU(inplace=True),
            nn.Linear(hidden_dim, 1),
        )

    def forward(self, class_features, z_query):
        first = self.blocks[0]
        pairs = first[1:](pair_layer(first[0], class_features, z_query))
        logits = self.fc(self.blocks[1:](pairs))
        return logits.view(len(z_query), len(class_features))


class MLPRelation(nn.Module):
    """Relation module for flat embeddings (tabular data).

    The convolutional blocks of :class:`ConvRelation` become one block of a
    linear layer with ``d`` units, batch normalisation and ReLU, followed by
    the same ``hidden_dim``-unit ReLU layer and output unit:
    ``Linear(2d, d) - BatchNorm - ReLU - Linear(d, hidden_dim) - ReLU -
    Linear(hidden_dim, 1)``. The batch normalisation, as in the conv blocks,
    removes what all pairs share; without it the relation module tends to
    settle on the constant score ``1 / n_way``.

    Parameters
    ----------
    embedding_dim : int
        ``d``, the size of one embedding.
    hidden_dim : int, default=8
        Units of the second hidden layer.

    Notes
    -----
    Called as ``relation(class_features, z_query)`` with class features
    ``(n_way, d)`` and query embeddings ``(n_query, d)``; returns the
    relation logits of every pair ``C(class, query)`` (``2d`` features):
    ``(n_query, n_way)``. The first layer runs once per class and per query,
    not per pair (:func:`pair_layer`).
    """

    def __init__(self, embedding_dim, hidden_dim=8):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(2 * embedding_dim, embedding_dim),
            nn.BatchNorm1d(embedding_dim),
            nn.ReLU(inplace=True),
            nn.Linear(embedding_dim, hidden_dim),
            nn.ReLU(inplace=True),
            nn.Linear(hidden_dim, 1),
        )

    def forward(self, class_features, z_query):
        pairs = pair_layer(self.layers[0], class_features, z_query)
        logits = self.layers[1:](pairs)
        return logits.view(len(z_query), len(class_features))


class RelationNetwork(EpisodicNetwork):
    """The torch side of :class:`RelationClassifier`.

    Parameters
    ----------
    backbone : torch.nn.Module
        The embedding module ``f_φ``: inputs to ``(batch, d)`` or
        ``(batch, c, h, w)``.
    relation : torch.nn.Module
        The relation module ``g_φ``: ``relation(class_features, z_query)``
        gives the relation logits ``(n_query, n_way)`` of every concatenated
        pair ``C(class, query)``, as :class:`ConvRelation` and
        :class:`MLPRelation` do.
    feature_shape : tuple of int
        Shape of one embedding of the backbone, ``(d,)`` or ``(c, h, w)``.
    k_shot : int, default=1
        Shots per class in training episodes (see :func:`class_features`).
    """

    def __init__(self, backbone, relation, feature_shape, k_shot=1):
        super().__init__()
        self.backbone = backbone
        self.relation = relation
        self.feature_shape = tuple(feature_shape)
        self.k_shot = k_shot

    def encode_support(self, z_support, y_support, n_way=None):
        """Class features: the sum of each class's shot embeddings.

        ``y_support`` holds classes 0 to ``n_way - 1`` (default: its maximum
        plus one). Returns ``(n_way, ...)``, see :func:`class_features`.
        """
        n_way = int(y_support.max()) + 1 if n_way is None else n_way
        return class_features(z_support, y_support, n_way, self.k_shot)

    def relation_logits(self, class_features, z_query):
        """Relation logits of every (class, query) pair, ``(n_query, n_way)``.

        The relation module reads the concatenation
        ``C(f_φ(x_class), f_φ(x_query))`` along the feature (channel) axis.
        """
        return self.relation(class_features, z_query)

    def episode_output(self, class_features, z_query):
        """Relation scores in [0, 1], which :class:`RelationLoss` regresses."""
        return self.relation_scores(class_features, z_query)

    def relation_scores(self, class_features, z_query):
        """Relation scores ``r = sigmoid(g_φ(C(...)))`` in [0, 1] (eq. 1-2)."""
        return self.relation_logits(class_features, z_query).sigmoid()

    def query_logits(self, class_features, z_query):
        """Log relation scores ``log r``, ``(n_query, n_way)``.

        Their softmax is ``r`` normalised over the classes, and their argmax
        the class of highest relation score. Computed as ``logsigmoid`` of
        the relation logits, never ``-inf``.
        """
        return F.logsigmoid(self.relation_logits(class_features, z_query))


class RelationLoss(nn.Module):
    r"""Loss of relation scores against one-hot query labels (Sung et al., eq. 3).

    .. math::

        \frac{1}{n_q\, n_w} \sum_{j=1}^{n_q} \sum_{i=1}^{n_w}
        (r_{ij} - [y_j = i])^2

    the paper's mean squared error (``"mse"``, averaged rather than summed
    over pairs), or binary cross-entropy of ``r_{ij}`` against the same
    targets (``"bce"``), also averaged.

    Parameters
    ----------
    loss : {"mse", "bce"}, default="mse"

    Notes
    -----
    Called as ``loss(scores, y_query)`` with scores ``(n_query, n_way)`` in
    [0, 1] and labels ``(n_query,)`` int64 in ``[0, n_way)``; returns a scalar.
    """

    def __init__(self, loss="mse"):
        super().__init__()
        if loss not in ("mse", "bce"):
            raise ValueError(f"loss must be 'mse' or 'bce'; got {loss!r}.")
        self.loss = loss

    def forward(self, scores, y_query):
        target = F.one_hot(y_query, scores.shape[1]).to(scores.dtype)
        if self.loss == "mse":
            return F.mse_loss(scores, target)
        return F.binary_cross_entropy(scores, target)


class RelationClassifier(EpisodicClassifier):
    r"""Few-shot classifier of Relation Networks, meta-trained on episodes.

    An embedding module ``f_φ`` embeds samples; the class feature of each
    class is the sum of its shots' embeddings; a learned relation module
    ``g_φ`` reads the concatenation of a class feature and a query's
    embedding and gives their relation score (Sung et al., 2018, eq. 1-2):

    .. math::

        r_{i,j} = \sigma\Big(g_\phi\big(\mathcal C\big(
            \textstyle\sum_{k} f_\varphi(x_{i,k}), f_\varphi(x_j)\big)\big)\Big)
            \in [0, 1]

    trained by regression to 1 for matching pairs and 0 otherwise (mean
    squared error, eq. 3; ``loss="bce"`` for binary cross-entropy). For
    images the default embedding keeps spatial feature maps
    (:class:`RelationEncoder`) and the relation module is convolutional
    (:class:`ConvRelation`); for tabular data both are MLPs
    (:class:`MLPRelation`). A custom backbone giving ``(batch, d)`` gets the
    MLP relation module, one giving ``(batch, c, h, w)`` the convolutional
    one. ``fit`` meta-trains both modules end to end on N-way K-shot episodes
    of the base classes (Adam, learning rate halved every ``lr_step``
    episodes); the training data is then the support set. :meth:`adapt` takes
    the support set of novel classes without changing the weights.

    {parameters}

    Attributes
    ----------
    class_features_ : ndarray of shape (n_classes, ...), dtype float32
        The class feature (sum of shot embeddings, see
        :func:`class_features`) of each class in ``classes_``.
    feature_shape_ : tuple of int
        Shape of one embedding: ``(embedding_dim,)`` or ``(c, h, w)``.
    module_ : RelationNetwork
        The meta-trained module, on ``device_``.
    {training_attributes}

    See Also
    --------
    PrototypicalClassifier : A fixed distance to class means instead of a
        learned relation.
    MatchingClassifier : Cosine attention over every support sample.
    skmeta.model_selection.evaluate_episodes : Few-shot accuracy with a 95% CI.

    Notes
    -----
    ``decision_function`` returns the log relation scores ``log r``, so
    ``predict_proba`` is ``r`` normalised to sum to 1 over the classes (the
    scores themselves are independent per class and need not sum to 1).
    :meth:`transform` returns the embeddings flattened,
    ``(n_samples, prod(feature_shape_))``: ``embedding_dim * (H // 4) *
    (W // 4)`` features for images with the default encoder.

    Besides the errors of :meth:`fit` (NaN or inf, wrong number of
    dimensions, fewer classes than ``n_way``, too-small classes) and of
    parameter validation (e.g. ``loss="l1"``), ``fit`` raises ``ValueError``
    if ``y`` has a single class or if the backbone's output is neither
    ``(batch, d)`` nor ``(batch, c, h, w)``.

    References
    ----------
    .. [1] F. Sung, Y. Yang, L. Zhang, T. Xiang, P. H. S. Torr,
       T. M. Hospedales. "Learning to Compare: Relation Network for Few-Shot
       Learning". CVPR 2018. https://arxiv.org/abs/1711.06025

    Examples
    --------
    >>> from skmeta import RelationClassifier
    >>> clf = RelationClassifier(relation_dim=4, max_epochs=2, random_state=0)
    {adapt_example}
    >>> scores = clf.predict_proba(data.X_novel[25:28])
    >>> scores.shape, bool((scores.sum(axis=1).round(3) == 1).all())
    ((3, 5), True)
    """

    _support_attributes = ("class_features_",)
    _doc_values = METRIC_BASED

    _parameters = episodic_parameters(
        {
            "loss": Param(
                '{"mse", "bce"}',
                "mse",
                [StrOptions({"mse", "bce"})],
                """Loss of the relation scores against one-hot targets: the
                paper's mean squared error, or binary cross-entropy
                (:class:`RelationLoss`).""",
            ),
            "relation_dim": Param(
                "int",
                8,
                [Interval(Integral, 1, None, closed="left")],
                "Units of the relation module's hidden linear layer (8 in the paper).",
            ),
        },
        n_way={
            "doc": """Classes per training episode. ``None`` means all classes of
            ``y``, at most 20 (the paper's widest Omniglot episodes). Each
            episode scores ``n_way² x n_query`` pairs with the relation module
            (its first layer runs once per class and per query, the rest once
            per pair), so wide episodes cost more than for prototype methods."""
        },
        k_shot={
            "doc": """Support samples per class in training episodes. A support
            set with another number of shots per class has its class sums
            rescaled to ``k_shot`` shots (see :func:`class_features`)."""
        },
        lr={"doc": "Adam's learning rate (the paper's)."},
        embedding_dim={
            "doc": """Output size of a built backbone: the channels of the
            feature maps (images) or the MLP's output width (tabular)."""
        },
        backbone={
            "doc": """``None`` picks :class:`RelationEncoder` for images and
            ``"mlp"`` for tabular X; otherwise see
            :func:`skmeta.backbones.build_backbone` (``"conv4"`` gives flat
            embeddings and the MLP relation module)."""
        },
        batch_size={
            "doc": """Samples per forward pass when embedding outside training;
            relation pairs are scored ``max(batch_size, n_classes)`` at a
            time."""
        },
    )

    def __init__(
        self,
        n_way=None,
        k_shot=1,
        n_query=None,
        *,
        episodes_per_epoch=100,
        max_epochs=25,
        lr=1e-3,
        lr_step=1000,
        optimizer="adam",
        optimizer_params=None,
        backbone_lr=None,
        loss="mse",
        relation_dim=8,
        embedding_dim=64,
        backbone=None,
        backbone_params=None,
        rotations=False,
        flips=False,
        augment="auto",
        batch_size=256,
        device="cpu",
        precision="float32",
        random_state=None,
        verbose=0,
        callbacks=None,
        early_stopping=False,
        validation_fraction=None,
        n_iter_no_change=10,
    ):
        self.n_way = n_way
        self.k_shot = k_shot
        self.n_query = n_query
        self.episodes_per_epoch = episodes_per_epoch
        self.max_epochs = max_epochs
        self.lr = lr
        self.lr_step = lr_step
        self.optimizer = optimizer
        self.optimizer_params = optimizer_params
        self.backbone_lr = backbone_lr
        self.loss = loss
        self.relation_dim = relation_dim
        self.embedding_dim = embedding_dim
        self.backbone = backbone
        self.backbone_params = backbone_params
        self.rotations = rotations
        self.flips = flips
        self.augment = augment
        self.batch_size = batch_size
        self.device = device
        self.precision = precision
        self.random_state = random_state
        self.verbose = verbose
        self.callbacks = callbacks
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change

    def fit(self, X, y, groups=None):
        """Meta-train on episodes drawn from the base classes in (X, y).

        {fit}
        """
        return super().fit(X, y, groups)

    #: Episode width used when ``n_way=None``: the 20-way training episodes
    #: of Sung et al. (2018) on Omniglot, or all classes when there are fewer.
    max_auto_way = 20

    @property
    def _criterion(self):
        """The loss of the base class's skorch net: a :class:`RelationLoss`."""
        return RelationLoss(self.loss)

    def _new_backbone(self, input_shape):
        if self.backbone is None and len(input_shape) == 3:
            return RelationEncoder(
                in_channels=input_shape[0],
                out_channels=self.embedding_dim,
                **(self.backbone_params or {}),
            )
        return super()._new_backbone(input_shape)

    def _features(self, backbone):
        """The shape of one embedding: flat, or feature maps."""
        shape = output_shape(backbone, self.input_shape_)
        if len(shape) not in (1, 3):
            raise ValueError(
                "The backbone must give embeddings of shape (batch, d) or feature "
                f"maps (batch, c, h, w); got one of shape {(1, *shape)}."
            )
        return shape

    @property
    def feature_shape_(self):
        """Shape of one embedding, ``(d,)`` or ``(c, h, w)``, of the fitted module."""
        check_is_fitted(self)
        return self.module_.feature_shape

    def _episode_shape(self, counts):
        # One class gives one-way episodes: every pair matches, nothing to
        # compare, and batch norm cannot train on a single pair.
        if counts.shape[1] < 2:
            raise ValueError(
                f"{type(self).__name__} needs at least 2 classes in y to "
                f"meta-train; got {counts.shape[1]} class."
            )
        return super()._episode_shape(counts)

    def _build_module(self, backbone, feature_shape):
        if len(feature_shape) == 3:
            relation = ConvRelation(feature_shape, self.relation_dim)
        else:
            relation = MLPRelation(feature_shape[0], self.relation_dim)
        return RelationNetwork(backbone, relation, feature_shape, self.k_shot)

    def _set_support(self, z_support, y_support):
        y = torch.from_numpy(np.asarray(y_support)).to(z_support.device)
        self.class_features_ = (
            self.module_.encode_support(z_support, y, n_way=len(self.classes_))
            .cpu()
            .numpy()
        )

    def _support_logits(self, z_query):
        features = torch.from_numpy(self.class_features_).to(z_query.device)
        chunk = max(1, self.batch_size // len(features))
        return torch.cat(
            [self.module_.query_logits(features, part) for part in z_query.split(chunk)]
        )
