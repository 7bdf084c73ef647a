"""Omniglot minimal: a small Conv4 distilled from a large one, for few-shot.

The teacher is ``PrototypicalClassifier`` with its default Conv4 (64 filters in
each block), meta-trained on the base alphabets of ``images_background_small1``
(``--steps`` episodes of the default 60-way 1-shot 5-query shape, affine
augmentation). The student is a Conv4 with 32 filters in each block
(``backbone__hidden_channels=32, embedding_dim=32``), trained three ways at
the same budget of ``--steps`` gradient steps:

- alone: ``PrototypicalClassifier`` meta-trained as the teacher was (same
  episodes, same augmentation);
- distilled: ``DistilledEmbedder(teacher)`` without labels, batches of as many
  images as an episode, matching the teacher's embeddings (a linear map from
  32 to 64 dimensions, mean squared error) on the base images as they are;
- distilled on views: the same, on the base images and ``--views`` fixed
  affine distortions of each (:class:`skmeta.augmentation.RandomAffine`, drawn
  once), the teacher's embeddings computed once on all of them.

Every model is scored the same way on the novel alphabets (those of
``images_background_small2`` that small1 lacks): its ``transform`` of the
images (one view, ``test_time_views=1``), then
``PrototypicalClassifier(backbone="identity", max_epochs=0)``, ``--episodes``
episodes of 5-way 1-shot and 5-shot, 15 queries per class, mean ± 95% CI
(``skmeta.model_selection.evaluate_episodes``). Prediction speed is
``transform`` of the novel images, embeddings per second, teacher and
students measured in turn in the same run (the median of ``--repeats``).
One thread, one process.

Run from the repository root::

    nice -n 10 python benchmarks/distillation.py   # 24 min on 2 shared cores
    python benchmarks/distillation.py --steps 20 --episodes 50  # a smoke run
"""

import argparse
import sys
import time

import numpy as np
import torch
from _common import machine

from skmeta import DistilledEmbedder, PrototypicalClassifier
from skmeta.augmentation import RandomAffine
from skmeta.datasets import load_omniglot_minimal
from skmeta.model_selection import evaluate_episodes

SETTINGS = [(5, 1), (5, 5)]

#: The student's backbone: Conv4 with 32 filters in every block.
STUDENT = dict(backbone_params={"hidden_channels": 32}, embedding_dim=32)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data-home", default=None, help="archives' folder; default: the embedded copy"
    )
    parser.add_argument(
        "--steps", type=int, default=200, help="gradient steps of each trained model"
    )
    parser.add_argument(
        "--views", type=int, default=4, help="affine views per image, last row"
    )
    parser.add_argument("--episodes", type=int, default=600, help="per setting")
    parser.add_argument("--repeats", type=int, default=3, help="speed measurements")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    data = load_omniglot_minimal(data_home=args.data_home)
    print(data, "|", machine(), flush=True)
    common = dict(max_epochs=1, random_state=args.seed)
    episodic = dict(episodes_per_epoch=args.steps, test_time_views=1, **common)
    teacher = _fit(
        "teacher: Conv4-64, Prototypical", PrototypicalClassifier(**episodic), data
    )
    # As many images per step as an episode of the classifiers.
    images = teacher.n_way_ * (teacher.k_shot_ + teacher.n_query_)
    distilled = dict(
        train_batch_size=images, batches_per_epoch=args.steps, **STUDENT, **common
    )
    models = [
        ("teacher: Conv4-64, Prototypical", teacher),
        (
            "student alone: Conv4-32, Prototypical",
            _fit(
                "student alone",
                PrototypicalClassifier(**episodic, **STUDENT),
                data,
            ),
        ),
        (
            "student distilled: Conv4-32, no labels",
            _fit("distilled", DistilledEmbedder(teacher, **distilled), data, None),
        ),
    ]
    if args.views:
        torch.manual_seed(args.seed)
        X = torch.from_numpy(data.X_base)
        views = [data.X_base] + [RandomAffine()(X).numpy() for _ in range(args.views)]
        student = DistilledEmbedder(teacher, **distilled)
        name = f"student distilled on {1 + args.views} views: Conv4-32, no labels"
        models.append((name, _fit(name, student, data, None, np.concatenate(views))))

    speeds = _speeds([model for _, model in models], data.X_novel, args.repeats)
    print(
        "\n| model | "
        + " | ".join(f"{w}-way {k}-shot" for w, k in SETTINGS)
        + " | embeddings/s | x teacher |"
    )
    print("|---" * (len(SETTINGS) + 3) + "|")
    for (name, model), speed in zip(models, speeds, strict=True):
        scores = _scores(model, data, args)
        cells = " | ".join(f"{100 * s.mean:.2f} ± {100 * s.ci95:.2f}" for s in scores)
        print(f"| {name} | {cells} | {speed:.0f} | {speed / speeds[0]:.2f} |")
    return 0


def _fit(name, model, data, y=..., X=None):
    """``model`` fitted on the base images (``X`` if given) and ``y``, timed."""
    start = time.perf_counter()
    model.fit(data.X_base if X is None else X, data.y_base if y is ... else y)
    minutes = (time.perf_counter() - start) / 60
    loss = model.history_[-1, "train_loss"]
    print(f"{name}: {model.n_steps_} steps in {minutes:.1f} min, last loss {loss:.4f}")
    return model


def _speeds(models, X, repeats):
    """Embeddings per second of each model's ``transform``: the median of runs
    taken in turn, so that the machine's load falls on all alike."""
    rates = np.zeros((repeats, len(models)))
    for r in range(repeats):
        for m, model in enumerate(models):
            start = time.perf_counter()
            model.transform(X)
            rates[r, m] = len(X) / (time.perf_counter() - start)
    return np.median(rates, axis=0)


def _scores(model, data, args):
    """Prototypical episodes on the novel classes, on ``model``'s embeddings."""
    Z_base, Z_novel = model.transform(data.X_base), model.transform(data.X_novel)
    # max_epochs=0: nothing is trained; fit only validates and stores.
    head = PrototypicalClassifier(backbone="identity", max_epochs=0)
    head.fit(Z_base, data.y_base)
    return [
        evaluate_episodes(
            head,
            Z_novel,
            data.y_novel,
            n_way=n_way,
            k_shot=k_shot,
            n_query=15,
            n_episodes=args.episodes,
            random_state=args.seed,
        )
        for n_way, k_shot in SETTINGS
    ]


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    sys.exit(main())
