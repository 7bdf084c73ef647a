"""The README as a newcomer meets it, on a package index page or in a terminal."""

import re
from pathlib import Path

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_links_are_absolute_so_they_work_on_a_package_index_page():
    links = re.findall(r"\]\(([^)]+)\)", README)
    assert links
    for link in links:
        assert link.startswith("https://"), link


def test_the_two_set_up_commands():
    commands = re.findall(r"^```bash\n(.*?)\n```", README, flags=re.S | re.M)
    venv = "python -m venv .venv && . .venv/bin/activate && pip install torch==2.13.0"
    assert commands == [
        f"{venv} && pip install -e . && skmeta",
        f'{venv} && pip install -e ".[tests]" && pytest -q',
    ]


def test_python_snippets_compile():
    snippets = re.findall(r"^```python\n(.*?)^```", README, flags=re.S | re.M)
    assert len(snippets) >= 3
    for i, code in enumerate(snippets):
        compile(code, f"README snippet {i + 1}", "exec")


def test_no_path_that_only_exists_beside_our_checkout():
    assert "../shared" not in README


def test_a_front_page_not_a_lab_notebook():
    assert README.count("\n") <= 210


def test_every_number_of_the_results_summary_is_on_the_benchmarks_page():
    benchmarks = (
        Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
    ).read_text()
    summary = README.split("## Results", 1)[1].split("\n## ", 1)[0]
    numbers = re.findall(r"\d+\.\d+", summary)
    assert len(numbers) >= 10
    for number in numbers:
        assert re.search(rf"(?<![\d.]){re.escape(number)}(?!\d)", benchmarks), number
