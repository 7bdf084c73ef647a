"""DistilledEmbedder: a small student embedding trained to match a fitted teacher.

Knowledge distillation (Hinton et al., 2015): the teacher's outputs on the
training samples, computed once, are the student's targets. The student
matches either the teacher's embeddings (its ``transform``) or its class
probabilities softened by a temperature (its ``predict_proba``), and, when
labels are given, also classifies them; a small backbone so learns from a
large one what the large one learnt.
"""

import copy
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted
from skorch.history import History
from torch import nn
from torch.nn import functional as F
from torch.utils.data import IterableDataset

from .._docs import EMBEDDING
from .._params import Param
from .._runtime import resolve_device, seeded, trains
from .._sklearn import Interval, StrOptions, _fit_context
from ..backbones import embedding_size
from ..distances import l2_normalize
from ._base import MetricEmbedder, embedder_parameters, normalization_parameters

__all__ = [
    "DistillationLoss",
    "DistillationNetwork",
    "DistilledEmbedder",
    "soft_targets",
]

#: What the student matches, and the teacher's method that gives it.
TARGETS = {"embedding": "transform", "probabilities": "predict_proba"}


def soft_targets(proba, temperature):
    r"""Class probabilities softened at a temperature, as Hinton et al. soften them.

    With logits :math:`v` whose softmax is ``proba``, the soft targets are
    :math:`\operatorname{softmax}(v / T)`; as :math:`v = \log p` up to a
    constant per row, which a softmax ignores, they are
    :math:`p_i^{1/T} / \sum_j p_j^{1/T}`, computed from the probabilities
    alone. A probability of 0 stays 0.

    Parameters
    ----------
    proba : array-like of shape (n_samples, n_classes)
        Probabilities, finite and >= 0, each row with a positive entry.
    temperature : float
        :math:`T > 0`; 1 returns the rows normalised, above 1 flattens them.

    Returns
    -------
    ndarray of shape (n_samples, n_classes), dtype float32
        Each row sums to 1.

    Raises
    ------
    ValueError
        If ``proba`` is not 2-D, has a negative or non-finite entry or a row
        with no positive entry, or ``temperature`` is not > 0.

    References
    ----------
    .. [1] G. Hinton, O. Vinyals, J. Dean. "Distilling the Knowledge in a
       Neural Network". NIPS 2014 Deep Learning Workshop, arXiv:1503.02531,
       eq. 1.
    """
    proba = np.asarray(proba, dtype=np.float64)
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0; got {temperature!r}.")
    if proba.ndim != 2:
        raise ValueError(
            f"proba must be 2-D (n_samples, n_classes); got shape {proba.shape}."
        )
    if not (np.isfinite(proba).all() and (proba >= 0).all()):
        raise ValueError("proba must hold finite probabilities >= 0.")
    if not (proba > 0).any(axis=1).all():
        raise ValueError("Each row of proba needs a positive probability.")
    with np.errstate(divide="ignore"):
        logits = np.log(proba) / temperature
    soft = np.exp(logits - logits.max(axis=1, keepdims=True))
    return (soft / soft.sum(axis=1, keepdims=True)).astype(np.float32)


class DistillationLoss(nn.Module):
    r"""The distillation loss, with the supervised loss where there are labels.

    For ``target="embedding"``, the mean squared error between the student's
    projected embeddings :math:`W f_S(x)` and the teacher's :math:`f_T(x)`,
    averaged over samples and dimensions (the "absolute teacher" of Yu et al.,
    2019; the linear map :math:`W` is FitNets' regressor, Romero et al.,
    2015). For ``target="probabilities"``, Hinton et al.'s soft-target loss

    .. math::

        L_{soft} = T^2 \, \frac{1}{n} \sum_x
            \mathrm{KL}\big(p_T(x) \,\|\, \operatorname{softmax}(s(x) / T)\big)

    with :math:`p_T` the teacher's soft targets (:func:`soft_targets`) and
    :math:`s` the student's logits over the teacher's classes; the factor
    :math:`T^2` keeps the gradients' scale as :math:`T` changes (Hinton et
    al., 2015, §2). With labels, the loss is
    :math:`\alpha L_{distil} + (1 - \alpha) L_{CE}`, :math:`L_{CE}` the
    cross-entropy of the student's classifier logits against the labels.

    Parameters
    ----------
    target : {"embedding", "probabilities"}, default="embedding"
    temperature : float, default=4.0
        :math:`T > 0`, for ``target="probabilities"``.
    alpha : float, default=0.5
        :math:`\alpha` in [0, 1], the distillation term's weight.

    Raises
    ------
    ValueError
        If ``target`` is another name, ``temperature`` is not > 0 or
        ``alpha`` is outside [0, 1].

    Notes
    -----
    Called as ``loss((predicted, logits), (teacher, labels))``: ``predicted``
    ``(n, d_T)`` (projected embeddings, or logits over the teacher's
    classes), ``logits`` ``(n, n_classes)`` of the classifier, ``(n, 0)``
    without labels; ``teacher`` ``(n, d_T)`` float (embeddings, or soft
    targets), ``labels`` ``(n,)`` int64. Returns a scalar.

    References
    ----------
    .. [1] G. Hinton, O. Vinyals, J. Dean. "Distilling the Knowledge in a
       Neural Network". arXiv:1503.02531, 2015.
    .. [2] A. Romero, N. Ballas, S. E. Kahou, A. Chassang, C. Gatta,
       Y. Bengio. "FitNets: Hints for Thin Deep Nets". ICLR 2015.
    .. [3] L. Yu, V. O. Yazici, X. Liu, J. van de Weijer, Y. Cheng,
       A. Ramisa. "Learning Metrics from Teachers: Compact Networks for Image
       Embedding". CVPR 2019.
    """

    def __init__(self, target="embedding", temperature=4.0, alpha=0.5):
        super().__init__()
        if target not in TARGETS:
            raise ValueError(
                f"target must be one of {sorted(TARGETS)}; got {target!r}."
            )
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0; got {temperature!r}.")
        if not 0 <= alpha <= 1:
            raise ValueError(f"alpha must be in [0, 1]; got {alpha!r}.")
        self.target, self.temperature, self.alpha = target, temperature, alpha

    def forward(self, outputs, targets):
        predicted, logits = (output.float() for output in outputs)
        teacher, labels = targets
        if self.target == "embedding":
            distil = F.mse_loss(predicted, teacher)
        else:
            T = self.temperature
            log_q = F.log_softmax(predicted / T, dim=1)
            distil = T**2 * F.kl_div(log_q, teacher, reduction="batchmean")
        if logits.shape[1] == 0:
            return distil
        supervised = F.cross_entropy(logits, labels)
        return self.alpha * distil + (1 - self.alpha) * supervised

    def extra_repr(self):
        return (
            f"target={self.target!r}, temperature={self.temperature}, "
            f"alpha={self.alpha}"
        )


class DistillationNetwork(nn.Module):
    """The student: a backbone, a head to the teacher's targets, a classifier.

    Parameters
    ----------
    backbone : torch.nn.Module
        Maps inputs to the student's embeddings ``(batch, d)``.
    head : torch.nn.Module
        Maps embeddings to what the teacher gives: its embedding size
        (``torch.nn.Identity()`` when it is ``d``) or logits over its classes.
    classifier : torch.nn.Module or None
        Maps embeddings to logits over the classes of ``y``; None without
        labels.
    loss : DistillationLoss
    normalize : bool, default=False
        L2-normalise the embeddings, before the head and in :meth:`embed`.
    """

    def __init__(self, backbone, head, classifier, loss, normalize=False):
        super().__init__()
        self.backbone, self.head, self.classifier = backbone, head, classifier
        self.loss, self.normalize = loss, normalize

    def forward(self, x):
        """``(head(z), logits)``: what the loss compares; ``(n, 0)`` logits without
        a classifier."""
        z = self.embed(x)
        logits = z[:, :0] if self.classifier is None else self.classifier(z)
        return self.head(z), logits

    def embed(self, x):
        """The student's embeddings ``(batch, d)``, what ``transform`` returns."""
        z = self.backbone(x)
        return l2_normalize(z, dim=1) if self.normalize else z


class _TeacherBatches(IterableDataset):
    """One epoch of batches of samples with their teacher targets and labels.

    Each item is ``(x, (targets, labels))`` for ``batch_size`` samples drawn
    without replacement (all of X when it has fewer); labels are -1 without
    ``y`` (the loss then reads none).
    """

    def __init__(self, X, targets, labels, batch_size, n_batches, seed):
        self.X, self.targets, self.labels = X, targets, labels
        self.batch_size, self.n_batches = batch_size, n_batches
        self.rng = np.random.RandomState(seed)

    def __len__(self):
        return self.n_batches

    def __iter__(self):
        n = len(self.X)
        for _ in range(self.n_batches):
            index = self.rng.choice(n, min(self.batch_size, n), replace=False)
            index = torch.from_numpy(index).to(self.X.device)
            yield self.X[index], (self.targets[index], self.labels[index])


class DistilledEmbedder(MetricEmbedder):
    r"""A student embedding distilled from a fitted teacher (knowledge distillation).

    ``fit(X)`` computes the teacher's outputs on X once (in chunks of
    ``batch_size``, without gradients), then trains a student backbone
    :math:`f_S`, typically smaller, on batches of ``train_batch_size``
    samples to match them (see :class:`DistillationLoss`):

    - ``target="embedding"``: the teacher's embeddings
      :math:`f_T(x)` (``teacher.transform``), by mean squared error after a
      linear map :math:`W` from the student's size to the teacher's (none
      when they are equal) (Romero et al., 2015; Yu et al., 2019's
      "absolute teacher");
    - ``target="probabilities"``: the teacher's class probabilities
      (``teacher.predict_proba``: for a few-shot classifier, its episode
      over the classes of its support set), softened at ``temperature``
      :math:`T`, by :math:`T^2 \, \mathrm{KL}(p_T \| q_T)` between them and a
      linear classifier's on the student's embeddings (Hinton et al., 2015;
      Tian et al., 2020 distil a few-shot embedding so).

    With ``y``, a linear classifier on the student's embeddings also learns
    the labels, and the loss is ``alpha`` times the distillation term plus
    ``1 - alpha`` times its cross-entropy (Tian et al., 2020 weigh both 0.5).
    :meth:`transform` returns the student's embeddings :math:`f_S(x)`,
    float32 of shape ``(n_samples, d)``, ``d`` the student's output size,
    before the head and the classifier, which only train. No augmentation:
    the targets are the teacher's on X as given.

    The teacher is only read: its ``transform`` or ``predict_proba`` is
    called on a shallow copy, so that not even an attribute it computes on
    first use is set on it. ``clone`` (and so ``GridSearchCV`` and
    ``cross_validate``) copies parameters unfitted: wrap a fitted teacher in
    :class:`sklearn.frozen.FrozenEstimator` for them to keep it. A stateless
    transformer (a ``FunctionTransformer``) is always fitted.

    {parameters}

    Attributes
    ----------
    module_ : DistillationNetwork
        The trained student, on ``device_``: ``module_.backbone``, the head
        to the teacher's targets ``module_.head``, the classifier
        ``module_.classifier`` (None without ``y``) and ``module_.loss``.
    history_ : skorch.History
        skorch's record of training: the loss of every batch
        (``history_[:, "batches", :, "train_loss"]``) and epoch
        (``history_[:, "train_loss"]``).
    classes_ : ndarray of shape (n_classes,)
        The labels of ``y`` in ``fit``; only when ``y`` was given.
    {training_attributes}

    Raises
    ------
    sklearn.exceptions.NotFittedError
        In ``fit``, if the teacher is an estimator that is not fitted.

    See Also
    --------
    PrototypicalClassifier : Few-shot classification on the student's
        embeddings (``backbone="identity"``, below).
    SelfSupervisedEmbedder : An embedding learnt without labels or teacher.

    References
    ----------
    .. [1] G. Hinton, O. Vinyals, J. Dean. "Distilling the Knowledge in a
       Neural Network". arXiv:1503.02531, 2015.
    .. [2] Y. Tian, Y. Wang, D. Krishnan, J. B. Tenenbaum, P. Isola.
       "Rethinking Few-Shot Image Classification: a Good Embedding Is All You
       Need?". ECCV 2020 (their code: temperature 4, weights 0.5 and 0.5).
    .. [3] A. Romero, N. Ballas, S. E. Kahou, A. Chassang, C. Gatta,
       Y. Bengio. "FitNets: Hints for Thin Deep Nets". ICLR 2015.
    .. [4] L. Yu, V. O. Yazici, X. Liu, J. van de Weijer, Y. Cheng,
       A. Ramisa. "Learning Metrics from Teachers: Compact Networks for Image
       Embedding". CVPR 2019.

    Examples
    --------
    A wide MLP teacher, a narrow student, then few-shot classification of
    novel classes on the student's embeddings, where nothing more is trained:

    >>> from skmeta import DistilledEmbedder, PrototypicalClassifier
    >>> from skmeta.datasets import load_digits_fewshot
    >>> data = load_digits_fewshot()
    >>> teacher = PrototypicalClassifier(
    ...     backbone_params={"hidden_dims": (256,)}, max_epochs=1,
    ...     episodes_per_epoch=20, random_state=0,
    ... ).fit(data.X_base, data.y_base)
    >>> student = DistilledEmbedder(
    ...     teacher, backbone_params={"hidden_dims": (32,)}, max_epochs=2,
    ...     random_state=0,
    ... ).fit(data.X_base)
    >>> student.transform(data.X_novel).shape
    (896, 64)
    >>> head = PrototypicalClassifier(backbone="identity", max_epochs=0)
    >>> head = head.fit(student.transform(data.X_base), data.y_base)
    >>> head = head.adapt(student.transform(data.X_novel[:25]), data.y_novel[:25])
    >>> head.predict(student.transform(data.X_novel[25:30])).shape
    (5,)
    """

    _parameters = embedder_parameters(
        {
            "teacher": Param(
                "estimator or None",
                None,
                "no_validation",
                """The fitted model to learn from: with ``transform(X)`` giving
                embeddings ``(n_samples, d_T)`` for ``target="embedding"`` (any
                skmeta estimator or embedder, a scikit-learn transformer), with
                ``predict_proba(X)`` for ``target="probabilities"``. It takes
                X as ``fit`` validated it (float32; uint8 images scaled to
                [0, 1]). ``None`` is refused by ``fit`` (the default exists so
                that the estimator can be built empty).""",
            ),
            "target": Param(
                '{"embedding", "probabilities"}',
                "embedding",
                [StrOptions(set(TARGETS))],
                """What the student matches: the teacher's embeddings, or its
                class probabilities softened at ``temperature``.""",
            ),
            "temperature": Param(
                "float",
                4.0,
                [Interval(Real, 0, None, closed="neither")],
                r"""Hinton et al.'s :math:`T > 0` of ``target="probabilities"``;
                above 1 the soft targets show more of the teacher's
                similarities between classes. 4 is Tian et al.'s. Not used for
                ``target="embedding"``.""",
            ),
            "alpha": Param(
                "float",
                0.5,
                [Interval(Real, 0, 1, closed="both")],
                """With ``y``: the weight of the distillation loss, in [0, 1];
                the supervised cross-entropy weighs ``1 - alpha``. Without
                ``y`` the loss is the distillation term alone.""",
            ),
            "train_batch_size": Param(
                "int",
                64,
                [Interval(Integral, 1, None, closed="left")],
                """Samples per training batch, drawn without replacement (all of
                X when it has fewer).""",
            ),
            **normalization_parameters(
                None,
                """``"l2"`` scales the student's embeddings to unit norm, in
                training (before the head) and in :meth:`transform`. ``None``
                by default: a teacher's embeddings are matched at their own
                scale.""",
            ),
        },
        n_classes_per_batch=None,
        n_samples_per_class=None,
        small_classes=None,
    )

    def __init__(
        self,
        teacher=None,
        *,
        target="embedding",
        temperature=4.0,
        alpha=0.5,
        train_batch_size=64,
        normalization=None,
        normalize="deprecated",
        batches_per_epoch=50,
        max_epochs=20,
        lr=1e-3,
        optimizer="adam",
        optimizer_params=None,
        backbone_lr=None,
        embedding_dim=64,
        backbone=None,
        backbone_params=None,
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
        self.teacher = teacher
        self.target = target
        self.temperature = temperature
        self.alpha = alpha
        self.train_batch_size = train_batch_size
        self.normalization = normalization
        self.normalize = normalize
        self.batches_per_epoch = batches_per_epoch
        self.max_epochs = max_epochs
        self.lr = lr
        self.optimizer = optimizer
        self.optimizer_params = optimizer_params
        self.backbone_lr = backbone_lr
        self.embedding_dim = embedding_dim
        self.backbone = backbone
        self.backbone_params = backbone_params
        self.batch_size = batch_size
        self.device = device
        self.precision = precision
        self.random_state = random_state
        self.verbose = verbose
        self.callbacks = callbacks
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change

    _doc_values = {**EMBEDDING, "steps": "batches of ``train_batch_size`` samples"}
    _doc_sections = {}

    _private_fitted = ("_teacher_width", "_n_label_classes")

    def _validation_n_query(self):
        return 3

    _fit_doc = {
        "X": ", of the kind the teacher takes",
        "y_type": "None or array-like of shape (n_samples,), default=None",
        "y_doc": """Class labels of any type: a classifier on the student's
            embeddings learns them too (weight ``1 - alpha``). Needed for
            validation on held-out classes (``validation_fraction`` or
            ``early_stopping``).""",
        "raises": """, if ``teacher`` is None or its output is not 2-D with
            one finite row per sample (for probabilities, >= 0 with a positive
            entry in each row), if validation is asked for without ``y``""",
        "errors": """
        TypeError
            If the teacher has no ``transform`` (``target="embedding"``) or
            ``predict_proba`` (``target="probabilities"``).
        sklearn.exceptions.NotFittedError
            If the teacher is an estimator that is not fitted.""",
    }

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Train the student on the teacher's outputs on X (and on y, if given).

        {fit}
        """
        return self._atomically("_fit", X, y, fresh=True)

    def _fit(self, X, y):
        self._check_teacher()
        if y is not None:
            _, _, classes, (X_train, y_train, _), valid = self._prepare_fit(X, y)
            validation = None if valid is None else self._validation(*valid[:2])
            self.classes_ = classes
            self._n_label_classes = int(y_train.max()) + 1
        elif self.validation_fraction is not None or self.early_stopping:
            raise ValueError(
                "validation_fraction and early_stopping score the embedding on "
                "held-out classes, which needs y (class labels) in fit; got "
                "fit(X, y=None). Pass y, or leave validation_fraction=None and "
                "early_stopping=False."
            )
        else:
            X_train, validation = self._validate_X(X, reset=True), None
            y_train = np.full(len(X_train), -1, dtype=np.int64)
            self.device_ = resolve_device(self.device)
            self._n_label_classes = 0
        targets = self._teacher_targets(X_train)
        self._teacher_width = targets.shape[1]
        with seeded(self._seed(), self.device_):
            module = self._build_network().to(self.device_)
            if trains(module, self.max_epochs):
                stream = _TeacherBatches(
                    *(
                        torch.from_numpy(a).to(self.device_)
                        for a in (X_train, targets, y_train)
                    ),
                    self.train_batch_size,
                    self.batches_per_epoch,
                    self._seed(),
                )
                module, history, stop_reason = self._train(module, stream, validation)
            else:  # nothing to train: no batch is drawn
                history, stop_reason = History(), "max_epochs"
        self.module_ = module
        self._record_training(history, stop_reason)
        return self

    def _check_teacher(self):
        """Refuse a teacher that cannot give the target: missing, or unfitted."""
        teacher, method = self.teacher, TARGETS[self.target]
        if teacher is None:
            raise ValueError(
                "DistilledEmbedder needs a teacher: a fitted estimator with "
                f"{method}(X) for target={self.target!r}; got teacher=None."
            )
        if not callable(getattr(teacher, method, None)):
            raise TypeError(
                f"target={self.target!r} reads teacher.{method}(X); the teacher "
                f"{type(teacher).__name__} has no {method} method."
            )
        if not callable(getattr(teacher, "fit", None)):
            return  # not an estimator: a fixed function, used as it is
        try:
            check_is_fitted(teacher)
        except NotFittedError as exc:
            raise NotFittedError(
                f"The teacher {type(teacher).__name__} is not fitted: fit it "
                "before distilling it. clone, GridSearchCV and cross_validate "
                "copy parameters unfitted; wrap a fitted teacher in "
                "sklearn.frozen.FrozenEstimator for them to keep it."
            ) from exc

    def _teacher_targets(self, X):
        """The teacher's outputs on validated X, float32 ``(n_samples, d_T)``.

        Computed in chunks of ``batch_size`` without gradients, on a shallow
        copy of the teacher; probabilities are softened at ``temperature``.
        """
        method = TARGETS[self.target]
        read = getattr(copy.copy(self.teacher), method)
        with torch.no_grad():
            chunks = [
                np.asarray(read(X[start : start + self.batch_size]), dtype=np.float64)
                for start in range(0, len(X), self.batch_size)
            ]
        shapes = {chunk.shape[1:] for chunk in chunks}
        if len(shapes) != 1 or len(next(iter(shapes))) != 1:
            raise ValueError(
                f"teacher.{method}(X) must give a 2-D array (n_samples, d); got "
                f"arrays of shapes {sorted(chunk.shape for chunk in chunks)}."
            )
        outputs = np.concatenate(chunks)
        if len(outputs) != len(X) or not np.isfinite(outputs).all():
            raise ValueError(
                f"teacher.{method}(X) must give one finite row per sample; got "
                f"{len(outputs)} rows for {len(X)} samples"
                + ("" if np.isfinite(outputs).all() else ", with NaN or inf")
                + "."
            )
        if self.target == "probabilities":
            return soft_targets(outputs, self.temperature)
        return outputs.astype(np.float32)

    def _build_network(self):
        """The untrained student for samples of ``input_shape_``."""
        shape = self.input_shape_
        backbone = self._new_backbone(shape)
        d, width = embedding_size(backbone, shape), self._teacher_width
        if self.target == "embedding" and d == width:
            head = nn.Identity()
        else:
            head = nn.Linear(d, width)
        classifier = (
            nn.Linear(d, self._n_label_classes) if self._n_label_classes else None
        )
        loss = DistillationLoss(self.target, self.temperature, self.alpha)
        return DistillationNetwork(backbone, head, classifier, loss, self._normalizes())

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = False  # y is optional
        return tags
