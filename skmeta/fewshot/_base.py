"""The few-shot base: a support set, and queries compared with it."""

import copy
import logging
import threading

import numpy as np
import torch
from sklearn.base import (
    ClassifierMixin,
)
from sklearn.preprocessing import LabelEncoder
from sklearn.utils.validation import (
    check_consistent_length,
    check_is_fitted,
)
from skorch.callbacks import LRScheduler
from torch import nn
from torch.nn import functional as F

from .._arrays import _MemmapBatches, check_labels
from .._base import TorchEstimator
from .._precision import autocast
from .._runtime import _at_least_rows, eval_mode
from .._validation import _check_finite_output
from ..augmentation import (
    AffineViews,
    NaturalImageAugmentation,
    RandomAffine,
    flips_as_classes,
    rotations_as_classes,
)
from ..backbones import embedding_size
from ..episodes import EpisodeSampler

__all__ = ["EpisodicNetwork", "FewShotClassifier"]

#: What the few-shot classifiers say that is not a progress bar (INFO).
_logger = logging.getLogger(__name__)


def _group_class_counts(y_enc, groups):
    """Samples of each class in each group: ``(n_groups, n_classes)``, int64.

    ``y_enc`` and ``groups`` are encoded as ints from 0; without groups
    (None), one row.
    """
    n_classes = int(y_enc.max()) + 1
    if groups is None:
        return np.bincount(y_enc, minlength=n_classes)[None]
    cells = np.bincount(
        groups * n_classes + y_enc, minlength=(int(groups.max()) + 1) * n_classes
    )
    return cells.reshape(-1, n_classes)


class EpisodicNetwork(nn.Module):
    """Base of the torch modules of episodic classifiers.

    A subclass holds a ``backbone`` and defines ``encode_support(z_support,
    y_support)`` (what queries are compared with, e.g. prototypes) and
    ``query_logits(state, z_query)`` (``(n_query, n_way)`` logits);
    ``forward`` runs one training episode through them.
    """

    def embed(self, x):
        """Embeddings of inputs ``x``: ``(batch, ...)`` to ``(batch, d)``."""
        return self.backbone(x)

    def forward(self, x, y):
        """The criterion's input for one episode.

        Parameters
        ----------
        x : torch.Tensor of shape (n_support + n_query, ...)
            The episode's support rows, then its query rows.
        y : torch.Tensor of shape (n_support + n_query,), dtype int64
            Episode class (0 to n_way - 1) of each support row; -1 for query
            rows, whose labels the module never sees.

        Returns
        -------
        torch.Tensor of shape (n_query, n_way)
            :meth:`episode_output` of the queries.
        """
        z = self.embed(x)
        support = y >= 0
        state = self.encode_support(z[support], y[support])
        return self.episode_output(state, z[~support])

    def episode_output(self, state, z_query):
        """What meta-training's criterion compares with the query labels."""
        return self.query_logits(state, z_query)


class _DeferredSupport:
    """The training samples of ``fit``: the default support set, embedded on first use.

    ``fit`` keeps them instead of embedding them (with test-time views, the
    support set of Omniglot minimal took 19 s after an 80 s time limit, and
    a user's ``adapt`` then threw it away). The first read of a support
    attribute embeds them once, on a copy of the estimator, and keeps the
    resulting attributes here: a prediction never changes the estimator's
    own attributes, as scikit-learn asks.

    Parameters
    ----------
    X : ndarray of shape (n_samples, ...), float32
        The validated training samples.
    y_enc : ndarray of shape (n_samples,), int64
        Their encoded labels.
    """

    def __init__(self, X, y_enc):
        self._samples = (X, y_enc)
        self._state = None
        self._lock = threading.Lock()

    def __getstate__(self):
        return {"_samples": self._samples, "_state": self._state}

    def __setstate__(self, state):
        vars(self).update(state, _lock=threading.Lock())

    def embedded(self, estimator):
        """The support attributes of ``estimator`` for the training samples.

        Thread-safe: threads predicting at once embed the samples once.
        """
        with self._lock:
            return self._embedded(estimator)

    def _embedded(self, estimator):
        if self._state is None:
            X, y_enc = self._samples
            views = estimator._n_test_time_views()
            _logger.info(
                "embedding the %d training samples as the support set%s",
                len(X),
                f" ({views} test-time views each)" if views > 1 else "",
            )
            view = copy.copy(estimator)
            del view._deferred_support
            view._take_support(X, y_enc)
            self._state = {
                name: vars(view)[name]
                for name in estimator._support_attributes
                if name in vars(view)
            }
            self._samples = None
        return self._state


class FewShotClassifier(ClassifierMixin, TorchEstimator):
    """Base of the few-shot classifiers: a support set, and queries compared with it.

    What every few-shot classifier does once its network is trained, however
    it was trained: :meth:`adapt` to a support set, ``predict``,
    ``predict_proba``, ``decision_function``, ``score``, and
    :meth:`score_episodes`, the protocol of
    :func:`~skmeta.model_selection.evaluate_episodes`. A subclass provides
    ``_build_module(backbone, features)`` (``features`` is what
    :meth:`_features` gives: the embedding size), returning a module with
    ``embed(x)``, ``encode_support(z_support, y_support)`` and
    ``query_logits(support_state, z_query)``, and trains it in ``fit``.

    After ``fit``, the training samples are the support set, embedded when a
    prediction first needs them (see :class:`_DeferredSupport`): ``fit``
    keeps its time budget, and ``fit`` followed by :meth:`adapt` or by
    evaluation on novel classes embeds nothing in vain.
    """

    _private_fitted = ("_deferred_support",)

    def __getattr__(self, name):
        # Reached only for an attribute not found the usual way: the support
        # set of fit, embedded on first use, lives in the deferred support.
        deferred = vars(self).get("_deferred_support")
        if deferred is not None and name in type(self)._support_attributes:
            state = deferred.embedded(self)
            if name in state:
                return state[name]
        raise AttributeError(
            f"{type(self).__name__!r} object has no attribute {name!r}"
        )

    def _build_network(self):
        """The untrained module for samples of ``input_shape_``."""
        backbone = self._new_backbone(self.input_shape_)
        return self._build_module(backbone, self._features(backbone))

    def _validation(self, X_valid, y_valid, groups_valid, shape, X_base):
        """What scores the module in training on held-out classes (X_valid, y_valid).

        Fixed episodes (the same every epoch) of up to ``shape.n_way`` classes
        with the training ``k_shot`` and ``n_query`` of ``shape`` (an
        :class:`EpisodeSampler`), each within one group of ``groups_valid``
        (the held-out groups) unless it is None, scored exactly as
        :func:`~skmeta.model_selection.evaluate_episodes` scores a fitted
        estimator: ``(valid_loss, valid_acc)`` are the mean query log-loss of
        the probabilities ``predict_proba`` would give, and the mean accuracy.
        """
        per_class = shape.k_shot + shape.n_query
        counts = _group_class_counts(y_valid, groups_valid)
        eligible = int(np.max(np.sum(counts >= per_class, axis=1)))
        if eligible < 2:
            within = "" if groups_valid is None else " (in any one held-out group)"
            raise ValueError(
                f"The {np.count_nonzero(counts.sum(0))} held-out validation "
                f"classes need k_shot + n_query = {per_class} samples each, and "
                f"only {eligible}{within} have them; validation episodes need 2. "
                "Raise validation_fraction or lower k_shot or n_query."
            )
        sampler = EpisodeSampler(
            min(shape.n_way, eligible),
            shape.k_shot,
            shape.n_query,
            self.n_validation_episodes,
            random_state=self._seed(),
        )

        def score(module):
            view = copy.copy(self)  # the estimator, scoring the module in training
            view.module_ = module
            view._fit_comparison_space(X_base)  # as fit will
            losses, accuracies = view.score_episodes(
                X_valid, y_valid, sampler, groups=groups_valid
            )
            return float(losses.mean()), float(accuracies.mean())

        return score

    def _embedding_function(self, module):
        """``module.embed``, averaged over ``test_time_views`` if there are several."""
        n_views = self._n_test_time_views()
        if n_views == 1:
            return module.embed
        views = AffineViews(n_views)

        def mean_over_views(x):
            return sum(module.embed(view).float() for view in views(x)) / len(views)

        return mean_over_views

    def _n_test_time_views(self):
        """Views of each sample averaged into its embedding: 1 (no views)."""
        return 1

    def _is_transductive(self):
        """Whether a query's prediction depends on the others (False: it does not)."""
        return False

    def _check_image_parameters(self, X):
        """Refuse ``rotations`` and ``flips`` for X that are not images, or on disk."""
        for name in ("rotations", "flips"):
            if getattr(self, name) and X.ndim != 4:
                raise ValueError(
                    f"{name}=True needs images X of shape (n_samples, channels, "
                    f"height, width); got X of shape {X.shape}."
                )
            if getattr(self, name) and isinstance(X, _MemmapBatches):
                copies = self._class_copies()
                raise ValueError(
                    f"{name}=True makes {copies} copies of X in memory as new "
                    "classes, and X is a memmap read from disk; load it first "
                    f"(np.asarray(X), {copies} x its float32 size) or set "
                    f"{name}=False."
                )

    def _class_copies(self):
        """Training classes made of each class of y: by ``flips`` and ``rotations``."""
        return (2 if self.flips else 1) * (4 if self.rotations else 1)

    def _symmetries_as_classes(self, X, y, n_classes):
        """Training tensors (X, y) with ``flips`` and ``rotations`` as new classes.

        Returns ``(X, y)`` with ``_class_copies()`` times the samples and
        classes: class ``c``'s mirror image is ``c + n_classes``, then each
        of the (flipped) classes ``c'`` rotated ``r`` quarter turns is
        ``c' + r * n'`` with ``n'`` the classes after flipping.
        """
        if self.flips:
            X, y = flips_as_classes(X, y, n_classes)
            n_classes *= 2
        if self.rotations:
            X, y = rotations_as_classes(X, y, n_classes)
        return X, y

    def _augmentation(self, ndim):
        """The augmentation module that ``augment`` names, or the callable."""
        if self.augment == "auto":
            return RandomAffine() if ndim == 4 else None
        if not isinstance(self.augment, str):
            return self.augment
        if ndim != 4:
            raise ValueError(
                f"augment={self.augment!r} needs images X of shape (n_samples, "
                "channels, height, width); use augment=None for tabular data."
            )
        return (
            RandomAffine() if self.augment == "affine" else NaturalImageAugmentation()
        )

    def _schedule(self, steps_per_epoch):
        """Learning-rate schedule callbacks: halve every ``lr_step`` steps."""
        return [
            (
                "lr_scheduler",
                LRScheduler(
                    torch.optim.lr_scheduler.StepLR,
                    step_every="batch",
                    step_size=self.lr_step or np.iinfo(np.int32).max,
                    gamma=0.5,
                ),
            )
        ]

    def _features(self, backbone):
        """What ``_build_module`` needs of the backbone's output: its size ``d``."""
        return embedding_size(backbone, self.input_shape_)

    def adapt(self, X_support, y_support):
        """Take a new support set, for instance of novel classes.

        ``classes_`` become the classes of ``y_support``, in sorted order, and
        ``predict``, ``predict_proba``, ``decision_function`` and ``score``
        work over them. The meta-learned weights never change. Metric-based
        classifiers embed the support set, which queries are then compared
        with. MAML and Reptile fine-tune a copy of the weights on it (their
        test-time steps, kept in ``adapted_params_``): from the meta-learned
        head when the support set has ``n_way`` classes (class ``classes_[j]``
        gets output ``j``), from a zero-initialised head of one output per
        class otherwise (every class starts equal; the common "zero head"
        practice for MAML-style methods).

        Parameters
        ----------
        X_support : array-like of shape (n_support, ...)
            Support samples, of the shape seen in ``fit``.
        y_support : array-like of shape (n_support,)
            Their labels; any number of shots per class.

        Returns
        -------
        self : object

        Raises
        ------
        ValueError
            If X_support has another sample shape than in ``fit``, or NaN/inf.
        sklearn.exceptions.NotFittedError
            If the estimator is not fitted.
        """
        check_is_fitted(self)
        return self._atomically("_adapt", X_support, y_support)

    def _adapt(self, X_support, y_support):
        X_support = self._validate_X(X_support, reset=False)
        y_support = check_labels(y_support, "y_support")
        check_consistent_length(X_support, y_support)
        encoder = LabelEncoder().fit(y_support)
        self.classes_ = encoder.classes_
        vars(self).pop("_deferred_support", None)
        self._take_support(X_support, encoder.transform(y_support))

    def _logits(self, X, reduce=None):
        """Query logits (n_samples, n_classes) of X against the support set.

        With ``reduce`` (a function of a tensor of logits, row by row), its
        result instead: the softmax, the argmax. Queries are scored in chunks
        of ``batch_size``, each chunk's result written into the output, so
        that memory holds the embeddings, the output and one chunk's
        intermediates, never all the logits of ``predict``; a transductive
        prediction depends on its batch by design and is scored whole.
        """
        check_is_fitted(self)
        X = self._validate_X(X, reset=False, batches=True)
        n_samples = len(X)
        transductive = self._is_transductive()
        # Each query on its own: the head too sees enough rows.
        z = self._comparison_space(
            self._embed(X if transductive else _at_least_rows(X))
        )
        step = len(z) if transductive else self.batch_size
        reduce = reduce or (lambda logits: logits)
        out = None
        with (
            eval_mode(self.module_),
            torch.inference_mode(),
            autocast(z.device, self.precision),
        ):
            scorer = self._support_scorer()
            for start in range(0, n_samples, step):
                chunk = z[start : start + step]
                rows = min(len(chunk), n_samples - start)
                head_input = chunk if transductive else _at_least_rows(chunk)
                logits = scorer(head_input)[:rows].float()
                result = reduce(_check_finite_output(logits, self, "scores")).cpu()
                if out is None:
                    out = result.new_empty((n_samples, *result.shape[1:]))
                out[start : start + rows] = result
        return out.numpy()

    def decision_function(self, X):
        """Score every class for each sample: the query logits.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, c, h, w)
            Queries, of the sample shape seen in ``fit``.

        Returns
        -------
        ndarray of shape (n_samples, n_classes), dtype float32
            Larger means more likely; column ``j`` is ``classes_[j]``. With two
            classes, as scikit-learn's binary convention asks, shape
            ``(n_samples,)``: the logit of ``classes_[1]`` minus that of
            ``classes_[0]``.
        """
        logits = self._logits(X)
        return logits[:, 1] - logits[:, 0] if logits.shape[1] == 2 else logits

    def score(self, X, y, sample_weight=None):
        """Mean accuracy on (X, y), whose classes must be in the support set.

        Few-shot classifiers predict among the classes of the current support
        set (``classes_``); accuracy on other classes would be 0 whatever
        the model. To score on classes never seen in training, as
        ``cross_validate`` with a :class:`~skmeta.model_selection.ClassKFold`
        does, use ``scoring=EpisodicScorer(...)``, which adapts to each
        episode's support set.

        Parameters
        ----------
        X : array-like of shape (n_samples, ...)
        y : array-like of shape (n_samples,)
            True labels, among ``classes_``.
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        float
            The mean accuracy, in [0, 1].

        Raises
        ------
        ValueError
            If ``y`` holds a class outside ``classes_``.
        """
        check_is_fitted(self)
        y = check_labels(y)
        unknown = np.setdiff1d(np.unique(y), self.classes_)
        if unknown.size:
            raise ValueError(
                f"y holds {unknown.size} classes outside the support set "
                f"(classes_), e.g. {unknown[:3].tolist()}: plain accuracy on them "
                "is 0 whatever the model. adapt() to a support set of those "
                "classes first, or score class-disjoint splits with "
                "skmeta.model_selection.EpisodicScorer (scoring=EpisodicScorer())."
            )
        return super().score(X, y, sample_weight=sample_weight)

    def predict_proba(self, X):
        """Class probabilities: the softmax of the query logits.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, c, h, w)

        Returns
        -------
        ndarray of shape (n_samples, n_classes), dtype float32
            Column ``j`` is ``classes_[j]``; rows sum to 1.
        """
        return self._logits(X, lambda logits: logits.softmax(dim=1))

    def predict(self, X):
        """The most likely class of the support set for each sample.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, c, h, w)

        Returns
        -------
        ndarray of shape (n_samples,)
            Labels from ``classes_``.
        """
        best = self._logits(X, lambda logits: logits.argmax(dim=1))
        return self.classes_[best]

    def _finish_fit(self, module, history, stop_reason, classes, X_base, X, y_enc):
        """The fitted state of a trained ``module``: the training data as support.

        The support set is deferred (:class:`_DeferredSupport`); only
        ``normalization="centered-l2"`` embeds the base classes ``X_base`` now,
        for ``feature_mean_``.
        """
        self.module_ = module
        self._record_training(history, stop_reason)
        self.classes_ = classes
        self._fit_comparison_space(X_base)
        self._deferred_support = _DeferredSupport(X, y_enc)
        return self

    def _take_support(self, X, y_enc):
        """Make validated (X, y_enc) the support set: ``fit`` and ``adapt``."""
        self._set_support(self._comparison_space(self._embed(X)), y_enc)

    def _fit_comparison_space(self, X_base):
        """Fit what comparing embeddings needs of the base classes ``X_base``.

        Nothing here; a classifier with a ``normalization`` centred on the
        base classes fits their mean embedding.
        """

    def _comparison_space(self, z):
        """Embeddings ``(n, d)`` as support and queries are compared in: as they are."""
        return z

    def _episode_logits(self, z_support, y_support, z_query):
        """Query logits of one episode, its support classes 0 .. n_way - 1."""
        state = self.module_.encode_support(z_support, y_support)
        return self.module_.query_logits(state, z_query)

    def _set_support(self, z_support, y_support):
        """Keep what predictions need of the embedded support set."""
        raise NotImplementedError

    def _support_logits(self, z_query):
        """Logits of embedded queries against the kept support set."""
        raise NotImplementedError

    def _support_scorer(self):
        """What maps embedded queries to their logits, for every chunk of a call.

        :meth:`_support_logits`; a classifier whose support set takes work to
        prepare (Matching's attention) prepares it here, once per call.
        """
        return self._support_logits

    def score_episodes(self, X, y, episodes, groups=None):
        """Query log-loss and accuracy in each episode, without changing the estimator.

        The episode-scoring protocol of
        :func:`~skmeta.model_selection.evaluate_episodes`: each episode's
        support set is taken as :meth:`adapt` would take it (classes in
        sorted order) and its queries are scored as :meth:`predict_proba`
        would score them, but X is embedded once for all episodes. Any
        estimator with this method takes part in ``evaluate_episodes`` and
        :class:`~skmeta.model_selection.EpisodicScorer`; one without it, but
        with ``adapt`` and ``predict``, is scored by adapting a copy to each
        episode.

        Parameters
        ----------
        X : array-like of shape (n_samples, ...)
            Samples, of the sample shape seen in ``fit``.
        y : ndarray of shape (n_samples,)
            Their labels, checked (see :func:`check_labels`).
        episodes : skmeta.episodes.EpisodeSampler
            The episodes: ``episodes.split(y=y, groups=groups)`` yields
            (support, query) index arrays, ``n_way`` classes of ``k_shot`` and
            ``n_query`` samples each, support and query grouped by episode
            class.
        groups : array-like of shape (n_samples,), default=None
            The task of each sample; given, each episode is drawn within one
            group.

        Returns
        -------
        losses : ndarray of shape (n_episodes,), dtype float64
            Mean cross-entropy of the query logits (the log-loss of
            ``predict_proba``).
        accuracies : ndarray of shape (n_episodes,), dtype float64
            Query accuracy, in [0, 1].

        Raises
        ------
        sklearn.exceptions.NotFittedError
            If the estimator is not fitted.
        ValueError
            If X has another sample shape than in ``fit``, or NaN or inf, or
            if an episode's scores are not finite.
        """
        return self._episode_scorer(X)(y, episodes, groups)

    def _episode_scorer(self, X):
        """A function that scores episodes of X: ``score(y, episodes, groups=None)``.

        X is validated and embedded here, once: the function scores any
        number of episode samplers on it, each call returning what
        :meth:`score_episodes` returns (``evaluate_settings`` scores several
        N-way K-shot settings so). A method whose episodes change the network
        (fine-tuning, gradient steps) overrides this.
        """
        check_is_fitted(self)
        X = self._validate_X(X, reset=False, batches=True)
        z = self._comparison_space(self._embed(X))

        def score(y, episodes, groups=None):
            y = check_labels(y)
            check_consistent_length(X, y)
            k, q = episodes.k_shot, episodes.n_query
            classes = torch.arange(episodes.n_way, device=z.device)
            y_s, y_q = classes.repeat_interleave(k), classes.repeat_interleave(q)
            losses, accuracies = [], []
            with (
                eval_mode(self.module_),
                torch.inference_mode(),
                autocast(z.device, self.precision),
            ):
                for support, query in episodes.split(y=y, groups=groups):
                    logits = self._episode_logits(z[support], y_s, z[query]).float()
                    _check_finite_output(logits, self, "scores")
                    losses.append(F.cross_entropy(logits, y_q))
                    accuracies.append((logits.argmax(1) == y_q).float().mean())
            return tuple(
                torch.stack(values).cpu().numpy().astype(np.float64)
                for values in (losses, accuracies)
            )

        return score
