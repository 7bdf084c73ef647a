"""What several test modules share: the estimators and weight comparisons.

Importable as ``helpers`` because pytest puts this folder on ``sys.path``.
"""

import inspect

import torch

from skmeta.embedding import EMBEDDERS as _EMBEDDERS
from skmeta.fewshot import CLASSIFIERS
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
    cls
    for cls in _EMBEDDERS.values()
    if "teacher" in inspect.signature(cls).parameters
]

#: The embedders that learn without labels, ``fit(X)``: self-supervised.
UNSUPERVISED = [
    cls for cls in _EMBEDDERS.values() if cls not in EMBEDDERS and cls not in STUDENTS
]

#: The training lengths of the suite, short enough for 2 CPU cores.
FEW_SHOT_SHORT = dict(max_epochs=2, episodes_per_epoch=4, random_state=0)
EMBEDDER_SHORT = dict(max_epochs=2, batches_per_epoch=4, random_state=0)


def short(cls, **params):
    """An estimator of ``cls`` with the suite's short training and ``params``."""
    base = FEW_SHOT_SHORT if cls in FEW_SHOT else EMBEDDER_SHORT
    return cls(**own_params(cls, {**base, **params}))


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
