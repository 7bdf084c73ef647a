"""Omniglot minimal: few-shot on embeddings learnt without labels (SimCLR).

Fits ``SelfSupervisedEmbedder`` on the base images of
``images_background_small1`` without their labels (two affine views of each
image, NT-Xent), then meta-tests Prototypical Networks on its embeddings of
the novel alphabets (those of ``images_background_small2`` that small1 lacks):
``PrototypicalClassifier(backbone="identity", max_epochs=0)`` on the
transformed features, 600 episodes of each N-way K-shot setting, 15 queries
per class, mean ± 95% CI (``skmeta.model_selection.evaluate_settings``).

Beside it, at the same budget of gradient steps (not seconds: the machine is
shared) and the same images per step:

- untrained: the same Conv4 backbone with its initial weights;
- supervised: ``PrototypicalClassifier`` meta-trained with the labels, on
  episodes of ``--batch-size // 2`` classes, 1 support and 3 queries each
  (as many images as a self-supervised batch's two views), with the same
  affine augmentation and no test-time augmentation.

Every row is scored the same way: the model's ``transform`` of the novel
images, then the identity Prototypical classifier. One thread, one process.

Run from the repository root::

    python benchmarks/self_supervised.py            # about 10 minutes
    python benchmarks/self_supervised.py --steps 50 --episodes 100  # a smoke run
"""

import sys
import time

import numpy as np
import torch
from _common import argument_parser, machine

from skmeta import PrototypicalClassifier, SelfSupervisedEmbedder
from skmeta.datasets import load_omniglot_minimal
from skmeta.model_selection import evaluate_settings

SETTINGS = [(5, 1), (5, 5), (20, 1), (20, 5)]


def main(argv=None):
    parser = argument_parser(__doc__, data_home=True)
    parser.add_argument(
        "--steps", type=int, default=300, help="gradient steps of each trained row"
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=64,
        help="samples per self-supervised batch (twice as many views); the "
        "supervised episodes have as many images",
    )
    parser.add_argument(
        "--temperature",
        type=float,
        nargs="+",
        default=[0.1, 0.5],
        help="one self-supervised row for each",
    )
    parser.add_argument("--episodes", type=int, default=600, help="per setting")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    data = load_omniglot_minimal(data_home=args.data_home)
    print(data, "|", machine(), flush=True)
    views = 2 * args.batch_size
    common = dict(max_epochs=1, random_state=args.seed)
    untrained = SelfSupervisedEmbedder(**{**common, "max_epochs": 0})
    models = [("untrained Conv4", untrained)]
    for temperature in args.temperature:
        name = (
            f"self-supervised, no labels (tau={temperature}): {args.steps} steps of "
            f"{args.batch_size} images x 2 views"
        )
        model = SelfSupervisedEmbedder(
            temperature,
            train_batch_size=args.batch_size,
            batches_per_epoch=args.steps,
            **common,
        )
        models.append((name, model))
    n_way = views // 4
    models.append(
        (
            f"supervised Prototypical: {args.steps} episodes of {n_way}-way 1-shot "
            f"3-query ({4 * n_way} images)",
            PrototypicalClassifier(
                n_way,
                1,
                3,
                episodes_per_epoch=args.steps,
                test_time_views=1,
                **common,
            ),
        )
    )
    if 4 * n_way != views:
        print(f"(episodes of {4 * n_way} images, self-supervised batches {views})")

    table = []
    for name, model in models:
        print(f"\n{name}", flush=True)
        start = time.perf_counter()
        labels = data.y_base if isinstance(model, PrototypicalClassifier) else None
        model.fit(data.X_base, labels)
        minutes = (time.perf_counter() - start) / 60
        loss = model.history_[-1, "train_loss"] if len(model.history_) else None
        print(f"trained {model.n_steps_} steps in {minutes:.1f} min, last loss {loss}")
        table.append((f"{name} ({minutes:.1f} min)", _scores(model, data, args)))

    print("\n| model | " + " | ".join(f"{w}-way {k}-shot" for w, k in SETTINGS) + " |")
    print("|---" * (len(SETTINGS) + 1) + "|")
    for name, rows in table:
        cells = " | ".join(f"{100 * s.mean:.2f} ± {100 * s.ci95:.2f}" for s in rows)
        print(f"| {name} | {cells} |")
    return 0


def _scores(model, data, args):
    """Prototypical episodes on the novel classes, on ``model``'s embeddings."""
    Z_base, Z_novel = model.transform(data.X_base), model.transform(data.X_novel)
    # max_epochs=0: nothing is trained; fit only validates and stores.
    head = PrototypicalClassifier(backbone="identity", max_epochs=0)
    head.fit(Z_base, data.y_base)
    scores = evaluate_settings(
        head,
        Z_novel,
        data.y_novel,
        SETTINGS,
        n_episodes=args.episodes,
        random_state=args.seed,
    )
    for score in scores.values():
        print(score, flush=True)
    return list(scores.values())


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    sys.exit(main())
