"""Each estimator's written signature, its declaration and its docs agree.

An estimator writes ``__init__`` and ``fit`` in its class, as scikit-learn's
do, and declares its parameters once in ``_parameters`` (constraints and
docs). These are two sources: the tests compare them, for every registered
estimator, and check that a class whose signature differs is refused when it
is created.
"""

import inspect
import warnings

import pytest
from helpers import EMBEDDERS, FEW_SHOT, REGRESSORS, STUDENTS, UNSUPERVISED
from sklearn.base import clone

import skmeta
from skmeta._base import TorchEstimator
from skmeta._params import Param, Parameters
from skmeta.fewshot import TransferClassifier
from skmeta.fewshot.transfer import CosineClassifier

REGISTERED = FEW_SHOT + REGRESSORS + EMBEDDERS + UNSUPERVISED + STUDENTS


def _subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def _documented(doc, section_end):
    """The names of the numpydoc entries of the Parameters section of ``doc``."""
    indent = doc.split("Parameters\n")[1].split("-")[0]  # the section's
    section = doc.split(f"Parameters\n{indent}----------\n")[1]
    section = section.split(f"\n{indent}{section_end}\n")[0]
    return [
        line.split(" : ")[0].strip()
        for line in section.splitlines()
        if line.startswith(indent)
        and not line.startswith(indent + " ")
        and " : " in line
    ]


def test_every_public_estimator_with_parameters_is_registered():
    public = {getattr(skmeta, name) for name in skmeta.__all__}
    declared = {
        cls
        for cls in _subclasses(TorchEstimator)
        if "_parameters" in cls.__dict__ and cls in public
    }
    assert declared <= set(REGISTERED), declared - set(REGISTERED)


@pytest.mark.parametrize("cls", REGISTERED)
def test_init_is_written_in_the_class_with_the_declared_signature(cls):
    assert "__init__" in cls.__dict__
    # Written in the class's own module, not built from the declaration.
    assert inspect.getsourcefile(cls.__init__) == inspect.getsourcefile(cls)
    written = inspect.signature(cls.__init__)
    declared = cls._parameters.signature()
    assert list(written.parameters) == list(declared.parameters)
    for name, param in written.parameters.items():
        want = declared.parameters[name]
        assert param.kind is want.kind, name
        assert type(param.default) is type(want.default), name
        assert param.default == want.default, name


@pytest.mark.parametrize("cls", REGISTERED)
def test_init_stores_each_argument_under_its_name_and_nothing_else(cls):
    sentinels = {name: object() for name in cls._parameters}
    est = cls(**sentinels)
    assert vars(est).keys() == sentinels.keys()
    params = est.get_params(deep=False)
    assert params.keys() == sentinels.keys()
    for name, value in sentinels.items():
        assert params[name] is value, name


@pytest.mark.parametrize("cls", REGISTERED)
def test_docstring_and_constraints_list_the_declared_parameters(cls):
    names = list(cls._parameters)
    assert _documented(cls.__doc__, "Attributes") == names
    for name, param in cls._parameters.items():
        assert f"    {name} : {param.type}, default=" in cls.__doc__, name
    assert list(cls()._parameter_constraints) == names


@pytest.mark.parametrize("cls", REGISTERED)
def test_fit_is_written_in_the_class_and_documents_its_arguments(cls):
    assert "fit" in cls.__dict__
    written = inspect.unwrap(cls.fit)  # under scikit-learn's _fit_context
    assert inspect.getsourcefile(written) == inspect.getsourcefile(cls)
    doc = cls.fit.__doc__
    assert "{" not in doc.split("\n")[0] and "{fit}" not in doc
    arguments = list(inspect.signature(cls.fit).parameters)[1:]
    assert _documented(doc, "Returns") == arguments


# What build_estimator_class refuses when a class is created.

_DECLARED = Parameters(
    {
        "alpha": Param("float", 1.0, [float], "The first."),
        "beta": Param("int", 2, [int], "The second."),
        "gamma": Param("str or None", None, [str, None], "The third."),
    },
    positional=1,
)


def _estimator(init):
    """A TorchEstimator subclass declaring ``_DECLARED`` with ``init``."""
    body = {"__doc__": "A test estimator.", "_parameters": _DECLARED, "__init__": init}
    return type("Wrong", (TorchEstimator,), body)


def test_a_class_with_the_declared_signature_is_accepted():
    def __init__(self, alpha=1.0, *, beta=2, gamma=None):
        self.alpha, self.beta, self.gamma = alpha, beta, gamma

    assert _estimator(__init__)(3.0).get_params() == dict(alpha=3.0, beta=2, gamma=None)


def _missing(self, alpha=1.0, *, beta=2):
    pass


def _extra(self, alpha=1.0, *, beta=2, gamma=None, delta=0):
    pass


def _reordered(self, alpha=1.0, *, gamma=None, beta=2):
    pass


def _positional(self, alpha=1.0, beta=2, *, gamma=None):
    pass


def _keyword_only(self, *, alpha=1.0, beta=2, gamma=None):
    pass


def _default(self, alpha=1.0, *, beta=3, gamma=None):
    pass


def _default_type(self, alpha=1, *, beta=2, gamma=None):
    pass


@pytest.mark.parametrize(
    "init, difference",
    [
        (_missing, r"missing from __init__: \['gamma'\]"),
        (_extra, r"does not: \['delta'\]"),
        (_reordered, r"the order is \['alpha', 'gamma', 'beta'\]"),
        (_positional, "beta is positional or keyword, declared keyword-only"),
        (_keyword_only, "alpha is keyword-only, declared positional or keyword"),
        (_default, "beta defaults to 3, declared 2"),
        (_default_type, "alpha defaults to 1, declared 1.0"),
    ],
)
def test_a_class_whose_signature_differs_is_refused_naming_the_difference(
    init, difference
):
    with pytest.raises(TypeError, match=r"Wrong\.__init__ does not match") as error:
        _estimator(init)
    assert error.match(difference)


# Renamed parameters: the old name works, with a FutureWarning, until removed.

EMBEDDING = EMBEDDERS + UNSUPERVISED


@pytest.mark.parametrize("cls", EMBEDDING)
@pytest.mark.parametrize("normalize, normalization", [(True, "l2"), (False, None)])
def test_normalize_is_deprecated_for_normalization(
    cls, normalize, normalization, digits
):
    old = cls(normalize=normalize, max_epochs=0)
    with pytest.warns(
        FutureWarning,
        match=r"renamed normalization .* removed in 0\.3: use normalization=",
    ):
        old.fit(digits.X_base[:40], digits.y_base[:40])
    new = cls(normalization=normalization, max_epochs=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        new.fit(digits.X_base[:40], digits.y_base[:40])
    assert old.module_.normalize is new.module_.normalize is normalize
    assert clone(old).get_params()["normalize"] is normalize
    assert cls().normalize == "deprecated"


def test_transfer_classifier_is_deprecated_for_base_classifier(digits):
    old = TransferClassifier(classifier="cosine", scale=5.0, max_epochs=0)
    with pytest.warns(FutureWarning, match="use base_classifier='cosine' instead"):
        old.fit(digits.X_base[:40], digits.y_base[:40])
    assert isinstance(old.module_.classifier, CosineClassifier)
    assert old.module_.classifier.scale == 5.0
    assert clone(old).get_params()["classifier"] == "cosine"
    assert TransferClassifier().classifier == "deprecated"


def test_a_class_documenting_a_fit_it_does_not_write_is_refused():
    def __init__(self, alpha=1.0, *, beta=2, gamma=None):
        pass

    with pytest.raises(TypeError, match="Wrong sets _fit_doc, .* writes no fit"):
        type(
            "Wrong",
            (TorchEstimator,),
            {"_parameters": _DECLARED, "__init__": __init__, "_fit_doc": {"y": ""}},
        )


def test_a_class_declaring_parameters_without_an_init_is_refused():
    with pytest.raises(TypeError, match=r"Wrong declares _parameters and writes no "):
        type("Wrong", (TorchEstimator,), {"_parameters": _DECLARED})
