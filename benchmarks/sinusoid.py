"""Few-shot sinusoid regression (Finn et al., 2017, section 5.1): MAML and Reptile.

Each task is ``y = a sin(x - b)``, amplitude ``a`` in U[0.1, 5], phase ``b``
in U[0, π], ``x`` in U[-5, 5]. For ``K`` of 5 and 10 shots, a
``MAMLRegressor`` (the paper's 1-40-40-1 ReLU network, one inner step of
α = 0.01 on K samples, K queries, Adam at 1e-3, 25 tasks per step) meta-trains
for ``--meta-steps`` outer steps on a pool of ``--train-tasks`` sinusoids of
``--samples-per-task`` points each (tasks given as ``groups``); the paper draws
new sinusoids at every step for 70,000 steps. Then, on ``--tasks`` new
sinusoids, it adapts to K points and predicts 100 others: the mean squared
error over tasks, with its 95 % confidence interval (1.96 std / sqrt(n)),
after 1 and after 10 gradient steps.

``ReptileRegressor`` meta-trains on as many tasks, one a meta-update, with
its defaults (the authors' sine-wave demonstration: 5 SGD steps of 0.02 on
each task's 2K points, ε from 0.1 to 0); it adapts with SGD steps of 0.02.

The baseline is the paper's "pretrained" one: the same network trained on all
the training tasks' samples pooled (Adam at 1e-3, as many steps, as many
samples per step as MAML sees), then fine-tuned on the K points with the same
SGD steps (α = 0.01) through the same ``adapt``.

Finn et al. report their sinusoid results as learning curves (their Figure 3:
mean squared error against 0 to 9 gradient steps for K = 5, 10 and 20, after
70,000 meta-training steps), not as a table; read them there.

Run from the repository root, on one thread::

    python benchmarks/sinusoid.py
"""

import copy
import time

import numpy as np
import torch
from _common import argument_parser, machine

from skmeta import MAMLRegressor, ReptileRegressor

#: Tasks per outer step, and the inner step size, as in the paper.
META_BATCH, ALPHA = 25, 0.01


def sinusoids(n_tasks, n_samples, rng):
    """``n_tasks`` sinusoid tasks of ``n_samples`` points: X, y of (task, point)."""
    amplitude = rng.uniform(0.1, 5.0, n_tasks)
    phase = rng.uniform(0.0, np.pi, n_tasks)
    X = rng.uniform(-5.0, 5.0, (n_tasks, n_samples, 1)).astype(np.float32)
    y = amplitude[:, None] * np.sin(X[..., 0] - phase[:, None])
    return X, y.astype(np.float32)


def query_errors(model, X, y, k_shot, n_steps):
    """Query MSE of each task after ``n_steps`` on its first ``k_shot`` points."""
    model = copy.copy(model).set_params(n_inner_steps_test=n_steps)
    errors = []
    for x_task, y_task in zip(X, y, strict=True):
        model.adapt(x_task[:k_shot], y_task[:k_shot])
        errors.append(np.mean((model.predict(x_task[k_shot:]) - y_task[k_shot:]) ** 2))
    return np.asarray(errors)


def pretrained(X, y, k_shot, n_steps, seed):
    """The baseline: one network trained on every training task's samples pooled.

    Built as an untrained MAMLRegressor (the same network, and ``adapt``'s
    fine-tuning), then trained by Adam at 1e-3 on the mean squared error of
    random samples of the pool, ``META_BATCH * 2 * k_shot`` a step (what one
    MAML step sees), for ``n_steps`` steps.
    """
    model = MAMLRegressor(k_shot=k_shot, max_epochs=0, random_state=seed)
    model.fit(X.reshape(-1, 1), y.ravel())
    x, t = torch.from_numpy(X.reshape(-1, 1)), torch.from_numpy(y.ravel())
    learner = model.module_.learner
    optimizer = torch.optim.Adam(learner.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(n_steps):
        rows = torch.randint(len(x), (META_BATCH * 2 * k_shot,), generator=generator)
        loss = torch.nn.functional.mse_loss(learner(x[rows])[:, 0], t[rows])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model


def main():
    parser = argument_parser(__doc__)
    parser.add_argument("--shots", type=int, nargs="+", default=[5, 10])
    parser.add_argument(
        "--meta-steps",
        type=int,
        default=800,
        help="outer steps of MAML (and Adam steps of the baseline); the paper: "
        "70,000. 800 take about 75 s a K on one thread of a 2-core CPU",
    )
    parser.add_argument("--train-tasks", type=int, default=5000)
    parser.add_argument("--samples-per-task", type=int, default=40)
    parser.add_argument("--tasks", type=int, default=600, help="test tasks")
    parser.add_argument("--queries", type=int, default=100, help="per test task")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rng = np.random.default_rng(args.seed)
    X, y = sinusoids(args.train_tasks, args.samples_per_task, rng)
    groups = np.repeat(np.arange(args.train_tasks), args.samples_per_task)
    print(machine())
    print(
        f"{args.train_tasks} training sinusoids of {args.samples_per_task} points, "
        f"{args.meta_steps} meta-steps of {META_BATCH} tasks (the paper: 70,000 "
        f"steps on new sinusoids each), {args.tasks} test tasks of K + "
        f"{args.queries} points; MSE ± 95% CI\n"
    )
    print(f"{'model':<28} {'K':>3} {'1 step':>15} {'10 steps':>15} {'fit s':>7}")
    for k_shot in args.shots:
        X_test, y_test = sinusoids(args.tasks, k_shot + args.queries, rng)
        start = time.perf_counter()
        maml = MAMLRegressor(
            k_shot=k_shot,
            max_epochs=1,
            episodes_per_epoch=args.meta_steps * META_BATCH,
            meta_batch_size=META_BATCH,
            inner_lr=ALPHA,
            random_state=args.seed,
        ).fit(X.reshape(-1, 1), y.ravel(), groups)
        maml_time = time.perf_counter() - start
        start = time.perf_counter()
        baseline = pretrained(X, y, k_shot, args.meta_steps, args.seed)
        baseline_time = time.perf_counter() - start
        start = time.perf_counter()
        reptile = ReptileRegressor(
            k_shot=k_shot,
            max_epochs=1,
            episodes_per_epoch=args.meta_steps * META_BATCH,
            random_state=args.seed,
        ).fit(X.reshape(-1, 1), y.ravel(), groups)
        reptile_time = time.perf_counter() - start
        rows = (
            ("MAMLRegressor", maml, maml_time),
            ("ReptileRegressor", reptile, reptile_time),
            ("pretrained, fine-tuned", baseline, baseline_time),
        )
        for name, model, seconds in rows:
            cells = []
            for n_steps in (1, 10):
                e = query_errors(model, X_test, y_test, k_shot, n_steps)
                half_width = 1.96 * e.std() / np.sqrt(len(e))
                cells.append(f"{e.mean():.3f} ± {half_width:.3f}")
            one, ten = cells
            print(f"{name:<28} {k_shot:>3} {one:>15} {ten:>15} {seconds:>7.1f}")


if __name__ == "__main__":
    main()
