"""Shared plumbing of skmeta's estimators.

Input validation, label encoding, device and seeding, and the skorch net that
meta-trains an episodic module. Each method (``fewshot/``, ``embedding/``)
keeps only what is its own: its torch module and its loss.
"""

import contextlib
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import (
    BaseEstimator,
    ClassifierMixin,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
    _fit_context,
)
from sklearn.preprocessing import LabelEncoder
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import (
    check_consistent_length,
    check_is_fitted,
    column_or_1d,
    validate_data,
)
from skorch import NeuralNet
from skorch.callbacks import LRScheduler, ProgressBar
from skorch.history import History
from torch import nn
from torch.utils.data import IterableDataset

from .augmentation import RandomAffine, rotations_as_classes
from .backbones import BACKBONES, build_backbone
from .episodes import EpisodeSampler

__all__ = [
    "EpisodicClassifier",
    "EpisodicNetwork",
    "TorchEstimator",
    "eval_mode",
    "resolve_device",
]


def resolve_device(device):
    """Return the torch device for an estimator's ``device`` parameter.

    Parameters
    ----------
    device : str or torch.device
        ``"auto"`` picks ``"cuda"`` when available, else ``"cpu"``; anything
        else is passed to :class:`torch.device`.

    Returns
    -------
    torch.device

    Raises
    ------
    ValueError
        If ``device`` names a CUDA device and CUDA is not available.
    """
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device={str(device)!r} but CUDA is not available; use device='cpu' "
            "or device='auto'."
        )
    return device


@contextlib.contextmanager
def seeded(seed, device):
    """Seed torch's generators for the block, restoring them afterwards."""
    cuda = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        torch.manual_seed(seed)
        yield


@contextlib.contextmanager
def eval_mode(module):
    """Run the block with ``module`` in eval mode, then restore its mode.

    Batch norm then uses its running statistics and dropout is off, so a
    prediction does not depend on what else is in the batch.
    """
    was_training = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was_training)


class TorchEstimator(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Base of torch-backed estimators: validation, device, seed, inference.

    Subclasses set ``module_`` (a ``torch.nn.Module`` with an ``embed``
    method) in ``fit``. Not meant to be used directly.
    """

    _parameter_constraints: dict = {
        "backbone": [None, StrOptions(set(BACKBONES)), nn.Module, type],
        "backbone_params": [dict, None],
        "embedding_dim": [Interval(Integral, 1, None, closed="left")],
        "lr": [Interval(Real, 0, None, closed="neither")],
        "max_epochs": [Interval(Integral, 0, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "device": [str, torch.device],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
        "callbacks": [list, None],
    }

    def _validate_X(self, X, *, reset):
        """Validate X as float32 of shape (n, n_features) or (n, c, h, w)."""
        X = validate_data(
            self, X, reset=reset, allow_nd=True, dtype=np.float32, ensure_min_features=1
        )
        return self._check_shape(X, reset=reset)

    def _validate_X_y(self, X, y):
        X, y = validate_data(
            self, X, y, allow_nd=True, dtype=np.float32, ensure_min_features=1
        )
        check_classification_targets(y)
        return self._check_shape(X, reset=True), y

    def _check_shape(self, X, *, reset):
        if X.ndim not in (2, 4):
            raise ValueError(
                "X must be 2-D (n_samples, n_features) or 4-D (n_samples, "
                f"channels, height, width); got a {X.ndim}-D array of shape "
                f"{X.shape}."
            )
        if reset:
            self.input_shape_ = X.shape[1:]
        elif X.shape[1:] != self.input_shape_:
            raise ValueError(
                f"X has samples of shape {X.shape[1:]}, but {type(self).__name__} "
                f"was fitted on samples of shape {self.input_shape_}."
            )
        return X

    def _seed(self):
        """An int seed for torch, derived from ``random_state``."""
        return int(
            check_random_state(self.random_state).randint(np.iinfo(np.int32).max)
        )

    def _callbacks(self, steps_per_epoch):
        """Progress bar (``verbose``) and the user's ``callbacks``."""
        callbacks = []
        if self.verbose:
            callbacks.append(
                ("progress_bar", ProgressBar(batches_per_epoch=steps_per_epoch))
            )
        return callbacks + list(self.callbacks or [])

    def _embed(self, X):
        """Embeddings of validated X as a float tensor (n, d) on the device.

        Runs the module in eval mode (batch-norm running statistics) in chunks
        of ``batch_size`` samples.
        """
        module = self.module_
        device = next(module.parameters(), torch.empty(0, device=self.device_)).device
        with eval_mode(module), torch.inference_mode():
            chunks = torch.from_numpy(X).split(self.batch_size)
            return torch.cat([module.embed(c.to(device)) for c in chunks])

    def transform(self, X):
        """Embed X with the meta-trained backbone.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, c, h, w)
            Samples of the shape seen in ``fit``.

        Returns
        -------
        ndarray of shape (n_samples, embedding_dim), dtype float32
        """
        check_is_fitted(self)
        X = self._validate_X(X, reset=False)
        return self._embed(X).cpu().numpy()

    @property
    def _n_features_out(self):
        """Embedding size, for ``get_feature_names_out``."""
        with torch.inference_mode():
            return int(
                self._embed(np.zeros((1, *self.input_shape_), np.float32)).shape[1]
            )

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = False
        tags.non_deterministic = self.device != "cpu"
        tags.transformer_tags.preserves_dtype = ["float32"]
        tags.target_tags.required = True  # every estimator here learns from labels
        return tags


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


class _EpisodeStream(IterableDataset):
    """One epoch of training episodes, as skorch batches.

    Each item is ``({"x": images, "y": labels}, query_labels)`` where the
    first ``n_way * k_shot`` rows of ``x`` are the support set, class-major,
    and the rest the query set; ``y`` holds the episode class (0 to
    ``n_way - 1``) of support rows and -1 for query rows, whose labels the
    module must not see. One tensor of rows keeps skorch's batch-length
    bookkeeping consistent and lets the module embed the episode in one pass.
    """

    def __init__(self, X, y, sampler, augment, device):
        self.X, self.y, self.sampler, self.augment = X, y, sampler, augment
        n_way, k_shot, n_query = sampler.n_way, sampler.k_shot, sampler.n_query
        classes = torch.arange(n_way, device=device)
        self.y_episode = torch.cat(
            [
                classes.repeat_interleave(k_shot),
                torch.full((n_way * n_query,), -1, device=device),
            ]
        )
        self.y_query = classes.repeat_interleave(n_query)
        self.y_numpy = y.cpu().numpy()

    def __len__(self):
        return self.sampler.n_episodes

    def __iter__(self):
        for support, query in self.sampler.split(y=self.y_numpy):
            index = torch.from_numpy(np.concatenate([support, query])).to(self.X.device)
            x = self.X[index]
            if self.augment is not None:
                x = self.augment(x)
            yield {"x": x, "y": self.y_episode}, self.y_query


class EpisodicClassifier(ClassifierMixin, TorchEstimator):
    """Base of few-shot classifiers meta-trained on N-way K-shot episodes.

    A subclass provides ``_build_module(backbone, embedding_dim)``, returning
    a module with ``embed(x)``, ``encode_support(z_support, y_support)`` and
    ``query_logits(support_state, z_query)``; its ``forward(x, y)`` takes an
    episode as :class:`_EpisodeStream` yields it and returns query logits of
    shape ``(n_query_rows, n_way)``, trained with ``_criterion``
    (cross-entropy unless a subclass sets another).
    """

    _parameter_constraints: dict = {
        **TorchEstimator._parameter_constraints,
        "n_way": [Interval(Integral, 2, None, closed="left"), None],
        "k_shot": [Interval(Integral, 1, None, closed="left")],
        "n_query": [Interval(Integral, 1, None, closed="left")],
        "episodes_per_epoch": [Interval(Integral, 1, None, closed="left")],
        "lr_step": [Interval(Integral, 1, None, closed="left"), None],
        "rotations": ["boolean"],
        "augment": [StrOptions({"auto", "affine"}), callable, None],
    }

    #: Loss of the query logits against the query labels, a module class.
    _criterion = nn.CrossEntropyLoss

    #: Episode width used when ``n_way=None``: the 60-way training episodes of
    #: Snell et al. (2017) on Omniglot, or all classes when there are fewer.
    max_auto_way = 60

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y):
        """Meta-train on episodes drawn from the base classes in (X, y).

        The training data then serves as the support set, so ``predict``
        works over the classes of ``y``; :meth:`adapt` sets another.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, c, h, w)
            Training samples, finite.
        y : array-like of shape (n_samples,)
            Class labels of any type; each episode's classes need at least
            ``k_shot + n_query`` samples.

        Returns
        -------
        self : object
            The fitted estimator.

        Raises
        ------
        ValueError
            If X has NaN or inf, is not 2-D or 4-D, if fewer than ``n_way``
            classes have ``k_shot + n_query`` samples, or if ``rotations=True``
            is asked for non-image X.
        """
        X, y = self._validate_X_y(X, y)
        encoder = LabelEncoder().fit(y)
        y_enc = encoder.transform(y)
        if self.rotations and X.ndim != 4:
            raise ValueError(
                "rotations=True needs images X of shape (n_samples, channels, "
                f"height, width); got X of shape {X.shape}."
            )
        # Rotations make each class four training classes.
        n_way = self._n_way(len(encoder.classes_) * (4 if self.rotations else 1))
        self.device_ = resolve_device(self.device)
        sampler = EpisodeSampler(
            n_way,
            self.k_shot,
            self.n_query,
            self.episodes_per_epoch,
            random_state=np.random.RandomState(self._seed()),
        )
        with seeded(self._seed(), self.device_):
            X_train = torch.from_numpy(X).to(self.device_)
            y_train = torch.from_numpy(y_enc).to(self.device_)
            if self.rotations:
                X_train, y_train = rotations_as_classes(
                    X_train, y_train, len(encoder.classes_)
                )
            # Fail on too-small classes before building anything.
            sampler._class_table(y_train.cpu().numpy())
            module = self._build_module(*self._build_backbone(X.shape[1:]))
            stream = _EpisodeStream(
                X_train, y_train, sampler, self._augmentation(X.ndim), self.device_
            )
            self.module_, self.history_ = self._meta_train(module, stream)
        self.classes_ = encoder.classes_
        self._take_support(X, y_enc)
        return self

    def _n_way(self, n_classes):
        if self.n_way is None:
            return min(n_classes, self.max_auto_way)
        if self.n_way > n_classes:
            raise ValueError(
                f"n_way={self.n_way} is more than the {n_classes} classes in y."
            )
        return self.n_way

    def _augmentation(self, ndim):
        if self.augment == "auto":
            return RandomAffine() if ndim == 4 else None
        if self.augment == "affine":
            if ndim != 4:
                raise ValueError(
                    "augment='affine' needs images X of shape (n_samples, channels, "
                    "height, width); use augment=None for tabular data."
                )
            return RandomAffine()
        return self.augment

    def _build_backbone(self, input_shape):
        """The backbone and the size of its embeddings."""
        backbone = build_backbone(
            self.backbone, input_shape, self.embedding_dim, self.backbone_params
        )
        with torch.no_grad():
            embedding_dim = backbone.eval()(torch.zeros(1, *input_shape)).shape[1]
        return backbone.train(), embedding_dim

    #: The skorch net class and the meta-optimizer that meta-train the module.
    _net_class = NeuralNet
    _optimizer = torch.optim.Adam

    def _meta_train(self, module, stream):
        """Train ``module`` on the episode stream with skorch.

        Returns the trained module and skorch's history. A module with no
        trainable parameters (e.g. a fixed ``nn.Identity`` embedding) is
        returned as it is, with an empty history. Subclasses change the
        training through the hooks ``_training_batches``, ``_meta_lr``,
        ``_schedule``, ``_net_kwargs`` and the attributes ``_net_class``,
        ``_optimizer`` and ``_criterion``.
        """
        module = module.to(self.device_)
        if self.max_epochs == 0 or not any(
            p.requires_grad for p in module.parameters()
        ):
            return module, History()
        batches = self._training_batches(stream)
        net = self._net_class(
            module=module,
            criterion=self._criterion,
            optimizer=self._optimizer,
            lr=self._meta_lr(),
            max_epochs=self.max_epochs,
            batch_size=None,  # every item of the stream is a whole training step
            train_split=None,
            callbacks=[*self._schedule(len(batches)), *self._callbacks(len(batches))],
            device=self.device_,
            verbose=int(self.verbose),
            **self._net_kwargs(),
        )
        net.fit(batches, y=None)
        return net.module_, net.history_

    def _training_batches(self, stream):
        """What skorch iterates over: one episode per optimizer step."""
        return stream

    def _meta_lr(self):
        return self.lr

    def _schedule(self, steps_per_epoch):
        """Learning-rate schedule callbacks: halve every ``lr_step`` episodes."""
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

    def _net_kwargs(self):
        return {}

    def adapt(self, X_support, y_support):
        """Take a new support set, for instance of novel classes.

        The meta-learned weights do not change: the support set is embedded
        and becomes what queries are compared with. ``classes_`` become the
        classes of ``y_support``.

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
        X_support = self._validate_X(X_support, reset=False)
        y_support = column_or_1d(y_support, warn=True)
        check_classification_targets(y_support)
        check_consistent_length(X_support, y_support)
        encoder = LabelEncoder().fit(y_support)
        self.classes_ = encoder.classes_
        self._take_support(X_support, encoder.transform(y_support))
        return self

    def _logits(self, X):
        """Query logits (n_samples, n_classes) of X against the support set."""
        check_is_fitted(self)
        X = self._validate_X(X, reset=False)
        with eval_mode(self.module_), torch.inference_mode():
            return self._support_logits(self._embed(X)).cpu().numpy()

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
        return torch.from_numpy(self._logits(X)).softmax(dim=1).numpy()

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
        best = self._logits(X).argmax(axis=1)
        return self.classes_[best]

    def _take_support(self, X, y_enc):
        """Make validated (X, y_enc) the support set: ``fit`` and ``adapt``."""
        self._set_support(self._embed(X), y_enc)

    def _set_support(self, z_support, y_support):
        """Keep what predictions need of the embedded support set."""
        raise NotImplementedError

    def _support_logits(self, z_query):
        """Logits of embedded queries against the kept support set."""
        raise NotImplementedError

    def _episode_accuracies(self, X, y, sampler):
        """Query accuracy in each episode of ``sampler`` over validated (X, y).

        Embeds X once, then compares within each episode, without changing
        the estimator.
        """
        z = self._embed(X)
        k, q = sampler.k_shot, sampler.n_query
        classes = torch.arange(sampler.n_way, device=z.device)
        y_s, y_q = classes.repeat_interleave(k), classes.repeat_interleave(q)
        module, accuracies = self.module_, []
        with eval_mode(module), torch.inference_mode():
            for support, query in sampler.split(y=y):
                state = module.encode_support(z[support], y_s)
                hits = module.query_logits(state, z[query]).argmax(1) == y_q
                accuracies.append(hits.float().mean())
        return torch.stack(accuracies).cpu().numpy().astype(np.float64)
