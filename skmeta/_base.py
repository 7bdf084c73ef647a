"""Shared plumbing of skmeta's estimators.

Input validation, label encoding, device and seeding, and the skorch net that
meta-trains an episodic module. Each method (``fewshot/``, ``embedding/``)
keeps only what is its own: its torch module and its loss.
"""

import contextlib
import copy
import dataclasses
import math
import sys
import time
import warnings
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import (
    BaseEstimator,
    ClassifierMixin,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
)
from sklearn.preprocessing import LabelEncoder
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import (
    check_consistent_length,
    check_is_fitted,
    column_or_1d,
    validate_data,
)
from skorch import NeuralNet
from skorch.callbacks import Callback, EarlyStopping, LRScheduler, PrintLog, ProgressBar
from skorch.history import History
from torch import nn
from torch.nn import functional as F
from torch.utils.data import IterableDataset

from ._batchnorm import RunningStatsWarmup
from ._docs import EPISODIC, FIT, fill_doc
from ._params import Param, Parameters, build_estimator_class
from ._precision import PRECISIONS, autocast, with_precision
from ._sklearn import Interval, StrOptions, _fit_context
from .augmentation import (
    AffineViews,
    RandomAffine,
    flips_as_classes,
    rotations_as_classes,
)
from .backbones import BACKBONES, build_backbone, embedding_size
from .callbacks import TimeLimit
from .episodes import EpisodeSampler, check_groups

__all__ = [
    "EpisodicClassifier",
    "FewShotClassifier",
    "check_labels",
    "EpisodicNetwork",
    "TorchEstimator",
    "eval_mode",
    "resolve_device",
]


def trains(module, max_epochs):
    """Whether fit has anything to train: epochs, and a trainable parameter.

    A fixed embedding (``backbone="identity"`` on features computed
    beforehand) with a parameter-free comparison has nothing to learn, and
    ``fit`` then draws no episode or batch, so it needs no minimum class size.
    """
    return max_epochs > 0 and any(p.requires_grad for p in module.parameters())


def _fit_with_doc(doc):
    """``fit``: validate the parameters, then ``_fit`` atomically; documented.

    With a ``groups`` entry in ``doc``, ``fit(X, y, groups=None)``.
    """
    if "groups" in doc:

        @_fit_context(prefer_skip_nested_validation=True)
        def fit(self, X, y, groups=None):
            return self._atomically("_fit", X, y, groups)

    else:

        @_fit_context(prefer_skip_nested_validation=True)
        def fit(self, X, y):
            return self._atomically("_fit", X, y)

    fit.__doc__ = FIT.format(**{"groups": "", **doc})
    return fit


def registry_constraints(registry, *others):
    """Constraints accepting a name of ``registry`` (a dict), or any of ``others``.

    Returns a callable for :class:`~skmeta._params.Param`, so that the names
    are read at each validation: an entry registered after import is valid.
    """
    return lambda: [StrOptions(set(registry)), *others]


def episodic_parameters(own, **changes):
    """The parameters of a few-shot classifier, its ``own`` after the training ones.

    Parameters
    ----------
    own : dict of str to Param
        The method's parameters.
    **changes : dict or None
        For a shared parameter, ``None`` drops it and a dict of
        :class:`~skmeta._params.Param` fields replaces those fields (a
        default, a doc).

    Returns
    -------
    Parameters
        ``n_way``, ``k_shot`` and ``n_query`` by position or keyword, the
        others keyword-only.
    """
    shared = (
        EPISODE_PARAMETERS
        | META_TRAINING_PARAMETERS
        | own
        | BACKBONE_PARAMETERS
        | IMAGE_PARAMETERS
        | RUNTIME_PARAMETERS
    )
    return Parameters(changed(shared, changes), positional=3)


def changed(params, changes):
    """``params`` with the ``changes`` of :func:`episodic_parameters`."""
    unknown = set(changes) - set(params)
    if unknown:
        raise ValueError(f"No shared parameter {sorted(unknown)} to change.")
    return {
        name: dataclasses.replace(param, **changes[name]) if name in changes else param
        for name, param in params.items()
        if name not in changes or changes[name] is not None
    }


#: The backbone of every torch-backed estimator.
BACKBONE_PARAMETERS = {
    "embedding_dim": Param(
        "int",
        64,
        [Interval(Integral, 1, None, closed="left")],
        """Output size of a built backbone (the last Conv4 block's filters, or
        the MLP's output width).""",
    ),
    "backbone": Param(
        "None, str, torch.nn.Module class or instance",
        None,
        registry_constraints(BACKBONES, None, nn.Module, type),
        """``None`` picks ``"conv4"`` for images and ``"mlp"`` for tabular X;
        see :func:`skmeta.backbones.build_backbone`.""",
    ),
    "backbone_params": Param(
        "dict or None",
        None,
        [dict, None],
        """Extra constructor arguments of the backbone. Each is also a parameter
        ``backbone__<name>`` of ``get_params`` and ``set_params``, so that
        ``GridSearchCV`` can search it (``{"backbone__hidden_dims": [(64,),
        (256,)]}``), as skorch does with ``module__``.""",
    ),
}

#: Where and how every torch-backed estimator runs.
RUNTIME_PARAMETERS = {
    "batch_size": Param(
        "int",
        256,
        [Interval(Integral, 1, None, closed="left")],
        """Samples per forward pass outside training: in ``transform``,
        ``predict`` and evaluation.""",
    ),
    "device": Param(
        "str or torch.device",
        "cpu",
        [str, torch.device],
        """``"cpu"``, ``"cuda"``, ``"cuda:1"``..., or ``"auto"`` (a GPU if
        torch sees one).""",
    ),
    "precision": Param(
        '{"float32", "bfloat16", "float16"}',
        "float32",
        [StrOptions(set(PRECISIONS))],
        """Precision of the forward passes, in training and inference.
        ``"bfloat16"`` and ``"float16"`` run them under :func:`torch.autocast`
        on the device (matrix products and convolutions in 16 bits); the
        weights, the optimizer's state, the loss and the distances between
        embeddings (:mod:`skmeta.distances`) stay float32, and every
        returned array is float32. ``"float16"`` trains with a gradient
        scaler (``torch.amp.GradScaler``). bfloat16 is fast on recent GPUs and
        on CPUs with AVX512-BF16 or AMX; on other CPUs it can be slower than
        float32 (``benchmarks/fit_speed.py`` measures it).""",
    ),
    "random_state": Param(
        "int, RandomState instance or None",
        None,
        ["random_state"],
        """Seeds the episodes or batches, augmentation and weight
        initialisation; the same int gives the same model on the CPU.""",
    ),
    "verbose": Param(
        "int",
        0,
        ["verbose"],
        """1 shows a progress bar (on a terminal), skorch's epoch log and,
        for the few-shot classifiers, a line as ``fit`` takes the training
        samples as the support set after training (a step of its own, not
        bounded by a time limit: with 16 test-time views, 16 forward passes
        per sample).""",
    ),
    "callbacks": Param(
        "list of skorch callbacks or None",
        None,
        [list, None],
        """Extra callbacks of the skorch net, e.g.
        :class:`skmeta.callbacks.TimeLimit` or skorch's ``Checkpoint``
        (validation scores need ``validation_fraction``).""",
    ),
    "early_stopping": Param(
        "bool",
        False,
        ["boolean"],
        """Stop training once ``valid_loss`` has not improved for
        ``n_iter_no_change`` epochs, and keep the weights of its best epoch
        (the untrained weights count as a candidate). Holds out
        ``validation_fraction`` of the classes (0.1 if None).""",
    ),
    "validation_fraction": Param(
        "float in (0, 1) or None",
        None,
        [Interval(Real, 0, 1, closed="neither"), None],
        """Fraction of the classes of ``y`` (at least 2 classes) held out of
        training, whole, never samples of training classes. After each epoch
        {validation_what} of these classes record ``valid_loss`` (query
        log-loss) and ``valid_acc`` in ``history_``, so skorch's
        ``EarlyStopping`` and ``Checkpoint`` work with their defaults.
        ``None`` holds out nothing (unless ``early_stopping``).""",
    ),
    "n_iter_no_change": Param(
        "int",
        10,
        [Interval(Integral, 1, None, closed="left")],
        """Epochs without a lower ``valid_loss`` before ``early_stopping`` ends
        training.""",
    ),
}

#: The episodes of every few-shot classifier.
EPISODE_PARAMETERS = {
    "n_way": Param(
        "int or None",
        None,
        [Interval(Integral, 2, None, closed="left"), None],
        """Classes per training episode. ``None`` means all classes of ``y``,
        at most :attr:`max_auto_way` (60: Snell et al. train Omniglot with
        60-way episodes, wider than at test time).""",
    ),
    "k_shot": Param(
        "int",
        1,
        [Interval(Integral, 1, None, closed="left")],
        "Support samples per class in training episodes.",
    ),
    "n_query": Param(
        "int or None",
        None,
        [Interval(Integral, 1, None, closed="left"), None],
        """Query samples per class in training episodes. ``None`` means 5, or
        fewer (at least 1) where the ``n_way``-th largest class has fewer
        than ``k_shot + 5`` samples, so that small data sets train with the
        defaults; a class with fewer than ``k_shot + n_query`` samples is
        never drawn into an episode.""",
    ),
}

#: The meta-training of the episodic classifiers.
META_TRAINING_PARAMETERS = {
    "episodes_per_epoch": Param(
        "int",
        100,
        [Interval(Integral, 1, None, closed="left")],
        "Training episodes per epoch (a skorch epoch, for history and callbacks).",
    ),
    "max_epochs": Param(
        "int",
        25,
        [Interval(Integral, 0, None, closed="left")],
        "Epochs of meta-training; 0 keeps the initial weights.",
    ),
    "lr": Param(
        "float",
        1e-3,
        [Interval(Real, 0, None, closed="neither")],
        "Adam's learning rate.",
    ),
    "lr_step": Param(
        "int or None",
        1000,
        [Interval(Integral, 1, None, closed="left"), None],
        "Halve the learning rate every ``lr_step`` episodes; ``None`` keeps it.",
    ),
}

#: Image augmentation of the episodic classifiers.
IMAGE_PARAMETERS = {
    "rotations": Param(
        "bool",
        False,
        ["boolean"],
        """Add the 90, 180 and 270-degree rotations of each training class as
        new classes (the Omniglot augmentation of Snell et al.). Images only.""",
    ),
    "flips": Param(
        "bool",
        False,
        ["boolean"],
        """Add the mirror image of each training class as a new class (with
        ``rotations``, every symmetry of the square: 8 classes from each).
        For characters, whose mirror image is another character; leave it off
        for natural images. Images only.""",
    ),
    "augment": Param(
        '{"auto", "affine"}, callable or None',
        "auto",
        [StrOptions({"auto", "affine"}), callable, None],
        """Augmentation of training episode inputs: ``"affine"`` applies
        :class:`skmeta.augmentation.RandomAffine`, ``"auto"`` does so for
        images and nothing for tabular data; a callable maps a batch tensor
        to a batch tensor.""",
    ),
}


#: ``test_time_views`` of the classifiers that compare embeddings by distance.
TEST_TIME_VIEWS = Param(
    'int or "auto"',
    "auto",
    [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
    """Test-time augmentation, images only: above 1, each embedding the
    classifier compares or returns (in ``adapt``, prediction, ``transform``,
    evaluation and the held-out validation of ``fit``; never in the training
    episodes) is the mean over this many views of
    the sample, the sample itself and fixed affine distortions of it
    (:class:`skmeta.augmentation.AffineViews`), for support and queries
    alike; a prediction still depends on its own sample alone. Each view is a
    forward pass, so prediction takes that many times as long. ``"auto"`` is
    16 for images meta-trained with the affine augmentation (``augment`` of
    ``"auto"`` or ``"affine"``), whose ranges the views are drawn from, and
    1 otherwise. On Omniglot minimal, 16 views raised the 20-way 1-shot
    accuracy on novel alphabets of every model measured: four meta-trained
    with the defaults (float32 and bfloat16) by 2.2 to 2.6 points, to 90.8
    to 91.8 %, and twelve one-off variants (wider episodes, other distances)
    by 1.8 to 3.3. It needs no refit: set it on a fitted model and compare with
    ``evaluate_episodes`` on held-out classes.""",
)

#: The views of ``test_time_views="auto"`` for images.
AUTO_TEST_TIME_VIEWS = 16


def resolve_device(device):
    """Return the torch device for an estimator's ``device`` parameter.

    Parameters
    ----------
    device : str or torch.device
        ``"auto"`` picks ``"cuda"`` when available, else ``"cpu"``; ``"cpu"``,
        ``"cuda"``, ``"cuda:<index>"``, or another torch device type that this
        torch build supports and finds available (``"mps"``, ``"xpu"``).

    Returns
    -------
    torch.device

    Raises
    ------
    ValueError
        If ``device`` is not a device name torch knows, or names a device
        that is not available here (CUDA without a GPU, say).
    """
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(
            "device must be 'cpu', 'cuda', 'cuda:<index>', 'auto' or another "
            f"torch device name; got {device!r}."
        ) from exc
    if device.type == "cpu":
        return device
    backend = getattr(torch, device.type, None)
    available = getattr(backend, "is_available", None)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device={str(device)!r} but CUDA is not available; use device='cpu' "
            "or device='auto'."
        )
    if device.type != "cuda" and not (callable(available) and available()):
        raise ValueError(
            f"device={str(device)!r} is not available in this torch build on this "
            "machine; use device='cpu', 'cuda' or 'auto'."
        )
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise ValueError(
            f"device={str(device)!r} but this machine has "
            f"{torch.cuda.device_count()} CUDA device(s)."
        )
    return device


def check_labels(y, name="y"):
    """Validate class labels as ``fit`` does: 1-D, discrete, of one type.

    Parameters
    ----------
    y : array-like of shape (n_samples,)
        Labels of any one type: ints, strings, or other hashable values.
    name : str, default="y"
        The parameter's name, for messages.

    Returns
    -------
    ndarray of shape (n_samples,)

    Raises
    ------
    ValueError
        If ``y`` is not 1-D, holds NaN or continuous values, or mixes types
        (ints and strings, say), which have no order to encode them by.
    """
    y = column_or_1d(y, warn=True)
    if y.dtype == object:
        types = sorted({type(v).__name__ for v in y})
        if len(types) > 1:
            raise ValueError(
                f"{name} mixes labels of the types {', '.join(types)}; "
                "use one type of label (all str, or all int)."
            )
    try:
        check_classification_targets(y)
    except ValueError as exc:
        raise ValueError(f"{name} must be class labels: {exc}") from exc
    return y


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

    #: The estimator's parameters (:class:`skmeta._params.Parameters`): a
    #: class that sets them gets its ``__init__``, constraints and
    #: docstring entries from them.
    _parameters = Parameters({})

    #: Texts for the placeholders of the shared docstring sections (see
    #: :mod:`skmeta._docs`), and extra sections by name.
    _doc_values: dict = {}
    _doc_sections: dict = {}

    #: What the docstring of ``fit`` says of this class (see
    #: :data:`skmeta._docs.FIT`); a class that sets it gets its ``fit``.
    _fit_doc = None

    def __init_subclass__(cls, **kwargs):
        # fit first: scikit-learn reads its signature for set_fit_request.
        if "_fit_doc" in cls.__dict__:
            cls.fit = _fit_with_doc(cls._fit_doc)
            cls.fit.__qualname__ = f"{cls.__qualname__}.fit"
        super().__init_subclass__(**kwargs)
        if "_parameters" in cls.__dict__:
            build_estimator_class(cls, cls._doc_values)
            fill_doc(cls._doc_values, **cls._doc_sections)(cls)

    @property
    def _parameter_constraints(self):
        """scikit-learn's constraints, read from the registries as they are now."""
        return self._parameters.constraints()

    def get_params(self, deep=True):
        """Parameters of the estimator; with ``deep``, ``backbone__<name>`` too.

        Each entry of ``backbone_params`` appears as ``backbone__<name>``, as
        skorch shows ``module__<name>``, so that ``GridSearchCV`` can search
        a backbone's constructor arguments.
        """
        params = super().get_params(deep=deep)
        # Not validated before fit: anything but a dict has no entries to show.
        if deep and isinstance(self.backbone_params, dict):
            for name, value in self.backbone_params.items():
                params[f"backbone__{name}"] = value
        return params

    def set_params(self, **params):
        """Set parameters; ``backbone__<name>=v`` sets ``backbone_params[name]``.

        ``backbone_params`` is replaced by a new dict, never changed in place,
        so a clone's parameters stay its own.
        """
        routed = {
            key.removeprefix("backbone__"): params.pop(key)
            for key in list(params)
            if key.startswith("backbone__")
        }
        super().set_params(**params)
        if routed:
            current = self.backbone_params
            self.backbone_params = {
                **(current if isinstance(current, dict) else {}),
                **routed,
            }
        return self

    #: Validation episodes drawn from the held-out classes after each epoch:
    #: the same episodes every epoch, so that epochs compare.
    n_validation_episodes = 100

    #: The parameters that set step sizes, named when training diverges.
    _learning_rates = ("lr",)

    def _validate_X(self, X, *, reset):
        """Validate X as float32 of shape (n, n_features) or (n, c, h, w)."""
        if not reset and hasattr(self, "input_shape_"):
            shape = getattr(X, "shape", None) or np.asarray(X).shape
            if len(shape) > 1 and len(shape) != 1 + len(self.input_shape_):
                raise ValueError(
                    f"X must be {1 + len(self.input_shape_)}-D, samples of shape "
                    f"{self.input_shape_} as in fit; got a {len(shape)}-D array of "
                    f"shape {tuple(shape)}."
                )
        X = validate_data(
            self, X, reset=reset, allow_nd=True, dtype=np.float32, ensure_min_features=1
        )
        return self._check_shape(X, reset=reset)

    def _validate_X_y(self, X, y):
        X, y = validate_data(
            self, X, y, allow_nd=True, dtype=np.float32, ensure_min_features=1
        )
        return self._check_shape(X, reset=True), check_labels(y)

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

    def _atomically(self, method, *args):
        """Run ``method`` on a shallow copy; the copy's state becomes self's on success.

        ``fit`` and ``adapt`` go through here, so that a failure part-way (an
        error, a diverged training run, a ``KeyboardInterrupt`` in ``adapt``)
        leaves the estimator as it was: unfitted, or the previous model whole.
        """
        work = copy.copy(self)
        getattr(work, method)(*args)
        vars(self).update(vars(work))
        return self

    def _prepare_fit(self, X, y, groups=None):
        """What every ``fit`` starts with: the data checked, classes held out.

        Validates (X, y) and ``groups``, encodes the labels, checks that
        ``rotations``, ``flips`` and ``test_time_views`` (where the estimator
        has them) get images, holds out the validation classes, or groups
        (:meth:`_held_out`), and sets ``device_``.

        Returns
        -------
        X : ndarray, float32
            The validated samples.
        y_enc : ndarray of shape (n_samples,), int64
            Their labels, encoded as indices of ``classes``.
        classes : ndarray
            The sorted labels of ``y``.
        train : tuple
            ``(X_train, y_train, groups_train)``: the training classes, labels
            re-encoded as 0 .. n_train_classes - 1, and their groups (encoded
            as ints; None without ``groups``).
        valid : tuple or None
            ``(X_valid, y_valid, groups_valid)``: the held-out classes (labels
            as in ``y_enc``), or held-out groups, or None when nothing is
            held out.
        """
        X, y = self._validate_X_y(X, y)
        encoder = LabelEncoder().fit(y)
        y_enc = encoder.transform(y)
        if groups is not None:
            groups = check_groups(check_labels(groups, "groups"), y)
            groups = LabelEncoder().fit_transform(groups)
        for name in ("rotations", "flips"):
            if getattr(self, name, False) and X.ndim != 4:
                raise ValueError(
                    f"{name}=True needs images X of shape (n_samples, channels, "
                    f"height, width); got X of shape {X.shape}."
                )
        views = getattr(self, "test_time_views", 1)
        if views != "auto" and views > 1 and X.ndim != 4:
            raise ValueError(
                f"test_time_views={views} distorts images; X holds samples of "
                f"shape {X.shape[1:]}. Use test_time_views=1 for tabular data."
            )
        self.device_ = resolve_device(self.device)
        held_out = self._held_out(y_enc, groups)
        if held_out is None:
            return X, y_enc, encoder.classes_, (X, y_enc, groups), None
        # Whole classes (or groups), never some samples of a training one.
        g_train, g_valid = (
            (None, None) if groups is None else (groups[~held_out], groups[held_out])
        )
        train = X[~held_out], LabelEncoder().fit_transform(y_enc[~held_out]), g_train
        valid = X[held_out], y_enc[held_out], g_valid
        return X, y_enc, encoder.classes_, train, valid

    def _held_out(self, y_enc, groups):
        """Which samples are held out for validation: whole classes, or groups.

        Returns a boolean mask of shape ``(n_samples,)``, or None when nothing
        is held out: ``validation_fraction`` of the classes of ``y_enc``, or
        of the ``groups`` (encoded as ints) when given (at least 2), drawn with
        ``random_state``; 0.1 when only ``early_stopping`` is set.
        """
        fraction = self.validation_fraction
        if fraction is None and self.early_stopping:
            fraction = 0.1
        if fraction is None:
            return None
        units, what = (y_enc, "classes of y") if groups is None else (groups, "groups")
        n_units = int(units.max()) + 1
        n_valid = max(2, math.ceil(fraction * n_units))
        if n_units - n_valid < 2:
            raise ValueError(
                f"validation_fraction={fraction} holds out {n_valid} of the "
                f"{n_units} {what} (at least 2), which leaves "
                f"{n_units - n_valid} to train on; training needs at least 2. "
                f"Use more {what.split()[0]} or no validation "
                "(validation_fraction=None, early_stopping=False)."
            )
        rng = check_random_state(self._seed())
        return np.isin(units, rng.permutation(n_units)[:n_valid])

    def _train_net(self, module, data, *, steps_per_epoch, validation=None, **net):
        """Train ``module`` on ``data`` with skorch; the one set-up of every estimator.

        Parameters
        ----------
        module : torch.nn.Module
        data : torch.utils.data.IterableDataset
            One epoch of training steps; each item is a whole step.
        steps_per_epoch : int
            Items of ``data``, for the progress bar.
        validation : callable or None
            Maps the module in training to ``(valid_loss, valid_acc)`` on the
            held-out classes; called after every epoch.
        **net
            Arguments of the skorch net: ``net_class`` (default
            ``skorch.NeuralNet``), ``criterion``, ``optimizer``, ``lr``,
            ``callbacks`` (the method's own, e.g. a schedule), and any other.

        Returns
        -------
        module : torch.nn.Module
            The trained module: with ``early_stopping``, at its best epoch.
        history : skorch.history.History
        stop_reason : str
            ``"max_epochs"``, ``"time_limit"``, ``"early_stopping"`` or
            ``"interrupted"`` (a ``KeyboardInterrupt``, with a warning).
        """
        net_class = with_precision(net.pop("net_class", NeuralNet), self.precision)
        callbacks = list(net.pop("callbacks", []))
        rates = {name: getattr(self, name) for name in self._learning_rates}
        callbacks.append(("divergence", _StopOnDivergence(rates)))
        callbacks.append(("running_stats", RunningStatsWarmup()))
        if validation is not None:
            callbacks.append(("valid", _HeldOutValidation(validation)))
        if self.early_stopping:
            stopping = _EarlyStoppingFromStart(
                validation,
                monitor="valid_loss",
                patience=self.n_iter_no_change,
                threshold=0,
                load_best=True,
            )
            callbacks.append(("early_stopping", stopping))
        if self.verbose and sys.stderr.isatty():
            callbacks.append(
                ("progress_bar", ProgressBar(batches_per_epoch=steps_per_epoch))
            )
        user = list(self.callbacks or [])
        if validation is None:
            _check_monitors(user)
        net = net_class(
            module=module,
            max_epochs=self.max_epochs,
            batch_size=None,  # every item of the data is a whole training step
            train_split=None,  # validation holds out classes: _HeldOutValidation
            callbacks=callbacks + user,
            callbacks__print_log=_EpochLog(),
            device=self.device_,
            verbose=int(self.verbose),
            **net,
        )
        net.fit(data, y=None)
        return net.module_, net.history_, _finish_history(net)

    def _record_training(self, history, stop_reason):
        """Fitted attributes of a finished training run."""
        self.history_ = history
        self.n_steps_ = sum(len(epoch["batches"]) for epoch in history)
        self.stop_reason_ = stop_reason

    def _embed(self, X):
        """Embeddings of validated X as a float tensor (n, d) on the device.

        Runs the module in eval mode (batch-norm running statistics) in chunks
        of ``batch_size`` samples.
        """
        module = self.module_
        device = next(module.parameters(), torch.empty(0, device=self.device_)).device
        embed = self._embedding_function(module)
        with (
            eval_mode(module),
            torch.inference_mode(),
            autocast(device, self.precision),
        ):
            # Into one preallocated tensor: memory of one copy of the output.
            z, start = None, 0
            for chunk in torch.from_numpy(X).split(self.batch_size):
                out = embed(_at_least_rows(chunk).to(device))
                out = out[: len(chunk)].float()
                if z is None:
                    z = out.new_empty((len(X), *out.shape[1:]))
                z[start : start + len(out)] = out
                start += len(out)
            if z is None:  # no sample: the module still gives the output shape
                z = embed(torch.from_numpy(X).to(device)).float()
        return _check_finite_output(z, self, "embeddings")

    def _embedding_function(self, module):
        """What maps a batch on the device to its embeddings: ``module.embed``."""
        return module.embed

    def transform(self, X):
        """Embed X with the trained backbone.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, c, h, w)
            Samples of the shape seen in ``fit``.

        Returns
        -------
        ndarray of shape (n_samples, n_features_out), dtype float32
            The embeddings, ``embedding_dim`` wide for flat ones; feature maps
            ``(c, h, w)`` (RelationClassifier's) flattened in C order, so that
            ``transform(X).reshape(-1, c, h, w)`` restores them.
        """
        check_is_fitted(self)
        X = self._validate_X(X, reset=False)
        return self._embed(X).flatten(1).cpu().numpy()

    @property
    def _n_features_out(self):
        """Flat embedding size, for ``get_feature_names_out``."""
        with torch.inference_mode():
            z = self._embed(np.zeros((1, *self.input_shape_), np.float32))
        return int(z.flatten(1).shape[1])

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = False
        tags.non_deterministic = self.device != "cpu"
        tags.transformer_tags.preserves_dtype = ["float32"]
        tags.target_tags.required = True  # every estimator here learns from labels
        return tags


class _EpochLog(PrintLog):
    """skorch's table of epochs, coloured only on a terminal.

    skorch marks each epoch's best scores with ANSI colour codes; written to
    a log file or a pipe, those are noise, so they are left out there.
    """

    def format_row(self, row, key, color):
        if not sys.stdout.isatty():
            row = {k: v for k, v in row.items() if not k.endswith("_best")}
        return super().format_row(row, key, color)


class _HeldOutValidation(Callback):
    """Score the module in training on held-out classes after each epoch.

    Records ``valid_loss`` and ``valid_acc`` in the epoch's row of the
    history, with ``valid_loss_best`` and ``valid_acc_best`` as skorch's
    scoring callbacks do, so that ``EarlyStopping``, ``Checkpoint`` and
    ``LRScheduler`` on ``valid_loss`` work with their defaults.

    Parameters
    ----------
    score : callable
        Maps the module to ``(valid_loss, valid_acc)``, two floats.
    """

    def __init__(self, score):
        self.score = score

    def on_epoch_end(self, net, **kwargs):
        loss, accuracy = self.score(net.module_)
        history = net.history
        for name, value, sign in (("valid_loss", loss, 1), ("valid_acc", accuracy, -1)):
            previous = [sign * row[name] for row in history[:-1] if name in row]
            history.record(name, value)
            history.record(f"{name}_best", not previous or sign * value < min(previous))


class _EarlyStoppingFromStart(EarlyStopping):
    """skorch's ``EarlyStopping`` on ``valid_loss``, the untrained module a candidate.

    The held-out loss of the module before training is the first score to
    beat: when no epoch beats it (meta-training on too few base classes can
    specialise the backbone away from new classes), training stops after
    ``patience`` epochs and the initial weights come back, so early stopping
    never returns a model that does worse on the held-out classes than the
    one it started from.

    Parameters
    ----------
    score : callable
        Maps the module to ``(valid_loss, valid_acc)``.
    **kwargs
        Arguments of ``skorch.callbacks.EarlyStopping``; ``monitor`` is
        ``"valid_loss"``.
    """

    def __init__(self, score, **kwargs):
        super().__init__(**kwargs)
        self.score = score

    def on_train_begin(self, net, **kwargs):
        super().on_train_begin(net, **kwargs)
        initial_loss, _ = self.score(net.module_)
        self.dynamic_threshold_ = self._calc_new_threshold(initial_loss)
        self.best_model_weights_ = copy.deepcopy(net.module_.state_dict())


class _StopOnDivergence(Callback):
    """Raise at the training step where training diverged or collapsed.

    Checked after every step, so the error names the step and the learning
    rates to lower, instead of a model that predicts NaN, or one class for
    everything, without a word. Training has diverged when the loss or a
    weight is not finite, or when the loss exceeds ``max_loss`` (no loss of
    skmeta reaches it while training goes well: cross-entropy starts near
    log(n_way), the metric losses near their margins or scales; MAML at
    lr=1e3 reached 4e24, Reptile at inner_lr=1e3 6e12, both finite, with
    chance accuracy). It has collapsed when the network gives exactly the
    same output for every row of a step whose inputs differ (dead units, as a
    far too large learning rate leaves them), for ``patience`` steps in a row,
    or for every step after the first (two at least; the first step's outputs
    come before any update) of a training shorter than that. A step that
    returns no outputs (Reptile's meta-update, whose inner steps it does not
    keep) is checked for divergence only.

    Parameters
    ----------
    learning_rates : dict of str to float
        The estimator's step-size parameters, for the message.
    patience : int, default=10
        Steps of identical outputs that make a collapse.
    max_loss : float, default=1e6
        A training loss above it has exploded.
    """

    def __init__(self, learning_rates, patience=10, max_loss=1e6):
        self.learning_rates = learning_rates
        self.patience = patience
        self.max_loss = max_loss

    def on_train_begin(self, net, **kwargs):
        self.steps_ = self.constant_steps_ = 0

    def on_batch_end(
        self, net, batch=None, training=False, loss=None, y_pred=None, **kwargs
    ):
        if not training:
            return
        what = None
        loss = None if loss is None else torch.as_tensor(loss).detach()
        # One synchronisation: the largest magnitude is NaN or inf if any is.
        top = None if loss is None else float(loss.abs().max())
        if top is not None and not math.isfinite(top):
            what = f"the training loss is {float(loss.sum())}"
        elif top is not None and top > self.max_loss:
            what = (
                f"the training loss is {top:.3g}, above {self.max_loss:.0e} "
                "(it exploded)"
            )
        else:
            named = [
                (n, t)
                for n, t in net.module_.state_dict().items()
                if t.is_floating_point()
            ]
            # One reduction per tensor and one synchronisation per step.
            finite = (
                torch.stack([t.isfinite().all() for _, t in named]) if named else None
            )
            if finite is not None and not finite.all():
                name = named[int((~finite).nonzero()[0])][0]
                what = f"the weights {name!r} are not finite"
        if what is not None:
            self._raise(net, what)
        constant = _same_rows(y_pred) and not _same_rows(_inputs(batch))
        self.steps_ += 1
        self.constant_steps_ = self.constant_steps_ + 1 if constant else 0
        if self.constant_steps_ >= self.patience:
            self._raise(net, self._collapsed())

    def on_train_end(self, net, **kwargs):
        if 2 <= self.constant_steps_ >= self.steps_ - 1:
            self._raise(net, self._collapsed())

    def _collapsed(self):
        return (
            "the network has given the same output for every sample of the "
            f"last {self.constant_steps_} steps (it collapsed)"
        )

    def _raise(self, net, what):
        step = sum(len(epoch["batches"]) for epoch in net.history)
        rates = ", ".join(f"{k}={v!r}" for k, v in self.learning_rates.items())
        raise ValueError(
            f"Training diverged at step {step} (epoch {len(net.history)}): "
            f"{what}. Lower the learning rate ({rates}). The estimator is "
            "left as it was before fit."
        )


#: The fewest rows of an inference forward pass. float32 matrix products on
#: fewer rows take other kernels (matrix-vector ones), which round differently:
#: a sample's embedding or scores would depend on how many samples came with
#: it (by 2e-7 on a CPU). Measured identical, bit for bit, from 8 rows on.
_MIN_ROWS = 8


def _at_least_rows(x):
    """``x`` (a tensor or an ndarray), its last row repeated up to ``_MIN_ROWS`` rows.

    The extra rows' outputs are to be dropped: with the network in eval mode,
    every row's output depends on that row alone. Empty ``x`` is returned as
    it is.
    """
    missing = _MIN_ROWS - len(x)
    if missing <= 0 or len(x) == 0:
        return x
    if torch.is_tensor(x):
        return torch.cat([x, x[-1:].expand(missing, *x.shape[1:])])
    return np.concatenate([x, np.repeat(x[-1:], missing, axis=0)])


def _inputs(batch):
    """The input tensor of a training step (an episode's ``x``, or a batch)."""
    if batch is None:
        return None
    x = batch[0]
    return x.get("x") if isinstance(x, dict) else x


def _same_rows(values):
    """Whether ``values`` is a tensor of at least 2 rows, all exactly equal."""
    if not torch.is_tensor(values) or values.ndim == 0 or len(values) < 2:
        return False
    values = values.detach()
    return bool((values == values[:1]).all())


def _check_finite_output(values, estimator, what):
    """``values`` unchanged, or a ValueError if any is NaN or infinite."""
    if not torch.isfinite(values).all():
        raise ValueError(
            f"{type(estimator).__name__} computed non-finite {what}: its weights "
            "are not finite or too large. Refit it with a lower learning rate."
        )
    return values


def _check_monitors(callbacks):
    """Refuse a callback that monitors validation scores when there are none."""
    for item in callbacks:
        callback = item[1] if isinstance(item, tuple) else item
        monitor = getattr(callback, "monitor", None)
        if isinstance(monitor, str) and monitor.startswith("valid_"):
            raise ValueError(
                f"{type(callback).__name__} monitors {monitor!r}, which needs "
                "validation on held-out classes: set validation_fraction (for "
                "instance 0.1) or early_stopping=True."
            )


def _finish_history(net):
    """Why training stopped; an epoch cut short is completed in the history.

    An epoch that a time limit or an interruption ended after some of its
    steps gets its ``train_loss`` (the mean over those steps, weighted as
    skorch weights them) and ``dur``, and its row in the epoch log. A
    ``KeyboardInterrupt`` that no callback raised (Ctrl-C) warns: the model
    is only partly trained.
    """
    history = net.history_
    last = history[-1] if len(history) else {}
    cut_short = bool(last) and "dur" not in last
    if cut_short and last["batches"]:
        losses = [b["train_loss"] for b in last["batches"]]
        sizes = [b.get("train_batch_size", 1) for b in last["batches"]]
        history.record("train_loss", float(np.average(losses, weights=sizes)))
        timer = dict(net.callbacks_).get("epoch_timer")
        if timer is not None:
            history.record("dur", time.time() - timer.epoch_start_time_)
        for _, callback in net.callbacks_:
            if isinstance(callback, PrintLog):
                callback.on_epoch_end(net)
    callbacks = [cb for _, cb in net.callbacks_]
    if any(isinstance(cb, TimeLimit) and cb.expired_ for cb in callbacks):
        return "time_limit"
    if any(
        isinstance(cb, EarlyStopping) and cb.misses_ >= cb.patience for cb in callbacks
    ):
        return "early_stopping"
    n_epochs = len(history)
    if n_epochs < net.max_epochs or cut_short:
        n_steps = sum(len(epoch["batches"]) for epoch in history)
        warnings.warn(
            f"Training was interrupted (KeyboardInterrupt) after {n_steps} steps "
            f"in epoch {n_epochs} of {net.max_epochs}: the model is only partly "
            "trained. stop_reason_ is 'interrupted'.",
            UserWarning,
            stacklevel=4,
        )
        return "interrupted"
    return "max_epochs"


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


class _EpisodeStream(IterableDataset):
    """One epoch of training episodes, as skorch batches.

    Each item is ``({"x": images, "y": labels}, query_labels)`` where the
    first ``n_way * k_shot`` rows of ``x`` are the support set, class-major,
    and the rest the query set; ``y`` holds the episode class (0 to
    ``n_way - 1``) of support rows and -1 for query rows, whose labels the
    module must not see. One tensor of rows keeps skorch's batch-length
    bookkeeping consistent and lets the module embed the episode in one pass.
    With ``groups`` (an int array), each episode is drawn within one group.
    """

    def __init__(self, X, y, sampler, augment, device, groups=None):
        self.X, self.y, self.sampler, self.augment = X, y, sampler, augment
        self.groups = groups
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
        for support, query in self.sampler.split(y=self.y_numpy, groups=self.groups):
            index = torch.from_numpy(np.concatenate([support, query])).to(self.X.device)
            x = self.X[index]
            if self.augment is not None:
                x = self.augment(x)
            yield {"x": x, "y": self.y_episode}, self.y_query


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
    """

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
            if getattr(self, "normalization", None) == "centered-l2":
                view._fit_comparison_space(view._embed(X_base))  # as fit will
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
        """``test_time_views`` as a number, ``"auto"`` resolved for the fitted input."""
        views = getattr(self, "test_time_views", 1)
        if views != "auto":
            return views
        affine = self.augment in ("auto", "affine")
        return AUTO_TEST_TIME_VIEWS if affine and len(self.input_shape_) == 3 else 1

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

    def _new_backbone(self, input_shape):
        """The untrained backbone for samples of ``input_shape``."""
        return build_backbone(
            self.backbone, input_shape, self.embedding_dim, self.backbone_params
        )

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
        self._take_support(X_support, encoder.transform(y_support))

    def _logits(self, X):
        """Query logits (n_samples, n_classes) of X against the support set."""
        check_is_fitted(self)
        X = self._validate_X(X, reset=False)
        n_samples = len(X)
        if not getattr(self, "transductive_steps", 0):
            # Each query on its own: the head too sees enough rows. (A
            # transductive prediction depends on the batch by design.)
            X = _at_least_rows(X)
        z = self._comparison_space(self._embed(X))
        with (
            eval_mode(self.module_),
            torch.inference_mode(),
            autocast(z.device, self.precision),
        ):
            logits = self._support_logits(z)[:n_samples].float()
        return _check_finite_output(logits, self, "scores").cpu().numpy()

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

    def _finish_fit(self, module, history, stop_reason, classes, X_base, X, y_enc):
        """The fitted state of a trained ``module``: the training data as support."""
        self.module_ = module
        self._record_training(history, stop_reason)
        self.classes_ = classes
        if self.verbose:  # after the epoch log: the time this takes is not training
            views = self._n_test_time_views()
            each = f" ({views} test-time views each)" if views > 1 else ""
            print(
                f"taking the {len(X)} training samples as the support set{each}",
                flush=True,
            )
        if getattr(self, "normalization", None) != "centered-l2":
            self._take_support(X, y_enc)
            return self
        z = self._embed(X)
        # Nothing held out: the base classes are X, embedded once for both.
        self._fit_comparison_space(z if X_base is X else self._embed(X_base))
        self._set_support(self._comparison_space(z), y_enc)
        return self

    def _take_support(self, X, y_enc):
        """Make validated (X, y_enc) the support set: ``fit`` and ``adapt``."""
        self._set_support(self._comparison_space(self._embed(X)), y_enc)

    def _fit_comparison_space(self, z_base):
        """Fit what ``normalization="centered-l2"`` needs: ``feature_mean_``.

        The mean of ``z_base``, the embeddings of the base classes.
        """
        self.feature_mean_ = z_base.mean(0).cpu().numpy()

    def _comparison_space(self, z):
        """Embeddings ``(n, d)`` as support and queries are compared in.

        As they are, unless the classifier has a ``normalization``
        parameter: ``"l2"`` scales each to unit norm, ``"centered-l2"``
        subtracts ``feature_mean_`` first (SimpleShot's CL2N, Wang et al.,
        2019).
        """
        how = getattr(self, "normalization", None)
        if how is None:
            return z
        if how == "centered-l2":
            z = z - torch.from_numpy(self.feature_mean_).to(z.device, z.dtype)
        return F.normalize(z, dim=1)

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
        check_is_fitted(self)
        X = self._validate_X(X, reset=False)
        y = check_labels(y)
        check_consistent_length(X, y)
        z = self._comparison_space(self._embed(X))
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


class EpisodicClassifier(FewShotClassifier):
    """Base of few-shot classifiers meta-trained on N-way K-shot episodes.

    The module of a subclass (see :class:`FewShotClassifier`) also has a
    ``forward(x, y)`` that takes an
    episode as :class:`_EpisodeStream` yields it and returns query logits of
    shape ``(n_query_rows, n_way)``, trained with ``_criterion``
    (cross-entropy unless a subclass sets another).
    """

    _doc_values = EPISODIC

    #: What one training step is, in words (the CLI's report).
    _step_noun = "episodes"

    #: Loss of the query logits against the query labels, a module class.
    _criterion = nn.CrossEntropyLoss

    #: Episode width used when ``n_way=None``: the 60-way training episodes of
    #: Snell et al. (2017) on Omniglot, or all classes when there are fewer.
    max_auto_way = 60

    _fit_doc = {
        "summary": """Meta-train on episodes drawn from the base classes in (X, y).

        The training data then serves as the support set, so ``predict``
        works over the classes of ``y``; :meth:`adapt` sets another.""",
        "y": "; each episode's classes need at least ``k_shot + n_query`` samples",
        "groups": """
        groups : array-like of shape (n_samples,), default=None
            The task of each sample (scikit-learn's ``groups``), of one
            sortable type: a user, a patient, an alphabet. Given, each training
            episode is drawn within one group, so that a task's classes may be
            shared with other tasks (like and dislike, for every user) while
            its samples are its own; validation then holds out whole groups.
            :meth:`adapt` on one new group's support set personalises the
            model to that task.""",
        "raises": """, if fewer than ``n_way`` classes (with ``groups``, in
            any group) have ``k_shot + n_query`` samples, if ``groups`` is
            not 1-D labels of the length of y, if ``rotations=True`` or
            ``flips=True`` is asked for non-image X""",
    }

    def _fit(self, X, y, groups=None):
        X, y_enc, classes, train, valid = self._prepare_fit(X, y, groups)
        X_train, y_train, g_train = train
        n_train_classes = int(y_train.max()) + 1
        counts = _group_class_counts(y_train, g_train)
        # Flips and rotations make each class copies of the same size.
        copies = self._class_copies()
        counts = np.tile(counts, (1, copies))
        g_train = None if g_train is None else np.tile(g_train, copies)
        n_way, k_shot, n_query = self._episode_shape(counts)
        self.n_way_, self.k_shot_, self.n_query_ = n_way, k_shot, n_query
        sampler = EpisodeSampler(
            n_way,
            k_shot,
            n_query,
            self.episodes_per_epoch,
            random_state=np.random.RandomState(self._seed()),
        )
        validation = None
        if valid is not None:
            validation = self._validation(*valid, sampler, X_train)
        with seeded(self._seed(), self.device_):
            X_t = torch.from_numpy(X_train).to(self.device_)
            y_t = torch.from_numpy(y_train).to(self.device_)
            X_t, y_t = self._symmetries_as_classes(X_t, y_t, n_train_classes)
            module = self._build_network().to(self.device_)
            if trains(module, self.max_epochs):
                sampler._class_index(y_t.cpu().numpy(), g_train)  # too small
                stream = _EpisodeStream(
                    X_t, y_t, sampler, self._augmentation(X.ndim), self.device_, g_train
                )
                module, history, stop_reason = self._meta_train(
                    module, stream, validation
                )
            else:  # nothing to train: no episode is drawn
                history, stop_reason = History(), "max_epochs"
        return self._finish_fit(
            module, history, stop_reason, classes, X_train, X, y_enc
        )

    #: What ``k_shot=None`` and ``n_query=None`` mean, at most: fewer where
    #: the ``n_way``-th largest class has fewer samples than their sum.
    default_k_shot = 1
    default_n_query = 5

    def _episode_shape(self, counts):
        """``(n_way, k_shot, n_query)`` of training episodes for class sizes ``counts``.

        ``counts`` has shape ``(n_groups, n_classes)``: the samples of each
        class in each group (one row without groups). Explicit values are
        kept (and checked by the sampler). ``n_way=None`` counts only the
        classes with samples for an episode (in the best group);
        ``k_shot=None`` and ``n_query=None`` take their defaults, or as many
        as the ``n_way``-th largest class (of the best group) allows, at
        least 1 each.
        """
        n_classes = counts.shape[1]
        k_min = 1 if self.k_shot is None else self.k_shot
        q_min = 1 if self.n_query is None else self.n_query
        usable = int(np.sum(counts >= k_min + q_min, axis=1).max())
        n_way = self._n_way(n_classes if self.n_way is not None else usable)
        smallest = int(np.sort(counts, axis=1)[:, -min(n_way, n_classes)].max())
        k_shot = self.k_shot
        if k_shot is None:
            k_shot = max(1, min(self.default_k_shot, smallest - q_min))
        n_query = self.n_query
        if n_query is None:
            n_query = max(
                1, min(self._default_n_query(n_way, k_shot), smallest - k_shot)
            )
        return n_way, k_shot, n_query

    def _default_n_query(self, n_way, k_shot):
        """Queries per class of ``n_query=None`` where the classes allow them."""
        return self.default_n_query

    def _n_way(self, n_classes):
        if self.n_way is None:
            # At least 2: with fewer classes, the sampler says what is missing.
            return min(max(n_classes, 2), self.max_auto_way)
        if self.n_way > n_classes:
            raise ValueError(
                f"n_way={self.n_way} is more than the {n_classes} classes in y."
            )
        return self.n_way

    #: The skorch net class and the meta-optimizer that meta-train the module.
    _net_class = NeuralNet
    _optimizer = torch.optim.Adam

    def _meta_train(self, module, stream, validation=None):
        """Train ``module`` on the episode stream with skorch.

        Returns the trained module, skorch's history and why training
        stopped (see :meth:`TorchEstimator._train_net`). Subclasses change the
        training through the hooks ``_training_batches``, ``_meta_lr``,
        ``_schedule``, ``_net_kwargs`` and the attributes ``_net_class``,
        ``_optimizer`` and ``_criterion``.
        """
        batches = self._training_batches(stream)
        return self._train_net(
            module,
            batches,
            steps_per_epoch=len(batches),
            validation=validation,
            net_class=self._net_class,
            criterion=self._criterion,
            optimizer=self._optimizer,
            lr=self._meta_lr(),
            callbacks=self._schedule(len(batches)),
            **self._net_kwargs(),
        )

    def _training_batches(self, stream):
        """What skorch iterates over: one episode per optimizer step."""
        return stream

    def _meta_lr(self):
        return self.lr

    def _net_kwargs(self):
        return {}
