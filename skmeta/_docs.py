"""Docstring sections that several estimators share, and the decorator that fills them.

A docstring holds a line ``    {name}`` where a shared section goes;
:func:`fill_doc` replaces it, so that one text serves every estimator.
"""

__all__ = ["FIT", "fill_doc"]

#: The docstring of a ``fit`` after its summary line, which each ``fit``
#: writes (see :func:`skmeta._params.build_estimator_class`); the class's
#: ``_fit_doc`` gives the paragraphs after the summary (``extended``, if
#: any), what ``X`` needs beyond finite values (``X``, starting with a
#: comma), what ``y`` needs beyond labels (``y``), or the type and text of
#: another ``y`` (``y_type``, ``y_doc``), the ``groups`` parameter where fit
#: takes it, the ValueErrors of its own (``raises``, each starting with a
#: comma), and other errors (``errors``: numpydoc entries, each on a new
#: line).
FIT = """{extended}        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, c, h, w)
            Training samples, finite{X}.
        y : {y_type}
            {y_doc}{groups}

        Returns
        -------
        self : object
            The fitted estimator.

        Raises
        ------
        ValueError
            If X has NaN or inf or is not 2-D or 4-D{raises}, or if training
            diverges (a non-finite loss or weight; the message names the
            learning rates). The estimator is then left as it was before
            ``fit``.{errors}
"""

#: What every torch-backed estimator records of its training and its data
#: (``steps``: what one training step is; ``history``, where given: the
#: entry of ``history_``).
TRAINING_ATTRIBUTES = """\
{history}{support_attributes}{episode_attributes}    n_steps_ : int
        Training steps run: {steps}.
    stop_reason_ : str
        Why training ended: ``"max_epochs"``, ``"time_limit"`` (a
        :class:`skmeta.callbacks.TimeLimit`), ``"early_stopping"`` or
        ``"interrupted"`` (a ``KeyboardInterrupt``, with a warning).
    n_features_in_ : int
        Features (tabular) or channels (images) of X in ``fit``.
    input_shape_ : tuple of int
        Shape of one sample in ``fit``.
    device_ : torch.device
        The device the module lives on.
"""

#: The shape of the training episodes, which ``None`` parameters leave to fit.
EPISODE_ATTRIBUTES = """\
    n_way_, k_shot_, n_query_ : int
        The shape of the training episodes: ``n_way``, ``k_shot`` and
        ``n_query``, or what ``None`` resolved to on the data of ``fit``.
"""

#: The support set of every few-shot classifier.
SUPPORT_ATTRIBUTES = """\
    classes_ : ndarray of shape (n_classes,)
        Labels of the current support set (of ``fit``, or of ``adapt``).
"""

#: The end of every few-shot classifier's example, after the lines that
#: import the class and make ``clf``: meta-train on the base classes of
#: :func:`skmeta.datasets.load_digits_fewshot`, adapt to its five novel
#: classes, predict.
ADAPT_EXAMPLE = """\
    >>> from skmeta.datasets import load_digits_fewshot
    >>> data = load_digits_fewshot()
    >>> clf = clf.fit(data.X_base, data.y_base)
    >>> clf = clf.adapt(data.X_novel[:25], data.y_novel[:25])
    >>> clf.predict(data.X_novel[25:30]).shape
    (5,)
"""

EPISODIC = {
    "validation_what": "the same 100 validation episodes",
    "steps": "episodes",
    "support_attributes": SUPPORT_ATTRIBUTES,
    "episode_attributes": EPISODE_ATTRIBUTES,
}
#: The metric-based few-shot classifiers: one episode a training step.
METRIC_BASED = {
    **EPISODIC,
    "history": """\
    history_ : skorch.History
        skorch's record of meta-training: loss and learning rate of every
        episode (``history_[:, "batches", :, "train_loss"]``), epoch times.
""",
}
META_BATCHES = {
    **EPISODIC,
    "steps": "meta-batches of ``meta_batch_size`` tasks",
}
EMBEDDING = {
    "validation_what": "the same 100 nearest-prototype episodes",
    "steps": "P x K batches",
    "support_attributes": "",
    "episode_attributes": "",
}


def fill_doc(values=None, /, **sections):
    """Class decorator: put the shared docstring sections in place.

    Each line ``    {name}`` of the docstring becomes ``sections[name]``, the
    shared section ``training_attributes`` formatted with ``values``, or
    ``adapt_example`` (:data:`ADAPT_EXAMPLE`).
    (The Parameters section comes from each estimator's ``_parameters``: see
    :mod:`skmeta._params`.)
    """
    values = values or {}
    # The given sections first: they may hold the shared markers themselves.
    texts = {
        **sections,
        "training_attributes": (
            TRAINING_ATTRIBUTES.format(**{"history": "", **values}) if values else ""
        ),
        "adapt_example": ADAPT_EXAMPLE,
    }

    def fill(cls):
        for name, text in texts.items():
            cls.__doc__ = cls.__doc__.replace(f"    {{{name}}}\n", text)
        return cls

    return fill
