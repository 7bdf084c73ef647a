"""Model-Agnostic Meta-Learning (Finn, Abbeel & Levine, 2017)."""

from numbers import Integral, Real

import torch

from .._catalogue import episodic_parameters
from .._docs import META_BATCHES
from .._params import Param, changed
from .._sklearn import Interval
from ..training import optimizer_arguments
from ._gradient_based import GradientBasedClassifier, GradientNetwork, sgd_steps
from ._regression import TASKS, GradientBasedRegressor, regression_parameters

__all__ = ["MAMLClassifier", "MAMLNetwork", "MAMLRegressor"]


class MAMLNetwork(GradientNetwork):
    """The torch side of :class:`MAMLClassifier` and :class:`MAMLRegressor`.

    One meta-batch per forward pass.

    Parameters
    ----------
    backbone : torch.nn.Module
        Maps inputs to features ``(batch, d)``.
    embedding_dim : int
        ``d``.
    n_way : int
        Outputs of the head (1 for regression).
    n_inner_steps : int
        Inner SGD steps on each task's support set.
    inner_lr : float
        Inner step size ``α``.
    first_order : bool
        Drop the second-order term of the meta-gradient (FOMAML).
    regression : bool, default=False
        Mean squared error as the task loss, instead of cross-entropy.
    """

    def __init__(
        self,
        backbone,
        embedding_dim,
        n_way,
        n_inner_steps,
        inner_lr,
        first_order,
        *,
        regression=False,
    ):
        super().__init__(backbone, embedding_dim, n_way, regression=regression)
        self.n_inner_steps = n_inner_steps
        self.inner_lr = inner_lr
        self.first_order = first_order

    def adapt_params(self, x_support, y_support):
        """``θ'``: ``n_inner_steps`` steps ``θ ← θ − α ∇_θ L_support(θ)``.

        Differentiable with respect to ``θ`` (second order unless
        ``first_order``), so that the query loss at ``θ'`` back-propagates
        to ``θ``.
        """
        return sgd_steps(
            self,
            self.params(),
            x_support,
            y_support,
            self.n_inner_steps,
            self.inner_lr,
            create_graph=not self.first_order,
        )

    def forward(self, x, y=None):
        """Query outputs of a meta-batch after each task's inner loop.

        Parameters
        ----------
        x : torch.Tensor of shape (T, n_rows, ...) or (n, ...)
            ``T`` tasks, each with its support rows then its query rows. A
            tensor without the task axis is passed through ``θ``.
        y : torch.Tensor of shape (T, n_rows), or None
            Episode class (int64) of each support row and -1 for query rows;
            for regression, the target (float32) of each support row and
            NaN for query rows.

        Returns
        -------
        torch.Tensor of shape (T * n_query_rows, n_way), or (T * n_query_rows,)
            Each task's query logits (for regression, predictions) under its
            adapted weights ``θ'_i``, task after task: their mean task loss
            is the meta-objective ``(1/T) Σ_i L_query_i(θ'_i)`` (eq. 1 of
            the paper, averaged).
        """
        if y is None:
            return super().forward(x)
        logits = []
        for x_task, y_task in zip(x, y, strict=True):
            support = self.is_support(y_task)
            adapted = self.adapt_params(x_task[support], y_task[support])
            logits.append(self.outputs(adapted, x_task[~support]))
        return torch.cat(logits)


#: MAML's own parameters, with the paper's values for 5-way Omniglot.
MAML_PARAMETERS = {
    "n_inner_steps": Param(
        "int",
        1,
        [Interval(Integral, 1, None, closed="left")],
        """Inner SGD steps per task in training (1 for 5-way Omniglot in
        the paper; 5 for 20-way and miniImageNet).""",
    ),
    "inner_lr": Param(
        "float",
        0.4,
        [Interval(Real, 0, None, closed="neither")],
        """Inner step size ``α``, in training and at adaptation (the
        paper's Omniglot value; it uses 0.1 for 20-way, 0.01 for
        miniImageNet).""",
    ),
    "n_inner_steps_test": Param(
        "int",
        3,
        [Interval(Integral, 1, None, closed="left")],
        """SGD steps of :meth:`adapt`, of ``fit``'s default support and
        of each evaluation episode (3 for 5-way Omniglot in the paper).
        At least 1: the support labels reach a prediction only through
        these steps (see Notes).""",
    ),
    "meta_batch_size": Param(
        "int",
        32,
        [Interval(Integral, 1, None, closed="left")],
        "Tasks per outer step (32 for 5-way Omniglot in the paper).",
    ),
    "first_order": Param(
        "bool",
        False,
        ["boolean"],
        "First-order MAML: treat the inner gradients as constants.",
    ),
}


class _MAML:
    """MAML whatever the task: its network, outer optimizer and fine-tuning."""

    _learning_rates = ("lr", "inner_lr")

    def _optimizer_arguments(self, module):
        # No backbone_lr: the inner loop adapts every weight, the backbone's too.
        return optimizer_arguments(module, self.optimizer, self.optimizer_params)

    def _build_module(self, backbone, embedding_dim):
        return MAMLNetwork(
            backbone,
            embedding_dim,
            self._head_outputs(),
            self.n_inner_steps,
            self.inner_lr,
            self.first_order,
            regression=self._regression,
        )

    def _fine_tune(self, params, x, y):
        return sgd_steps(
            self.module_, params, x, y, self.n_inner_steps_test, self.inner_lr
        )


class MAMLClassifier(_MAML, GradientBasedClassifier):
    """Few-shot classifier of Model-Agnostic Meta-Learning (MAML).

    MAML meta-learns an initialisation ``θ`` of a whole classifier (a
    backbone and a linear head of ``n_way`` outputs) from which a few
    gradient steps on a task's support set give a good classifier for that
    task (Finn et al., 2017, Algorithm 2). For each task ``T_i`` of a
    meta-batch, the inner loop takes ``n_inner_steps`` SGD steps on the
    support loss, ``θ'_i = θ − α ∇_θ L_{T_i}^{support}(θ)`` (eq. 1, repeated),
    and the outer loop updates ``θ`` with Adam on the mean query loss
    ``Σ_i L_{T_i}^{query}(θ'_i)`` (eq. 2), differentiating through the inner
    loop: second order by default, the Hessian-vector term dropped with
    ``first_order=True`` (FOMAML, §5.2).

    ``fit`` streams ``meta_batch_size`` episodes per outer step to a skorch
    net (history, callbacks and progress bar as usual, one skorch batch per
    meta-batch); the training data then serves as the support set.
    :meth:`adapt` fine-tunes a *copy* of ``θ``: ``n_inner_steps_test`` SGD
    steps of size ``inner_lr`` on the whole support set; ``θ`` itself never
    changes after ``fit``. ``evaluate_episodes`` does the same for each
    episode (slower than metric-based methods: one fine-tuning per episode).

    {parameters}

    Attributes
    ----------
    module_ : MAMLNetwork
        The meta-learned network ``θ``, on ``device_``; never changed by
        ``adapt``, ``predict`` or evaluation.
    adapted_params_ : dict of str to torch.Tensor
        The weights fine-tuned on the current support set; the head has
        ``len(classes_)`` outputs.
    history_ : skorch.History
        skorch's record of meta-training: the mean query loss after
        adaptation of each meta-batch, epoch times.
    {training_attributes}

    See Also
    --------
    ReptileClassifier : A first-order meta-learner of an initialisation.
    PrototypicalClassifier : Metric-based; adapts without gradient steps.

    Notes
    -----
    Batch norm uses the statistics of the batch it is given, in training
    and at test time (as in the paper's code): the support set during
    fine-tuning and each chunk of ``batch_size`` queries when predicting. On
    images, a prediction therefore depends on the other samples of its
    chunk; predict all queries of an episode together, as the paper does.
    Tabular backbones (``"mlp"``) have no batch norm.

    When the support set has another number of classes than the head's
    ``n_way`` outputs (for instance ``fit``'s default support of all the
    base classes, or 20-way episodes of a 5-way model), adaptation starts
    from a zero-initialised head of one output per support class; see
    :meth:`adapt`.

    ``transform(X)`` returns the features of the meta-learned backbone
    ``θ`` (not of the adapted copy), of shape ``(n_samples, embedding_dim)``.

    Fine-tuning is full-batch: the whole support set in one pass.

    ``n_inner_steps_test`` is at least 1, and an error otherwise (also when set
    after ``fit``): without a step, a prediction never reads the support
    labels. The meta-learned head's output ``j`` stands for no class in
    particular (each training episode gives its classes to the outputs in
    random order), so ``θ`` as it is predicts at chance; a zero head predicts
    uniform probabilities, every query ``classes_[0]``.

    References
    ----------
    .. [1] C. Finn, P. Abbeel, S. Levine. "Model-Agnostic Meta-Learning for
       Fast Adaptation of Deep Networks". ICML 2017.
       https://arxiv.org/abs/1703.03400

    Examples
    --------
    >>> from skmeta import MAMLClassifier
    >>> clf = MAMLClassifier(max_epochs=1, meta_batch_size=4, random_state=0)
    {adapt_example}
    """

    _doc_values = META_BATCHES

    _parameters = episodic_parameters(
        MAML_PARAMETERS,
        **GradientBasedClassifier.parameter_changes(),
        k_shot={
            "doc": """Support samples per class in training episodes (the inner
            loop's data)."""
        },
        episodes_per_epoch={
            "doc": """Training episodes (tasks) per epoch; they form
            ``ceil(episodes_per_epoch / meta_batch_size)`` outer steps."""
        },
        lr={
            "doc": """The outer loop's learning rate ``β`` (the paper's, with
            Adam)."""
        },
        optimizer={"doc": "The outer loop's optimizer: Adam in the paper."},
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
        optimizer="adam",
        optimizer_params=None,
        n_inner_steps=1,
        inner_lr=0.4,
        n_inner_steps_test=3,
        meta_batch_size=32,
        first_order=False,
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
        self.optimizer = optimizer
        self.optimizer_params = optimizer_params
        self.n_inner_steps = n_inner_steps
        self.inner_lr = inner_lr
        self.n_inner_steps_test = n_inner_steps_test
        self.meta_batch_size = meta_batch_size
        self.first_order = first_order
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


class MAMLRegressor(_MAML, GradientBasedRegressor):
    """Few-shot regressor of Model-Agnostic Meta-Learning (MAML).

    MAML meta-learns an initialisation ``θ`` of a regression network (a
    backbone and a linear head of one output) from which a few gradient
    steps on ``K`` samples of a new task give a good regressor for that
    task (Finn et al., 2017, section 3.1 and 5.1). Tasks are the groups of
    ``fit(X, y, groups)``. Each training task draws ``k_shot + n_query`` of
    its samples; the inner loop takes ``n_inner_steps`` SGD steps on the
    mean squared error of the ``k_shot`` support samples,
    ``θ'_i = θ − α ∇_θ L_{T_i}^{support}(θ)``, and the outer loop updates
    ``θ`` with Adam on the mean squared error of the queries under ``θ'_i``,
    averaged over ``meta_batch_size`` tasks (eq. 1 and 2 of the paper),
    second order by default, first order with ``first_order=True``.

    ``fit`` runs the outer steps through a skorch net (history, callbacks
    and progress bar as usual, one skorch batch per meta-batch).
    :meth:`adapt` fine-tunes a *copy* of ``θ`` on a new task's samples
    (``n_inner_steps_test`` full-batch SGD steps of size ``inner_lr``);
    ``predict`` then gives its outputs, ``score`` its R². After ``fit``,
    until an ``adapt``, the support set is the whole training data taken as
    one task.

    Defaults are the paper's sinusoid set-up: the 1-40-40-1 ReLU network
    (for one feature), one inner step of ``α = 0.01`` on ``K = 5`` samples,
    Adam at ``β = 1e-3``, 25 tasks per outer step, 10 steps at adaptation.

    {parameters}

    Attributes
    ----------
    module_ : MAMLNetwork
        The meta-learned network ``θ``, on ``device_``; never changed by
        ``adapt`` or ``predict``.
    adapted_params_ : dict of str to torch.Tensor
        The weights fine-tuned on the current support set.
    history_ : skorch.History
        skorch's record of meta-training: the mean query loss (mean squared
        error) after adaptation of each meta-batch, epoch times.
    {training_attributes}

    See Also
    --------
    ReptileRegressor : A first-order meta-learner of an initialisation.
    MAMLClassifier : MAML for N-way K-shot classification.

    Notes
    -----
    Without ``groups``, the whole of (X, y) is one task: every training task
    draws its ``k_shot + n_query`` samples from all of (X, y). This is how
    scikit-learn's tools call ``fit(X, y)`` (``cross_validate``, a
    ``Pipeline``); give ``groups`` to meta-learn across tasks. To score a
    new task, ``adapt`` to its few samples, then ``score`` its others.

    ``transform(X)`` returns the features of the meta-learned backbone
    ``θ`` (not of the adapted copy), of shape ``(n_samples, embedding_dim)``.

    Fine-tuning is full-batch: the whole support set in one pass (for
    ``fit``'s default support, the whole training data). Batch norms, in a
    backbone that has them, normalise with the statistics of the batch they
    are given, as in :class:`MAMLClassifier`.

    ``n_inner_steps_test`` is at least 1, as for :class:`MAMLClassifier`.

    References
    ----------
    .. [1] Finn et al. (2017), the MAML paper: see :class:`MAMLClassifier`.

    Examples
    --------
    >>> import numpy as np
    >>> from skmeta import MAMLRegressor
    >>> rng = np.random.default_rng(0)
    >>> amplitude, phase = rng.uniform(0.1, 5, 50), rng.uniform(0, np.pi, 50)
    >>> X = rng.uniform(-5, 5, (50, 20, 1))
    >>> y = amplitude[:, None] * np.sin(X[..., 0] - phase[:, None])
    >>> groups = np.repeat(np.arange(50), 20)
    >>> reg = MAMLRegressor(max_epochs=1, random_state=0)
    >>> reg = reg.fit(X.reshape(-1, 1), y.ravel(), groups)
    >>> reg = reg.adapt(X[0, :5], y[0, :5])
    >>> reg.predict(X[0, 5:8]).shape
    (3,)
    """

    _doc_values = TASKS

    _parameters = regression_parameters(
        changed(
            MAML_PARAMETERS,
            {
                "n_inner_steps": {
                    "doc": """Inner SGD steps per task in training (1 in the
                    paper's sinusoid experiment)."""
                },
                "inner_lr": {
                    "default": 0.01,
                    "doc": """Inner step size ``α``, in training and at
                    adaptation (the paper's for the sinusoid).""",
                },
                "n_inner_steps_test": {
                    "default": 10,
                    "doc": """SGD steps of :meth:`adapt` and of ``fit``'s default
                    support (the paper fine-tunes the sinusoid model for up to
                    10). At least 1.""",
                },
                "meta_batch_size": {
                    "default": 25,
                    "doc": """Tasks per outer step (25 for the sinusoid in the
                    authors' code).""",
                },
            },
        ),
        lr={"doc": "The outer loop's learning rate ``β`` (the paper's, with Adam)."},
        optimizer={"doc": "The outer loop's optimizer: Adam in the paper."},
    )

    def __init__(
        self,
        k_shot=5,
        n_query=None,
        *,
        episodes_per_epoch=100,
        max_epochs=25,
        lr=1e-3,
        optimizer="adam",
        optimizer_params=None,
        n_inner_steps=1,
        inner_lr=0.01,
        n_inner_steps_test=10,
        meta_batch_size=25,
        first_order=False,
        embedding_dim=40,
        backbone=None,
        backbone_params=None,
        batch_size=256,
        device="cpu",
        precision="float32",
        random_state=None,
        verbose=0,
        callbacks=None,
    ):
        self.k_shot = k_shot
        self.n_query = n_query
        self.episodes_per_epoch = episodes_per_epoch
        self.max_epochs = max_epochs
        self.lr = lr
        self.optimizer = optimizer
        self.optimizer_params = optimizer_params
        self.n_inner_steps = n_inner_steps
        self.inner_lr = inner_lr
        self.n_inner_steps_test = n_inner_steps_test
        self.meta_batch_size = meta_batch_size
        self.first_order = first_order
        self.embedding_dim = embedding_dim
        self.backbone = backbone
        self.backbone_params = backbone_params
        self.batch_size = batch_size
        self.device = device
        self.precision = precision
        self.random_state = random_state
        self.verbose = verbose
        self.callbacks = callbacks

    def fit(self, X, y, groups=None):
        """Meta-train on the tasks of (X, y), each group of ``groups`` a task.

        {fit}
        """
        return super().fit(X, y, groups)
