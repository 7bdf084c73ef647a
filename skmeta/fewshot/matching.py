"""Matching Networks (Vinyals, Blundell, Lillicrap, Kavukcuoglu & Wierstra, 2016)."""

import copy
from numbers import Integral, Real
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from .._catalogue import episodic_parameters
from .._docs import METRIC_BASED
from .._params import Param, registry_constraints
from .._sklearn import Interval
from ..distances import DISTANCES, get_distance, l2_normalize
from ._base import EpisodicNetwork
from ._episodic import EpisodicClassifier

__all__ = [
    "AttentionLSTM",
    "MatchingClassifier",
    "MatchingNetwork",
    "SupportSetLSTM",
]


class SupportSetLSTM(nn.Module):
    r"""Full context embedding of the support set, g (Vinyals et al., 2016, A.2).

    A bidirectional LSTM reads the support embeddings ``g'(x_i)`` as a
    sequence, in the order given, and each sample's embedding becomes

    .. math::

        g(x_i, S) = \overrightarrow{h}_i + \overleftarrow{h}_i + g'(x_i)

    so every support embedding depends on the whole support set.

    Parameters
    ----------
    embedding_dim : int
        Size ``d`` of the embeddings; also the LSTMs' hidden size.

    Notes
    -----
    Input: ``(n_support, d)``. Output: ``(n_support, d)``.
    """

    def __init__(self, embedding_dim):
        super().__init__()
        self.lstm = nn.LSTM(
            embedding_dim, embedding_dim, batch_first=True, bidirectional=True
        )

    def forward(self, z_support):
        out, _ = self.lstm(z_support.unsqueeze(0))
        forward, backward = out[0].chunk(2, dim=1)
        return forward + backward + z_support


class AttentionLSTM(nn.Module):
    r"""Full context embedding of the queries, f (Vinyals et al., 2016, A.1).

    ``f(x̂, S) = attLSTM(f'(x̂), g(S), K)``: for ``k = 1 ... K``

    .. math::

        \hat h_k, c_k &= \mathrm{LSTM}(f'(\hat x), [h_{k-1}, r_{k-1}], c_{k-1}) \\
        h_k &= \hat h_k + f'(\hat x) \\
        r_k &= \sum_i a(h_k, g(x_i))\, g(x_i), \quad
        a(h, g(x_i)) = \operatorname{softmax}_i(h^\top g(x_i))

    starting from ``h_0 = f'(x̂)``, ``c_0 = 0``; ``f(x̂, S) = h_K``. The paper's
    LSTM state ``[h, r]`` is realised as an :class:`torch.nn.LSTMCell` with
    input ``[f'(x̂), r]`` and state ``(h, c)``: its gates compute the same
    affine function of ``f'(x̂)``, ``h`` and ``r``. Each query is processed
    independently of the others.

    Parameters
    ----------
    embedding_dim : int
        Size ``d`` of the embeddings.
    n_steps : int
        Processing steps ``K``.

    Notes
    -----
    Input: queries ``(n_query, d)`` and context support embeddings
    ``(n_support, d)``. Output: ``(n_query, d)``.
    """

    def __init__(self, embedding_dim, n_steps):
        super().__init__()
        self.n_steps = n_steps
        self.cell = nn.LSTMCell(2 * embedding_dim, embedding_dim)

    @staticmethod
    def _readout(h, g_support):
        return (h @ g_support.T).softmax(dim=1) @ g_support

    def forward(self, z_query, g_support):
        h, c = z_query, torch.zeros_like(z_query)
        for _ in range(self.n_steps):
            r = self._readout(h, g_support)
            h_hat, c = self.cell(torch.cat([z_query, r], dim=1), (h, c))
            h = h_hat + z_query
        return h


class MatchingSupport(NamedTuple):
    """What a Matching Network keeps of an embedded support set."""

    #: Context embeddings g(x_i, S), shape (n_support, d); L2-normalised
    #: when the network compares by cosine.
    g: torch.Tensor
    #: Episode class of each support sample, (n_support,), int64.
    labels: torch.Tensor
    #: Classes of the episode.
    n_way: int


class MatchingNetwork(EpisodicNetwork):
    """The torch side of :class:`MatchingClassifier`.

    Parameters
    ----------
    backbone : torch.nn.Module
        Maps inputs to embeddings ``(batch, d)``: ``f'`` and ``g'``, shared.
    embedding_dim : int
        ``d``, the backbone's output size (for the FCE LSTMs).
    fce : bool, default=False
        Use full context embeddings (:class:`SupportSetLSTM`,
        :class:`AttentionLSTM`); otherwise ``f = f'`` and ``g = g'``.
    fce_steps : int, default=5
        Processing steps ``K`` of the attention LSTM.
    temperature : float, default=0.1
        Similarities are divided by it before the softmax.
    distance : torch.nn.Module or None, default=None
        ``None`` compares by cosine similarity (the paper's); a distance
        module (see :mod:`skmeta.distances`) compares by its negative.
    """

    def __init__(
        self,
        backbone,
        embedding_dim,
        fce=False,
        fce_steps=5,
        temperature=0.1,
        distance=None,
    ):
        super().__init__()
        self.backbone = backbone
        self.temperature = temperature
        self.distance = distance
        self.support_lstm = SupportSetLSTM(embedding_dim) if fce else None
        self.query_lstm = AttentionLSTM(embedding_dim, fce_steps) if fce else None

    def encode_support(self, z_support, y_support, n_way=None):
        """Context embeddings ``g(x_i, S)`` and the labels of the support set.

        ``y_support`` holds classes 0 to ``n_way - 1`` (default: its maximum
        plus one). Returns a :class:`MatchingSupport`.
        """
        n_way = int(y_support.max()) + 1 if n_way is None else n_way
        g = self.support_lstm(z_support) if self.support_lstm is not None else z_support
        if self.distance is None:
            g = l2_normalize(g, dim=1)
        return MatchingSupport(g, y_support, n_way)

    def attention(self, support, z_query, out=None):
        """Attention ``a(x̂, x_i)`` of each query over the support set (eq. 2).

        ``a(x̂, x_i) = softmax_i(c(f(x̂, S), g(x_i, S)) / temperature)`` with
        ``c`` the cosine similarity, or ``c = -d`` for a distance module
        ``d``. Returns ``(n_query, n_support)``; rows sum to 1.

        ``out``, a float32 tensor of shape ``(n_query, n_support)``, receives
        the attention, computed in place and in float32 (whatever the
        autocast precision), without autograd: at inference over a large
        support set this tensor is most of the memory, and one buffer reused
        for every chunk of queries allocates it once instead of three times
        per chunk.
        """
        f = z_query
        if self.query_lstm is not None:
            f = self.query_lstm(z_query, support.g)
        if self.distance is None:
            f = l2_normalize(f, dim=1)
            if out is None:
                similarity = f @ support.g.T
            else:
                similarity = torch.matmul(f.float(), support.g.float().T, out=out)
        else:
            distance = self.distance(f, support.g)
            similarity = -distance if out is None else torch.neg(distance, out=out)
        if out is None:
            return (similarity / self.temperature).softmax(dim=1)
        out.div_(self.temperature)
        out.sub_(out.amax(dim=1, keepdim=True)).exp_()
        return out.div_(out.sum(dim=1, keepdim=True))

    def query_logits(self, support, z_query, out=None):
        """Log class probabilities of the queries, ``(n_query, n_way)`` (eq. 1).

        ``P(y = k | x̂, S) = Σ_i a(x̂, x_i) [y_i = k]``: the attention mass on
        the support samples of class ``k``. Its log (clamped at the smallest
        positive float, never ``-inf``) is returned, so the softmax of these
        logits is ``P`` itself and their NLL loss is the paper's objective.
        ``out`` is the attention's buffer (see :meth:`attention`).
        """
        a = self.attention(support, z_query, out)
        # Attention mass per class, as segment sums over the support samples.
        p = a.new_zeros(len(a), support.n_way).index_add(1, support.labels, a)
        return p.clamp_min(torch.finfo(p.dtype).tiny).log()


class MatchingClassifier(EpisodicClassifier):
    r"""Few-shot classifier of Matching Networks, meta-trained on episodes.

    A query ``x̂`` is labelled by attention over the support set
    ``S = {(x_i, y_i)}`` (Vinyals et al., 2016, eq. 1-2):

    .. math::

        P(y = k \mid \hat x, S) = \sum_i a(\hat x, x_i)\, [y_i = k], \qquad
        a(\hat x, x_i) = \frac{e^{c(f(\hat x), g(x_i)) / T}}
                               {\sum_j e^{c(f(\hat x), g(x_j)) / T}}

    with ``c`` the cosine similarity (or ``c = -d`` for another
    ``distance`` ``d``) and ``T`` the ``temperature`` (1 in the paper, 0.1
    by default here, see below). Without full context embeddings
    (``fce=False``) ``f`` and ``g`` are one backbone; with ``fce=True`` the
    support embeddings are read by a bidirectional LSTM and each query
    attends to them through an attention LSTM of ``fce_steps`` steps (the
    paper's appendix). ``fit`` meta-trains on
    N-way K-shot episodes of the base classes by minimising the negative log
    of ``P`` for the true query classes (Adam, learning rate halved every
    ``lr_step`` episodes); the training data is then the support set.
    :meth:`adapt` takes the support set of novel classes without changing
    the weights. Unlike a prototype method, every support sample is kept:
    predicting costs ``O(n_support)`` per query.

    {parameters}

    Attributes
    ----------
    support_embeddings_ : ndarray of shape (n_support, embedding_dim), dtype float32
        Context-free embeddings ``g'(x_i)`` of the support samples, in the
        order given (the order the FCE's LSTM reads them in).
    support_labels_ : ndarray of shape (n_support,), dtype int64
        Index into ``classes_`` of each support sample.
    module_ : MatchingNetwork
        The meta-trained module, on ``device_``.
    {training_attributes}

    See Also
    --------
    PrototypicalClassifier : One prototype per class instead of every sample.
    RelationClassifier : A learned comparison instead of the cosine.
    sklearn.neighbors.KNeighborsClassifier : A hard, unweighted cousin on raw
        features.
    skmeta.model_selection.evaluate_episodes : Few-shot accuracy with a 95% CI.

    Notes
    -----
    ``decision_function`` returns ``log P(y = k | x̂, S)`` and
    ``predict_proba`` returns ``P`` (the softmax of its log). :meth:`transform`
    returns the context-free embeddings ``f'(x) = g'(x)``: with ``fce=True``
    the full context embeddings depend on a support set, and are computed
    from the current one at prediction time.

    Errors are those of :meth:`fit` (NaN or inf, wrong number of dimensions,
    fewer classes than ``n_way``, too-small classes) and of parameter
    validation, e.g. ``temperature=0`` or ``fce_steps=0`` raise
    ``ValueError`` naming the parameter.

    References
    ----------
    .. [1] O. Vinyals, C. Blundell, T. Lillicrap, K. Kavukcuoglu, D. Wierstra.
       "Matching Networks for One Shot Learning". NeurIPS 2016.
       https://arxiv.org/abs/1606.04080

    Examples
    --------
    >>> from skmeta import MatchingClassifier
    >>> clf = MatchingClassifier(max_epochs=2, random_state=0)
    {adapt_example}
    >>> clf.predict_proba(data.X_novel[25:30]).sum(axis=1).round(3)
    array([1., 1., 1., 1., 1.], dtype=float32)
    """

    _support_attributes = ("support_embeddings_", "support_labels_")
    _doc_values = METRIC_BASED

    _parameters = episodic_parameters(
        {
            "fce": Param(
                "bool",
                False,
                ["boolean"],
                """Full context embeddings: the support set's embeddings pass
                through a bidirectional LSTM (:class:`SupportSetLSTM`, in the
                order the support samples are given) and each query's through an
                attention LSTM over them (:class:`AttentionLSTM`). Needs a
                backbone with trainable parameters or LSTMs to train; adds
                ``O(d²)`` parameters.""",
            ),
            "fce_steps": Param(
                "int",
                5,
                [Interval(Integral, 1, None, closed="left")],
                """Processing steps ``K`` of the attention LSTM (``fce=True``
                only; the paper does not give its value).""",
            ),
            "temperature": Param(
                "float",
                0.1,
                [Interval(Real, 0, None, closed="neither")],
                """Divides the cosine similarities before the softmax. The
                paper's attention is ``temperature=1``, but cosines lie in
                [-1, 1] (in [0, 1] after a ReLU backbone), so its softmax stays
                nearly uniform and learns slowly; 0.1 is the scale 10 of
                cosine classifiers. Smaller
                values sharpen the attention toward the nearest support
                samples. Use 1 with ``distance="sqeuclidean"``, whose distances
                are not bounded.""",
            ),
            "distance": Param(
                "str or torch.nn.Module",
                "cosine",
                registry_constraints(DISTANCES, nn.Module),
                """What ``c`` compares: ``"cosine"`` is the paper's cosine
                similarity; another name of :data:`skmeta.distances.DISTANCES`
                (or a module mapping ``(n, d)`` and ``(m, d)`` to ``(n, m)``
                distances) gives ``c = -d``. ``"sqeuclidean"`` with
                ``temperature=1`` is the Matching Network with Euclidean
                distance of Snell et al. (2017, §2.4 and Fig. 2), which they
                found better than the cosine; with one shot per class it equals
                Prototypical Networks (compare them on your data: the methods
                guide has both on Omniglot).""",
            ),
        },
        batch_size={
            "doc": """Samples per forward pass when embedding, and queries per
            attention pass, outside training."""
        },
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
        lr_step=1000,
        optimizer="adam",
        optimizer_params=None,
        backbone_lr=None,
        fce=False,
        fce_steps=5,
        temperature=0.1,
        distance="cosine",
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
        self.lr_step = lr_step
        self.optimizer = optimizer
        self.optimizer_params = optimizer_params
        self.backbone_lr = backbone_lr
        self.fce = fce
        self.fce_steps = fce_steps
        self.temperature = temperature
        self.distance = distance
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

    #: The module returns log-probabilities: NLL is the paper's loss.
    _criterion = nn.NLLLoss

    def _build_module(self, backbone, embedding_dim):
        # A distance module is copied: fitting must not train the caller's.
        distance = None
        if self.distance != "cosine":
            distance = get_distance(copy.deepcopy(self.distance), embedding_dim)
        return MatchingNetwork(
            backbone,
            embedding_dim,
            fce=self.fce,
            fce_steps=self.fce_steps,
            temperature=self.temperature,
            distance=distance,
        )

    def _set_support(self, z_support, y_support):
        self.support_embeddings_ = z_support.cpu().numpy()
        self.support_labels_ = np.asarray(y_support, dtype=np.int64)

    def _support_logits(self, z_query):
        return self._support_scorer()(z_query)

    def _support_scorer(self):
        """Attention of queries over the support set, prepared once per call."""
        empty = torch.empty(0, device=self.device_)
        device = next(self.module_.parameters(), empty).device
        support = self.module_.encode_support(
            torch.from_numpy(self.support_embeddings_).to(device),
            torch.from_numpy(self.support_labels_).to(device),
            n_way=len(self.classes_),
        )
        # Attention is (queries x support samples): chunks of queries keep it
        # to about half the size of the support embeddings (at least 2**20
        # entries), so memory stays linear in the support set.
        n_support, d = support.g.shape
        budget = max(n_support * d // 2, 1 << 20)
        rows = int(np.clip(budget // max(n_support, 1), 1, self.batch_size))
        # float32 once here, not per chunk (FCE under autocast gives bfloat16).
        support = support._replace(g=support.g.float())
        # One attention buffer for every chunk: a new one per chunk can leave
        # the freed ones on the heap (glibc's dynamic mmap threshold), 2.75
        # to 17 times the embeddings in identical runs.
        buffer = torch.empty(rows, n_support, device=device)

        def score(z_query):
            return torch.cat(
                [
                    self.module_.query_logits(support, chunk, out=buffer[: len(chunk)])
                    for chunk in z_query.split(rows)
                ]
            )

        return score
