"""Data sets for few-shot learning.

- :func:`load_omniglot_minimal`: the "Omniglot minimal" split, embedded in the
  package (no download): the default data of the ``skmeta`` command.
- :func:`load_omniglot`: any Omniglot subset, downloaded, checksummed and cached.
- :func:`load_digits_fewshot`: scikit-learn's bundled digits, a small tabular set.
- :func:`load_image_folder`: a user's folder of image files, one subfolder per
  class (and optionally per group of classes).
- :func:`load_movielens`: MovieLens ratings, each user a task (the optional
  ``movielens`` extra).

Each few-shot loader returns a :class:`FewShotSplit` of base (meta-train) and
novel (meta-test) classes; :func:`load_movielens` returns samples with their
groups (users), whose tasks share the classes like and dislike.
"""

from ._digits import load_digits_fewshot
from ._image_folder import IMAGE_EXTENSIONS, load_image_folder
from ._movielens import load_movielens
from ._omniglot import get_data_home, load_omniglot, load_omniglot_minimal
from ._split import FewShotSplit

#: The few-shot data sets of the ``skmeta`` command, by name: loaders that
#: return a :class:`FewShotSplit`; those with a ``data_home`` parameter read
#: archives from there, and otherwise use their embedded or bundled copy.
FEWSHOT_DATASETS = {
    "omniglot": load_omniglot_minimal,
    "digits": load_digits_fewshot,
}

__all__ = [
    "FEWSHOT_DATASETS",
    "IMAGE_EXTENSIONS",
    "FewShotSplit",
    "get_data_home",
    "load_digits_fewshot",
    "load_image_folder",
    "load_movielens",
    "load_omniglot",
    "load_omniglot_minimal",
]
