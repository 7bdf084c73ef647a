"""Sphinx configuration of skmeta's documentation.

Build it from the repository root with::

    sphinx-build -W -b html docs docs/_build/html

The gallery (``examples/plot_*.py``) runs every example on the embedded data
and keeps the pictures they draw.
"""

import os
import re
import warnings

import skmeta

project = "skmeta"
author = "the skmeta developers"
copyright = "2026, the skmeta developers"
release = version = skmeta.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "myst_parser",
    "sphinx_gallery.gen_gallery",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "auto_examples/*.ipynb", "auto_examples/*.py"]
templates_path = ["_templates"]

autosummary_generate = True
# Members of skmeta's own bases are documented on each estimator; those of
# torch, scikit-learn and skorch are theirs to document.
autodoc_default_options = {
    "members": True,
    "inherited-members": ",".join(
        [
            "Module",
            "BaseEstimator",
            "ClassifierMixin",
            "TransformerMixin",
            "ClassNamePrefixFeaturesOutMixin",
            "GroupKFold",
            "GroupShuffleSplit",
            "Callback",
            "object",
        ]
    ),
}
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
myst_heading_anchors = 3

html_theme = "pydata_sphinx_theme"
html_title = f"skmeta {version}"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
}

sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "within_subsection_order": "FileNameSortKey",
    "download_all_examples": False,
    "remove_config_comments": True,
    "matplotlib_animations": False,
    # A failing example fails the build.
    "only_warn_on_example_error": False,
    "abort_on_example_error": True,
    "reset_modules": ("matplotlib", "seaborn"),
}

# Examples run on the CPU, with the torch threads of the machine.
os.environ.setdefault("MPLBACKEND", "agg")
warnings.filterwarnings("ignore", message="Matplotlib is currently using agg")


def _skip_sklearn_plumbing(app, what, name, obj, skip, options):
    """Leave out scikit-learn's metadata-routing and set_output plumbing.

    ``set_<method>_request``, ``get_metadata_routing`` and ``set_output``
    come with every scikit-learn estimator and are documented there.
    """
    if re.fullmatch(r"set_\w+_request|get_metadata_routing|set_output", name):
        return True
    return skip


def setup(app):
    app.connect("autodoc-skip-member", _skip_sklearn_plumbing)
