"""Mixed precision: autocast of forward passes, and the float16 gradient scaler.

Every torch-backed estimator takes ``precision``: ``"float32"`` (the
default), ``"bfloat16"`` or ``"float16"``. Forward passes then run under
:func:`torch.autocast` on the estimator's device (CPU or CUDA): matrix
products and convolutions in the lower precision, reductions and batch norm
in float32, as autocast decides (see PyTorch's "Automatic Mixed Precision"
notes). The weights and the optimizer's state stay float32, the loss is
computed in float32, and embeddings, scores and probabilities come back as
float32. float16's narrow range needs a gradient scaler
(:class:`torch.amp.GradScaler`) in training; bfloat16 has float32's range
and needs none.
"""

import contextlib

import torch
from skorch.dataset import unpack_data

__all__ = ["PRECISIONS", "autocast", "with_precision"]

#: The ``precision`` options and the autocast dtype of each (None: no autocast).
PRECISIONS = {"float32": None, "bfloat16": torch.bfloat16, "float16": torch.float16}


def autocast(device, precision):
    """A context that runs forward passes on ``device`` in ``precision``.

    Parameters
    ----------
    device : torch.device or str
        Where the forward passes run; its type (``"cpu"``, ``"cuda"``) is
        the autocast device type.
    precision : {"float32", "bfloat16", "float16"}
        A key of :data:`PRECISIONS`.

    Returns
    -------
    context manager
        :func:`torch.autocast` to the precision's dtype on the device's type,
        or a context that changes nothing for ``"float32"``.
    """
    dtype = PRECISIONS[precision]
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=dtype)


class _MixedPrecisionNet:
    """Mixin of a skorch net: forward passes autocast, float16 gradients scaled.

    ``infer`` (the module's forward in training and validation) runs under
    :func:`autocast`; ``get_loss`` compares float32 outputs. With float16,
    the loss is scaled before ``backward``, the gradients are unscaled right
    after it (so that ``on_grad_computed`` callbacks, gradient clipping
    among them, see their true values) and each optimizer steps through the
    scaler, which skips a step whose gradients overflowed and lowers the
    scale (``torch.amp.GradScaler``'s recipe). Set ``precision`` on a
    subclass (see :func:`with_precision`).
    """

    precision = "float32"

    def initialize(self):
        super().initialize()
        scaled = self.precision == "float16"
        device = torch.device(self.device).type
        self.grad_scaler_ = torch.amp.GradScaler(device) if scaled else None
        return self

    def infer(self, x, **fit_params):
        with autocast(self.device, self.precision):
            return super().infer(x, **fit_params)

    def get_loss(self, y_pred, y_true, *args, **kwargs):
        if torch.is_tensor(y_pred) and y_pred.is_floating_point():
            y_pred = y_pred.float()
        return super().get_loss(y_pred, y_true, *args, **kwargs)

    def train_step_single(self, batch, **fit_params):
        if self.grad_scaler_ is None:
            return super().train_step_single(batch, **fit_params)
        # skorch's step, with the loss scaled before backward.
        self._set_training(True)
        Xi, yi = unpack_data(batch)
        y_pred = self.infer(Xi, **fit_params)
        loss = self.get_loss(y_pred, yi, X=Xi, training=True)
        self.grad_scaler_.scale(loss).backward()
        for name in self._optimizers:
            self.grad_scaler_.unscale_(getattr(self, name + "_"))
        return {"loss": loss, "y_pred": y_pred}

    def _step_optimizer(self, step_fn):
        if self.grad_scaler_ is None:
            return super()._step_optimizer(step_fn)
        step_fn()  # the gradients, scaled
        for name in self._optimizers:
            self.grad_scaler_.step(getattr(self, name + "_"))
        self.grad_scaler_.update()


def with_precision(net_class, precision):
    """``net_class`` (a skorch net class) training in ``precision``.

    Parameters
    ----------
    net_class : type
        A subclass of ``skorch.NeuralNet``.
    precision : {"float32", "bfloat16", "float16"}
        A key of :data:`PRECISIONS`.

    Returns
    -------
    type
        A subclass of ``net_class`` of the same name, with
        :class:`_MixedPrecisionNet` mixed in (unless ``net_class`` has it
        already, as a net with its own step that autocasts does) and its
        ``precision`` set.
    """
    mixed = issubclass(net_class, _MixedPrecisionNet)
    return type(
        net_class.__name__,
        (net_class,) if mixed else (_MixedPrecisionNet, net_class),
        {"precision": precision, "__module__": net_class.__module__},
    )
