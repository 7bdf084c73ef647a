"""TorchEstimator: the base of every torch-backed estimator.

Parameters declared and validated, X and y checked and encoded, the device,
the seed, atomic fitting, class-disjoint validation, and inference in batches.
Each method (``fewshot/``, ``embedding/``) keeps only what is its own: its
torch module and its loss.
"""

import copy
import math

import numpy as np
import torch
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
)
from sklearn.preprocessing import LabelEncoder
from sklearn.utils import check_random_state
from sklearn.utils.validation import (
    check_consistent_length,
    check_is_fitted,
    validate_data,
)

from ._arrays import _MemmapBatches, _pixel_scale, _rows, _writable, check_labels
from ._docs import fill_doc
from ._params import Parameters, build_estimator_class
from ._precision import autocast
from ._runtime import _at_least_rows, eval_mode, resolve_device
from ._validation import _check_finite_output
from .backbones import build_backbone
from .episodes import check_groups
from .text import encode_text, is_text
from .training import optimizer_arguments

__all__ = ["TorchEstimator"]


class TorchEstimator(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Base of torch-backed estimators: validation, device, seed, inference.

    Subclasses set ``module_`` (a ``torch.nn.Module`` with an ``embed``
    method) in ``fit``. Not meant to be used directly.
    """

    #: The estimator's parameters (:class:`skmeta._params.Parameters`): a
    #: class that sets them gets its constraints and docstring entries from
    #: them, and its ``__init__`` is checked against them.
    _parameters = Parameters({})

    #: Texts for the placeholders of the shared docstring sections (see
    #: :mod:`skmeta._docs`), and extra sections by name.
    _doc_values: dict = {}
    _doc_sections: dict = {}

    #: What the docstring of ``fit`` says of this class after the summary
    #: line that ``fit`` writes (see :data:`skmeta._docs.FIT`).
    _fit_doc = None

    #: How training runs over several processes (:mod:`skmeta.distributed`):
    #: whether the criterion compares a step's samples with one another (a
    #: metric-learning loss over the batch), so that it sees the step's samples
    #: gathered from all processes, rather than a mean over its own.
    _gathers_batch = False

    #: Why this estimator does not train over several processes yet (a phrase
    #: for the error), or None where it does.
    _not_data_parallel = None

    #: Whether ``fit`` reads X by index, a training step's samples at a time:
    #: then a NumPy memmap stays on disk in ``fit`` too (:class:`_MemmapBatches`);
    #: otherwise ``fit`` reads it whole, as float32.
    _fits_from_batches = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        build_estimator_class(cls, cls._doc_values)
        if "_parameters" in cls.__dict__:
            fill_doc(cls._doc_values, **cls._doc_sections)(cls)

    @property
    def _parameter_constraints(self):
        """scikit-learn's constraints, read from the registries as they are now."""
        return self._parameters.constraints()

    #: Prefixes of ``get_params``/``set_params`` names routed into a dict
    #: parameter, as skorch routes ``module__<name>`` and ``optimizer__<name>``.
    _routed_prefixes = {
        "backbone__": "backbone_params",
        "optimizer__": "optimizer_params",
    }

    def _routes(self):
        """The routed prefixes whose dict parameter this estimator has."""
        names = self._parameters
        return {p: n for p, n in self._routed_prefixes.items() if n in names}

    def get_params(self, deep=True):
        """Parameters of the estimator; with ``deep``, routed entries too.

        Each entry of ``backbone_params`` appears as ``backbone__<name>``, and
        each of ``optimizer_params`` as ``optimizer__<name>``, as skorch shows
        ``module__<name>``, so that ``GridSearchCV`` can search a backbone's
        constructor arguments or the optimizer's weight decay.
        """
        params = super().get_params(deep=deep)
        if not deep:
            return params
        for prefix, name in self._routes().items():
            # Not validated before fit: anything but a dict has no entries.
            entries = getattr(self, name)
            if isinstance(entries, dict):
                params.update({f"{prefix}{k}": v for k, v in entries.items()})
        return params

    def set_params(self, **params):
        """Set parameters; ``backbone__<name>=v`` sets ``backbone_params[name]``.

        Likewise ``optimizer__<name>`` sets ``optimizer_params[name]``. The dict
        is replaced by a new one, never changed in place, so a clone's
        parameters stay its own.
        """
        routed = {
            name: {
                key.removeprefix(prefix): params.pop(key)
                for key in list(params)
                if key.startswith(prefix)
            }
            for prefix, name in self._routes().items()
        }
        super().set_params(**params)
        for name, entries in routed.items():
            if entries:
                current = getattr(self, name)
                setattr(
                    self,
                    name,
                    {**(current if isinstance(current, dict) else {}), **entries},
                )
        return self

    def _optimizer_arguments(self, module):
        """The skorch net's optimizer arguments for training ``module``.

        See :func:`skmeta.training.optimizer_arguments`; ``backbone_lr=0``
        freezes ``module.backbone``.
        """
        return optimizer_arguments(
            module, self.optimizer, self.optimizer_params, self.backbone_lr
        )

    #: Validation episodes drawn from the held-out classes after each epoch:
    #: the same episodes every epoch, so that epochs compare.
    n_validation_episodes = 100

    #: The parameters that set step sizes, named when training diverges.
    _learning_rates = ("lr",)

    def _validate_X(self, X, *, reset, batches=False):
        """Validate X as float32 of shape (n, n_features) or (n, c, h, w).

        uint8 images (4-D) are scaled to [0, 1], as torchvision's ``ToTensor``
        scales them; other dtypes are taken as they are. With ``batches``
        (a caller that reads X in slices, as :meth:`_embed` does), a NumPy
        memmap stays on disk: its shape is checked now, and each slice is
        converted and checked when read (:class:`_MemmapBatches`).
        """
        X = self._encode_text(X, reset=reset)
        if not reset and hasattr(self, "input_shape_"):
            shape = getattr(X, "shape", None) or np.asarray(X).shape
            if len(shape) > 1 and len(shape) != 1 + len(self.input_shape_):
                raise ValueError(
                    f"X must be {1 + len(self.input_shape_)}-D, samples of shape "
                    f"{self.input_shape_} as in fit; got a {len(shape)}-D array of "
                    f"shape {tuple(shape)}."
                )
        if batches and not reset and isinstance(X, _MemmapBatches):
            return self._check_shape(X, reset=False)  # fit's, read by index
        scale = _pixel_scale(X)
        if batches and not reset and isinstance(X, np.memmap):
            return self._check_shape(_MemmapBatches(X, scale), reset=False)
        X = validate_data(
            self, X, reset=reset, allow_nd=True, dtype=np.float32, ensure_min_features=1
        )
        return self._check_shape(X / scale if scale != 1 else _writable(X), reset=reset)

    def _validate_X_y(self, X, y):
        X = self._encode_text(X, reset=True)
        scale = _pixel_scale(X)
        if self._fits_from_batches and isinstance(X, np.memmap):
            validate_data(self, X, reset=True, skip_check_array=True)  # n_features_in_
            y = check_labels(y)
            check_consistent_length(X, y)
            return self._check_shape(_MemmapBatches(X, scale), reset=True), y
        X, y = validate_data(
            self, X, y, allow_nd=True, dtype=np.float32, ensure_min_features=1
        )
        X = X / scale if scale != 1 else _writable(X)
        return self._check_shape(X, reset=True), check_labels(y)

    def _encode_text(self, X, *, reset):
        """X as it is, or texts X as their token ids (see :mod:`skmeta.text`).

        ``fit`` tokenizes with the tokenizer of the ``backbone`` parameter;
        later calls with the fitted network's, so that they read texts as
        training did. Texts for a backbone that takes none are a ValueError
        naming X and the text backbone to use.
        """
        if not is_text(X):
            return X
        if reset:
            return encode_text(X, self.backbone, self.backbone_params)
        return encode_text(X, self.module_)

    def _check_shape(self, X, *, reset):
        if X.ndim not in (2, 4):
            raise ValueError(
                "X must be 2-D (n_samples, n_features) or 4-D (n_samples, "
                f"channels, height, width); got a {X.ndim}-D array of shape "
                f"{X.shape}."
            )
        if X.ndim == 4 and X.shape[3] in (1, 3, 4) and X.shape[1] > 4:
            raise ValueError(
                f"X of shape {X.shape} looks channels-last (n_samples, height, "
                f"width, channels); skmeta takes images channels-first, (n_samples, "
                f"channels, height, width): pass X.transpose(0, 3, 1, 2) (a NumPy "
                f"array) or X.permute(0, 3, 1, 2) (a torch tensor)."
            )
        if reset:
            self.input_shape_ = X.shape[1:]
        elif X.shape[1:] != self.input_shape_:
            raise ValueError(
                f"X has samples of shape {X.shape[1:]}, but {type(self).__name__} "
                f"was fitted on samples of shape {self.input_shape_}."
            )
        return X

    def _new_backbone(self, input_shape):
        """The untrained backbone for samples of ``input_shape``.

        ``embedding_dim`` left at its default does not ask for a size, so a
        backbone that cannot take it (a module instance, ResNet-12) only
        warns when it was set.
        """
        default = self._parameters["embedding_dim"].default
        return build_backbone(
            self.backbone,
            input_shape,
            self.embedding_dim,
            self.backbone_params,
            embedding_dim_is_default=self.embedding_dim == default,
        )

    @classmethod
    def _learns_from_labels(cls):
        """Whether ``fit`` needs ``y`` (scikit-learn's ``target_tags.required``)."""
        return cls().__sklearn_tags__().target_tags.required

    def _check_image_parameters(self, X):
        """Refuse parameters that only apply to images when X is not: none here."""

    def _seed(self):
        """An int seed for torch, derived from ``random_state``."""
        return int(
            check_random_state(self.random_state).randint(np.iinfo(np.int32).max)
        )

    #: Fitted state whose name does not end with "_" (private, derived in fit).
    _private_fitted = ()

    #: Fitted attributes that hold a support set, computed on first read
    #: after ``fit`` (see :class:`skmeta.fewshot._base.FewShotClassifier`).
    _support_attributes = ()

    def _is_fitted_state(self, name):
        """Whether attribute ``name`` is fitted state: ends with "_", or is private."""
        fitted = name.endswith("_") and not name.startswith("__")
        return fitted or name in self._private_fitted

    def _atomically(self, method, *args, fresh=False):
        """Run ``method`` on a shallow copy; the copy's state becomes self's on success.

        ``fit`` and ``adapt`` go through here, so that a failure part-way (an
        error, a diverged training run, a ``KeyboardInterrupt`` in ``adapt``)
        leaves the estimator as it was: unfitted, or the previous model whole.
        With ``fresh`` (``fit``), the copy starts without the fitted state of
        a previous fit, and on success the estimator's state is replaced
        wholesale: nothing of an earlier fit (``feature_names_in_`` of a
        DataFrame, say) outlives it.
        """
        work = copy.copy(self)
        if fresh:
            for name in [name for name in vars(work) if self._is_fitted_state(name)]:
                delattr(work, name)
        getattr(work, method)(*args)
        vars(self).clear()
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
        self._check_image_parameters(X)
        self.device_ = resolve_device(self.device)
        held_out = self._held_out(y_enc, groups)
        if held_out is None:
            return X, y_enc, encoder.classes_, (X, y_enc, groups), None
        # Whole classes (or groups), never some samples of a training one.
        g_train, g_valid = (
            (None, None) if groups is None else (groups[~held_out], groups[held_out])
        )
        train = (
            _rows(X, ~held_out),
            LabelEncoder().fit_transform(y_enc[~held_out]),
            g_train,
        )
        valid = _rows(X, held_out), y_enc[held_out], g_valid
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
        module = self._inference_module()
        device = next(module.parameters(), torch.empty(0, device=self.device_)).device
        embed = self._embedding_function(module)
        with (
            eval_mode(module),
            torch.inference_mode(),
            autocast(device, self.precision),
        ):
            # Into one preallocated tensor: memory of one copy of the output.
            z = None
            for start in range(0, len(X), self.batch_size):
                chunk = torch.from_numpy(np.asarray(X[start : start + self.batch_size]))
                out = embed(_at_least_rows(chunk).to(device))
                out = out[: len(chunk)].float()
                if z is None:
                    z = out.new_empty((len(X), *out.shape[1:]))
                z[start : start + len(out)] = out
            if z is None:  # no sample: the module still gives the output shape
                z = embed(torch.from_numpy(np.asarray(X)).to(device)).float()
        return _check_finite_output(z, self, "embeddings")

    def _inference_module(self):
        """The module that embeds samples: ``module_``, the trained one."""
        return self.module_

    def _embedding_function(self, module):
        """What maps a batch on the device to its embeddings: ``module.embed``."""
        return module.embed

    def transform(self, X):
        """Embed X with the trained backbone.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, c, h, w)
            Samples of the shape seen in ``fit``; or (n_samples,) texts with
            a text backbone (:class:`skmeta.text.TextBackbone`).

        Returns
        -------
        ndarray of shape (n_samples, n_features_out), dtype float32
            The embeddings, ``embedding_dim`` wide for flat ones; feature maps
            ``(c, h, w)`` (RelationClassifier's) flattened in C order, so that
            ``transform(X).reshape(-1, c, h, w)`` restores them.
        """
        check_is_fitted(self)
        X = self._validate_X(X, reset=False, batches=True)
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
