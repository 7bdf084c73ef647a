"""Prototypical Networks (Snell, Swersky & Zemel, 2017)."""

import copy
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.preprocessing import LabelEncoder
from sklearn.utils.validation import check_consistent_length, check_is_fitted
from torch import nn
from torch.nn import functional as F

from .._arrays import check_labels
from .._catalogue import AUTO_TEST_TIME_VIEWS, TEST_TIME_VIEWS, episodic_parameters
from .._docs import METRIC_BASED
from .._params import Param, registry_constraints
from .._precision import autocast
from .._runtime import eval_mode, seeded
from .._sklearn import Interval, StrOptions
from ..augmentation import AffineViews
from ..distances import DISTANCES, get_distance, l2_normalize
from ._base import EpisodicNetwork
from ._episodic import EpisodicClassifier
from ._segments import class_counts, class_sums

__all__ = [
    "PrototypicalClassifier",
    "PrototypicalNetwork",
    "class_means",
    "soft_kmeans",
]

#: ``normalization`` of the classifiers that compare embeddings by distance.
NORMALIZATION = Param(
    '{"l2", "centered-l2"} or None',
    None,
    [StrOptions({"l2", "centered-l2"}), None],
    """How embeddings are transformed before support and queries are compared,
    in ``adapt``, prediction and evaluation (not in training): ``"l2"``
    scales each to unit norm; ``"centered-l2"`` first subtracts the mean
    embedding of the base classes of ``fit`` (``feature_mean_``), SimpleShot's
    CL2N (Wang et al., 2019), which helps most with embeddings of a backbone
    trained on other classes. ``None`` compares them as they are.""",
)

#: ``transductive_steps``: opt-in soft k-means refinement with the queries.
TRANSDUCTIVE_STEPS = Param(
    "int",
    0,
    [Interval(Integral, 0, None, closed="left")],
    """Steps of soft k-means refinement of the prototypes with the unlabelled
    queries (Ren et al., 2018; :func:`soft_kmeans`), at prediction and
    evaluation. 0 (the default) is inductive: each query is classified on
    its own. With 1 or more, the queries of one ``predict`` call (or of one
    evaluation episode) are the unlabelled set, so a prediction depends on
    the other samples passed with it; report such scores apart from
    inductive ones.""",
)


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


def soft_kmeans(prototypes, counts, z_query, distance, n_steps=1):
    r"""Prototypes refined with unlabelled queries by soft k-means (Ren et al., 2018).

    Each step weighs every query by its softmax over negative distances to
    the current prototypes, :math:`w_{j,c}`, and recomputes each prototype as
    the weighted mean of its support embeddings and of all queries (eq. 3-4
    of Ren et al.):

    .. math::

        \tilde p_c = \frac{n_c p_c + \sum_j w_{j,c}\, z_j}{n_c + \sum_j w_{j,c}},
        \qquad w_{j,c} = \operatorname{softmax}_c(-d(z_j, p_c))

    with :math:`p_c` the support prototype and :math:`n_c` its shots; the
    support part stays that of the labelled prototypes at every step.

    Parameters
    ----------
    prototypes : torch.Tensor of shape (n_classes, d)
        Means of the support embeddings of each class.
    counts : torch.Tensor of shape (n_classes,)
        Support samples of each class, the weight of its prototype.
    z_query : torch.Tensor of shape (n_query, d)
        The unlabelled set: every query to classify.
    distance : torch.nn.Module
        Maps ``(n, d)`` and ``(m, d)`` to ``(n, m)`` distances.
    n_steps : int, default=1
        Refinement steps (1 in the paper).

    Returns
    -------
    torch.Tensor of shape (n_classes, d)

    References
    ----------
    .. [1] M. Ren, E. Triantafillou, S. Ravi, J. Snell, K. Swersky, J. B.
       Tenenbaum, H. Larochelle, R. S. Zemel. "Meta-Learning for
       Semi-Supervised Few-Shot Classification". ICLR 2018.
    """
    counts = counts.to(prototypes.dtype)[:, None]
    support_sums = prototypes * counts
    refined = prototypes
    for _ in range(n_steps):
        w = (-distance(z_query, refined)).softmax(dim=1)  # (n_query, n_classes)
        refined = (support_sums + w.T @ z_query) / (counts + w.sum(0)[:, None])
    return refined


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


class PrototypeHead:
    """Mixin of the classifiers that compare queries with class means.

    The support set is kept as ``prototypes_`` (class means in the space of
    ``normalization``) and ``support_counts_``; queries get the module's
    ``query_logits`` against them, refined first with the queries when
    ``transductive_steps`` is set (:func:`soft_kmeans`).
    """

    _support_attributes = ("prototypes_", "support_counts_")

    def _is_transductive(self):
        return self.transductive_steps > 0

    def _fit_comparison_space(self, X_base):
        """``feature_mean_``, the base classes' mean embedding, for centered-l2.

        The mean embedding of the base classes ``X_base``.
        """
        if self.normalization == "centered-l2":
            self.feature_mean_ = self._embed(X_base).mean(0).cpu().numpy()

    def _comparison_space(self, z):
        """Embeddings ``(n, d)`` as support and queries are compared in.

        As they are, unless ``normalization``: ``"l2"`` scales each to unit
        norm, ``"centered-l2"`` subtracts ``feature_mean_`` first
        (SimpleShot's CL2N, Wang et al., 2019).
        """
        if self.normalization is None:
            return z
        if self.normalization == "centered-l2":
            z = z - torch.from_numpy(self.feature_mean_).to(z.device, z.dtype)
        return l2_normalize(z, dim=1)

    def _set_support(self, z_support, y_support):
        y = torch.from_numpy(np.asarray(y_support)).to(z_support.device)
        n_classes = len(self.classes_)
        self.prototypes_ = class_means(z_support, y, n_classes).cpu().numpy()
        self.support_counts_ = np.bincount(y_support, minlength=n_classes)

    def _support_logits(self, z_query):
        prototypes = torch.from_numpy(self.prototypes_).to(z_query.device)
        counts = torch.from_numpy(self.support_counts_).to(z_query.device)
        return self._refined_logits(prototypes, counts, z_query)

    def _episode_logits(self, z_support, y_support, z_query):
        prototypes = self.module_.encode_support(z_support, y_support)
        counts = torch.bincount(y_support, minlength=len(prototypes))
        return self._refined_logits(prototypes, counts, z_query)

    def _refined_logits(self, prototypes, counts, z_query):
        """Query logits against the prototypes, refined if transductive."""
        if self.transductive_steps:
            prototypes = soft_kmeans(
                prototypes,
                counts,
                z_query,
                self.module_.distance,
                self.transductive_steps,
            )
        return self.module_.query_logits(prototypes, z_query)


class PrototypicalClassifier(PrototypeHead, EpisodicClassifier):
    """Few-shot classifier of Prototypical Networks, meta-trained on episodes.

    A backbone embeds samples; each class is represented by its prototype,
    the mean embedding of its support samples, and a query gets the softmax
    over negative distances to the prototypes (Snell et al., 2017, eq. 1-2).
    ``fit`` meta-trains the backbone on N-way K-shot episodes of the base
    classes (Adam, learning rate halved every ``lr_step`` episodes, as in the
    paper); the training data is then the support set. :meth:`adapt` takes
    the support set of novel classes without changing the meta-learned
    weights; with ``fine_tuning_steps``, it first fine-tunes a copy of the
    backbone on that support set (P>M>F's third stage, Hu et al., 2022), to
    close a gap between the base classes' domain and the novel ones';
    ``adapt_batch_norm`` re-estimates its batch-norm statistics on that
    support set.

    {parameters}

    Attributes
    ----------
    prototypes_ : ndarray of shape (n_classes, embedding_dim), dtype float32
        The prototype of each class in ``classes_`` (in the space of
        ``normalization``).
    support_counts_ : ndarray of shape (n_classes,), dtype int64
        Support samples of each class: the weight of its prototype in
        transductive refinement.
    feature_mean_ : ndarray of shape (embedding_dim,), dtype float32
        Mean embedding of the base classes; with
        ``normalization="centered-l2"`` only.
    fine_tuned_params_ : dict of str to torch.Tensor
        The backbone's weights and batch-norm statistics adapted to the
        support set of the last :meth:`adapt`, by their names in
        ``module_``; with ``fine_tuning_steps`` or ``adapt_batch_norm`` only.
        ``module_`` keeps the meta-learned ones.
    module_ : PrototypicalNetwork
        The meta-trained module, on ``device_``.
    {training_attributes}

    See Also
    --------
    sklearn.neighbors.NearestCentroid : The same rule on raw features.
    skmeta.model_selection.evaluate_episodes : Few-shot accuracy with a 95% CI.

    References
    ----------
    .. [1] J. Snell, K. Swersky, R. Zemel. "Prototypical Networks for Few-shot
       Learning". NeurIPS 2017. https://arxiv.org/abs/1703.05175
    .. [2] S. X. Hu, D. Li, J. Stühmer, M. Kim, T. M. Hospedales. "Pushing the
       Limits of Simple Pipelines for Few-Shot Learning: External Data and
       Fine-Tuning Make a Difference". CVPR 2022.
       https://arxiv.org/abs/2204.07305
    .. [3] Y. Li, N. Wang, J. Shi, X. Hou, J. Liu. "Adaptive Batch
       Normalization for practical domain adaptation". Pattern Recognition
       80, 2018. https://arxiv.org/abs/1603.04779

    Examples
    --------
    >>> from skmeta import PrototypicalClassifier
    >>> clf = PrototypicalClassifier(max_epochs=2, random_state=0)
    {adapt_example}
    """

    _doc_values = METRIC_BASED

    _parameters = episodic_parameters(
        {
            "distance": Param(
                "str or torch.nn.Module",
                "sqeuclidean",
                registry_constraints(DISTANCES, nn.Module),
                """One of ``"sqeuclidean"`` (the paper's), ``"euclidean"``,
                ``"cosine"``, ``"manhattan"``, ``"mahalanobis"`` (learned), or a
                module mapping ``(n, d)``, ``(m, d)`` to ``(n, m)`` distances.""",
            ),
            "normalization": NORMALIZATION,
            "transductive_steps": TRANSDUCTIVE_STEPS,
            "test_time_views": TEST_TIME_VIEWS,
            "fine_tuning_steps": Param(
                "int",
                0,
                [Interval(Integral, 0, None, closed="left")],
                """Gradient steps of fine-tuning at :meth:`adapt` (and in each
                episode of :meth:`score_episodes`): a copy of the backbone is
                trained on the support set, its samples augmented as in
                training (``augment``) as the queries of an episode whose
                prototypes are the support set's own (Hu et al., 2022 [2]_),
                with Adam at ``fine_tuning_lr``, batch norm on its running
                statistics. Each ``adapt`` starts again from the
                meta-learned weights. 0 (the default) fine-tunes nothing;
                with 1 or more, evaluation adapts a copy to each episode
                instead of embedding the samples once.""",
            ),
            "fine_tuning_lr": Param(
                "float",
                3e-4,
                [Interval(Real, 0, None, closed="neither")],
                """Adam's learning rate in fine-tuning at :meth:`adapt`. A
                fraction of meta-training's ``lr``: the support set is a few
                samples, and larger steps overfit them (the cross-domain
                benchmark, on the benchmarks page, measured 3e-4 against 1e-3
                and 1e-2).""",
            ),
            "adapt_batch_norm": Param(
                "bool",
                False,
                ["boolean"],
                """Re-estimate the backbone's batch-norm statistics on the
                support set at :meth:`adapt` (and in each episode of
                :meth:`score_episodes`), AdaBN (Li et al., 2018 [3]_): a
                copy's running means and variances are reset and set to
                those of the support samples as the network sees them at
                prediction (each of its ``test_time_views``), in near-equal
                batches of at most ``batch_size`` samples whose statistics
                are averaged (PyTorch's ``momentum=None``); with
                ``fine_tuning_steps``, before fine-tuning and again after
                it. For novel classes of another domain than the base
                classes. False (the default) keeps the meta-learned
                statistics. A backbone whose batch norm sees one value per
                channel (``BatchNorm1d`` on one support sample) cannot
                re-estimate them: torch's ValueError then says so.""",
            ),
        },
        n_way={
            "doc": """Classes per training episode. ``None`` means all classes of
            ``y``, at most 240: wider than the 60 of Snell et al., as measured
            on Omniglot minimal, where 1900 episodes of 240 classes and one
            query each beat 2600 of 60 classes and 5 queries (the same
            images in all) by 3.2 points of 20-way 1-shot accuracy on novel
            alphabets, and 180 or 360 classes did less well."""
        },
        n_query={
            "doc": """Query samples per class in training episodes. ``None`` means
            as many as make an episode of 480 samples, ``n_way * (k_shot +
            n_query)``, at least 1: 1 query for 240-way 1-shot episodes, 7 for
            60-way ones, 95 for 5 classes; fewer (at least 1) where the
            ``n_way``-th largest class has fewer samples, so that small data
            sets train with the defaults. A class with fewer than ``k_shot +
            n_query`` samples is never drawn into an episode."""
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
        distance="sqeuclidean",
        normalization=None,
        transductive_steps=0,
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

    #: Episode width of ``n_way=None``: at most 240 classes.
    max_auto_way = 240

    #: Samples of a training episode, support and queries, with ``n_query=None``.
    episode_size = 480

    def _n_test_time_views(self):
        """``test_time_views`` as a number, ``"auto"`` resolved for the fitted input."""
        if self.test_time_views != "auto":
            return self.test_time_views
        affine = self.augment in ("auto", "affine")
        return AUTO_TEST_TIME_VIEWS if affine and len(self.input_shape_) == 3 else 1

    def _check_image_parameters(self, X):
        super()._check_image_parameters(X)
        views = self.test_time_views
        if views != "auto" and views > 1 and X.ndim != 4:
            raise ValueError(
                f"test_time_views={views} distorts images; X holds samples of "
                f"shape {X.shape[1:]}. Use test_time_views=1 for tabular data."
            )

    def _default_n_query(self, n_way, k_shot):
        return max(1, self.episode_size // n_way - k_shot)

    def _adapts_backbone(self):
        """Whether :meth:`adapt` changes a copy of the backbone."""
        return bool(self.fine_tuning_steps or self.adapt_batch_norm)

    def _adapt(self, X_support, y_support):
        # Every adapt starts from the meta-learned weights, never the last.
        vars(self).pop("fine_tuned_params_", None)
        if self._adapts_backbone():
            X = self._validate_X(X_support, reset=False)
            y = LabelEncoder().fit_transform(check_labels(y_support, "y_support"))
            check_consistent_length(X, y)
            module = copy.deepcopy(self.module_)
            x = torch.from_numpy(X)
            if self.adapt_batch_norm:
                self._estimate_batch_norm(module, x)
            if self.fine_tuning_steps:
                self._fine_tune(module, x, y)
                if self.adapt_batch_norm:
                    self._estimate_batch_norm(module, x)
            self.fine_tuned_params_ = {
                name: value.detach().clone()
                for name, value in module.state_dict().items()
                if name.startswith("backbone.")
            }
        super()._adapt(X_support, y_support)

    def _estimate_batch_norm(self, module, x):
        """Set the batch-norm running statistics of ``module`` to those of ``x``.

        AdaBN (Li et al., 2018): each batch-norm layer of the backbone that
        tracks running statistics is reset and, in training mode (every
        other layer in eval mode), averages the batch statistics of ``x`` as
        the embedding function sees it: each test-time view, in near-equal
        batches of at most ``batch_size`` samples (``momentum=None``). One
        batch gives the exact mean and unbiased variance of the layer's
        inputs.
        """
        layers = [
            layer
            for layer in module.backbone.modules()
            if isinstance(layer, nn.modules.batchnorm._BatchNorm)
            and layer.track_running_stats
        ]
        if not layers:
            return
        device = next(module.parameters()).device
        n_views = self._n_test_time_views()
        views = AffineViews(n_views) if n_views > 1 else lambda batch: [batch]
        momenta = [layer.momentum for layer in layers]
        with eval_mode(module), torch.no_grad():
            for layer in layers:
                layer.reset_running_stats()
                layer.momentum = None
                layer.train()
            try:
                # Near-equal batches: their average is close to the whole's.
                for chunk in x.tensor_split(-(-len(x) // self.batch_size)):
                    for view in views(chunk.to(device)):
                        with autocast(device, self.precision):
                            module.embed(view)
            finally:
                for layer, momentum in zip(layers, momenta, strict=True):
                    layer.momentum = momentum

    def _fine_tune(self, module, x, y_enc):
        """Fine-tune the backbone of ``module`` on the support set (x, y_enc).

        Each step embeds the support samples and an augmented view of each
        (the episode's queries) and takes an Adam step on the cross-entropy
        of the views against the support set's prototypes (P>M>F's
        fine-tuning, Hu et al., 2022, with the support set as its own
        queries); batch norm runs on its running statistics.
        """
        device = next(module.parameters()).device
        x = x.to(device)
        y = torch.from_numpy(np.asarray(y_enc, dtype=np.int64)).to(device)
        augment = self._augmentation(x.ndim)
        optimizer = torch.optim.Adam(module.backbone.parameters(), self.fine_tuning_lr)
        with (
            seeded(self._seed(), device),
            eval_mode(module),
            torch.enable_grad(),
        ):
            for step in range(self.fine_tuning_steps):
                views = x if augment is None else augment(x)
                with autocast(device, self.precision):
                    z = module.embed(torch.cat([x, views])).float()
                    prototypes = module.encode_support(z[: len(x)], y)
                    logits = module.query_logits(prototypes, z[len(x) :]).float()
                loss = F.cross_entropy(logits, y)
                if not torch.isfinite(loss):
                    raise ValueError(
                        f"Fine-tuning at adapt diverged at step {step + 1}: the "
                        f"loss is {float(loss)}. Lower fine_tuning_lr (now "
                        f"{self.fine_tuning_lr!r}). The estimator is left as it "
                        "was before adapt."
                    )
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()

    def _inference_module(self):
        """``module_``, with the fine-tuned backbone of the last adapt if any."""
        tuned = vars(self).get("fine_tuned_params_")
        if tuned is None:
            return self.module_
        module = copy.deepcopy(self.module_)
        module.load_state_dict(tuned, strict=False)
        return module

    def _episode_scorer(self, X):
        """Episode scoring (see the base method), adapting the backbone if asked.

        With ``fine_tuning_steps`` or ``adapt_batch_norm``, each episode
        adapts (fine-tunes, re-estimates batch-norm statistics) a copy of the
        estimator to its support set, as :meth:`adapt` would, and scores its
        queries with :meth:`decision_function`'s logits.
        """
        if not self._adapts_backbone():
            return super()._episode_scorer(X)
        check_is_fitted(self)
        X = self._validate_X(X, reset=False)

        def score(y, episodes, groups=None):
            y = check_labels(y)
            check_consistent_length(X, y)
            losses, accuracies = [], []
            for support, query in episodes.split(y=y, groups=groups):
                episode = copy.copy(self).adapt(X[support], y[support])
                logits = torch.from_numpy(episode._logits(X[query]))
                target = torch.from_numpy(np.searchsorted(episode.classes_, y[query]))
                losses.append(float(F.cross_entropy(logits, target)))
                accuracies.append(float((logits.argmax(1) == target).float().mean()))
            return np.asarray(losses), np.asarray(accuracies)

        return score

    def _build_module(self, backbone, embedding_dim):
        # A distance module is copied: fitting must not train the caller's.
        distance = get_distance(copy.deepcopy(self.distance), embedding_dim)
        return PrototypicalNetwork(backbone, distance)
