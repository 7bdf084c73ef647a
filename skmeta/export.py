"""ONNX export of a fitted estimator's network, to serve it without Python's torch.

:func:`to_onnx` writes one ONNX graph that computes, from a batch of float32
samples, exactly what the estimator computes from them: an embedder's
embeddings (``transform``), or a metric-based few-shot classifier's class
scores against its current support set (``decision_function``'s logits), the
support set's prototypes stored in the graph as constants. The graph runs in
`ONNX Runtime <https://onnxruntime.ai>`_ (or any ONNX runtime) from numpy,
C++, C#, Java or JavaScript, with no torch and no Python at all.

The graph is traced with torch's TorchScript-based exporter
(``torch.onnx.export(..., dynamo=False)``), which needs only the ``onnx``
package. torch's newer exporter (``dynamo=True``, the default from torch 2.9)
needs ``onnxscript`` as well; measured on torch 2.13 on a CPU, it took 2.6 to
3.3 s per export of a small Prototypical Network on digits (6.5 s the first in
a process) against 0.06 to 0.08 s (0.9 s), fixed the batch axis of the
Matching and Relation heads just as this one does, and failed on the
Euclidean and Manhattan distances. Every export is checked by
running the graph in ONNX Runtime on a batch of another size than the traced
one, so a graph that is wrong or whose batch axis was fixed is never written.
"""

import copy
import inspect
import io
import json
import warnings
from numbers import Integral

import numpy as np
import torch
from sklearn.utils.validation import check_is_fitted
from torch import nn

from ._base import TorchEstimator
from .embedding import MetricEmbedder
from .fewshot.prototypical import PrototypeHead

__all__ = ["to_onnx"]

#: The name of the graph's input: float32 samples ``(batch, *input_shape_)``.
INPUT_NAME = "input"

#: Samples in the batch that the network is traced with; the graph is checked
#: on one more, so that a batch axis fixed by the trace cannot pass.
_TRACED_BATCH = 2


class _Served(nn.Module):
    """What the exported graph computes: an estimator's inference on a batch.

    The estimator's own steps, without its chunking, padding and autocast:
    ``_embedding_function`` (the mean over ``test_time_views`` where there are
    several), then ``transform``'s flattening for ``"embeddings"``, or
    ``_comparison_space`` (``normalization``) and ``_support_logits`` (the
    prototypes, a constant of the graph) for ``"scores"``.
    """

    def __init__(self, estimator, output):
        super().__init__()
        self.network = estimator.module_  # a submodule: its weights are the graph's
        self.estimator = estimator
        self.embed = estimator._embedding_function(estimator.module_)
        self.output = output

    def forward(self, x):
        z = self.embed(x)
        if self.output == "embeddings":
            return z.flatten(1)
        estimator = self.estimator
        return estimator._support_logits(estimator._comparison_space(z))


def _output(estimator):
    """``"embeddings"`` or ``"scores"``: what the graph of ``estimator`` returns."""
    if isinstance(estimator, MetricEmbedder):
        return "embeddings"
    if isinstance(estimator, PrototypeHead):
        return "scores"
    supported = (
        "the embedders (MetricEmbedder and its presets TripletEmbedder, "
        "ContrastiveEmbedder, NPairEmbedder, ArcFaceEmbedder, CosFaceEmbedder) "
        "and the few-shot classifiers that compare queries with class means "
        "(PrototypicalClassifier, TransferClassifier)"
    )
    name = type(estimator).__name__
    if not isinstance(estimator, TorchEstimator):
        raise TypeError(
            f"to_onnx exports {supported}; got {name}, not an skmeta estimator."
        )
    raise NotImplementedError(
        f"to_onnx exports {supported}; not {name}, whose head does not trace to "
        "a graph with a free batch axis (Matching's attention sums over support "
        "samples with repeated class indices, which torch's exporter cannot "
        "translate; Relation compares queries in chunks fixed by the traced "
        "batch; MAML and Reptile fine-tune on each support set)."
    )


def _on_cpu(estimator):
    """A shallow copy of ``estimator`` whose module is a copy on the CPU.

    The support set of ``fit`` is embedded first, if it is still deferred,
    so that tracing reads the prototypes and embeds nothing.
    """
    for name in getattr(type(estimator), "_support_attributes", ()):
        getattr(estimator, name, None)  # the first read embeds the support set
    view = copy.copy(estimator)
    view.module_ = copy.deepcopy(estimator.module_).cpu()
    return view


def _matrix_transpose(g, x):
    """``x.mT`` (``aten::mT``) for the TorchScript exporter, which lacks it.

    :mod:`skmeta.distances` transposes one operand with it. Where that
    operand is a constant (the prototypes of the squared Euclidean and cosine
    distances) the exporter folds it away; where it depends on the input (the
    scaled points of the Euclidean distance, the Mahalanobis projection,
    transductive prototypes) it needs this.
    """
    rank = x.type().dim()
    return g.op("Transpose", x, perm_i=[*range(rank - 2), rank - 1, rank - 2])


def _traced(served, example, output, opset):
    """The ONNX model (``onnx.ModelProto``) of ``served``, traced on ``example``."""
    import onnx

    torch.onnx.register_custom_op_symbolic("aten::mT", _matrix_transpose, 9)
    # torch < 2.5 has no dynamo argument (its only exporter is this one).
    legacy = {}
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        legacy["dynamo"] = False
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # Shapes read as Python numbers (the embedding size, the number of
        # prototypes) are constants of the graph, as the tracer warns; the
        # batch size is checked afterwards. The exporter's deprecation is
        # torch's choice of default, nothing a user can act on.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            served,
            (example,),
            buffer,
            input_names=[INPUT_NAME],
            output_names=[output],
            dynamic_axes={INPUT_NAME: {0: "batch"}, output: {0: "batch"}},
            opset_version=opset,
            **legacy,
        )
    return onnx.load_from_string(buffer.getvalue())


def _check_graph(model, served, probe, output):
    """Raise unless ONNX Runtime gives ``served``'s output for ``probe``."""
    import onnxruntime

    session = onnxruntime.InferenceSession(
        model.SerializeToString(), providers=["CPUExecutionProvider"]
    )
    try:
        (got,) = session.run(None, {INPUT_NAME: probe.numpy()})
    except Exception as error:  # onnxruntime's own classes, from its C++ side
        raise RuntimeError(
            f"The exported graph fails on a batch of {len(probe)} samples (it "
            f"was traced on {_TRACED_BATCH}): the network fixes its batch size "
            f"somewhere, which a graph cannot follow. Nothing was written."
        ) from error
    with torch.no_grad():
        expected = served(probe).numpy()
    scale = max(1.0, float(np.abs(expected).max()))
    if got.shape != expected.shape or not np.allclose(
        got, expected, rtol=1e-4, atol=1e-4 * scale
    ):
        difference = (
            np.abs(got - expected).max() if got.shape == expected.shape else "n/a"
        )
        raise RuntimeError(
            f"The exported graph's {output} differ from the estimator's on a "
            f"batch of {len(probe)} samples (shape {got.shape} against "
            f"{expected.shape}, largest difference {difference}): an operation "
            "of the network is not translated faithfully by torch's ONNX "
            "exporter. Known: distance='manhattan' (torch.cdist with p=1, "
            "exported without the absolute value); use another distance. "
            "Nothing was written."
        )


def _metadata(estimator, output):
    """The model's ``metadata_props``: what the graph returns, and ``classes_``."""
    from . import __version__

    props = {
        "estimator": type(estimator).__name__,
        "output": output,
        "skmeta_version": __version__,
    }
    if output == "scores":
        try:
            props["classes"] = json.dumps(np.asarray(estimator.classes_).tolist())
        except TypeError as error:
            raise TypeError(
                "to_onnx stores classes_ as a JSON list in the model's metadata; "
                f"these labels are not JSON values: {estimator.classes_!r}. Use "
                "int, float or str labels."
            ) from error
    return props


def to_onnx(estimator, path, *, opset=None):
    """Write a fitted estimator's network to an ONNX file, for serving without torch.

    The graph takes float32 samples of the shape seen in ``fit``, with a
    free batch axis, and returns:

    - for an embedder (:class:`~skmeta.MetricEmbedder` and its presets), the
      embeddings that ``transform`` returns (L2-normalised where the
      estimator normalises; ``z L^T`` with a learned Mahalanobis distance);
    - for :class:`~skmeta.PrototypicalClassifier` and
      :class:`~skmeta.TransferClassifier`, the logits of ``decision_function``
      (for any number of classes, two included: one column per class)
      against the current support set, whose prototypes (or logistic head)
      the graph holds as constants, after ``normalization`` and the mean over
      ``test_time_views``. A later :meth:`adapt` does not change a written
      file: export again. With ``transductive_steps``, the samples of one
      call to the graph are the unlabelled set, as in ``predict``.

    The ``argmax`` of the scores indexes the labels stored in the model's
    metadata (``metadata_props``) under ``"classes"``, a JSON list of
    ``classes_``; ``"output"`` says ``"embeddings"`` or ``"scores"``. The
    graph's input is named ``"input"``, its output ``"embeddings"`` or
    ``"scores"``.

    The graph computes in float32 whatever the estimator's ``precision``,
    and takes samples as ``transform`` uses them: uint8 images divided by
    255 first. The estimator is not changed.

    Parameters
    ----------
    estimator : MetricEmbedder, PrototypicalClassifier or TransferClassifier
        Fitted; any ``device``.
    path : str or os.PathLike
        The file to write (conventionally ``*.onnx``); replaced if it exists.
    opset : int or None, default=None
        The ONNX opset version; ``None`` is torch's default (20 on torch
        2.13). ``test_time_views`` > 1 needs at least 16 (``GridSample``).

    Raises
    ------
    sklearn.exceptions.NotFittedError
        If the estimator is not fitted.
    TypeError
        If ``estimator`` is not an skmeta estimator, or ``opset`` not an int,
        or ``classes_`` are not JSON values.
    NotImplementedError
        For the other skmeta estimators (Matching, Relation, MAML, Reptile).
    ValueError
        If ``opset`` is below 9.
    RuntimeError
        If the exported graph, run in ONNX Runtime on a batch of another size
        than the traced one, does not give the estimator's outputs (to
        ``rtol=1e-4``); then no file is written.
    ImportError
        If ``onnx`` or ``onnxruntime`` is missing: ``pip install skmeta[onnx]``.

    Examples
    --------
    >>> import json
    >>> import numpy as np
    >>> from skmeta import PrototypicalClassifier
    >>> from skmeta.datasets import load_digits_fewshot
    >>> from skmeta.export import to_onnx
    >>> data = load_digits_fewshot()
    >>> clf = PrototypicalClassifier(max_epochs=1, episodes_per_epoch=10,
    ...                              random_state=0)
    >>> clf = clf.fit(data.X_base, data.y_base)
    >>> clf = clf.adapt(data.X_novel[:25], data.y_novel[:25])
    >>> to_onnx(clf, "digits.onnx")  # doctest: +SKIP

    Then, where only numpy and onnxruntime are installed:

    >>> import onnxruntime  # doctest: +SKIP
    >>> session = onnxruntime.InferenceSession("digits.onnx")  # doctest: +SKIP
    >>> X = data.X_novel[25:30].astype(np.float32)
    >>> (scores,) = session.run(None, {"input": X})  # doctest: +SKIP
    >>> meta = session.get_modelmeta().custom_metadata_map  # doctest: +SKIP
    >>> classes = np.asarray(json.loads(meta["classes"]))  # doctest: +SKIP
    >>> classes[scores.argmax(1)]  # doctest: +SKIP
    array([5, 5, 7, 7, 6])
    """
    output = _output(estimator)
    check_is_fitted(estimator)
    if opset is not None:
        if not isinstance(opset, Integral) or isinstance(opset, bool):
            raise TypeError(f"opset must be an int or None; got {opset!r}.")
        if opset < 9:
            raise ValueError(f"opset must be at least 9; got opset={opset}.")
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError as error:
        raise ImportError(
            "to_onnx needs onnx and onnxruntime, which the 'onnx' extra "
            "installs: pip install 'skmeta[onnx]'."
        ) from error
    metadata = _metadata(estimator, output)
    # Eval mode on the whole: the exporter restores the mode it found, and
    # the check below runs the module as the exporter traced it.
    served = _Served(_on_cpu(estimator), output).eval()
    generator = torch.Generator().manual_seed(0)
    probe = torch.rand(_TRACED_BATCH + 1, *estimator.input_shape_, generator=generator)
    model = _traced(served, probe[:_TRACED_BATCH], output, opset)
    _check_graph(model, served, probe, output)
    onnx.helper.set_model_props(model, metadata)
    onnx.save(model, path)
