"""Semi-supervised Prototypical Networks (Ren et al., 2018): y == -1 is unlabelled."""

import math
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.utils import _safe_indexing
from sklearn.utils.validation import check_consistent_length, column_or_1d
from torch import nn
from torch.utils.data import IterableDataset

from .._params import Param, Parameters
from .._runtime import eval_mode
from .._sklearn import Interval
from ._episodic import EpisodicClassifier
from .prototypical import PrototypicalClassifier, PrototypicalNetwork

__all__ = [
    "SemiSupervisedPrototypicalClassifier",
    "SemiSupervisedPrototypicalNetwork",
    "soft_kmeans_with_distractor",
    "unlabelled_mask",
]

#: The label of an unlabelled sample, scikit-learn's semi-supervised convention.
UNLABELLED = -1

#: Episode label of an unlabelled row in a training episode (queries are -1).
_UNLABELLED_ROW = -2


def unlabelled_mask(y, name="y"):
    """Which samples of ``y`` are unlabelled: ``y == -1``, scikit-learn's convention.

    Parameters
    ----------
    y : array-like of shape (n_samples,)
        Labels: ints or floats, or an object array mixing other labels (strings,
        say) with the int -1, as ``SelfTrainingClassifier`` takes them.
    name : str, default="y"
        The parameter's name, for messages.

    Returns
    -------
    ndarray of shape (n_samples,), dtype bool

    Raises
    ------
    ValueError
        If ``y`` is an array of strings holding ``"-1"``: the string is a class
        name, not the marker, which an ambiguous list (``["a", -1]`` becomes
        ``["a", "-1"]`` in NumPy) would turn it into. Pass an object array.
    """
    y = column_or_1d(y, warn=True)
    if y.dtype.kind in "iuf":
        return y == UNLABELLED
    if y.dtype.kind in "US":
        if np.any(y.astype(str) == str(UNLABELLED)):
            raise ValueError(
                f"{name} is an array of strings holding '-1', a class name for "
                "NumPy (a list such as ['a', -1] becomes strings). To mark "
                f"unlabelled samples, pass {name} as an object array: "
                "np.array(['a', -1], dtype=object)."
            )
        return np.zeros(len(y), dtype=bool)
    return np.array(
        [isinstance(v, Real) and not isinstance(v, bool) and v == -1 for v in y],
        dtype=bool,
    )


def soft_kmeans_with_distractor(
    prototypes, counts, z_unlabelled, distance, log_scale, n_steps=1
):
    r"""Prototypes refined by soft k-means with a distractor cluster (Ren et al., 2018).

    The "soft k-means + cluster" model of Ren et al. (eq. 5-6): an extra
    cluster centred at the origin, :math:`p_{N+1} = 0`, with a length scale
    :math:`r = \exp(\text{log\_scale})` (the classes' are 1), takes the
    unlabelled samples that fit no class. Each step weighs unlabelled sample
    :math:`j` by

    .. math::

        w_{j,c} = \operatorname{softmax}_{c \in 1..N+1}
        \left(-\frac{d(z_j, p_c)}{r_c^2} - A(r_c)\right),
        \qquad A(r) = \tfrac12 \log(2\pi) + \log r,

    and each class prototype becomes the weighted mean of its support
    embeddings and of the unlabelled ones:

    .. math::

        \tilde p_c = \frac{n_c p_c + \sum_j w_{j,c}\, z_j}{n_c + \sum_j w_{j,c}},
        \qquad c = 1..N,

    with :math:`p_c` the support prototype and :math:`n_c` its shots; the
    support part stays that of the labelled prototypes at every step, and the
    distractor cluster stays at the origin. Without unlabelled samples the
    prototypes are returned unchanged.

    Parameters
    ----------
    prototypes : torch.Tensor of shape (n_classes, d)
        Means of the support embeddings of each class.
    counts : torch.Tensor of shape (n_classes,)
        Support samples of each class, the weight of its prototype.
    z_unlabelled : torch.Tensor of shape (n_unlabelled, d)
        Embeddings of the unlabelled samples.
    distance : torch.nn.Module
        Maps ``(n, d)`` and ``(m, d)`` to ``(n, m)`` distances (squared
        Euclidean in the paper).
    log_scale : torch.Tensor of shape ()
        Log of the distractor cluster's length scale :math:`r_{N+1}`.
    n_steps : int, default=1
        Refinement steps (1 in the paper).

    Returns
    -------
    torch.Tensor of shape (n_classes, d), float32

    References
    ----------
    .. [1] M. Ren, E. Triantafillou, S. Ravi, J. Snell, K. Swersky, J. B.
       Tenenbaum, H. Larochelle, R. S. Zemel. "Meta-Learning for
       Semi-Supervised Few-Shot Classification". ICLR 2018, eq. 5-6.
       https://arxiv.org/abs/1803.00676
    """
    prototypes, z = prototypes.float(), z_unlabelled.float()
    if len(z) == 0:
        return prototypes
    log_scale = log_scale.float()
    counts = counts.to(prototypes.dtype)[:, None]
    support_sums = prototypes * counts
    # The distractor's logit, -d(z, 0) / r^2 - log r, beside the classes' -d(z, p_c)
    # (their A(1) and the distractor's 1/2 log(2 pi) are the same for all columns).
    to_origin = distance(z, z.new_zeros(1, z.shape[1]))
    distractor = -to_origin * torch.exp(-2 * log_scale) - log_scale
    refined = prototypes
    for _ in range(n_steps):
        logits = torch.cat([-distance(z, refined), distractor], dim=1)
        w = logits.softmax(dim=1)[:, :-1]  # (n_unlabelled, n_classes)
        refined = (support_sums + w.T @ z) / (counts + w.sum(0)[:, None])
    return refined


class SemiSupervisedPrototypicalNetwork(PrototypicalNetwork):
    """The torch side of :class:`SemiSupervisedPrototypicalClassifier`.

    Parameters
    ----------
    backbone : torch.nn.Module
        Maps inputs to embeddings ``(batch, d)``.
    distance : torch.nn.Module
        Maps ``(n, d)`` and ``(m, d)`` to ``(n, m)`` distances.
    refinement_steps : int, default=1
        Steps of :func:`soft_kmeans_with_distractor`.
    distractor_scale : float, default=100.0
        Initial length scale of the distractor cluster (that of Ren et al.'s
        code); its log, ``log_distractor_scale``, is learned.
    """

    def __init__(self, backbone, distance, refinement_steps=1, distractor_scale=100.0):
        super().__init__(backbone, distance)
        self.refinement_steps = refinement_steps
        self.log_distractor_scale = nn.Parameter(
            torch.tensor(math.log(distractor_scale))
        )

    def refine(self, prototypes, counts, z_unlabelled):
        """Prototypes refined with unlabelled embeddings; see the function."""
        return soft_kmeans_with_distractor(
            prototypes,
            counts,
            z_unlabelled,
            self.distance,
            self.log_distractor_scale,
            self.refinement_steps,
        )

    def forward(self, x, y):
        """Query logits of one training episode with unlabelled rows.

        Parameters
        ----------
        x : torch.Tensor of shape (n_rows, ...)
            The episode's support, query and unlabelled rows.
        y : torch.Tensor of shape (n_rows,), dtype int64
            Episode class (0 to n_way - 1) of each support row, -1 for query
            rows and -2 for unlabelled rows; the module sees no other label.

        Returns
        -------
        torch.Tensor of shape (n_query, n_way)
            Negative distances of the queries to the refined prototypes.
        """
        z = self.embed(x)
        support = y >= 0
        prototypes = self.encode_support(z[support], y[support])
        counts = torch.bincount(y[support], minlength=len(prototypes))
        refined = self.refine(prototypes, counts, z[y == _UNLABELLED_ROW])
        return self.query_logits(refined, z[y == -1])


class _UnlabelledEpisodes(IterableDataset):
    """Training episodes of ``stream`` with unlabelled rows appended.

    Each episode gets ``n_per_episode`` samples of ``unlabelled`` (all of them
    if fewer), drawn uniformly without replacement and augmented as the
    episode's own rows are, with episode label -2.
    """

    def __init__(self, stream, unlabelled, n_per_episode, seed):
        self.stream, self.unlabelled = stream, unlabelled
        self.n_per_episode = min(n_per_episode, len(unlabelled))
        # One generator for all epochs: each epoch draws other samples.
        self.rng = np.random.default_rng(seed)
        self.y_rows = torch.full(
            (self.n_per_episode,), _UNLABELLED_ROW, device=unlabelled.device
        )

    def __len__(self):
        return len(self.stream)

    def __iter__(self):
        for batch, y_query in self.stream:
            n = len(self.unlabelled)
            picks = self.rng.choice(n, self.n_per_episode, replace=False)
            rows = self.unlabelled[torch.from_numpy(picks).to(self.unlabelled.device)]
            if self.stream.augment is not None:
                rows = self.stream.augment(rows)
            x = torch.cat([batch["x"], rows])
            yield {"x": x, "y": torch.cat([batch["y"], self.y_rows])}, y_query


#: The parameters of the semi-supervised method, beside Prototypical's.
SEMI_SUPERVISED_PARAMETERS = {
    "n_unlabelled": Param(
        "int",
        5,
        [Interval(Integral, 0, None, closed="left")],
        """Unlabelled samples per class of a training episode: each episode
        draws ``n_way * n_unlabelled`` of the unlabelled samples of ``fit``
        (``y == -1``), uniformly without replacement (all of them if there
        are fewer), as its unlabelled set. Their classes are unknown, so
        those of other classes than the episode's are its distractors, in
        the proportion the data has. 0, or a ``fit`` without unlabelled
        samples, trains as :class:`PrototypicalClassifier`.""",
    ),
    "refinement_steps": Param(
        "int",
        1,
        [Interval(Integral, 1, None, closed="left")],
        """Steps of soft k-means with a distractor cluster
        (:func:`soft_kmeans_with_distractor`) that refine the prototypes with
        the unlabelled samples, in training episodes and at :meth:`adapt`
        (1 in the paper).""",
    ),
    "distractor_scale": Param(
        "float",
        100.0,
        [Interval(Real, 0, None, closed="neither")],
        """Initial length scale of the distractor cluster, learned in
        meta-training (100, as in Ren et al.'s code): the larger, the fewer
        unlabelled samples it takes from the classes at first.""",
    ),
}


def _with_semi_supervised(parameters):
    """Prototypical's ``parameters``, the semi-supervised ones after its own."""
    params = {}
    for name, param in parameters.items():
        params[name] = param
        if name == "transductive_steps":
            params.update(SEMI_SUPERVISED_PARAMETERS)
    return Parameters(params, positional=parameters.positional)


class SemiSupervisedPrototypicalClassifier(PrototypicalClassifier):
    """Prototypical Networks that learn from unlabelled samples too (Ren et al., 2018).

    Samples with ``y == -1`` are unlabelled, scikit-learn's semi-supervised
    convention (``SelfTrainingClassifier``, ``LabelSpreading``). ``fit``
    meta-trains on episodes of the labelled base classes as
    :class:`PrototypicalClassifier` does, each with an unlabelled set drawn
    from the unlabelled samples (``n_unlabelled``); the episode's prototypes
    are refined with it by soft k-means with a distractor cluster, the
    "soft k-means + cluster" model of Ren et al. (eq. 5-6,
    :func:`soft_kmeans_with_distractor`), before its queries are classified,
    and the cluster's length scale is learned. :meth:`adapt` refines the
    prototypes of the novel classes with its unlabelled samples the same
    way, and the unlabelled samples of ``fit`` refine those of the default
    support set. Predictions are always among the labelled classes, never
    -1. Without unlabelled samples, in ``fit`` and ``adapt``, it is
    :class:`PrototypicalClassifier` (its learned scale then unused).

    {parameters}

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The labelled classes of the support set: of ``fit``, then of the last
        :meth:`adapt`; never -1.
    prototypes_ : ndarray of shape (n_classes, embedding_dim), dtype float32
        The prototype of each class in ``classes_``, refined with the
        unlabelled samples of the support set (in the space of
        ``normalization``).
    support_counts_ : ndarray of shape (n_classes,), dtype int64
        Labelled support samples of each class.
    feature_mean_ : ndarray of shape (embedding_dim,), dtype float32
        Mean embedding of the labelled base classes; with
        ``normalization="centered-l2"`` only.
    fine_tuned_params_ : dict of str to torch.Tensor
        As in :class:`PrototypicalClassifier`: fine-tuning and batch-norm
        re-estimation use the labelled support samples only.
    module_ : SemiSupervisedPrototypicalNetwork
        The meta-trained module, on ``device_``; its
        ``log_distractor_scale`` is the learned log length scale.
    {training_attributes}

    See Also
    --------
    PrototypicalClassifier : The same model, ignoring unlabelled samples.
    sklearn.semi_supervised.SelfTrainingClassifier : The ``y == -1``
        convention, with pseudo-labels.

    Notes
    -----
    The unlabelled samples of ``fit`` carry no class, so an episode cannot
    draw them from its own classes as Ren et al. do (their unlabelled split
    keeps hidden labels): it draws them from all the unlabelled samples, and
    the more of the base classes an episode holds (``n_way``), the more of
    them belong to its classes. They are drawn upright, without ``flips`` or
    ``rotations``, and from all base classes, those held out for validation
    included. Training episodes with the default ``n_query=None`` hold
    ``n_way * n_unlabelled`` unlabelled samples beside their 480 labelled
    ones. ``normalization`` applies at :meth:`adapt` and prediction only:
    the distractor scale is learned on the embeddings as they are.

    References
    ----------
    .. [1] M. Ren, E. Triantafillou, S. Ravi, J. Snell, K. Swersky, J. B.
       Tenenbaum, H. Larochelle, R. S. Zemel. "Meta-Learning for
       Semi-Supervised Few-Shot Classification". ICLR 2018.
       https://arxiv.org/abs/1803.00676
    .. [2] S. X. Hu, D. Li, J. Stühmer, M. Kim, T. M. Hospedales. "Pushing the
       Limits of Simple Pipelines for Few-Shot Learning: External Data and
       Fine-Tuning Make a Difference". CVPR 2022.
       https://arxiv.org/abs/2204.07305
    .. [3] Y. Li, N. Wang, J. Shi, X. Hou, J. Liu. "Adaptive Batch
       Normalization for practical domain adaptation". Pattern Recognition
       80, 2018. https://arxiv.org/abs/1603.04779
    .. [4] J. Snell, K. Swersky, R. Zemel. "Prototypical Networks for Few-shot
       Learning". NeurIPS 2017. https://arxiv.org/abs/1703.05175

    Examples
    --------
    >>> import numpy as np
    >>> from skmeta import SemiSupervisedPrototypicalClassifier
    >>> from skmeta.datasets import load_digits_fewshot
    >>> data = load_digits_fewshot()
    >>> y = data.y_base.copy()
    >>> y[np.random.RandomState(0).rand(len(y)) < 0.6] = -1  # 60 % unlabelled
    >>> clf = SemiSupervisedPrototypicalClassifier(
    ...     max_epochs=1, episodes_per_epoch=10, random_state=0
    ... )
    >>> clf = clf.fit(data.X_base, y)
    >>> y_support = np.full(50, -1)
    >>> y_support[:10] = data.y_novel[:10]  # 10 labelled, 40 unlabelled
    >>> clf = clf.adapt(data.X_novel[:50], y_support)
    >>> bool(np.isin(clf.predict(data.X_novel[50:]), data.y_novel).all())
    True
    """

    _parameters = _with_semi_supervised(PrototypicalClassifier._parameters)

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
        distance="sqeuclidean",
        normalization=None,
        transductive_steps=0,
        n_unlabelled=5,
        refinement_steps=1,
        distractor_scale=100.0,
        test_time_views="auto",
        fine_tuning_steps=0,
        fine_tuning_lr=3e-4,
        adapt_batch_norm=False,
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
        self.distance = distance
        self.normalization = normalization
        self.transductive_steps = transductive_steps
        self.n_unlabelled = n_unlabelled
        self.refinement_steps = refinement_steps
        self.distractor_scale = distractor_scale
        self.test_time_views = test_time_views
        self.fine_tuning_steps = fine_tuning_steps
        self.fine_tuning_lr = fine_tuning_lr
        self.adapt_batch_norm = adapt_batch_norm
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

    _fit_doc = {
        **EpisodicClassifier._fit_doc,
        "y": """; -1 marks an unlabelled sample (an object array for
            -1 among strings). The labelled samples are the base classes,
            each episode's classes need at least ``k_shot + n_query`` of them""",
        "raises": EpisodicClassifier._fit_doc["raises"]
        + """, if every sample is unlabelled, if ``groups`` is given with
            unlabelled samples""",
    }

    def _fit(self, X, y, groups=None):
        unlabelled = None if y is None else unlabelled_mask(y)
        if unlabelled is None or not unlabelled.any():
            return super()._fit(X, y, groups)
        check_consistent_length(X, y)
        if unlabelled.all():
            raise ValueError(
                f"y holds only unlabelled samples (all {len(y)} are -1); fit "
                "needs labelled samples of at least 2 base classes."
            )
        if groups is not None:
            raise ValueError(
                "groups cannot be given with unlabelled samples (y == -1): "
                "an unlabelled sample has no task to draw it within. Pass "
                "groups=None, or labelled samples only."
            )
        # The unlabelled samples wait, unvalidated, for the sample shape of fit.
        self._unlabelled_fit_samples = _safe_indexing(X, np.flatnonzero(unlabelled))
        labelled = np.flatnonzero(~unlabelled)
        return super()._fit(
            _safe_indexing(X, labelled), column_or_1d(y)[labelled], groups
        )

    def _unlabelled_fit_tensor(self):
        """The unlabelled samples of ``fit``, validated, on the device; or None."""
        X = vars(self).get("_unlabelled_fit_samples")
        if X is None:
            return None
        return torch.from_numpy(self._validate_X(X, reset=False)).to(self.device_)

    def _training_batches(self, stream):
        unlabelled = self._unlabelled_fit_tensor()
        if unlabelled is None or self.n_unlabelled == 0:
            return stream
        n_way = stream.sampler.n_way
        return _UnlabelledEpisodes(
            stream, unlabelled, n_way * self.n_unlabelled, self._seed()
        )

    def _finish_fit(self, module, history, stop_reason, classes, X_base, X, y_enc):
        unlabelled = self._unlabelled_fit_tensor()
        vars(self).pop("_unlabelled_fit_samples", None)
        if unlabelled is not None:  # they refine the default support set too
            X = np.concatenate([X, unlabelled.cpu().numpy()])
            y_enc = np.concatenate([y_enc, np.full(len(unlabelled), UNLABELLED)])
        return super()._finish_fit(
            module, history, stop_reason, classes, X_base, X, y_enc
        )

    def adapt(self, X_support, y_support):
        """Take a new support set, whose unlabelled samples (-1) refine its prototypes.

        ``classes_`` become the labelled classes of ``y_support``, in sorted
        order. The prototypes, the class means of the labelled support
        embeddings, are refined with the unlabelled ones by soft k-means
        with the learned distractor cluster
        (:func:`soft_kmeans_with_distractor`, ``refinement_steps`` steps);
        the meta-learned weights never change.

        Parameters
        ----------
        X_support : array-like of shape (n_support, ...)
            Support samples, of the shape seen in ``fit``.
        y_support : array-like of shape (n_support,)
            Their labels, -1 for an unlabelled sample; any number of shots
            per class.

        Returns
        -------
        self : object

        Raises
        ------
        ValueError
            If every sample of ``y_support`` is unlabelled, if X_support has
            another sample shape than in ``fit``, or NaN/inf.
        sklearn.exceptions.NotFittedError
            If the estimator is not fitted.
        """
        return super().adapt(X_support, y_support)

    def _adapt(self, X_support, y_support):
        X = self._validate_X(X_support, reset=False)
        y = column_or_1d(y_support, warn=True)
        check_consistent_length(X, y)
        unlabelled = unlabelled_mask(y, "y_support")
        if unlabelled.all():
            raise ValueError(
                f"y_support holds only unlabelled samples (all {len(y)} are -1); "
                "adapt needs at least one labelled sample of each class to "
                "predict."
            )
        super()._adapt(X[~unlabelled], y[~unlabelled])
        if unlabelled.any():
            self._refine_support(X[unlabelled])

    def _take_support(self, X, y_enc):
        """The support set of (X, y_enc); rows of label -1 refine its prototypes."""
        labelled = y_enc != UNLABELLED
        super()._take_support(X[labelled], y_enc[labelled])
        if not labelled.all():
            self._refine_support(X[~labelled])

    def _refine_support(self, X_unlabelled):
        """Refine ``prototypes_`` with validated unlabelled samples."""
        z = self._comparison_space(self._embed(X_unlabelled))
        with eval_mode(self.module_), torch.inference_mode():
            refined = self.module_.refine(
                torch.from_numpy(self.prototypes_).to(z.device),
                torch.from_numpy(self.support_counts_).to(z.device),
                z,
            )
        self.prototypes_ = refined.cpu().numpy()

    def _build_module(self, backbone, embedding_dim):
        network = super()._build_module(backbone, embedding_dim)
        return SemiSupervisedPrototypicalNetwork(
            network.backbone,
            network.distance,
            self.refinement_steps,
            self.distractor_scale,
        )
