"""What every deep metric learning embedder shares.

:class:`MetricEmbedder` validates the data, encodes the labels, builds the
backbone, draws P x K batches and trains the network with skorch;
:class:`MetricNetwork` is the torch side, a backbone and the loss that trains
it. Each estimator module (``triplet.py``, ``contrastive.py``...) only says
which loss it trains with and what that loss's parameters are.
"""

import copy
from numbers import Integral

import numpy as np
import torch
from sklearn.base import _fit_context
from sklearn.preprocessing import LabelEncoder
from sklearn.utils._param_validation import Interval, StrOptions
from skorch.history import History
from torch import nn
from torch.nn import functional as F
from torch.utils.data import IterableDataset

from .._base import TorchEstimator, resolve_device, seeded
from .._docs import EMBEDDING, fill_doc
from ..backbones import build_backbone
from ..batches import ClassBalancedBatchSampler
from ..distances import Mahalanobis
from ..episodes import EpisodeSampler

__all__ = ["MetricEmbedder", "MetricNetwork"]

#: Docstring sections every embedder shares; :func:`_fill_doc` puts them in
#: place of the ``{shared_parameters}`` and ``{shared_attributes}`` lines.
_SHARED_DOCS = {
    "{shared_parameters}": """\
    embedding_dim : int, default=64
        Output size of a built backbone (the MLP's output width, or the last
        Conv4 block's filters).
    n_classes_per_batch : int or None, default=None
        Classes per training batch (P), at least 2. ``None`` means all
        classes that can be drawn, at most :attr:`max_auto_classes` (16).
    n_samples_per_class : int, default=4
        Samples of each class in a training batch (K); see
        :class:`skmeta.batches.ClassBalancedBatchSampler`.
    batches_per_epoch : int, default=50
        Training batches per epoch (a skorch epoch, for history and
        callbacks).
    max_epochs : int, default=20
        Epochs of training; 0 keeps the initial weights.
    lr : float, default=1e-3
        Adam's learning rate, for the backbone and the loss's own parameters.
    backbone : None, str, torch.nn.Module class or instance, default=None
        ``None`` picks ``"conv4"`` for images and ``"mlp"`` for tabular X;
        see :func:`skmeta.backbones.build_backbone`.
    backbone_params : dict or None, default=None
        Extra constructor arguments of the backbone.
    small_classes : {"replace", "raise", "skip"}, default="replace"
        A class with fewer than ``n_samples_per_class`` samples is drawn with
        each of its samples once and random repeats of them in the other
        slots (``"replace"``, so that small data sets train with the
        defaults), raises a ``ValueError`` (``"raise"``), or is never drawn
        (``"skip"``).
    batch_size : int, default=256
        Samples per forward pass in :meth:`transform`.
    device : str or torch.device, default="cpu"
        ``"cpu"``, ``"cuda"``, ``"cuda:1"``..., or ``"auto"``.
    random_state : int, RandomState instance or None, default=None
        Seeds batches and weight initialisation; the same int gives the same
        embeddings on the CPU.
    verbose : int, default=0
        1 shows a progress bar and skorch's epoch log.
    callbacks : list of skorch callbacks or None, default=None
        Extra callbacks of the skorch net, e.g.
        :class:`skmeta.callbacks.TimeLimit` or skorch's ``EarlyStopping``.
    {training_parameters}
""",
    "{shared_attributes}": """\
    module_ : MetricNetwork
        The trained network, on ``device_``: ``module_.backbone`` and the
        loss ``module_.loss`` with its parameters.
    history_ : skorch.History
        skorch's record of training: the loss of every batch
        (``history_[:, "batches", :, "train_loss"]``) and epoch
        (``history_[:, "train_loss"]``).
    classes_ : ndarray of shape (n_classes,)
        The labels of ``y`` in ``fit``; training sees their index.
    {training_attributes}
    n_features_in_ : int
        Features (tabular) or channels (images) of X in ``fit``.
    input_shape_ : tuple of int
        Shape of one sample in ``fit``.
    device_ : torch.device
        The device the module lives on.
""",
}


def _fill_doc(**sections):
    """Class decorator: the embedders' shared docstring sections in place."""
    shared = {k.strip("{}"): v for k, v in _SHARED_DOCS.items()}
    return fill_doc(EMBEDDING, **shared, **sections)


class MetricNetwork(nn.Module):
    """A backbone and the metric learning loss that trains it.

    The loss is a submodule, so a loss with parameters (the class weights of
    ArcFace and CosFace, a learnable Mahalanobis distance) trains with the
    backbone and is saved and pickled with it.

    Parameters
    ----------
    backbone : torch.nn.Module
        Maps inputs to embeddings ``(batch, d)``.
    loss : torch.nn.Module
        Called as ``loss(embeddings, labels)``, returns a scalar; see
        :mod:`skmeta.losses`.
    normalize : bool, default=True
        L2-normalise the backbone's output, so embeddings lie on the unit
        sphere.
    """

    def __init__(self, backbone, loss, normalize=True):
        super().__init__()
        self.backbone = backbone
        self.loss = loss
        self.normalize = normalize

    def forward(self, x):
        """Embeddings ``(batch, d)`` that the loss sees in training."""
        z = self.backbone(x)
        return F.normalize(z, dim=1) if self.normalize else z

    def embed(self, x):
        """Embeddings ``(batch, d')`` in which Euclidean distance is the metric.

        The training embeddings, except with a learnable Mahalanobis distance
        :math:`(a - b)^T L^T L (a - b)`, where they are mapped to ``z L^T``:
        the squared Euclidean distance between the outputs is then the learned
        distance, and any downstream model can use it.
        """
        z = self(x)
        distance = getattr(self.loss, "distance", None)
        return z @ distance.L.T if isinstance(distance, Mahalanobis) else z


class _BatchStream(IterableDataset):
    """One epoch of P x K training batches, as skorch items ``(x, labels)``.

    X and y are tensors already on the training device; each item is a whole
    batch, so the skorch net runs with ``batch_size=None``.
    """

    def __init__(self, X, y, sampler):
        self.X, self.y, self.sampler = X, y, sampler
        self.y_numpy = y.cpu().numpy()

    def __len__(self):
        return self.sampler.n_batches

    def __iter__(self):
        for batch in self.sampler.split(y=self.y_numpy):
            index = torch.from_numpy(batch).to(self.X.device)
            yield self.X[index], self.y[index]


class MetricEmbedder(TorchEstimator):
    """Base of the deep metric learning embedders. Not meant to be used directly.

    A subclass stores its own parameters (``margin``...) in ``__init__``,
    declares them in ``_parameter_constraints`` and provides
    ``_build_loss(embedding_dim, n_classes)``, which returns a loss module
    called as ``loss(embeddings, labels)``.
    """

    _parameter_constraints: dict = {
        **TorchEstimator._parameter_constraints,
        "n_classes_per_batch": [Interval(Integral, 2, None, closed="left"), None],
        "n_samples_per_class": [Interval(Integral, 2, None, closed="left")],
        "batches_per_epoch": [Interval(Integral, 1, None, closed="left")],
        "normalize": ["boolean"],
        "small_classes": [StrOptions({"raise", "skip", "replace"})],
    }

    #: Classes per batch when ``n_classes_per_batch=None``, or all classes when
    #: there are fewer: with the default K = 4, batches of 64 samples.
    max_auto_classes = 16

    def __init__(
        self,
        *,
        embedding_dim=64,
        normalize=True,
        n_classes_per_batch=None,
        n_samples_per_class=4,
        batches_per_epoch=50,
        max_epochs=20,
        lr=1e-3,
        backbone=None,
        backbone_params=None,
        small_classes="replace",
        batch_size=256,
        device="cpu",
        random_state=None,
        verbose=0,
        callbacks=None,
        early_stopping=False,
        validation_fraction=None,
        n_iter_no_change=10,
    ):
        self.embedding_dim = embedding_dim
        self.normalize = normalize
        self.n_classes_per_batch = n_classes_per_batch
        self.n_samples_per_class = n_samples_per_class
        self.batches_per_epoch = batches_per_epoch
        self.max_epochs = max_epochs
        self.lr = lr
        self.backbone = backbone
        self.backbone_params = backbone_params
        self.small_classes = small_classes
        self.batch_size = batch_size
        self.device = device
        self.random_state = random_state
        self.verbose = verbose
        self.callbacks = callbacks
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change

    def _build_loss(self, embedding_dim, n_classes):
        """The loss module; ``n_classes`` is the number of classes of ``y``."""
        raise NotImplementedError

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y):
        """Train the embedding on P x K batches drawn from (X, y).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, c, h, w)
            Training samples, finite.
        y : array-like of shape (n_samples,)
            Class labels of any type.

        Returns
        -------
        self : object
            The fitted estimator.

        Raises
        ------
        ValueError
            If X has NaN or inf or is not 2-D or 4-D; if fewer than
            ``n_classes_per_batch`` classes (2 when it is None) have
            ``n_samples_per_class`` samples; with ``small_classes="raise"``,
            if any class has fewer than ``n_samples_per_class`` samples; or
            if training diverges (a non-finite loss or weight; the message
            names the learning rate). The estimator is then left as it was
            before ``fit``.
        """
        return self._atomically("_fit", X, y)

    def _fit(self, X, y):
        X, y = self._validate_X_y(X, y)
        encoder = LabelEncoder().fit(y)
        y_enc = encoder.transform(y)
        held_out = self._held_out_classes(y_enc)
        X_train, y_train, validation = X, y_enc, None
        if held_out is not None:
            X_train = X[~held_out]
            y_train = LabelEncoder().fit_transform(y_enc[~held_out])
            validation = self._validation(X[held_out], y_enc[held_out])
        self.device_ = resolve_device(self.device)
        sampler = self._batch_sampler(y_train)
        sampler._class_index(y_train)  # fail on too-small classes before training
        # The loss may hold a weight per training class (ArcFace, CosFace).
        self._n_loss_classes = int(y_train.max()) + 1
        with seeded(self._seed(), self.device_):
            module = self._build_network()
            stream = _BatchStream(
                torch.from_numpy(X_train).to(self.device_),
                torch.from_numpy(y_train).to(self.device_),
                sampler,
            )
            module, history, stop_reason = self._train(module, stream, validation)
        self.module_ = module
        self._record_training(history, stop_reason)
        self.classes_ = encoder.classes_
        return self

    #: Validation episodes: ``n_way`` held-out classes (or as many as there
    #: are), 1 support sample each, and ``n_samples_per_class - 1`` queries.
    validation_n_way = 5

    def _validation(self, X_valid, y_valid):
        """What scores the embedding in training on held-out classes.

        Fixed episodes of up to :attr:`validation_n_way` held-out classes,
        one support sample and ``n_samples_per_class - 1`` queries per class,
        classified by the nearest prototype in squared Euclidean distance
        between embeddings (the metric ``transform`` serves). Returns a
        callable giving ``(valid_loss, valid_acc)``: the mean query log-loss
        of the softmax over negative distances, and the mean accuracy.
        """
        n_query = self.n_samples_per_class - 1
        counts = np.bincount(y_valid)
        eligible = int(np.sum(counts >= 1 + n_query))
        if eligible < 2:
            raise ValueError(
                f"The {np.count_nonzero(counts)} held-out validation classes need "
                f"n_samples_per_class = {self.n_samples_per_class} samples each, "
                f"and only {eligible} have them; validation episodes need 2. "
                "Raise validation_fraction."
            )
        sampler = EpisodeSampler(
            min(self.validation_n_way, eligible),
            1,
            n_query,
            self.n_validation_episodes,
            random_state=self._seed(),
        )

        def score(module):
            view = copy.copy(self)  # the estimator, embedding with the module
            view.module_ = module
            z = view._embed(X_valid)
            classes = torch.arange(sampler.n_way, device=z.device)
            y_q = classes.repeat_interleave(n_query)
            losses, accuracies = [], []
            for support, query in sampler.split(y=y_valid):
                logits = -torch.cdist(z[query], z[support]).square()
                losses.append(float(F.cross_entropy(logits, y_q)))
                accuracies.append(float((logits.argmax(1) == y_q).float().mean()))
            return float(np.mean(losses)), float(np.mean(accuracies))

        return score

    def _build_network(self):
        """The untrained network for samples of ``input_shape_``."""
        shape = self.input_shape_
        backbone = build_backbone(
            self.backbone, shape, self.embedding_dim, self.backbone_params
        )
        with torch.no_grad():
            out = backbone.eval()(torch.zeros(1, *shape)).shape[1]
        loss = self._build_loss(out, self._n_loss_classes)
        return MetricNetwork(backbone.train(), loss, self.normalize)

    def _batch_sampler(self, y_enc):
        """The P x K sampler for encoded labels, P chosen if left to None."""
        P = self.n_classes_per_batch
        if P is None:
            counts = np.bincount(y_enc)
            # With "raise", the sampler names the too-small classes.
            drawable = (
                int((counts >= self.n_samples_per_class).sum())
                if self.small_classes == "skip"
                else len(counts)
            )
            if drawable < 2:
                which = (
                    f" with at least n_samples_per_class={self.n_samples_per_class}"
                    f" samples (of {len(counts)})"
                    if self.small_classes == "skip"
                    else ""
                )
                raise ValueError(
                    f"{type(self).__name__} trains on batches of at least 2 "
                    f"classes; y has {drawable} class{'' if drawable == 1 else 'es'}"
                    f"{which}."
                )
            P = min(drawable, self.max_auto_classes)
        return ClassBalancedBatchSampler(
            P,
            self.n_samples_per_class,
            self.batches_per_epoch,
            small_classes=self.small_classes,
            random_state=np.random.RandomState(self._seed()),
        )

    def _train(self, module, stream, validation=None):
        """Train ``module`` on the batch stream with skorch.

        The loss is the net's criterion and a submodule of its module, so
        its parameters are in the optimizer once. Returns the trained module,
        skorch's history and why training stopped.
        """
        module = module.to(self.device_)
        if self.max_epochs == 0:
            return module, History(), "max_epochs"
        return self._train_net(
            module,
            stream,
            steps_per_epoch=self.batches_per_epoch,
            validation=validation,
            criterion=module.loss,
            optimizer=torch.optim.Adam,
            lr=self.lr,
        )


def _copy_module(value):
    """A private copy of a module parameter, so that fit never changes it."""
    return copy.deepcopy(value) if isinstance(value, nn.Module) else value
