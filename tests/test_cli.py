"""Tests for the ``skmeta`` command (skmeta.cli).

Every run meta-trains for a handful of episodes only: these tests check the
command's behaviour, not the accuracy it reaches. The Omniglot run needs the
two minimal background archives, looked for in ``$SKMETA_DATA`` when set, else
in ``../shared/data`` beside the repository; it skips when they are absent.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import joblib
import numpy as np
import pytest

from skmeta.cli import main
from skmeta.datasets import load_digits_fewshot

TINY = ["--max-epochs", "1", "--episodes-per-epoch", "5", "--episodes", "20"]
TINY += ["--quiet"]

ROW = re.compile(
    r"^(?P<method>\S+)\s+(?P<n_way>\d+)-way (?P<k_shot>\d+)-shot\s+"
    r"(?P<mean>\d+\.\d\d) ± (?P<ci>\d+\.\d\d)\s+(?P<episodes>\d+)$"
)


def _data_home():
    env = os.environ.get("SKMETA_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"


def _table(out):
    """The rows of the results table, parsed; asserts the header is there."""
    lines = out.splitlines()
    header = [i for i, line in enumerate(lines) if line.startswith("method ")]
    assert len(header) == 1, out
    assert lines[header[0]].split() == ["method", "setting", "accuracy", "(%)"] + [
        "episodes"
    ]
    rows = []
    for line in lines[header[0] + 1 :]:
        match = ROW.match(line)
        assert match, f"not a table row: {line!r}"
        row = match.groupdict()
        rows.append(
            {
                "method": row["method"],
                "setting": (int(row["n_way"]), int(row["k_shot"])),
                "mean": float(row["mean"]),
                "ci": float(row["ci"]),
                "episodes": int(row["episodes"]),
            }
        )
    return rows


def test_digits_prints_summary_training_time_and_table(capsys):
    assert main(["--dataset", "digits", *TINY]) == 0
    out = capsys.readouterr().out
    assert "dataset: digits" in out
    assert re.search(r"base \(meta-train\):\s+5 classes, \d+ images", out)
    assert re.search(r"novel \(meta-test\):\s+5 classes, \d+ images", out)
    assert re.search(r"meta-training: \d+\.\d s on cpu", out)
    rows = _table(out)
    assert [(r["method"], r["setting"]) for r in rows] == [
        ("prototypical", (5, 1)),
        ("baseline", (5, 1)),
        ("prototypical", (5, 5)),
        ("baseline", (5, 5)),
    ]
    for row in rows:
        assert 0 <= row["mean"] <= 100
        assert 0 <= row["ci"] <= 100
        assert row["episodes"] == 20


def test_settings_wider_than_the_novel_classes_are_skipped_with_a_note(capsys):
    assert main([*TINY, "--n-way", "5", "10", "--k-shot", "1"]) == 0
    out = capsys.readouterr().out
    assert "note: skipped 10-way 1-shot: digits has only 5 novel classes" in out
    assert [(r["method"], r["setting"]) for r in _table(out)] == [
        ("prototypical", (5, 1)),
        ("baseline", (5, 1)),
    ]


def test_same_seed_same_table(capsys):
    argv = [*TINY, "--k-shot", "1", "--seed", "3"]
    main(argv)
    first = _table(capsys.readouterr().out)
    main(argv)
    assert _table(capsys.readouterr().out) == first


def test_save_writes_a_loadable_fitted_estimator(tmp_path, capsys):
    path = tmp_path / "models" / "protonet.joblib"
    assert main([*TINY, "--k-shot", "1", "--save", str(path)]) == 0
    assert f"saved the fitted estimator to {path}" in capsys.readouterr().out
    estimator = joblib.load(path)
    data = load_digits_fewshot()
    assert set(estimator.predict(data.X_novel[:10])) <= set(data.y_base)
    support = np.concatenate([np.flatnonzero(data.y_novel == c)[:5] for c in (5, 6)])
    estimator.adapt(data.X_novel[support], data.y_novel[support])
    assert set(estimator.predict(data.X_novel[:10])) <= {5, 6}


def test_omniglot_missing_data_home_exits_2_with_a_message(tmp_path, capsys):
    missing = tmp_path / "no_such_folder"
    assert main(["--dataset", "omniglot", "--data-home", str(missing), *TINY]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert f"--data-home {missing}: no such folder" in captured.err
    assert "images_background_small1.zip" in captured.err
    assert "Traceback" not in captured.err
    assert not missing.exists()


def test_rotations_on_tabular_digits_exits_2(capsys):
    assert main([*TINY, "--rotations"]) == 2
    assert "--rotations needs image data" in capsys.readouterr().err


@pytest.mark.skipif(
    __import__("torch").cuda.is_available(), reason="CUDA is available here"
)
def test_unavailable_cuda_exits_2(capsys):
    assert main([*TINY, "--device", "cuda"]) == 2
    assert "CUDA is not available" in capsys.readouterr().err


def test_bad_option_value_exits_2(capsys):
    assert main(["--n-way", "1"]) == 2
    assert "expected an integer >= 2" in capsys.readouterr().err


def test_omniglot_on_the_local_archives(capsys):
    home = _data_home()
    if not (home / "omniglot" / "images_background_small1.zip").exists():
        pytest.skip(f"Omniglot minimal sets not found under {home} (set SKMETA_DATA)")
    argv = ["--dataset", "omniglot", "--data-home", str(home), "--k-shot", "1"]
    argv += ["--max-epochs", "1", "--episodes-per-epoch", "2", "--episodes", "10"]
    assert main([*argv, "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "dataset: omniglot_minimal" in out
    assert "base (meta-train):  136 classes, 2720 images" in out
    assert "novel (meta-test):  106 classes, 2120 images" in out
    rows = _table(out)
    assert [r["setting"] for r in rows if r["method"] == "prototypical"] == [
        (5, 1),
        (20, 1),
    ]
    assert all(0 <= r["mean"] <= 100 for r in rows)


def test_python_dash_m_skmeta_help():
    result = subprocess.run(
        [sys.executable, "-m", "skmeta", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: skmeta")
    for option in ("--dataset", "--data-home", "--n-way", "--k-shot", "--save"):
        assert option in result.stdout
