"""The API page documents every public name, and only names that exist."""

import importlib
import pkgutil
import re
from pathlib import Path

import pytest

import skmeta

API = (Path(__file__).resolve().parents[1] / "docs" / "api.rst").read_text()

#: Public modules: skmeta and its submodules whose names do not start with "_".
MODULES = ["skmeta"] + [
    info.name
    for info in pkgutil.walk_packages(skmeta.__path__, "skmeta.")
    if not any(part.startswith("_") for part in info.name.split("."))
]


def _documented():
    """The names the autosummary lists of the API page give, fully qualified."""
    names, module = [], "skmeta"
    for line in API.splitlines():
        current = re.match(r"\.\. currentmodule:: (\S+)", line)
        if current:
            module = current.group(1)
        entry = re.match(r"   ([A-Za-z_][\w.]*)$", line)
        if entry:
            names.append(f"{module}.{entry.group(1)}")
    return names


@pytest.mark.parametrize("module", MODULES)
def test_every_name_in_all_is_on_the_api_page(module):
    names = set(getattr(importlib.import_module(module), "__all__", ()))
    names.discard("__version__")
    missing = sorted(n for n in names if not re.search(rf"\b{re.escape(n)}\b", API))
    assert not missing, f"{module}.__all__ has names the API page omits: {missing}"


@pytest.mark.parametrize("name", _documented())
def test_every_name_on_the_api_page_exists(name):
    parts = name.split(".")
    for split in range(len(parts) - 1, 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        for attribute in parts[split:]:
            obj = getattr(obj, attribute)
        return
    pytest.fail(f"{name} is not importable")
