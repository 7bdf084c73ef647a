"""The ``skmeta`` command's run: data, meta-training, meta-test, the table."""

import inspect
import logging
import sys
import tempfile
import time

import numpy as np
from sklearn.base import clone
from sklearn.model_selection import GroupShuffleSplit
from skorch.callbacks import Callback
from torch import nn

from .._runtime import resolve_device
from ..callbacks import TimeLimit
from ..datasets import FEWSHOT_DATASETS, FewShotSplit, load_image_folder
from ..fewshot import CLASSIFIERS, PrototypicalClassifier
from ..model_selection import evaluate_settings
from ..persistence import save
from ..training import reuse_freed_memory
from ._parser import (
    _PROG,
    DEFAULT_N_WAYS,
    DEFAULT_NOVEL_FRACTION,
    EXIT_INTERRUPTED,
    LARGE_IMAGE_PIXELS,
    _UsageError,
    build_parser,
)


def _load(args):
    """Return the data's FewShotSplit, and a line on how it was split or None.

    Raises _UsageError on missing or unreadable data.
    """
    if args.data is not None:
        return _load_folder(args)
    for option in ("image_size", "novel_fraction"):
        if getattr(args, option) is not None:
            raise _UsageError(f"--{option.replace('_', '-')} applies to --data only.")
    loader = FEWSHOT_DATASETS[args.dataset]
    if args.data_home is None:
        return loader(), None  # the embedded or bundled copy
    if "data_home" not in inspect.signature(loader).parameters:
        raise _UsageError(
            f"--data-home does not apply to {args.dataset}, which ships with "
            "skmeta or scikit-learn."
        )
    data_home = args.data_home.expanduser()
    if not data_home.is_dir():
        raise _UsageError(
            f"--data-home {data_home}: no such folder. Point it to the folder "
            f"holding the archives skmeta.datasets.{loader.__name__} reads, or "
            "leave it out to use the copy embedded in skmeta."
        )
    try:
        return loader(data_home=data_home), None
    except OSError as exc:  # FileNotFoundError, download or checksum failure
        raise _UsageError(f"could not load {args.dataset}: {exc}") from exc


def _load_folder(args):
    """A ``--data`` folder, its classes (or groups) split at random, whole."""
    if args.data_home is not None:
        raise _UsageError("--data-home does not apply to --data.")
    folder = args.data.expanduser()
    try:
        data = load_image_folder(
            folder,
            image_size=args.image_size,
            verbose=False if args.quiet else None,
        )
    except (OSError, ValueError) as exc:  # the message names the files or sizes
        raise _UsageError(f"--data {args.data}: {exc}") from exc
    by_group = data.groups is not None
    units = data.groups if by_group else data.y
    noun = "groups" if by_group else "classes"
    fraction = args.novel_fraction or DEFAULT_NOVEL_FRACTION
    n_units = len(np.unique(units))
    try:
        base, novel = next(
            GroupShuffleSplit(
                n_splits=1, test_size=fraction, random_state=args.seed
            ).split(data.X, groups=units)
        )
    except ValueError as exc:  # a side with no class
        raise _UsageError(
            f"--data {args.data}: --novel-fraction {fraction:g} of its {n_units} "
            f"{noun} leaves a side empty; it needs at least 2 {noun}."
        ) from exc
    split = FewShotSplit(
        X_base=data.X[base],
        y_base=data.y[base],
        X_novel=data.X[novel],
        y_novel=data.y[novel],
        name=folder.resolve().name,
    )
    how = (
        f"  split: {len(np.unique(units[novel]))} of {n_units} {noun} novel "
        f"(--novel-fraction {fraction:g}, --seed {args.seed})"
    )
    if by_group:
        how += f": {', '.join(np.unique(units[novel]).tolist())}"
    return split, how


def _make_estimator(args, images, progress):
    """The method's estimator, with the options the command sets."""
    cls = CLASSIFIERS[args.method]
    # Rotations and flips as new classes suit handwritten characters, not
    # every image: on by default for Omniglot only.
    omniglot = args.data is None and args.dataset == "omniglot"
    symmetries = {
        name: omniglot if getattr(args, name) is None else getattr(args, name)
        for name in ("rotations", "flips")
    }
    for name, on in symmetries.items():
        if on and not images:
            raise _UsageError(
                f"--{name} needs image data; {args.dataset} is tabular "
                f"(use --no-{name})."
            )
    params = {"device": args.device, "random_state": args.seed}
    params["verbose"] = 0 if args.quiet else 1
    params["callbacks"] = [("cli_progress", _MetaTrainingEnd(progress))]
    if args.time_limit:
        params["callbacks"].append(TimeLimit(args.time_limit))
    options = {
        "max_epochs": args.max_epochs,
        "episodes_per_epoch": args.episodes_per_epoch,
        **symmetries,
        "validation_fraction": args.validation_fraction,
        "early_stopping": args.early_stopping,
        "precision": args.precision,
        "test_time_views": args.test_time_views,
    }
    known = cls().get_params(deep=False)
    for name, value in options.items():
        if value is None or (name not in known and value is False):
            continue
        if name not in known:
            option = "--" + name.replace("_", "-")
            raise _UsageError(f"{option} does not apply to --method {args.method}.")
        params[name] = value
    return cls(**params)


def _check_save_path(path):
    """Fail before training, not after, on a path that cannot be written.

    The target must be a regular file or not exist (not a folder, nor a device
    such as ``/dev/full``), and a file is created and removed in its folder,
    where the save writes its temporary file.
    """
    target = path.expanduser()
    if target.exists() and not target.is_file():
        raise _UsageError(
            f"--save {path}: not a regular file; give the path of a file to write."
        )
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=target.parent, prefix=".skmeta-") as f:
            f.write(b"\0")
            f.flush()
    except OSError as exc:
        raise _UsageError(f"--save {path}: cannot write a file there: {exc}") from exc


def _summary(split, embedded, estimator):
    noun = "images" if split.X_base.ndim == 4 else "samples"

    def part(y):
        return f"{len(np.unique(y))} classes, {len(y)} {noun}"

    shape = "x".join(map(str, split.X_base.shape[1:]))
    source = ", embedded in skmeta" if embedded else ""
    params = estimator.get_params()
    names = [name for name in ("rotations", "flips") if params.get(name)]
    as_classes = (
        f"; with {' and '.join(names)}, "
        f"{estimator._class_copies() * len(np.unique(split.y_base))} classes"
        if names
        else ""
    )
    return (
        f"dataset: {split.name} (samples of shape {shape}){source}\n"
        f"  base (meta-train):  {part(split.y_base)}{as_classes}\n"
        f"  novel (meta-test):  {part(split.y_novel)}"
    )


_STOPS = {
    "max_epochs": "all {max_epochs} epoch{s}",
    "time_limit": "stopped by the time limit (--time-limit {time_limit:g})",
    "early_stopping": "stopped early, keeping the weights with the lowest "
    "held-out loss",
}


def _training_report(estimator, seconds, args):
    """Meta-training's time (its epochs'), steps and stop; then fit's in all."""
    steps = estimator._step_noun
    stop = _STOPS[estimator.stop_reason_].format(
        max_epochs=estimator.max_epochs,
        s="" if estimator.max_epochs == 1 else "s",
        time_limit=args.time_limit,
    )
    history = estimator.history_
    n_epochs = len(history)
    training = sum(epoch["dur"] for epoch in history)
    return (
        f"meta-training: {training:.1f} s, {estimator.n_steps_} {steps} in "
        f"{n_epochs} epoch{'' if n_epochs == 1 else 's'}; {stop}\n"
        f"fit: {seconds:.1f} s in all"
    )


class _Progress:
    """What the command is doing, for the one line that a Ctrl-C prints."""

    def __init__(self):
        self.doing = "start-up"
        self.saved = None

    def interrupted_line(self):
        saved = (
            f"the fitted estimator was saved to {self.saved} before it"
            if self.saved is not None
            else "nothing was saved"
        )
        return f"{_PROG}: interrupted during {self.doing}; {saved}"


class _MetaTrainingEnd(Callback):
    """Tells the command's progress that meta-training is over, fit not yet."""

    def __init__(self, progress):
        self.progress = progress

    def on_train_end(self, net, **kwargs):
        self.progress.doing = "the end of fit, after meta-training"


def _settings(split, args):
    """The (n_way, k_shot) settings to evaluate, every one of them feasible.

    Checked before training: an N-way K-shot episode needs N novel classes
    holding at least K + Q samples each. Raises _UsageError naming each
    setting that the novel classes cannot form.
    """
    classes, counts = np.unique(split.y_novel, return_counts=True)
    n_ways = args.n_way or [n for n in DEFAULT_N_WAYS if n <= len(classes)]
    if not n_ways:
        raise _UsageError(
            f"{split.name} has {len(classes)} novel classes, fewer than the "
            f"{min(DEFAULT_N_WAYS)} of the default episodes; pass --n-way "
            f"{len(classes)} or fewer"
            + (", or a larger --novel-fraction." if args.data is not None else ".")
        )
    problems = []
    for n_way in n_ways:
        if n_way > len(classes):
            problems.append(
                f"{n_way}-way episodes need {n_way} novel classes and "
                f"{split.name} has {len(classes)}"
            )
            continue
        for k_shot in args.k_shot:
            per_class = k_shot + args.n_query
            eligible = int(np.sum(counts >= per_class))
            if n_way > eligible:
                problems.append(
                    f"{n_way}-way {k_shot}-shot episodes need {n_way} novel "
                    f"classes of {per_class} samples (--k-shot {k_shot} + "
                    f"--n-query {args.n_query}) and {eligible} have as many"
                )
    if problems:
        raise _UsageError(
            "cannot evaluate as asked: "
            + "; ".join(problems)
            + ". Lower --n-way, --k-shot or --n-query."
        )
    return [(n_way, k_shot) for n_way in n_ways for k_shot in args.k_shot]


def _accuracy_table(models, split, settings, args):
    """Rows of mean ± 95% CI accuracy (%) of each model, one per setting."""
    widths = [15] + [max(16, len(name) + 2) for name in models]

    def row(cells):
        return "".join(f"{c:<{w}}" for c, w in zip(cells, widths, strict=True))

    scores = {
        name: evaluate_settings(
            model,
            split.X_novel,
            split.y_novel,
            settings,
            n_query=args.n_query,
            n_episodes=args.episodes,
            random_state=args.seed,
        )
        for name, model in models.items()
    }
    lines = [row(["setting", *models]).rstrip()]
    for setting in settings:
        cells = [f"{setting[0]}-way {setting[1]}-shot"]
        for name in models:
            got = scores[name][setting]
            cells.append(f"{100 * got.mean:.2f} ± {100 * got.ci95:.2f}")
        lines.append(row(cells).rstrip())
    return lines


def _save(estimator, args, progress):
    progress.doing = f"the save to {args.save}"
    try:
        save(estimator, args.save.expanduser())
    except OSError as exc:
        raise _UsageError(f"--save {args.save}: {exc}") from exc
    progress.saved = args.save


def _run(args, progress):
    try:
        device = resolve_device(args.device)
    except (ValueError, RuntimeError) as exc:
        raise _UsageError(f"--device {args.device}: {exc}") from exc
    if args.save is not None:
        _check_save_path(args.save)
    progress.doing = "the loading of the data"
    split, how = _load(args)
    settings = _settings(split, args)
    estimator = _make_estimator(args, split.X_base.ndim == 4, progress)
    if args.transductive and "transductive_steps" not in estimator.get_params():
        raise _UsageError(f"--transductive does not apply to --method {args.method}.")
    loader = FEWSHOT_DATASETS[args.dataset]
    embedded = args.data is None and args.data_home is None
    embedded &= "data_home" in inspect.signature(loader).parameters
    print(_summary(split, embedded, estimator))
    if how is not None:
        print(how)
    if split.X_base.ndim == 4 and np.prod(split.X_base.shape[2:]) > LARGE_IMAGE_PIXELS:
        # Large activation buffers: keep them in the heap between steps.
        reuse_freed_memory()
    limit = f", time limit {args.time_limit:g} s" if args.time_limit else ""
    precision = estimator.get_params()["precision"]
    on = f"{device}" if precision == "float32" else f"{device} in {precision}"
    print(f"meta-training {args.method} on {on}{limit}", flush=True)

    progress.doing = "meta-training"
    start = time.perf_counter()
    try:
        estimator.fit(split.X_base, split.y_base)
    except ValueError as exc:  # the data or a diverged run: the message says
        raise _UsageError(str(exc)) from exc
    if estimator.stop_reason_ == "interrupted":
        # fit kept the weights of the last whole step: saved if asked, since a
        # long run cut short is still worth having; never evaluated.
        if args.save is not None:
            _save(estimator, args, progress)
        saved = (
            f"the model as trained so far was saved to {args.save}"
            if progress.saved is not None
            else "nothing was saved"
        )
        steps = f"{estimator._step_noun} done: {estimator.n_steps_}"
        print(
            f"{_PROG}: meta-training was interrupted ({steps}); {saved}",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    print(_training_report(estimator, time.perf_counter() - start, args), flush=True)
    if args.save is not None:
        _save(estimator, args, progress)
        print(f"saved the fitted estimator to {args.save}")

    # The same episodes on the raw input, with no learning: prototypes are
    # class means of the pixels or features (sklearn's NearestCentroid); and
    # the method with the backbone it starts from, before meta-training.
    progress.doing = "the evaluation"
    raw = PrototypicalClassifier(backbone=nn.Flatten(), max_epochs=0, test_time_views=1)
    untrained = clone(estimator).set_params(max_epochs=0, callbacks=None, verbose=0)
    models = {
        "raw input": raw.fit(split.X_base, split.y_base),
        "untrained": untrained.fit(split.X_base, split.y_base),
        args.method: estimator,
    }
    lines = _accuracy_table(models, split, settings, args)
    print()
    print(
        f"N-way K-shot accuracy (%) on the novel classes: mean ± 95% CI over "
        f"{args.episodes} episodes of {args.n_query} queries per class"
    )
    print("\n".join(lines))
    print(
        "raw input: nearest class mean of the raw input, no learning; "
        f"untrained: {args.method} with its backbone before meta-training"
    )
    views = estimator._n_test_time_views()
    if views > 1:
        print(
            f"{args.method} and untrained embed each image as the mean over "
            f"{views} views of it (test-time augmentation; --test-time-views 1 "
            "turns it off)"
        )
    if args.transductive:
        refining = clone(estimator).set_params(transductive_steps=args.transductive)
        vars(refining).update(
            vars(estimator) | {"transductive_steps": args.transductive}
        )
        lines = _accuracy_table({f"{args.method}": refining}, split, settings, args)
        print(
            f"\ntransductive: {args.transductive} step(s) of soft k-means with each "
            "episode's queries as the unlabelled set\n(not comparable with the "
            "rows above, where each query is classified alone)"
        )
        print("\n".join(lines))
    return 0


def main(argv=None):
    """Run the ``skmeta`` command.

    Parameters
    ----------
    argv : list of str or None, default=None
        Command-line arguments without the program name; None means
        ``sys.argv[1:]``.

    Returns
    -------
    int
        The exit status: 0 on success; 2 on a usage or data error (missing
        Omniglot archives, an unreadable image file, an unavailable device,
        N-way K-shot settings that the novel classes cannot form...), whose
        message goes to stderr; 130 when interrupted by Ctrl-C (SIGINT), with
        one line on stderr saying what was interrupted and what was saved.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error
        return exc.code if isinstance(exc.code, int) else 2
    progress = _Progress()
    # What the library logs (not a progress bar) shows on stderr while it runs.
    messages = logging.StreamHandler(sys.stderr)
    messages.setFormatter(logging.Formatter(f"{_PROG}: %(message)s"))
    logger = logging.getLogger("skmeta")
    level = logger.level
    logger.addHandler(messages)
    logger.setLevel(logging.INFO)
    try:
        return _run(args, progress)
    except _UsageError as exc:
        print(f"{_PROG}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(progress.interrupted_line(), file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        logger.removeHandler(messages)
        logger.setLevel(level)
