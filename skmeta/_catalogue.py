"""The catalogue: the parameters that several estimators share, declared once.

Each group is a dict of name to :class:`~skmeta._params.Param` (default,
constraints, documentation); an estimator composes the groups it has with
``|`` and its own parameters, and changes a shared one with
:func:`~skmeta._params.changed`.
"""

from numbers import Integral, Real

import torch
from torch import nn

from ._params import Param, Parameters, changed, registry_constraints
from ._precision import PRECISIONS
from ._sklearn import Interval, StrOptions
from .backbones import BACKBONES
from .training import OPTIMIZERS


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
        | OPTIMIZER_PARAMETERS
        | own
        | BACKBONE_PARAMETERS
        | IMAGE_PARAMETERS
        | RUNTIME_PARAMETERS
    )
    return Parameters(changed(shared, changes), positional=3)


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
        """1 shows a progress bar of training (on a terminal) and skorch's
        epoch log. What is neither goes to Python's :mod:`logging`, under the
        ``skmeta`` logger at level INFO (``logging.basicConfig(level="INFO")``
        shows it; the ``skmeta`` command does): for the few-shot classifiers,
        a line when the first prediction after ``fit`` embeds the training
        samples as the support set (with 16 test-time views, 16 forward
        passes per sample; ``fit`` itself does not, so a time limit bounds
        it).""",
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
        """The optimizer's learning rate (the backbone's too, unless
        ``backbone_lr`` is set).""",
    ),
    "lr_step": Param(
        "int or None",
        1000,
        [Interval(Integral, 1, None, closed="left"), None],
        "Halve the learning rate every ``lr_step`` episodes; ``None`` keeps it.",
    ),
}

#: The optimizer of the training step, as a pretrained backbone needs it.
OPTIMIZER_PARAMETERS = {
    "optimizer": Param(
        '{"adam", "adamw", "sgd"} or torch.optim.Optimizer class',
        "adam",
        registry_constraints(OPTIMIZERS, type),
        """The optimizer of the training steps: a name of
        :data:`skmeta.training.OPTIMIZERS` (``torch.optim.Adam``, ``AdamW``,
        ``SGD``) or a ``torch.optim.Optimizer`` subclass.""",
    ),
    "optimizer_params": Param(
        "dict or None",
        None,
        [dict, None],
        """Extra arguments of the optimizer (``weight_decay``, ``momentum``,
        ``betas``...). Each is also a parameter ``optimizer__<name>`` of
        ``get_params`` and ``set_params``, as in skorch, so that
        ``GridSearchCV`` can search it (``{"optimizer__weight_decay": [0,
        1e-4]}``).""",
    ),
    "backbone_lr": Param(
        "float or None",
        None,
        [Interval(Real, 0, None, closed="left"), None],
        """The backbone's learning rate, when it should differ from ``lr``
        (the rest of the network's): lower for a pretrained backbone than
        for a new head. 0 freezes the backbone: its weights do not change
        and its batch-norm layers stay in eval mode, so their running
        statistics do not move either (as in every frozen layer, one whose
        parameters all have ``requires_grad=False``). ``None`` trains it at
        ``lr``.""",
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
        '{"auto", "affine", "natural"}, callable or None',
        "auto",
        [StrOptions({"auto", "affine", "natural"}), callable, None],
        """Augmentation of training inputs: ``"affine"`` applies
        :class:`skmeta.augmentation.RandomAffine` (small rotations, shears,
        scalings and shifts, the area uncovered filled with each image's own
        background, so that dark-on-light and light-on-dark images train
        alike), ``"auto"`` does so for images and nothing for tabular data;
        ``"natural"`` applies
        :class:`skmeta.augmentation.NaturalImageAugmentation` (random resized
        crop, horizontal flip, colour jitter, for photographs; the ``images``
        extra installs kornia for it); a callable maps a batch tensor to a
        batch tensor.""",
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
    1 otherwise. Whether views help depends on the model (the benchmarks
    page of the documentation has the measurements). It needs no refit: set
    it on a fitted model and compare with ``evaluate_episodes`` on held-out
    classes.""",
)

#: The views of ``test_time_views="auto"`` for images.
AUTO_TEST_TIME_VIEWS = 16
