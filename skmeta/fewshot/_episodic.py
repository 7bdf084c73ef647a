"""Meta-training on N-way K-shot episodes: the base of the metric-based methods."""

import numpy as np
import torch
from skorch import NeuralNet
from skorch.history import History
from torch import nn
from torch.utils.data import IterableDataset

from .._arrays import _MemmapBatches
from .._docs import EPISODIC
from .._runtime import seeded, trains
from .._sklearn import _fit_context
from ..episodes import EpisodeSampler
from ..training import train_module
from ._base import FewShotClassifier, _group_class_counts

__all__ = ["EpisodicClassifier"]


class _EpisodeStream(IterableDataset):
    """One epoch of training episodes, as skorch batches.

    ``X`` is a tensor on the device, or samples on disk read by index
    (:class:`~skmeta._arrays._MemmapBatches`), an episode at a time.
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
            index = np.concatenate([support, query])
            if isinstance(self.X, torch.Tensor):
                x = self.X[torch.from_numpy(index).to(self.X.device)]
            else:  # samples on disk (a memmap): read this episode's alone
                x = torch.from_numpy(self.X[index]).to(self.y_episode.device)
            if self.augment is not None:
                x = self.augment(x)
            yield {"x": x, "y": self.y_episode}, self.y_query


class EpisodicClassifier(FewShotClassifier):
    """Base of few-shot classifiers meta-trained on N-way K-shot episodes.

    The module of a subclass (see :class:`FewShotClassifier`) also has a
    ``forward(x, y)`` that takes an
    episode as :class:`_EpisodeStream` yields it and returns query logits of
    shape ``(n_query_rows, n_way)``, trained with ``_criterion``
    (cross-entropy unless a subclass sets another).
    """

    _doc_values = EPISODIC

    #: Episodes read X by index: a memmap stays on disk in ``fit``.
    _fits_from_batches = True

    #: What one training step is, in words (the CLI's report).
    _step_noun = "episodes"

    #: Loss of the query logits against the query labels, a module class.
    _criterion = nn.CrossEntropyLoss

    #: Episode width used when ``n_way=None``: the 60-way training episodes of
    #: Snell et al. (2017) on Omniglot, or all classes when there are fewer.
    max_auto_way = 60

    _fit_doc = {
        "extended": """The training data then serves as the support set, so ``predict``
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

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, groups=None):
        """Meta-train on episodes drawn from the base classes in (X, y).

        {fit}
        """
        return self._atomically("_fit", X, y, groups, fresh=True)

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
            y_t = torch.from_numpy(y_train).to(self.device_)
            if isinstance(X_train, _MemmapBatches):  # read an episode at a time
                X_t = X_train
            else:
                X_t = torch.from_numpy(X_train).to(self.device_)
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
        least 1 each. For images larger than 28x28, the defaults also keep an
        episode within :attr:`max_episode_pixels`.
        """
        n_classes = counts.shape[1]
        k_min = 1 if self.k_shot is None else self.k_shot
        q_min = 1 if self.n_query is None else self.n_query
        usable = int(np.sum(counts >= k_min + q_min, axis=1).max())
        n_way = self._n_way(n_classes if self.n_way is not None else usable)
        most = self._max_episode_samples()
        if self.n_way is None:
            n_way = max(2, min(n_way, most // (k_min + q_min)))
        smallest = int(np.sort(counts, axis=1)[:, -min(n_way, n_classes)].max())
        k_shot = self.k_shot
        if k_shot is None:
            k_shot = max(1, min(self.default_k_shot, smallest - q_min))
        n_query = self.n_query
        if n_query is None:
            default = min(self._default_n_query(n_way, k_shot), most // n_way - k_shot)
            n_query = max(1, min(default, smallest - k_shot))
        return n_way, k_shot, n_query

    #: Pixels (height x width, summed over the images) of a training episode of
    #: the default shape, at most: 480 images of 42x42. Activations grow with
    #: the pixels: one default episode of 480 RGB images of 84x84 peaked at
    #: 4.1 GB with Conv4 on a CPU, and its buffers, too large for the heap,
    #: were mapped and unmapped every step. Images of 28x28 are not limited.
    max_episode_pixels = 480 * 42 * 42

    def _max_episode_samples(self):
        """Samples of a default training episode at most, for the input shape."""
        if len(self.input_shape_) != 3:
            return np.iinfo(np.int64).max
        height, width = self.input_shape_[1:]
        return max(2, self.max_episode_pixels // (height * width))

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

    #: The skorch net class that meta-trains the module.
    _net_class = NeuralNet

    def _meta_train(self, module, stream, validation=None):
        """Train ``module`` on the episode stream with skorch.

        Returns the trained module, skorch's history and why training
        stopped (see :func:`skmeta.training.train_module`). Subclasses change the
        training through the hooks ``_training_batches``, ``_meta_lr``,
        ``_schedule``, ``_optimizer_arguments`` and the attributes ``_net_class``
        and ``_criterion``.
        """
        batches = self._training_batches(stream)
        return train_module(
            self,
            module,
            batches,
            steps_per_epoch=len(batches),
            # Samples on disk are not read whole for their scale.
            inputs=stream.X if isinstance(stream.X, torch.Tensor) else None,
            validation=validation,
            net_class=self._net_class,
            criterion=self._criterion,
            lr=self._meta_lr(),
            callbacks=self._schedule(len(batches)),
        )

    def _training_batches(self, stream):
        """What skorch iterates over: one episode per optimizer step."""
        return stream

    def _meta_lr(self):
        return self.lr
