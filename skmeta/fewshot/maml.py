"""Model-Agnostic Meta-Learning (Finn, Abbeel & Levine, 2017)."""

from numbers import Integral, Real

import torch

from .._docs import META_BATCHES
from .._params import Param, episodic_parameters
from .._sklearn import Interval
from ..training import optimizer_arguments
from ._gradient_based import GradientBasedClassifier, GradientNetwork, sgd_steps

__all__ = ["MAMLClassifier", "MAMLNetwork"]


class MAMLNetwork(GradientNetwork):
    """The torch side of :class:`MAMLClassifier`: one meta-batch per forward.

    Parameters
    ----------
    backbone : torch.nn.Module
        Maps inputs to features ``(batch, d)``.
    embedding_dim : int
        ``d``.
    n_way : int
        Outputs of the head.
    n_inner_steps : int
        Inner SGD steps on each task's support set.
    inner_lr : float
        Inner step size ``α``.
    first_order : bool
        Drop the second-order term of the meta-gradient (FOMAML).
    """

    def __init__(
        self, backbone, embedding_dim, n_way, n_inner_steps, inner_lr, first_order
    ):
        super().__init__(backbone, embedding_dim, n_way)
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
        """Query logits of a meta-batch after each task's inner loop.

        Parameters
        ----------
        x : torch.Tensor of shape (T, n_rows, ...) or (n, ...)
            ``T`` tasks, each with its support rows then its query rows. A
            tensor without the task axis is classified under ``θ``.
        y : torch.Tensor of shape (T, n_rows), dtype int64, or None
            Episode class of each support row; -1 for query rows.

        Returns
        -------
        torch.Tensor of shape (T * n_query_rows, n_way)
            Each task's query logits under its adapted weights ``θ'_i``,
            task after task: their mean cross-entropy is the meta-objective
            ``(1/T) Σ_i L_query_i(θ'_i)`` (eq. 1 of the paper, averaged).
        """
        if y is None:
            return super().forward(x)
        logits = []
        for x_task, y_task in zip(x, y, strict=True):
            support = y_task >= 0
            adapted = self.adapt_params(x_task[support], y_task[support])
            logits.append(self.logits(adapted, x_task[~support]))
        return torch.cat(logits)


class MAMLClassifier(GradientBasedClassifier):
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
    >>> from skmeta.datasets import load_digits_fewshot
    >>> data = load_digits_fewshot()
    >>> clf = MAMLClassifier(max_epochs=1, meta_batch_size=4, random_state=0)
    >>> clf = clf.fit(data.X_base, data.y_base)
    >>> clf = clf.adapt(data.X_novel[:25], data.y_novel[:25])
    >>> clf.predict(data.X_novel[25:30]).shape
    (5,)
    """

    _learning_rates = ("lr", "inner_lr")
    _doc_values = META_BATCHES

    _parameters = episodic_parameters(
        {
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
        },
        n_way=GradientBasedClassifier.n_way_change,
        backbone=GradientBasedClassifier.backbone_change,
        precision=GradientBasedClassifier.precision_change,
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
        lr_step=None,
        optimizer={"doc": "The outer loop's optimizer: Adam in the paper."},
        backbone_lr=None,
    )

    def _optimizer_arguments(self, module):
        # No backbone_lr: the inner loop adapts every weight, the backbone's too.
        return optimizer_arguments(module, self.optimizer, self.optimizer_params)

    def _build_module(self, backbone, embedding_dim):
        return MAMLNetwork(
            backbone,
            embedding_dim,
            self.n_way_,
            self.n_inner_steps,
            self.inner_lr,
            self.first_order,
        )

    def _fine_tune(self, params, x, y):
        return sgd_steps(
            self.module_, params, x, y, self.n_inner_steps_test, self.inner_lr
        )
