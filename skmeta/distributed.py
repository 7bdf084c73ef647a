"""Data-parallel training over the processes of a torch.distributed process group.

When the script that fits an estimator runs as N processes of one process group
(``torchrun --nproc-per-node N train.py``, whose script calls
:func:`torch.distributed.init_process_group`), the one skorch set-up of every
estimator, :func:`skmeta.training.train_module`, trains through PyTorch's
:class:`~torch.nn.parallel.DistributedDataParallel` (DDP):

- Every process draws the same global sequence of training steps (episodes,
  P x K batches, mini-batches) from the shared ``random_state``, as one process
  would, and process ``r`` trains on steps ``r, r + N, r + 2N, ...``: one optimizer
  step covers N consecutive steps of the sequence, the *global batch*, and an epoch
  has ``steps // N`` optimizer steps.
- DDP averages the gradients over the processes, so every process takes the same
  optimizer step: the gradient of the mean of the N step losses (few-shot
  classifiers: the mean over the N episodes).
- A metric-learning loss compares the samples of a batch with one another: the
  embedders' loss sees the embeddings and labels gathered from all processes
  (:func:`torch.distributed.nn.functional.all_gather`, whose backward sums the
  gradients of every process's copy of the loss), so its miner mines the global
  batch, and the loss and its gradient are those of one process on the global batch
  (pytorch-metric-learning's ``DistributedLossWrapper`` scales its loss by N
  instead, because its gather carries no gradient).
- The recorded ``train_loss`` is the global batch's: the embedders' loss on the
  gathered batch, or the mean of the N processes' step losses.

Where neither dropout nor augmentation draws random numbers, the N-process fit
equals one process that averages the losses of the same global batches. Each
process draws augmentations for every step of the sequence (the same draws as one
process), and dropout masks from its own generator. Batch-norm running statistics
are those of process 0 (DDP broadcasts its buffers at every forward pass, and
:func:`finish` once more at the end). Validation on held-out classes, ``adapt``,
``predict`` and evaluation run whole in every process; the fitted estimators of all
processes are equal. Reptile's meta-update sets the gradients without a backward
pass: its net averages them over the processes itself (``gradients_by_hand``), and
its ``ε`` anneals over the optimizer steps of one process. An estimator whose
training step is not data-parallel declares why in ``_not_data_parallel``, and
``fit`` then raises ``NotImplementedError``. The user guide's "Scaling out" page
shows the ``torchrun`` commands.
"""

import os
import warnings
from numbers import Integral

import torch
import torch.distributed as dist
from torch.distributed.nn.functional import all_gather
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import IterableDataset

from .callbacks import TimeLimit

__all__ = []


def world_size():
    """Processes of the default process group: 1 when none is initialised."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        warnings.warn(
            f"WORLD_SIZE={os.environ['WORLD_SIZE']} is set (torchrun?) but no "
            "torch.distributed process group is initialised: each process trains "
            "on all the data alone. Call torch.distributed.init_process_group() "
            "before fit to train data-parallel.",
            UserWarning,
            stacklevel=4,
        )
    return 1


def prepare(estimator, net_class, data):
    """The net class and the training steps of this process, for a process group.

    Parameters
    ----------
    estimator : skmeta._base.TorchEstimator
        The estimator being fitted.
    net_class : type
        Its skorch net class.
    data : torch.utils.data.IterableDataset
        The global sequence of one epoch's training steps, with ``len``.

    Returns
    -------
    net_class : type
        ``net_class`` with :class:`_DataParallelNet` mixed in.
    data : torch.utils.data.IterableDataset
        This process's share of the steps (:class:`_Share`).

    Raises
    ------
    NotImplementedError
        For the estimators whose training step is not yet data-parallel.
    ValueError
        If ``random_state`` is not an int, if the processes disagree on it or on
        the steps of an epoch, or if an epoch has fewer steps than processes.
    """
    _check_supported(estimator)
    size, rank = dist.get_world_size(), dist.get_rank()
    if not isinstance(estimator.random_state, Integral):
        raise ValueError(
            f"Training over {size} processes draws one sequence of training steps "
            "in every process, from the same random_state; random_state must be an "
            f"int, the same in every process; got {estimator.random_state!r}."
        )
    settings = torch.tensor(
        [int(estimator.random_state), len(data)], device=estimator.device_
    )
    gathered = [torch.empty_like(settings) for _ in range(size)]
    dist.all_gather(gathered, settings)
    if any(not torch.equal(other, gathered[0]) for other in gathered):
        seen = [tuple(t.tolist()) for t in gathered]
        raise ValueError(
            "Every process must fit the same data with the same random_state; got "
            f"(random_state, steps per epoch) = {seen} in processes 0 to {size - 1}."
        )
    if len(data) < size:
        raise ValueError(
            f"An epoch of {len(data)} training steps cannot be shared among {size} "
            f"processes: give an epoch at least {size} steps (episodes_per_epoch, "
            "batches_per_epoch, or a smaller train_batch_size for transfer "
            "pre-training)."
        )
    if len(data) % size and rank == 0:
        warnings.warn(
            f"An epoch of {len(data)} training steps over {size} processes: "
            f"{len(data) // size} optimizer steps of {size}; the last "
            f"{len(data) % size} steps of each epoch are drawn but not trained on. "
            f"Make the steps of an epoch (episodes_per_epoch, batches_per_epoch) a "
            f"multiple of {size}.",
            UserWarning,
            stacklevel=4,
        )
    gather = estimator._gathers_batch
    parallel = type(
        net_class.__name__,
        (_DataParallelNet, net_class),
        {
            "gather_outputs": gather,
            # The net class's own, which the mixin's default would shadow.
            "gradients_by_hand": getattr(net_class, "gradients_by_hand", False),
            "__module__": net_class.__module__,
        },
    )
    return parallel, _Share(data, rank, size)


def finish(net, succeeded):
    """Release the DDP wrapper of ``net``; after a success, make every copy equal.

    The parameters are equal already (every process took the same steps); the
    buffers (batch-norm running statistics) are broadcast from process 0.
    """
    vars(net).pop("parallel_module_", None)  # its hooks go with it
    if succeeded:
        _broadcast_state(net.module_)


def _broadcast_state(module):
    """Copy process 0's parameters and buffers into every process's ``module``."""
    with torch.no_grad():
        for tensor in module.state_dict().values():
            dist.broadcast(tensor, src=0)


def _check_supported(estimator):
    """Refuse the estimators whose training step is not yet made data-parallel."""
    reason = estimator._not_data_parallel
    if reason is not None:
        raise NotImplementedError(
            f"{type(estimator).__name__} does not train over several processes "
            f"yet: {reason}. Fit it in one process (without a process group)."
        )


def _gathered(value):
    """``value``'s tensors concatenated over the processes, in process order.

    A tensor, or a tuple or list of them (a loss's several outputs or targets).
    The gather carries gradients: its backward sums, into each process's
    tensor, the gradients of every process's copy.
    """
    if isinstance(value, (tuple, list)):
        return type(value)(_gathered(part) for part in value)
    with warnings.catch_warnings():
        # Deprecated for a private successor; the public one still works.
        warnings.filterwarnings(
            "ignore", "torch.distributed.nn.functional", FutureWarning
        )
        return torch.cat(all_gather(value.contiguous()))


class _Share(IterableDataset):
    """Process ``rank``'s share of a sequence of training steps.

    Every process iterates the whole sequence ``data`` (so that its random
    draws, augmentations included, stay those of one process) and yields steps
    ``rank, rank + size, ...`` of its first ``len(self) * size`` steps.
    """

    def __init__(self, data, rank, size):
        self.data, self.rank, self.size = data, rank, size

    def __len__(self):
        return len(self.data) // self.size

    def __iter__(self):
        shared = len(self) * self.size
        for position, step in enumerate(self.data):
            if position < shared and position % self.size == self.rank:
                yield step


class _DataParallelNet:
    """Mixin of a skorch net: the training step through DDP, over the process group.

    The skorch net keeps the plain module in ``module_`` (callbacks, validation
    and the optimizer see it as in one process); training forward passes go
    through its DDP wrapper, which averages the gradients. With
    ``gather_outputs``, the criterion sees the outputs and targets of all
    processes, concatenated in process order. Requests to stop (a
    ``KeyboardInterrupt`` from a time limit, early stopping or Ctrl-C) are
    shared after every step and epoch, so that all processes stop together.
    """

    gather_outputs = False

    #: Whether the net's step sets gradients without a backward pass (Reptile's
    #: meta-update): then no DDP wrapper, and the gradients are averaged by hand.
    gradients_by_hand = False

    def initialize(self):
        super().initialize()
        if self.gradients_by_hand:
            _broadcast_state(self.module_)  # as DDP's constructor does
            return self
        device = torch.device(self.device)
        # vars(): skorch would register a module attribute as one more module.
        vars(self)["parallel_module_"] = DistributedDataParallel(
            self.module_, device_ids=[device] if device.type == "cuda" else None
        )
        return self

    def infer(self, x, **fit_params):
        if not self.module_.training or "parallel_module_" not in vars(self):
            return super().infer(x, **fit_params)
        module, self.module_ = self.module_, vars(self)["parallel_module_"]
        try:
            return super().infer(x, **fit_params)
        finally:
            self.module_ = module

    def get_loss(self, y_pred, y_true, *args, training=False, **kwargs):
        if training and self.gather_outputs:
            y_pred, y_true = _gathered(y_pred), _gathered(y_true)
        return super().get_loss(y_pred, y_true, *args, training=training, **kwargs)

    def train_step_single(self, batch, **fit_params):
        step = super().train_step_single(batch, **fit_params)
        if self.gradients_by_hand:
            size = dist.get_world_size()
            for parameter in self.module_.parameters():
                if parameter.grad is not None:
                    dist.all_reduce(parameter.grad)
                    parameter.grad /= size
        return step

    def train_step(self, batch, **fit_params):
        step = super().train_step(batch, **fit_params)
        if not self.gather_outputs:  # each process has its own step's loss
            loss = step["loss"].detach().float().clone()
            dist.all_reduce(loss)
            step = {**step, "loss": loss / dist.get_world_size()}
        return step

    def notify(self, method_name, **cb_kwargs):
        if method_name not in ("on_batch_end", "on_epoch_end"):
            return super().notify(method_name, **cb_kwargs)
        if method_name == "on_epoch_end":  # validation sees process 0's buffers
            for buffer in self.module_.buffers():
                dist.broadcast(buffer, src=0)
        request = None
        try:
            super().notify(method_name, **cb_kwargs)
        except KeyboardInterrupt as stop:
            request = stop
        limits = [cb for _, cb in self.callbacks_ if isinstance(cb, TimeLimit)]
        expired = any(cb.expired_ for cb in limits)
        flags = torch.tensor(
            [request is not None, expired], dtype=torch.int32, device=self.device
        )
        dist.all_reduce(flags, op=dist.ReduceOp.MAX)
        if flags[1] and not expired:  # another process's clock ran out first
            for callback in limits:
                callback.expired_ = True
        if flags[0]:
            raise request if request is not None else KeyboardInterrupt
        return None
