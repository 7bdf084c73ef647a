"""The arguments of the ``skmeta`` command, their defaults and their checks."""

import argparse
from pathlib import Path

from .. import __version__
from .._precision import PRECISIONS
from ..datasets import FEWSHOT_DATASETS
from ..fewshot import CLASSIFIERS

DEFAULT_N_WAYS = (5, 20)

#: Default limit of meta-training, in seconds: the whole default command, with
#: start-up and the evaluation of three models, then ends within 3 minutes on
#: a 2-core CPU.
DEFAULT_TIME_LIMIT = 80.0

#: Images of more pixels than this (height x width) train with
#: :func:`skmeta.training.reuse_freed_memory`: their activation buffers are
#: large enough for glibc to map and unmap them at every step.
LARGE_IMAGE_PIXELS = 32 * 32

#: Fraction of the classes (or groups) of a ``--data`` folder held out as
#: novel classes by default.
DEFAULT_NOVEL_FRACTION = 0.3

#: The exit status of a command interrupted by SIGINT, as a shell reports it.
EXIT_INTERRUPTED = 130

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


def _seconds(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a number of seconds, got {text!r}"
        ) from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(
            f"expected a finite number of seconds >= 0, got {text}"
        )
    return value


def _fraction(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(
            f"expected a fraction strictly between 0 and 1, got {text}"
        )
    return value


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
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--dataset",
        choices=list(FEWSHOT_DATASETS),
        default="omniglot",
        help="omniglot: 'Omniglot minimal', embedded in skmeta: base "
        "background_small1 (136 characters), novel the 3 alphabets only in "
        "background_small2 (106 characters); digits: scikit-learn's bundled "
        "digits, base 0-4 and novel 5-9 (default: omniglot)",
    )
    source.add_argument(
        "--data",
        type=Path,
        default=None,
        metavar="FOLDER",
        help="a folder of image files instead, FOLDER/<class>/<file> or "
        "FOLDER/<group>/<class>/<file> (PNG, JPEG, BMP, WebP, TIFF; read by "
        "skmeta.datasets.load_image_folder); --novel-fraction of its classes, "
        "or of its groups, are the novel ones",
    )
    parser.add_argument(
        "--image-size",
        type=_int_at_least(1),
        default=None,
        metavar="PIXELS",
        help="resize the images of --data to PIXELS x PIXELS (Lanczos); "
        "needed when they differ in size (default: their own size)",
    )
    parser.add_argument(
        "--novel-fraction",
        type=_fraction,
        default=None,
        metavar="F",
        help="fraction of the classes of --data (of its groups, where the "
        "folders nest two deep) held out as novel classes, drawn with --seed "
        f"(default: {DEFAULT_NOVEL_FRACTION:g})",
    )
    parser.add_argument(
        "--data-home",
        type=Path,
        default=None,
        metavar="PATH",
        help="decode Omniglot from the archives "
        "omniglot/images_background_small{1,2}.zip in this folder, downloading "
        "missing ones, instead of the embedded copy (omniglot only)",
    )
    parser.add_argument(
        "--method",
        choices=sorted(CLASSIFIERS),
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
        "--time-limit",
        type=_seconds,
        default=DEFAULT_TIME_LIMIT,
        metavar="S",
        help="stop meta-training after S seconds, 0 for no limit (default: "
        f"{DEFAULT_TIME_LIMIT:g}); the epoch under way ends early",
    )
    parser.add_argument(
        "--validation-fraction",
        type=_fraction,
        default=None,
        metavar="F",
        help="hold out this fraction of the base classes, whole, and log the "
        "validation loss and accuracy on them after each epoch (default: none)",
    )
    parser.add_argument(
        "--early-stopping",
        action="store_true",
        help="stop once the loss on held-out base classes no longer falls, and "
        "keep the best weights, the untrained ones included (holds out "
        "--validation-fraction of the base classes, 0.1 by default)",
    )
    parser.add_argument(
        "--transductive",
        type=_int_at_least(1),
        default=None,
        metavar="STEPS",
        help="also report, in a separate table, the method refining its class "
        "means with each episode's unlabelled queries by STEPS steps of soft "
        "k-means (prototypical and transfer only)",
    )
    parser.add_argument(
        "--test-time-views",
        type=_int_at_least(1),
        default=None,
        metavar="V",
        help="embed each image as the mean over V views of it, itself and "
        "fixed affine distortions (test-time augmentation; V times the "
        "forward passes); 1 turns it off (default: the method's own, 16 for "
        "prototypical on images; prototypical only)",
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
        "classes (default: on for omniglot, off for digits and --data; images "
        "only)",
    )
    parser.add_argument(
        "--flips",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="add the mirror image of each base class as a new class (with "
        "--rotations, 8 classes from each; default: on for omniglot, off for "
        "digits and --data; images only)",
    )
    parser.add_argument(
        "--device",
        default="cpu",
        help="torch device: cpu, cuda, cuda:1, ... or auto, cuda when available "
        "(default: cpu)",
    )
    parser.add_argument(
        "--precision",
        choices=sorted(PRECISIONS),
        default=None,
        help="precision of the forward passes: bfloat16 and float16 autocast "
        "them (bfloat16 is fast on GPUs and on CPUs with AVX512-BF16 or AMX, "
        "slower elsewhere; default: float32)",
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
        help="write the fitted estimator there, without pickle (load it with "
        "skmeta.persistence.load); the folder is checked before training, and "
        "a meta-training cut short by Ctrl-C is saved too",
    )
    parser.add_argument(
        "--quiet",
        action="store_true",
        help="no progress bar nor epoch log",
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {__version__}"
    )
    return parser
