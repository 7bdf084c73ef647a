"""What several test modules share: the estimators, weight comparisons and
MAML's meta-gradient computed by hand.

Importable as ``helpers`` because pytest puts this folder on ``sys.path``.
"""

import copy
import inspect

import pytest
import torch
from sklearn.exceptions import NotFittedError

from skmeta.embedding import EMBEDDERS as _EMBEDDERS
from skmeta.fewshot import (
    CLASSIFIERS,
    MAMLClassifier,
    MatchingClassifier,
    ReptileClassifier,
    TransferClassifier,
)
from skmeta.fewshot import REGRESSORS as _REGRESSORS

#: Every few-shot classifier class, in the registry's order.
FEW_SHOT = list(CLASSIFIERS.values())

#: Every few-shot regressor class.
REGRESSORS = list(_REGRESSORS.values())

#: Every embedder that learns from labels: the presets, then the generic one.
EMBEDDERS = [
    cls for cls in _EMBEDDERS.values() if cls().__sklearn_tags__().target_tags.required
]

#: The embedders built around a fitted teacher (distillation): they need one
#: to fit, so test_distillation.py runs their estimator checks with one.
STUDENTS = [
    cls for cls in _EMBEDDERS.values() if "teacher" in inspect.signature(cls).parameters
]

#: The embedders that learn without labels, ``fit(X)``: self-supervised.
UNSUPERVISED = [
    cls for cls in _EMBEDDERS.values() if cls not in EMBEDDERS and cls not in STUDENTS
]

#: The training lengths of the suite, short enough for 2 CPU cores.
FEW_SHOT_SHORT = dict(max_epochs=2, episodes_per_epoch=4, random_state=0)
EMBEDDER_SHORT = dict(max_epochs=2, batches_per_epoch=4, random_state=0)

#: The training of a few-shot classifier whose tests read what it learnt on
#: the digits (its predictions, its embedding): 20 episodes.
FEW_SHOT_TRAINED = dict(max_epochs=2, episodes_per_epoch=10, random_state=0)

#: A small embedding network: an MLP of one hidden layer of 32 units to 16
#: dimensions (the gradient-based classifiers adapt all of its weights).
SMALL_MLP = dict(embedding_dim=16, backbone_params={"hidden_dims": (32,)})


def short(cls, **params):
    """An estimator of ``cls`` with the suite's short training and ``params``."""
    base = FEW_SHOT_SHORT if cls in FEW_SHOT else EMBEDDER_SHORT
    return cls(**own_params(cls, {**base, **params}))


def short_estimators():
    """A short-training instance of every few-shot classifier and every embedder
    that learns from labels (``embedding_dim=8``), new on each call."""
    few_shot = [short(cls) for cls in FEW_SHOT]
    return few_shot + [short(cls, embedding_dim=8) for cls in EMBEDDERS]


#: Parameters of a few-shot classifier's test instances besides the short
#: training, by class: a dict, or a list of dicts for several instances. As
#: scikit-learn keeps ``INIT_PARAMS`` in
#: ``sklearn/utils/_test_common/instance_generator.py``: test settings stay
#: in the tests, not in the estimator's API, and a registered class without
#: an entry runs with the short training alone.
TEST_PARAMS = {
    MatchingClassifier: dict(fce=True),
    MAMLClassifier: dict(meta_batch_size=4),
    ReptileClassifier: dict(meta_batch_size=2, n_inner_steps_test=10),
    TransferClassifier: [{}, dict(head="logistic")],
}


def instances(registry, training):
    """The test instances of each class of ``registry``, by test id.

    Parameters
    ----------
    registry : dict of str to class
        A registry of skmeta (``skmeta.fewshot.CLASSIFIERS``).
    training : dict
        The short training, passed where a class takes each entry.

    Returns
    -------
    dict of str to estimator
        ``name`` for a class with one instance, ``name-<values>`` for each of
        several (``transfer-logistic``).
    """
    found = {}
    for name, cls in registry.items():
        variants = TEST_PARAMS.get(cls, {})
        several = isinstance(variants, list)
        for params in variants if several else [variants]:
            label = "-".join([name, *map(str, params.values())]) if several else name
            found[label] = cls(**own_params(cls, {**training, **params}))
    return found


def own_params(cls, params):
    """The entries of ``params`` that ``cls`` takes (TransferClassifier has no
    episodes)."""
    accepted = inspect.signature(cls).parameters
    return {name: value for name, value in params.items() if name in accepted}


def weights(module):
    """A copy of the state of ``module``, to compare with later."""
    return {k: v.clone() for k, v in module.state_dict().items()}


def assert_same_weights(module, expected):
    """The state of ``module`` is exactly ``expected`` (no tolerance)."""
    state = module.state_dict()
    assert state.keys() == expected.keys()
    for name, value in state.items():
        torch.testing.assert_close(value, expected[name], rtol=0, atol=0)


def assert_errors_are_named(fitted, digits, refused):
    """The errors of ``fitted``'s class say what is wrong.

    An unfitted estimator's ``predict`` raises NotFittedError; adapting
    ``fitted`` to 10 of the digits' 64 features, a ValueError naming the
    features; meta-training 7-way episodes on the 5 base digits, one naming
    ``n_way=7``; and each value of ``refused`` (a dict of parameter name to a
    value the class refuses), a ValueError naming its parameter.
    """
    cls = type(fitted)
    with pytest.raises(NotFittedError):
        cls().predict(digits.X_novel)
    with pytest.raises(ValueError, match="features"):
        copy.deepcopy(fitted).adapt(digits.X_novel[:, :10], digits.y_novel)
    with pytest.raises(ValueError, match="n_way=7"):
        cls(n_way=7).fit(digits.X_base, digits.y_base)
    for name, value in refused.items():
        with pytest.raises(ValueError, match=name):
            cls(**{name: value}).fit(digits.X_base, digits.y_base)


def meta_gradients_by_hand(network, support_loss, query_loss, alpha):
    """MAML's meta-gradient of one task on ``network``'s weights, by autograd.

    With ``θ`` the weights as one flat vector, ``g_s``, ``H_s`` the gradient
    and Hessian of the support loss and ``g_q`` the gradient of the query loss:
    ``θ' = θ − α g_s(θ)``, the second-order meta-gradient is
    ``(I − α H_s(θ)) g_q(θ')`` and the first-order one ``g_q(θ')`` (Finn et
    al., 2017, eq. 1; section 5.2 for the first-order approximation).

    Parameters
    ----------
    network : GradientNetwork
        Its ``params()`` give the weights' names, shapes and values.
    support_loss, query_loss : callable
        Each takes a dict of name to tensor (the layout of ``params()``) and
        returns a scalar tensor.
    alpha : float
        The inner step size ``α``.

    Returns
    -------
    second_order, first_order : torch.Tensor of shape (n_weights,)
        In the order of ``torch.cat`` of the flattened ``params()``.
    """
    params = network.params()
    theta = torch.cat([p.detach().flatten() for p in params.values()])

    def unflat(vector):
        out, start = {}, 0
        for name, p in params.items():
            out[name] = vector[start : start + p.numel()].reshape(p.shape)
            start += p.numel()
        return out

    def support(v):
        return support_loss(unflat(v))

    def query(v):
        return query_loss(unflat(v))

    g_s = torch.autograd.functional.jacobian(support, theta)
    g_q = torch.autograd.functional.jacobian(query, theta - alpha * g_s)
    h_s = torch.autograd.functional.hessian(support, theta)
    return g_q - alpha * h_s @ g_q, g_q
