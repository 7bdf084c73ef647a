"""The ``skmeta`` command: meta-train on base classes, meta-test on novel ones.

``skmeta`` fits a few-shot classifier on the base classes of a data set and
reports its N-way K-shot accuracy on the novel classes, never seen in
training, as the mean over episodes with its 95% confidence interval::

    skmeta                                   # digits, embedded, no download
    skmeta --dataset omniglot --data-home ../shared/data
    skmeta --n-way 5 --k-shot 1 5 --episodes 600 --save protonet.joblib

Run ``skmeta --help`` for every option.
"""

import argparse
import sys
import time
from pathlib import Path

import joblib
import numpy as np
from torch import nn

from . import __version__
from ._base import resolve_device
from .datasets import load_digits_fewshot, load_omniglot_minimal
from .fewshot import (
    MAMLClassifier,
    MatchingClassifier,
    PrototypicalClassifier,
    RelationClassifier,
    ReptileClassifier,
)
from .model_selection import evaluate_episodes

__all__ = ["DATASETS", "METHODS", "main"]

#: Few-shot methods by name. A new method is one entry here: a class taking
#: (some of) ``max_epochs``, ``episodes_per_epoch``, ``rotations``, ``device``,
#: ``random_state`` and ``verbose``, and accepted by :func:`evaluate_episodes`.
METHODS = {
    "prototypical": PrototypicalClassifier,
    "matching": MatchingClassifier,
    "relation": RelationClassifier,
    "maml": MAMLClassifier,
    "reptile": ReptileClassifier,
}

#: Data sets by name: whether they are images (rotations apply) and the
#: default N of N-way meta-test episodes.
DATASETS = {
    "digits": {"images": False, "n_way": [5]},
    "omniglot": {"images": True, "n_way": [5, 20]},
}

_PROG = "skmeta"


class _UsageError(Exception):
    """A problem with the command line or the data: exit code 2, no traceback."""


def _int_at_least(minimum):
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected an integer, got {text!r}"
            ) from None
        if value < minimum:
            raise argparse.ArgumentTypeError(
                f"expected an integer >= {minimum}, got {value}"
            )
        return value

    parse.__name__ = f"int >= {minimum}"
    return parse


def build_parser():
    """Return the argument parser of the ``skmeta`` command."""
    parser = argparse.ArgumentParser(
        prog=_PROG,
        description=(
            "Meta-train a few-shot classifier on the base classes of a data set "
            "and report its N-way K-shot accuracy (mean ± 95% confidence "
            "interval over episodes) on the novel classes, never seen in training."
        ),
    )
    parser.add_argument(
        "--dataset",
        choices=sorted(DATASETS),
        default="digits",
        help="digits: scikit-learn's bundled digits, base 0-4 and novel 5-9 (no "
        "download); omniglot: 'Omniglot minimal', base background_small1, novel "
        "the 3 alphabets only in background_small2 (default: digits)",
    )
    parser.add_argument(
        "--data-home",
        type=Path,
        default=None,
        metavar="PATH",
        help="folder holding omniglot/images_background_small{1,2}.zip (omniglot "
        "only); it must exist. Default: $SKMETA_DATA, else ~/skmeta_data, "
        "downloading missing archives",
    )
    parser.add_argument(
        "--method",
        choices=sorted(METHODS),
        default="prototypical",
        help="few-shot method (default: prototypical)",
    )
    parser.add_argument(
        "--n-way",
        type=_int_at_least(2),
        nargs="+",
        default=None,
        metavar="N",
        help="classes per meta-test episode, one or more (default: 5 20 for "
        "omniglot, 5 for digits, which has 5 novel classes)",
    )
    parser.add_argument(
        "--k-shot",
        type=_int_at_least(1),
        nargs="+",
        default=[1, 5],
        metavar="K",
        help="support samples per class in meta-test episodes, one or more "
        "(default: 1 5)",
    )
    parser.add_argument(
        "--n-query",
        type=_int_at_least(1),
        default=15,
        metavar="Q",
        help="query samples per class in meta-test episodes (default: 15)",
    )
    parser.add_argument(
        "--episodes",
        type=_int_at_least(1),
        default=1000,
        metavar="E",
        help="meta-test episodes per N-way K-shot setting (default: 1000)",
    )
    parser.add_argument(
        "--max-epochs",
        type=_int_at_least(0),
        default=None,
        metavar="E",
        help="epochs of meta-training (default: the method's own)",
    )
    parser.add_argument(
        "--episodes-per-epoch",
        type=_int_at_least(1),
        default=None,
        metavar="E",
        help="meta-training episodes per epoch (default: the method's own)",
    )
    parser.add_argument(
        "--rotations",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="add the 90/180/270-degree rotations of each base class as new "
        "classes (default: on for omniglot, off for digits; images only)",
    )
    parser.add_argument(
        "--device",
        default="cpu",
        help="torch device: cpu, cuda, cuda:1, ... or auto, cuda when available "
        "(default: cpu)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of meta-training and of the meta-test episodes (default: 0)",
    )
    parser.add_argument(
        "--save",
        type=Path,
        default=None,
        metavar="PATH",
        help="write the fitted estimator there with joblib (load it with joblib.load)",
    )
    parser.add_argument(
        "--quiet",
        action="store_true",
        help="no progress bar nor training log",
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {__version__}"
    )
    return parser


def _load(args):
    """Return the dataset's FewShotSplit; raise _UsageError on missing data."""
    if args.dataset == "digits":
        if args.data_home is not None:
            print(
                "note: --data-home is ignored for digits (bundled with scikit-learn)",
                file=sys.stderr,
            )
        return load_digits_fewshot()
    data_home = args.data_home
    if data_home is not None:
        data_home = data_home.expanduser()
        if not data_home.is_dir():
            raise _UsageError(
                f"--data-home {data_home}: no such folder. Point it to the folder "
                "holding omniglot/images_background_small1.zip and "
                "omniglot/images_background_small2.zip."
            )
    try:
        return load_omniglot_minimal(data_home=data_home)
    except OSError as exc:  # FileNotFoundError, download or checksum failure
        raise _UsageError(f"could not load Omniglot: {exc}") from exc


def _make_estimator(args, images):
    """The method's estimator, with the options the command sets."""
    cls = METHODS[args.method]
    rotations = images if args.rotations is None else args.rotations
    if rotations and not images:
        raise _UsageError(
            f"--rotations needs image data; {args.dataset} is tabular "
            "(use --no-rotations)."
        )
    params = {"device": args.device, "random_state": args.seed}
    params["verbose"] = 0 if args.quiet else 1
    options = {
        "max_epochs": args.max_epochs,
        "episodes_per_epoch": args.episodes_per_epoch,
        "rotations": rotations,
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


def _summary(split):
    def part(y):
        return f"{len(np.unique(y))} classes, {len(y)} images"

    shape = "x".join(map(str, split.X_base.shape[1:]))
    return (
        f"dataset: {split.name} (samples of shape {shape})\n"
        f"  base (meta-train):  {part(split.y_base)}\n"
        f"  novel (meta-test):  {part(split.y_novel)}"
    )


def _table_row(method, setting, accuracy, episodes):
    return f"{method:<13} {setting:<14} {accuracy:<16} {episodes}"


def _run(args):
    try:
        device = resolve_device(args.device)
    except (ValueError, RuntimeError) as exc:
        raise _UsageError(f"--device {args.device}: {exc}") from exc
    estimator = _make_estimator(args, DATASETS[args.dataset]["images"])
    split = _load(args)
    print(_summary(split), flush=True)

    start = time.perf_counter()
    estimator.fit(split.X_base, split.y_base)
    print(
        f"meta-training: {time.perf_counter() - start:.1f} s on {device} "
        f"({args.method})",
        flush=True,
    )
    if args.save is not None:
        try:
            args.save.expanduser().parent.mkdir(parents=True, exist_ok=True)
            joblib.dump(estimator, args.save.expanduser())
        except OSError as exc:
            raise _UsageError(f"--save {args.save}: {exc}") from exc
        print(f"saved the fitted estimator to {args.save}")

    # The same episodes on the raw input, with no learning: prototypes are
    # class means of the pixels or features (sklearn's NearestCentroid).
    baseline = PrototypicalClassifier(backbone=nn.Flatten(), max_epochs=0)
    baseline.fit(split.X_base, split.y_base)
    n_ways = args.n_way or DATASETS[args.dataset]["n_way"]
    classes, counts = np.unique(split.y_novel, return_counts=True)
    rows, notes = [], []
    for n_way in n_ways:
        for k_shot in args.k_shot:
            setting = f"{n_way}-way {k_shot}-shot"
            per_class = k_shot + args.n_query
            eligible = int(np.sum(counts >= per_class))
            if n_way > len(classes):
                notes.append(
                    f"note: skipped {setting}: {split.name} has only "
                    f"{len(classes)} novel classes"
                )
                continue
            if n_way > eligible:
                notes.append(
                    f"note: skipped {setting}: only {eligible} novel classes have "
                    f"the {per_class} samples (k-shot + n-query) an episode needs"
                )
                continue
            for name, model in ((args.method, estimator), ("baseline", baseline)):
                scores = evaluate_episodes(
                    model,
                    split.X_novel,
                    split.y_novel,
                    n_way=n_way,
                    k_shot=k_shot,
                    n_query=args.n_query,
                    n_episodes=args.episodes,
                    random_state=args.seed,
                )
                accuracy = f"{100 * scores.mean:.2f} ± {100 * scores.ci95:.2f}"
                rows.append(_table_row(name, setting, accuracy, args.episodes))

    print()
    for note in notes:
        print(note)
    if rows:
        print(
            "baseline: nearest class mean of the raw input, no learning, same episodes"
        )
        print(_table_row("method", "setting", "accuracy (%)", "episodes"))
        print("\n".join(rows))
    else:
        print("no N-way K-shot setting fits the novel classes: nothing evaluated")
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
        The exit status: 0 on success, 2 on a usage or data error (missing
        Omniglot archives, an unavailable device...), whose message goes to
        stderr.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error
        return exc.code if isinstance(exc.code, int) else 2
    try:
        return _run(args)
    except (_UsageError, ValueError) as exc:
        # ValueError: an estimator's parameter or input check, with its message.
        print(f"{_PROG}: error: {exc}", file=sys.stderr)
        return 2
