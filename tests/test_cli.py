"""Tests for the ``skmeta`` command (skmeta.cli).

Every run meta-trains for a handful of episodes only: these tests check the
command's behaviour, not the accuracy it reaches (``benchmarks/`` and the
README measure that). The default data, Omniglot minimal, is embedded in the
package; the run on the original archives looks for them in ``$SKMETA_DATA``
when set, else in ``../shared/data`` beside the repository, and skips when
they are absent.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from skorch.callbacks import Callback

from skmeta import PrototypicalClassifier, cli
from skmeta.cli import main
from skmeta.datasets import load_digits_fewshot
from skmeta.model_selection import evaluate_episodes
from skmeta.persistence import load

TINY = ["--max-epochs", "1", "--episodes-per-epoch", "5", "--episodes", "20"]
TINY += ["--quiet"]
DIGITS = ["--dataset", "digits", *TINY]
MODELS = ["raw input", "untrained", "prototypical"]

CELL = re.compile(r"(\d+\.\d\d) ± (\d+\.\d\d)")


def _data_home():
    env = os.environ.get("SKMETA_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"


def _table(out):
    """The results table as {(n_way, k_shot): {model: (mean, ci)}}."""
    lines = out.splitlines()
    header = [i for i, line in enumerate(lines) if line.startswith("setting ")]
    assert len(header) == 1, out
    names = re.split(r"\s{2,}", lines[header[0]].strip())
    assert names[0] == "setting"
    table = {}
    for line in lines[header[0] + 1 :]:
        match = re.match(r"^(\d+)-way (\d+)-shot\s+(.*)$", line)
        if not match:
            break
        cells = CELL.findall(match.group(3))
        assert len(cells) == len(names) - 1, line
        table[int(match.group(1)), int(match.group(2))] = {
            name: (float(mean), float(ci))
            for name, (mean, ci) in zip(names[1:], cells, strict=True)
        }
    return table


def test_default_run_is_omniglot_minimal_embedded(capsys):
    # Two test-time views, not the default 16: the same code, an eighth the time.
    assert main(["--k-shot", "1", "--test-time-views", "2", *TINY]) == 0
    out = capsys.readouterr().out
    assert "dataset: omniglot_minimal (samples of shape 1x28x28), embedded" in out
    assert (
        "base (meta-train):  136 classes, 2720 images; with rotations and flips, "
        "1088 classes" in out
    )
    assert "novel (meta-test):  106 classes, 2120 images" in out
    assert "meta-training prototypical on cpu, time limit 80 s" in out
    training = re.search(
        r"meta-training: (\d+\.\d) s, 5 episodes in 1 epoch; all 1 epoch$",
        out,
        re.MULTILINE,
    )
    in_all = re.search(r"fit: (\d+\.\d) s in all, the support set's embedding", out)
    assert float(training.group(1)) <= float(in_all.group(1))
    table = _table(out)
    assert list(table) == [(5, 1), (20, 1)]
    for row in table.values():
        assert list(row) == MODELS
    assert (
        "prototypical and untrained embed each image as the mean over 2 views of it"
        in out
    )


def test_digits_table_holds_the_same_episodes_for_each_model(capsys):
    assert main([*DIGITS, "--seed", "3"]) == 0
    table = _table(capsys.readouterr().out)
    assert list(table) == [(5, 1), (5, 5)]
    # The raw-input column is nearest class mean of the pixels on the episodes
    # of --seed: recomputed here from the same episodes.
    data = load_digits_fewshot()
    raw = PrototypicalClassifier(backbone=__import__("torch").nn.Flatten())
    raw.set_params(max_epochs=0).fit(data.X_base, data.y_base)
    for (n_way, k_shot), row in table.items():
        scores = evaluate_episodes(
            raw, data.X_novel, data.y_novel, n_way=n_way, k_shot=k_shot,
            n_episodes=20, random_state=3,
        )  # fmt: skip
        assert row["raw input"] == (
            round(100 * scores.mean, 2),
            round(100 * scores.ci95, 2),
        )


def test_untrained_column_is_the_backbone_before_meta_training(capsys):
    # With no meta-training at all the method is its own untrained backbone.
    assert main([*DIGITS, "--max-epochs", "0"]) == 0
    for row in _table(capsys.readouterr().out).values():
        assert row["untrained"] == row["prototypical"]


def test_settings_wider_than_the_novel_classes_are_skipped_with_a_note(capsys):
    assert main([*DIGITS, "--n-way", "5", "10", "--k-shot", "1"]) == 0
    out = capsys.readouterr().out
    assert "note: skipped 10-way 1-shot: digits has only 5 novel classes" in out
    assert list(_table(out)) == [(5, 1)]


def test_same_seed_same_table(capsys):
    argv = [*DIGITS, "--k-shot", "1", "--seed", "3"]
    main(argv)
    first = _table(capsys.readouterr().out)
    main(argv)
    assert _table(capsys.readouterr().out) == first


def test_time_limit_ends_meta_training_and_says_so(capsys):
    argv = ["--dataset", "digits", "--episodes", "20", "--quiet", "--k-shot", "1"]
    assert main([*argv, "--max-epochs", "100000", "--time-limit", "0.5"]) == 0
    out = capsys.readouterr().out
    assert "time limit 0.5 s" in out
    match = re.search(r"(\d+) episodes in (\d+) epochs?; stopped by the time", out)
    assert match and int(match.group(1)) < 100000 * 100


def test_validation_fraction_logs_held_out_scores_each_epoch(capsys):
    argv = ["--dataset", "digits", "--episodes", "20", "--k-shot", "1"]
    argv += ["--max-epochs", "2", "--episodes-per-epoch", "5"]
    assert main([*argv, "--validation-fraction", "0.4", "--no-rotations"]) == 0
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if "train_loss" in line)
    assert header.split() == ["epoch", "train_loss", "valid_acc", "valid_loss", "dur"]


def test_log_file_output_has_no_colour_codes_nor_carriage_returns(tmp_path):
    # What a user gets from `skmeta > log.txt 2>&1`: the epoch log, plainly.
    argv = ["--dataset", "digits", "--episodes", "20", "--max-epochs", "3"]
    argv += ["--episodes-per-epoch", "5", "--validation-fraction", "0.4"]
    result = subprocess.run(
        [sys.executable, "-m", "skmeta", *argv],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "train_loss" in result.stdout  # the epoch log is there
    for stream in (result.stdout, result.stderr):
        assert "\r" not in stream
        assert "\x1b[" not in stream


def test_save_writes_a_loadable_fitted_estimator(tmp_path, capsys):
    path = tmp_path / "models" / "protonet.skmeta"
    assert main([*DIGITS, "--k-shot", "1", "--save", str(path)]) == 0
    assert f"saved the fitted estimator to {path}" in capsys.readouterr().out
    estimator = load(path)
    data = load_digits_fewshot()
    assert set(estimator.predict(data.X_novel[:10])) <= set(data.y_base)
    support = np.concatenate([np.flatnonzero(data.y_novel == c)[:5] for c in (5, 6)])
    estimator.adapt(data.X_novel[support], data.y_novel[support])
    assert set(estimator.predict(data.X_novel[:10])) <= {5, 6}


def test_save_to_an_unwritable_path_fails_before_training(tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    argv = [*DIGITS, "--save", str(blocker / "model.skmeta")]
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert f"--save {blocker / 'model.skmeta'}" in captured.err
    assert "meta-training" not in captured.out


def test_an_interrupted_meta_training_prints_no_table_and_exits_130(
    monkeypatch, capsys
):
    class CtrlC(Callback):
        """Ctrl-C after the first training episode."""

        def __init__(self, seconds):
            pass

        def on_batch_end(self, net, **kwargs):
            raise KeyboardInterrupt

    monkeypatch.setattr(cli, "TimeLimit", CtrlC)  # the command's one callback
    with pytest.warns(UserWarning, match="interrupted"):
        assert main(DIGITS) == 130
    captured = capsys.readouterr()
    assert "meta-training was interrupted" in captured.err
    assert "setting" not in captured.out


def test_missing_data_home_exits_2_with_a_message(tmp_path, capsys):
    missing = tmp_path / "no_such_folder"
    assert main(["--data-home", str(missing), *TINY]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert f"--data-home {missing}: no such folder" in captured.err
    assert "skmeta.datasets.load_omniglot_minimal reads" in captured.err
    assert "Traceback" not in captured.err
    assert not missing.exists()


def test_data_home_with_digits_exits_2(tmp_path, capsys):
    assert main([*DIGITS, "--data-home", str(tmp_path)]) == 2
    assert "--data-home does not apply to digits" in capsys.readouterr().err


@pytest.mark.parametrize("option", ["--rotations", "--flips"])
def test_rotations_or_flips_on_tabular_digits_exit_2(capsys, option):
    assert main([*DIGITS, option]) == 2
    assert f"{option} needs image data" in capsys.readouterr().err


@pytest.mark.skipif(
    __import__("torch").cuda.is_available(), reason="CUDA is available here"
)
def test_unavailable_cuda_exits_2(capsys):
    assert main([*DIGITS, "--device", "cuda"]) == 2
    assert "CUDA is not available" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--n-way", "1"], "expected an integer >= 2"),
        (["--time-limit", "-1"], "expected a finite number of seconds >= 0"),
        (["--time-limit", "soon"], "expected a number of seconds"),
        (["--validation-fraction", "1"], "strictly between 0 and 1"),
    ],
)
def test_bad_option_value_exits_2(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_omniglot_from_the_local_archives(capsys):
    home = _data_home()
    if not (home / "omniglot" / "images_background_small1.zip").exists():
        pytest.skip(f"Omniglot minimal sets not found under {home} (set SKMETA_DATA)")
    argv = ["--data-home", str(home), "--k-shot", "1", "--test-time-views", "1"]
    assert main([*argv, *TINY]) == 0
    out = capsys.readouterr().out
    assert "dataset: omniglot_minimal (samples of shape 1x28x28)\n" in out
    assert "novel (meta-test):  106 classes, 2120 images" in out
    assert list(_table(out)) == [(5, 1), (20, 1)]
    assert "test-time augmentation" not in out


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
    for option in ("--dataset", "--data-home", "--time-limit", "--save"):
        assert option in result.stdout


def test_an_internal_error_is_raised_not_reported_as_a_usage_error(monkeypatch):
    def broken(*args, **kwargs):
        raise ValueError("a bug in the evaluation")

    monkeypatch.setattr(cli, "evaluate_episodes", broken)
    with pytest.raises(ValueError, match="a bug in the evaluation"):
        main(DIGITS)


def test_transductive_rows_are_a_separate_table_of_the_fitted_model(capsys):
    assert main([*DIGITS, "--k-shot", "1", "--transductive", "1"]) == 0
    out = capsys.readouterr().out
    inductive, transductive = out.split("\ntransductive: 1 step(s) of soft k-means")
    assert "5-way 1-shot" in inductive and "5-way 1-shot" in transductive
    assert transductive.splitlines()[2].split() == ["setting", "prototypical"]


def test_transductive_needs_a_method_with_class_means(capsys):
    assert main([*DIGITS, "--method", "maml", "--transductive", "1"]) == 2
    assert "--transductive does not apply to --method maml" in capsys.readouterr().err


def test_test_time_views_need_a_method_that_has_them(capsys):
    assert main([*DIGITS, "--method", "maml", "--test-time-views", "1"]) == 2
    err = capsys.readouterr().err
    assert "--test-time-views does not apply to --method maml" in err


def test_the_transfer_method_reports_mini_batches(capsys):
    argv = ["--dataset", "digits", "--method", "transfer", "--max-epochs", "1"]
    assert main([*argv, "--episodes", "20", "--quiet", "--k-shot", "1"]) == 0
    assert re.search(r"\d+ mini-batches in 1 epoch", capsys.readouterr().out)


def test_precision_reaches_the_estimator_and_the_report(capsys, monkeypatch):
    fitted = []
    real_fit = PrototypicalClassifier.fit
    monkeypatch.setattr(
        PrototypicalClassifier,
        "fit",
        lambda self, X, y: fitted.append(self.precision) or real_fit(self, X, y),
    )
    assert main([*DIGITS, "--k-shot", "1", "--precision", "bfloat16"]) == 0
    assert "meta-training prototypical on cpu in bfloat16" in capsys.readouterr().out
    assert fitted[0] == "bfloat16"


def test_maml_in_float16_exits_2_naming_the_precision(capsys):
    assert main([*DIGITS, "--method", "maml", "--precision", "float16"]) == 2
    assert "'precision' parameter" in capsys.readouterr().err
