"""Which module classes a file may name: the registered ones and ``trusted``.

:func:`skmeta.persistence.load` never imports what a file names; a class
name is resolved among the classes of skmeta's registries and those the
caller passes in ``trusted``.
"""

from ..backbones import BACKBONES
from ..distances import DISTANCES
from ..losses import LOSSES
from ._format import _qualified_name


def _registered_classes():
    """The module classes skmeta's registries name: trusted without asking."""
    return [
        cls
        for registry in (BACKBONES, DISTANCES, LOSSES)
        for cls in registry.values()
        if isinstance(cls, type)
    ]


def _check_trusted(trusted):
    if trusted is None:
        return []
    if isinstance(trusted, str | type) or not all(
        isinstance(t, str | type) for t in trusted
    ):
        raise TypeError(
            "trusted must be a list of classes (or of type names, for a "
            f"Pipeline's scikit-learn steps); got trusted={trusted!r}."
        )
    return list(trusted)


def resolve_class(name, trusted):
    """The class a file names ``name`` (a qualified name), or None if untrusted.

    A class of ``trusted`` or of skmeta's registries whose qualified name is
    ``name``; else the one class of ``trusted`` whose ``__qualname__`` ends
    ``name`` (a class defined in a script, ``__main__``, or imported from
    another module than the one that saved it).
    """
    if not isinstance(name, str):
        return None
    candidates = [t for t in trusted if isinstance(t, type)]
    for cls in [*candidates, *_registered_classes()]:
        if _qualified_name(cls) == name:
            return cls
    same = [c for c in candidates if name.endswith("." + c.__qualname__)]
    return same[0] if len(same) == 1 else None
