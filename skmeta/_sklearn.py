"""The parts of scikit-learn that skmeta uses and that have no public module.

scikit-learn's parameter constraints (``Interval``, ``StrOptions``) and the
``_fit_context`` decorator that validates them are what its own estimators
use, but they live in private modules, which may change without a deprecation
cycle. Every skmeta module imports them from here, so that a change in
scikit-learn is one edit; ``pyproject.toml`` bounds scikit-learn to the
releases this module was checked against.
"""

from sklearn.base import _fit_context
from sklearn.utils._param_validation import (
    Hidden,
    Interval,
    StrOptions,
    validate_params,
)

__all__ = ["Hidden", "Interval", "StrOptions", "_fit_context", "validate_params"]
