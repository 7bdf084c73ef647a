"""Prototypical Networks (Snell, Swersky & Zemel, 2017)."""

import copy

import numpy as np
import torch
from sklearn.utils._param_validation import StrOptions
from torch import nn

from .._base import EpisodicClassifier, EpisodicNetwork
from .._docs import EPISODIC, fill_doc
from ..distances import DISTANCES, get_distance
from ._segments import class_counts, class_sums

__all__ = ["PrototypicalClassifier", "PrototypicalNetwork", "class_means"]


def class_means(z, y, n_classes):
    """Mean of the rows of ``z`` of each class.

    Parameters
    ----------
    z : torch.Tensor of shape (n, d)
    y : torch.Tensor of shape (n,), dtype int64, values in [0, n_classes)
    n_classes : int

    Returns
    -------
    torch.Tensor of shape (n_classes, d)

    Notes
    -----
    Segment sums (``index_add``): time and memory linear in ``n`` and
    ``n_classes``, never ``n * n_classes``; differentiable in ``z``.
    """
    return class_sums(z, y, n_classes) / class_counts(y, n_classes, z.dtype)[:, None]


class PrototypicalNetwork(EpisodicNetwork):
    """The torch side of :class:`PrototypicalClassifier`.

    Parameters
    ----------
    backbone : torch.nn.Module
        Maps inputs to embeddings ``(batch, d)``.
    distance : torch.nn.Module
        Maps ``(n, d)`` and ``(m, d)`` to ``(n, m)`` distances.
    """

    def __init__(self, backbone, distance):
        super().__init__()
        self.backbone = backbone
        self.distance = distance

    def encode_support(self, z_support, y_support):
        """Prototypes: the class means of the support embeddings (eq. 1).

        ``y_support`` holds episode classes 0 to n_way - 1, each present.
        Returns a tensor of shape ``(n_way, d)``.
        """
        return class_means(z_support, y_support, int(y_support.max()) + 1)

    def query_logits(self, prototypes, z_query):
        """Negative distances of queries to prototypes, ``(n_query, n_way)``.

        Their softmax is p(y = k | x) of eq. 2.
        """
        return -self.distance(z_query, prototypes)


@fill_doc(EPISODIC)
class PrototypicalClassifier(EpisodicClassifier):
    """Few-shot classifier of Prototypical Networks, meta-trained on episodes.

    A backbone embeds samples; each class is represented by its prototype,
    the mean embedding of its support samples, and a query gets the softmax
    over negative distances to the prototypes (Snell et al., 2017, eq. 1-2).
    ``fit`` meta-trains the backbone on N-way K-shot episodes of the base
    classes (Adam, learning rate halved every ``lr_step`` episodes, as in the
    paper); the training data is then the support set. :meth:`adapt` takes
    the support set of novel classes without changing the weights.

    Parameters
    ----------
    n_way : int or None, default=None
        Classes per training episode. ``None`` means all classes of ``y``,
        at most 60: the paper trains Omniglot with 60-way episodes, wider than
        at test time.
    k_shot : int, default=1
        Support samples per class in training episodes.
    {n_query_parameter}
    episodes_per_epoch : int, default=100
        Training episodes per epoch (a skorch epoch, for history and callbacks).
    max_epochs : int, default=25
        Epochs of meta-training; 0 keeps the initial weights.
    lr : float, default=1e-3
        Adam's learning rate.
    lr_step : int or None, default=1000
        Halve the learning rate every ``lr_step`` episodes; ``None`` keeps it.
    distance : str or torch.nn.Module, default="sqeuclidean"
        One of ``"sqeuclidean"`` (the paper's), ``"euclidean"``, ``"cosine"``,
        ``"manhattan"``, ``"mahalanobis"`` (learned), or a module mapping
        ``(n, d)``, ``(m, d)`` to ``(n, m)`` distances.
    embedding_dim : int, default=64
        Output size of a built backbone (the last Conv4 block's filters, or
        the MLP's output width).
    backbone : None, str, torch.nn.Module class or instance, default=None
        ``None`` picks ``"conv4"`` for images and ``"mlp"`` for tabular X;
        see :func:`skmeta.backbones.build_backbone`.
    backbone_params : dict or None, default=None
        Extra constructor arguments of the backbone.
    rotations : bool, default=False
        Add the 90, 180 and 270-degree rotations of each training class as
        new classes (the paper's Omniglot augmentation). Images only.
    augment : {"auto", "affine"}, callable or None, default="auto"
        Augmentation of training episode inputs: ``"affine"`` applies
        :class:`skmeta.augmentation.RandomAffine`, ``"auto"`` does so for
        images and nothing for tabular data; a callable maps a batch tensor
        to a batch tensor.
    batch_size : int, default=256
        Samples per forward pass when embedding for prediction.
    device : str or torch.device, default="cpu"
        ``"cpu"``, ``"cuda"``, ``"cuda:1"``..., or ``"auto"``.
    random_state : int, RandomState instance or None, default=None
        Seeds episodes, augmentation and weight initialisation; the same int
        gives the same model on the CPU.
    verbose : int, default=0
        1 shows a progress bar and skorch's epoch log.
    callbacks : list of skorch callbacks or None, default=None
        Extra callbacks of the skorch net, e.g.
        :class:`skmeta.callbacks.TimeLimit` or skorch's ``Checkpoint``
        (validation scores need ``validation_fraction``).
    {training_parameters}

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Labels of the current support set (of ``fit``, or of ``adapt``).
    prototypes_ : ndarray of shape (n_classes, embedding_dim), dtype float32
        The prototype of each class in ``classes_``.
    module_ : PrototypicalNetwork
        The meta-trained module, on ``device_``.
    history_ : skorch.History
        skorch's record of meta-training: loss and learning rate of every
        episode (``history_[:, "batches", :, "train_loss"]``), epoch times.
    {training_attributes}
    n_features_in_ : int
        Features (tabular) or channels (images) of X in ``fit``.
    input_shape_ : tuple of int
        Shape of one sample in ``fit``.
    device_ : torch.device
        The device the module lives on.

    See Also
    --------
    sklearn.neighbors.NearestCentroid : The same rule on raw features.
    skmeta.model_selection.evaluate_episodes : Few-shot accuracy with a 95% CI.

    References
    ----------
    .. [1] J. Snell, K. Swersky, R. Zemel. "Prototypical Networks for Few-shot
       Learning". NeurIPS 2017. https://arxiv.org/abs/1703.05175

    Examples
    --------
    >>> from skmeta import PrototypicalClassifier
    >>> from skmeta.datasets import load_digits_fewshot
    >>> data = load_digits_fewshot()
    >>> clf = PrototypicalClassifier(max_epochs=2, random_state=0)
    >>> clf = clf.fit(data.X_base, data.y_base)
    >>> clf = clf.adapt(data.X_novel[:25], data.y_novel[:25])
    >>> clf.predict(data.X_novel[25:30]).shape
    (5,)
    """

    _parameter_constraints: dict = {
        **EpisodicClassifier._parameter_constraints,
        "distance": [StrOptions(set(DISTANCES)), nn.Module],
    }

    def __init__(
        self,
        n_way=None,
        k_shot=1,
        n_query=None,
        episodes_per_epoch=100,
        max_epochs=25,
        lr=1e-3,
        lr_step=1000,
        distance="sqeuclidean",
        embedding_dim=64,
        backbone=None,
        backbone_params=None,
        rotations=False,
        augment="auto",
        batch_size=256,
        device="cpu",
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
        self.distance = distance
        self.embedding_dim = embedding_dim
        self.backbone = backbone
        self.backbone_params = backbone_params
        self.rotations = rotations
        self.augment = augment
        self.batch_size = batch_size
        self.device = device
        self.random_state = random_state
        self.verbose = verbose
        self.callbacks = callbacks
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change

    def _build_module(self, backbone, embedding_dim):
        # A distance module is copied: fitting must not train the caller's.
        distance = get_distance(copy.deepcopy(self.distance), embedding_dim)
        return PrototypicalNetwork(backbone, distance)

    def _set_support(self, z_support, y_support):
        y = torch.from_numpy(np.asarray(y_support)).to(z_support.device)
        self.prototypes_ = class_means(z_support, y, len(self.classes_)).cpu().numpy()

    def _support_logits(self, z_query):
        prototypes = torch.from_numpy(self.prototypes_).to(z_query.device)
        return self.module_.query_logits(prototypes, z_query)
