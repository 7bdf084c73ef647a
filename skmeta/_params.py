"""Estimator parameters, each declared once: default, constraints, documentation.

scikit-learn asks four things of every parameter of an estimator: a place in
the signature of ``__init__``, an attribute of the same name set there and
nothing else, an entry in ``_parameter_constraints`` and an entry in the
docstring. An estimator class here writes its ``__init__`` as scikit-learn's
do, so that a reader, an editor and a type checker see the signature, and
declares its parameters once, as ``_parameters``: a :class:`Parameters` (an
ordered mapping of name to :class:`Param`). When the class is created,
:class:`~skmeta._base.TorchEstimator` checks the one against the other and
builds the rest from the declaration (:func:`build_estimator_class`):

- the signature of the written ``__init__`` must list the declared parameters
  in order, the first ``positional`` of them by position or keyword and the
  others keyword-only (scikit-learn's convention), with the declared
  defaults, or the class is refused with a TypeError that names each
  difference (``tests/test_params.py`` checks that ``__init__`` stores each
  argument and nothing else);
- ``_parameter_constraints``, read each time parameters are validated, so that
  a constraint naming a registry (backbones, distances, losses) sees the
  entries registered after import;
- the ``{parameters}`` line of the docstring, replaced by the Parameters
  section: one numpydoc entry per parameter, in signature order, with the
  default as declared; and the ``{fit}`` line of ``fit``'s docstring, by
  the sections that every ``fit`` shares.

Groups of parameters that several estimators share are plain dicts of
:class:`Param` in :mod:`skmeta._catalogue`; ``dict | dict`` composes them,
and a class changes one shared parameter with :func:`dataclasses.replace` or
:func:`changed`. A renamed parameter keeps its old
name for two releases (:func:`deprecated_param`, :func:`renamed`).
"""

import dataclasses
import inspect
import warnings
from collections.abc import Mapping

from ._docs import FIT
from ._sklearn import Hidden, StrOptions

__all__ = ["Param", "Parameters", "build_estimator_class"]


@dataclasses.dataclass(frozen=True)
class Param:
    """One estimator parameter.

    Parameters
    ----------
    type : str
        The numpydoc type of the parameter, e.g. ``"int or None"``.
    default : object
        Its default value.
    constraints : list or callable
        scikit-learn's parameter constraints (``Interval``, ``StrOptions``,
        types, ``None``...); a callable returning the list is called at each
        validation, for constraints that read a registry.
    doc : str
        The description, one paragraph or more; the indentation of the lines
        after the first is removed (:func:`inspect.cleandoc`).
    """

    type: str
    default: object
    constraints: object
    doc: str

    def resolved_constraints(self):
        """The constraint list as it is now (a callable is called)."""
        return self.constraints() if callable(self.constraints) else self.constraints

    def entry(self, name, values=None):
        """The numpydoc entry of this parameter, indented for a class docstring.

        ``values`` maps placeholder names to texts: ``{name}`` in ``doc``
        becomes ``values[name]``.
        """
        doc = self.doc
        for key, text in (values or {}).items():
            doc = doc.replace(f"{{{key}}}", text)
        lines = inspect.cleandoc(doc).splitlines()
        body = "\n".join(f"        {line}" if line else "" for line in lines)
        return f"    {name} : {self.type}, default={_show(self.default)}\n{body}\n"


def _show(value):
    """A default as numpydoc writes it: strings in double quotes."""
    return f'"{value}"' if isinstance(value, str) else repr(value)


class Parameters(Mapping):
    """The ordered parameters of an estimator class.

    Parameters
    ----------
    params : dict of str to Param
        The parameters in signature order.
    positional : int, default=0
        How many of the first parameters may be passed by position; the others
        are keyword-only.

    Raises
    ------
    ValueError
        If ``positional`` is negative or more than the parameters.
    """

    def __init__(self, params, positional=0):
        if not 0 <= positional <= len(params):
            raise ValueError(
                f"positional must be in [0, {len(params)}], the number of "
                f"parameters; got {positional}."
            )
        self._params = dict(params)
        self.positional = positional

    def __getitem__(self, name):
        return self._params[name]

    def __iter__(self):
        return iter(self._params)

    def __len__(self):
        return len(self._params)

    def signature(self):
        """The ``inspect.Signature`` of ``__init__``, ``self`` first."""
        kinds = [inspect.Parameter.POSITIONAL_OR_KEYWORD] * self.positional
        kinds += [inspect.Parameter.KEYWORD_ONLY] * (len(self) - self.positional)
        return inspect.Signature(
            [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
            + [
                inspect.Parameter(name, kind, default=param.default)
                for (name, param), kind in zip(self._params.items(), kinds, strict=True)
            ]
        )

    def constraints(self):
        """``_parameter_constraints`` as they are now."""
        return {
            name: param.resolved_constraints() for name, param in self._params.items()
        }

    def docs(self, values=None):
        """The numpydoc Parameters section: its heading, then each entry in order."""
        entries = "".join(
            param.entry(name, values) for name, param in self._params.items()
        )
        return f"    Parameters\n    ----------\n{entries}"


def signature_differences(init, parameters):
    """How the signature of ``init`` differs from the declared ``parameters``.

    Parameters
    ----------
    init : callable
        An ``__init__`` written in a class, ``self`` first.
    parameters : Parameters
        The class's declaration.

    Returns
    -------
    list of str
        One sentence per difference (names, their order, by position or
        keyword-only, defaults); empty where the signature is the declared one.
    """
    written = list(inspect.signature(init).parameters.values())[1:]
    declared = list(parameters.signature().parameters.values())[1:]
    names = [p.name for p in written]
    expected = [p.name for p in declared]
    if names != expected:
        missing = [n for n in expected if n not in names]
        extra = [n for n in names if n not in expected]
        if missing or extra:
            return [
                f"parameters missing from __init__: {missing}; parameters "
                f"__init__ has and the declaration does not: {extra}"
            ]
        return [f"the order is {names}, declared {expected}"]
    differences = []
    for got, want in zip(written, declared, strict=True):
        if got.kind is not want.kind:
            differences.append(
                f"{got.name} is {got.kind.description}, declared "
                f"{want.kind.description}"
            )
        same = type(got.default) is type(want.default) and (
            got.default is want.default or got.default == want.default
        )
        if not same:
            default = "no default" if got.default is got.empty else got.default
            differences.append(
                f"{got.name} defaults to {default!r}, declared {want.default!r}"
            )
    return differences


def check_init(cls, parameters):
    """Raise a TypeError if the ``__init__`` of ``cls`` is not ``parameters``'.

    Raises
    ------
    TypeError
        If the signature of ``cls.__init__`` differs from the declaration:
        the message names the class and each difference.
    """
    differences = signature_differences(cls.__init__, parameters)
    if differences:
        raise TypeError(
            f"{cls.__qualname__}.__init__ does not match "
            f"{cls.__qualname__}._parameters: {'; '.join(differences)}. Write "
            f"the signature {parameters.signature()}, one `self.name = name` "
            "per parameter."
        )


#: The line of a ``fit`` docstring that the shared sections replace.
FIT_MARKER = "        {fit}\n"


def _fit_sections(cls):
    """The shared part of the ``fit`` docstring of ``cls``, after its summary line.

    From the class's own ``_fit_doc`` through :data:`skmeta._docs.FIT`, or,
    for a ``fit`` that overrides another, that one's docstring after its
    first line: a preset's ``fit`` says what its base's says.
    """
    if "_fit_doc" in cls.__dict__:
        doc = {
            "X": "",
            "y": "",
            "y_type": "array-like of shape (n_samples,)",
            "groups": "",
            "errors": "",
            **cls._fit_doc,
        }
        doc.setdefault("y_doc", f"Class labels of any type{doc['y']}.")
        extended = doc.pop("extended", "")
        return FIT.format(extended=f"        {extended}\n\n" if extended else "", **doc)
    inherited = getattr(super(cls, cls), "fit", None)
    if inherited is None or not inherited.__doc__:
        raise TypeError(
            f"{cls.__qualname__}.fit has the {{fit}} line in its docstring but "
            "neither a _fit_doc of its class nor an inherited documented fit."
        )
    return inherited.__doc__.split("\n", 1)[1].strip("\n").rstrip() + "\n"


def build_estimator_class(cls, doc_values=None):
    """Check ``cls`` against its declared parameters; complete its docstrings.

    Called from ``__init_subclass__`` for every estimator class:

    - where the class sets ``_parameters`` in its body, the ``__init__`` it
      writes must have the declared signature (names, order, by position or
      keyword-only, defaults), or a TypeError says how it differs (or that
      the class writes none); the ``{parameters}`` line of its docstring
      becomes the Parameters section;
    - the ``{fit}`` line of the docstring of a ``fit`` written in the class
      becomes the shared sections (see :func:`_fit_sections`).

    Parameters
    ----------
    cls : type
        The estimator class.
    doc_values : dict of str to str or None, default=None
        Texts for the ``{name}`` placeholders of the parameters' docs.

    Raises
    ------
    TypeError
        If the class sets ``_parameters`` without writing ``__init__``, or
        its ``__init__`` does not match them, or it sets ``_fit_doc``
        without writing ``fit``.
    """
    if "_fit_doc" in cls.__dict__ and "fit" not in cls.__dict__:
        raise TypeError(
            f"{cls.__qualname__} sets _fit_doc, the docstring of its fit, and "
            "writes no fit: write fit(self, X, y, ...) in the class, its "
            "docstring a summary line and the {fit} line."
        )
    fit = cls.__dict__.get("fit")
    fit = getattr(fit, "__wrapped__", fit)  # under scikit-learn's _fit_context
    if fit is not None and fit.__doc__ and FIT_MARKER in fit.__doc__:
        fit.__doc__ = fit.__doc__.replace(FIT_MARKER, _fit_sections(cls))
        cls.__dict__["fit"].__doc__ = fit.__doc__
    if "_parameters" not in cls.__dict__:
        return
    parameters = cls.__dict__["_parameters"]
    if "__init__" not in cls.__dict__:
        raise TypeError(
            f"{cls.__qualname__} declares _parameters and writes no __init__: "
            f"write def __init__{parameters.signature()}: with one "
            "`self.name = name` per parameter, as scikit-learn's estimators do."
        )
    check_init(cls, parameters)
    if cls.__doc__ and "    {parameters}\n" in cls.__doc__:
        cls.__doc__ = cls.__doc__.replace(
            "    {parameters}\n", parameters.docs(doc_values)
        )


# Renamed parameters, kept under their old names until they are removed.

#: The default of a deprecated parameter: "not set".
DEPRECATED = "deprecated"

#: The release that removes the parameters deprecated in 0.1.
REMOVED_IN = "0.3"


def deprecated_param(new, type, constraints, values=""):
    """The old name of parameter ``new``, as scikit-learn deprecates one.

    It stays in the signature, its default :data:`DEPRECATED`, so that
    ``get_params``, ``clone`` and saved models keep working; set, it takes
    precedence over ``new`` and warns (see :func:`renamed`).

    Parameters
    ----------
    new : str
        The parameter's new name.
    type : str
        The numpydoc type of the old parameter's values.
    constraints : list
        Its constraints, besides :data:`DEPRECATED` (hidden from messages).
    values : str, default=""
        How its values map to those of ``new``, a sentence, if they differ.
    """
    return Param(
        type,
        DEPRECATED,
        [*constraints, Hidden(StrOptions({DEPRECATED}))],
        f"""{values}

        .. deprecated:: 0.1
           Use ``{new}``; this name is removed in {REMOVED_IN}. Set, it
           takes precedence over ``{new}``, with a FutureWarning in ``fit``.""",
    )


def renamed(estimator, old, new, translate=None):
    """The value of parameter ``new``, or of its deprecated name ``old`` where set.

    Parameters
    ----------
    estimator : estimator
        Holds both parameters.
    old, new : str
        The deprecated name and the new one.
    translate : callable or None, default=None
        Maps a value of ``old`` to the value of ``new`` (identity if None).

    Warns
    -----
    FutureWarning
        If ``old`` is set: it names the replacement and the release that
        removes ``old``.
    """
    value = getattr(estimator, old)
    if isinstance(value, str) and value == DEPRECATED:
        return getattr(estimator, new)
    replacement = translate(value) if translate else value
    warnings.warn(
        f"{old} was renamed {new} in 0.1 and will be removed in {REMOVED_IN}: "
        f"use {new}={replacement!r} instead of {old}={value!r}.",
        FutureWarning,
        stacklevel=3,
    )
    return replacement


def registry_constraints(registry, *others):
    """Constraints accepting a name of ``registry`` (a dict), or any of ``others``.

    Returns a callable for :class:`~skmeta._params.Param`, so that the names
    are read at each validation: an entry registered after import is valid.
    """
    return lambda: [StrOptions(set(registry)), *others]


def changed(params, changes):
    """``params`` with ``changes`` applied.

    For a name in ``changes``, ``None`` drops the parameter and a dict of
    :class:`Param` fields replaces those fields (a default, a doc); a name
    that ``params`` lacks raises a ValueError.
    """
    unknown = set(changes) - set(params)
    if unknown:
        raise ValueError(f"No shared parameter {sorted(unknown)} to change.")
    return {
        name: dataclasses.replace(param, **changes[name]) if name in changes else param
        for name, param in params.items()
        if name not in changes or changes[name] is not None
    }
