"""Estimator parameters, each declared once: default, constraints, documentation.

scikit-learn asks four things of every parameter of an estimator: a place in
the signature of ``__init__``, an attribute of the same name set there and
nothing else, an entry in ``_parameter_constraints`` and an entry in the
docstring. Written by hand for ten estimators sharing twenty parameters, the
four drift apart. Here an estimator class declares its parameters once, as
``_parameters``: a :class:`Parameters` (an ordered mapping of name to
:class:`Param`). :class:`~skmeta._base.TorchEstimator` builds the rest from it
when the class is created (:func:`build_estimator_class`):

- ``__init__``, whose signature lists the parameters in order, the first
  ``positional`` of them by position or keyword and the others keyword-only
  (scikit-learn's convention); it only stores each argument as an attribute;
- ``_parameter_constraints``, read each time parameters are validated, so that
  a constraint naming a registry (backbones, distances, losses) sees the
  entries registered after import;
- the ``{parameters}`` line of the docstring, replaced by the Parameters
  section: one numpydoc entry per parameter, in signature order, with the
  default as declared.

Groups of parameters that several estimators share are plain dicts of
:class:`Param`; ``dict | dict`` composes them, and a class changes one shared
parameter with :func:`dataclasses.replace`.
"""

import dataclasses
import inspect
from collections.abc import Mapping

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


def _make_init(parameters):
    signature = parameters.signature()

    def __init__(self, *args, **kwargs):
        bound = signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        for name, value in list(bound.arguments.items())[1:]:
            setattr(self, name, value)

    __init__.__signature__ = signature
    __init__.__doc__ = "Store the parameters; see the class docstring."
    return __init__


def build_estimator_class(cls, doc_values=None):
    """Give ``cls`` the ``__init__`` and docstring its own ``_parameters`` declare.

    Called from ``__init_subclass__`` for every class that sets
    ``_parameters`` in its body; a class that does not inherits its parent's.
    ``__init__`` gets ``__qualname__`` of ``cls`` so that tracebacks and
    documentation name the estimator.

    Parameters
    ----------
    cls : type
        The estimator class.
    doc_values : dict of str to str or None, default=None
        Texts for the ``{name}`` placeholders of the parameters' docs.
    """
    parameters = cls.__dict__["_parameters"]
    init = _make_init(parameters)
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__module__ = cls.__module__
    cls.__init__ = init
    if cls.__doc__ and "    {parameters}\n" in cls.__doc__:
        cls.__doc__ = cls.__doc__.replace(
            "    {parameters}\n", parameters.docs(doc_values)
        )
