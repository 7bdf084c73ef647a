"""Tests for the ``skmeta`` command (skmeta.cli).

Every run meta-trains for a handful of episodes only: these tests check the
command's behaviour, not the accuracy it reaches (``benchmarks/`` and the
README measure that). The default data, Omniglot minimal, is embedded in the
package; the run on the original archives looks for them in ``$SKMETA_DATA``
when set, else in ``../shared/data`` beside the repository, and skips when
they are absent.
"""

import logging
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skorch.callbacks import Callback

from skmeta import PrototypicalClassifier
from skmeta.cli import _main as cli
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
    in_all = re.search(r"fit: (\d+\.\d) s in all\n", out)
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


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--n-way", "6"], "6-way episodes need 6 novel classes and digits has 5"),
        (["--n-way", "5", "10"], "10-way episodes need 10 novel classes"),
        (
            ["--k-shot", "1", "200"],
            "5-way 200-shot episodes need 5 novel classes of 215 samples "
            "(--k-shot 200 + --n-query 15) and 0 have as many",
        ),
    ],
)
def test_settings_the_novel_classes_cannot_form_exit_2_before_training(
    argv, message, capsys
):
    assert main([*DIGITS, *argv]) == 2
    captured = capsys.readouterr()
    assert message in captured.err
    assert len(captured.err.splitlines()) == 1
    assert "meta-training" not in captured.out


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


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full here")
def test_save_to_a_device_fails_before_training(capsys):
    # /dev/full accepts opening for writing and fails on the first write.
    assert main([*DIGITS, "--save", "/dev/full"]) == 2
    captured = capsys.readouterr()
    assert "--save /dev/full: not a regular file" in captured.err
    assert "meta-training" not in captured.out


def test_the_save_check_leaves_the_folder_as_it_was(tmp_path, capsys):
    (tmp_path / "old.skmeta").write_bytes(b"a model")
    cli._check_save_path(tmp_path / "old.skmeta")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.skmeta"]
    assert (tmp_path / "old.skmeta").read_bytes() == b"a model"


def test_an_interrupted_meta_training_prints_no_table_and_exits_130(
    monkeypatch, capsys
):
    class CtrlC(Callback):
        """Ctrl-C after the first training episode."""

        def __init__(self, seconds):
            pass

        def on_batch_end(self, net, **kwargs):
            raise KeyboardInterrupt

    monkeypatch.setattr(cli, "TimeLimit", CtrlC)  # the command's time limit
    with pytest.warns(UserWarning, match="interrupted"):
        assert main(DIGITS) == 130
    captured = capsys.readouterr()
    assert captured.err == (
        "skmeta: meta-training was interrupted (episodes done: 1); nothing was saved\n"
    )
    assert "setting" not in captured.out


class _CtrlCAt(Callback):
    """Stands in for TimeLimit: a KeyboardInterrupt at one of skorch's hooks."""

    hook = None

    def __init__(self, seconds):
        setattr(self, self.hook, self._interrupt)

    def _interrupt(self, net, **kwargs):
        raise KeyboardInterrupt


def test_an_interrupted_meta_training_is_saved_when_asked(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.setattr(_CtrlCAt, "hook", "on_batch_end")
    monkeypatch.setattr(cli, "TimeLimit", _CtrlCAt)
    path = tmp_path / "cut_short.skmeta"
    with pytest.warns(UserWarning, match="interrupted"):
        assert main([*DIGITS, "--save", str(path)]) == 130
    err = capsys.readouterr().err
    assert f"the model as trained so far was saved to {path}" in err
    model = load(path)
    assert (model.stop_reason_, model.n_steps_) == ("interrupted", 1)


def test_an_interrupt_at_the_end_of_fit_says_so(monkeypatch, capsys):
    # After meta-training, inside fit (the support set's embedding): the
    # interrupt leaves fit, which keeps nothing.
    monkeypatch.setattr(_CtrlCAt, "hook", "on_train_end")
    monkeypatch.setattr(cli, "TimeLimit", _CtrlCAt)
    assert main(DIGITS) == 130
    assert capsys.readouterr().err == (
        "skmeta: interrupted during the end of fit, after meta-training; "
        "nothing was saved\n"
    )


def test_an_interrupted_evaluation_says_what_was_saved(tmp_path, monkeypatch, capsys):
    def ctrl_c(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "evaluate_settings", ctrl_c)
    path = tmp_path / "model.skmeta"
    assert main([*DIGITS, "--save", str(path)]) == 130
    # Saving embeds the training samples as the support set, and says so.
    assert capsys.readouterr().err == (
        "skmeta: embedding the 901 training samples as the support set\n"
        f"skmeta: interrupted during the evaluation; the fitted estimator was "
        f"saved to {path} before it\n"
    )
    assert load(path).stop_reason_ == "max_epochs"


def test_a_real_sigint_during_meta_training_exits_130_with_one_line():
    # A signal sent to a real process lands wherever training is, a step
    # included: not a callback's KeyboardInterrupt.
    argv = ["--dataset", "digits", "--max-epochs", "100000", "--time-limit", "60"]
    argv += ["--episodes-per-epoch", "1", "--episodes", "20", "--k-shot", "1"]
    process = subprocess.Popen(
        [sys.executable, "-m", "skmeta", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"},
    )
    try:
        for line in process.stdout:  # the epoch log's header: training is on
            if "train_loss" in line:
                break
        time.sleep(0.5)  # into a later epoch's steps, past the log's printing
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 130, err
    assert "Traceback" not in err
    last = err.splitlines()[-1]
    assert last.startswith("skmeta: ") and "interrupted" in last, err
    assert "setting" not in out


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


def test_what_the_library_logs_shows_on_stderr_while_the_command_runs(
    monkeypatch, capsys
):
    def run(args, progress):
        logging.getLogger("skmeta.fewshot").info("embedding %d samples", 3)
        logging.getLogger("skmeta.fewshot").debug("not shown")
        return 0

    monkeypatch.setattr(cli, "_run", run)
    logger = logging.getLogger("skmeta")
    handlers, level = list(logger.handlers), logger.level
    assert main(DIGITS) == 0
    assert capsys.readouterr().err == "skmeta: embedding 3 samples\n"
    assert (logger.handlers, logger.level) == (handlers, level)  # as it was


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

    monkeypatch.setattr(cli, "evaluate_settings", broken)
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


# --- a folder of images: --data ---------------------------------------------

FOLDER_ARGS = ["--k-shot", "1", "--n-query", "2", "--test-time-views", "1", *TINY]


def _write_folder(root, classes, n_images=4, size=16):
    """One PNG folder per class name (a relative path); each class a pattern."""
    rng = np.random.RandomState(0)
    for name in classes:
        pattern = rng.randint(0, 256, size=(size, size))
        for i in range(n_images):
            noisy = np.clip(pattern + rng.randint(-30, 30, size=pattern.shape), 0, 255)
            (root / name).mkdir(parents=True, exist_ok=True)
            Image.fromarray(noisy.astype(np.uint8)).save(root / name / f"{i}.png")
    return root


@pytest.fixture
def recorded(monkeypatch):
    """The labels the command meta-trains on and those it evaluates on."""
    seen = {"fit": [], "evaluated": set()}
    real_fit, real_evaluate = PrototypicalClassifier.fit, cli.evaluate_settings

    def fit(self, X, y):
        seen["fit"].append(set(np.asarray(y).tolist()))
        return real_fit(self, X, y)

    def evaluate(model, X, y, settings, **kwargs):
        seen["evaluated"] |= set(np.asarray(y).tolist())
        return real_evaluate(model, X, y, settings, **kwargs)

    monkeypatch.setattr(PrototypicalClassifier, "fit", fit)
    monkeypatch.setattr(cli, "evaluate_settings", evaluate)
    return seen


def test_a_folder_of_classes_is_split_whole_and_gets_the_table(
    tmp_path, capsys, recorded
):
    classes = [f"class{i}" for i in range(10)]
    folder = _write_folder(tmp_path / "my_images", classes)
    assert main(["--data", str(folder), "--n-way", "2", *FOLDER_ARGS]) == 0
    out = capsys.readouterr().out
    assert "dataset: my_images (samples of shape 1x16x16)\n" in out
    assert "base (meta-train):  7 classes, 28 images\n" in out
    assert "novel (meta-test):  3 classes, 12 images\n" in out
    assert "split: 3 of 10 classes novel (--novel-fraction 0.3, --seed 0)" in out
    assert "rotations" not in out  # on by default for Omniglot only
    assert list(_table(out)) == [(2, 1)]
    trained, evaluated = recorded["fit"][0], recorded["evaluated"]
    assert len(trained) == 7 and len(evaluated) == 3
    assert trained | evaluated == set(classes) and not trained & evaluated


def test_nested_folders_are_split_by_group(tmp_path, capsys, recorded):
    classes = [f"g{g}/c{c}" for g in range(4) for c in range(3)]
    folder = _write_folder(tmp_path / "alphabets", classes)
    argv = ["--data", str(folder), "--n-way", "2", "--novel-fraction", "0.5"]
    assert main([*argv, *FOLDER_ARGS]) == 0
    out = capsys.readouterr().out
    match = re.search(r"split: 2 of 4 groups novel \(.*\): (g\d), (g\d)$", out, re.M)
    novel_groups = set(match.groups())
    evaluated = recorded["evaluated"]
    assert {label.split("/")[0] for label in evaluated} == novel_groups
    assert len(evaluated) == 6
    assert not recorded["fit"][0] & evaluated


def test_a_folder_with_an_unreadable_file_exits_2_naming_it(tmp_path, capsys):
    folder = _write_folder(tmp_path / "images", ["a", "b"])
    (folder / "b" / "broken.png").write_bytes(b"not a png")
    assert main(["--data", str(folder), *FOLDER_ARGS]) == 2
    captured = capsys.readouterr()
    assert f"--data {folder}: 1 of 9 image file(s) could not be read" in captured.err
    assert "b/broken.png" in captured.err
    assert captured.out == ""


def test_images_of_several_sizes_need_image_size(tmp_path, capsys):
    folder = _write_folder(tmp_path / "images", [f"c{i}" for i in range(4)])
    _write_folder(folder, ["c4"], size=20)
    argv = ["--data", str(folder), "--n-way", "2", *FOLDER_ARGS]
    assert main(argv) == 2
    assert "The images differ in size" in capsys.readouterr().err
    assert main([*argv, "--image-size", "18"]) == 0
    assert "(samples of shape 1x18x18)" in capsys.readouterr().out


def test_too_few_novel_classes_for_the_default_episodes_exit_2(tmp_path, capsys):
    folder = _write_folder(tmp_path / "images", [f"c{i}" for i in range(6)])
    assert main(["--data", str(folder), *FOLDER_ARGS]) == 2
    err = capsys.readouterr().err
    assert "has 2 novel classes, fewer than the 5 of the default episodes" in err
    assert "--n-way 2 or fewer, or a larger --novel-fraction" in err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--image-size", "28"], "--image-size applies to --data only"),
        (["--novel-fraction", "0.5"], "--novel-fraction applies to --data only"),
        (["--dataset", "digits", "--data", "x"], "not allowed with argument"),
    ],
)
def test_folder_options_without_a_folder_exit_2(argv, message, capsys):
    assert main([*argv, *TINY]) == 2
    assert message in capsys.readouterr().err
