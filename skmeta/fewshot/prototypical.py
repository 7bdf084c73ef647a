"""Prototypical Networks (Snell, Swersky & Zemel, 2017)."""

import copy

import numpy as np
import torch
from torch import nn

from .._base import (
    EpisodicClassifier,
    EpisodicNetwork,
    episodic_parameters,
    registry_constraints,
)
from .._params import Param
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


class PrototypicalClassifier(EpisodicClassifier):
    """Few-shot classifier of Prototypical Networks, meta-trained on episodes.

    A backbone embeds samples; each class is represented by its prototype,
    the mean embedding of its support samples, and a query gets the softmax
    over negative distances to the prototypes (Snell et al., 2017, eq. 1-2).
    ``fit`` meta-trains the backbone on N-way K-shot episodes of the base
    classes (Adam, learning rate halved every ``lr_step`` episodes, as in the
    paper); the training data is then the support set. :meth:`adapt` takes
    the support set of novel classes without changing the weights.

    {parameters}

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

    _parameters = episodic_parameters(
        {
            "distance": Param(
                "str or torch.nn.Module",
                "sqeuclidean",
                registry_constraints(DISTANCES, nn.Module),
                """One of ``"sqeuclidean"`` (the paper's), ``"euclidean"``,
                ``"cosine"``, ``"manhattan"``, ``"mahalanobis"`` (learned), or a
                module mapping ``(n, d)``, ``(m, d)`` to ``(n, m)`` distances.""",
            )
        }
    )

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
