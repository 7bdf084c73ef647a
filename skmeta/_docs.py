"""Docstring sections that several estimators share, and the decorator that fills them.

A docstring holds a line ``    {name}`` where a shared section goes;
:func:`fill_doc` replaces it, so that one text serves every estimator.
"""

__all__ = ["fill_doc"]

#: The training controls of every torch-backed estimator (``validation_what``:
#: what the validation after each epoch consists of).
TRAINING_PARAMETERS = """\
    early_stopping : bool, default=False
        Stop training once ``valid_loss`` has not improved for
        ``n_iter_no_change`` epochs, and keep the weights of its best epoch
        (the untrained weights count as a candidate). Holds out
        ``validation_fraction`` of the classes (0.1 if None).
    validation_fraction : float in (0, 1) or None, default=None
        Fraction of the classes of ``y`` (at least 2 classes) held out of
        training, whole, never samples of training classes. After each epoch
        {validation_what} of these classes record ``valid_loss`` (query
        log-loss) and ``valid_acc`` in ``history_``, so skorch's
        ``EarlyStopping`` and ``Checkpoint`` work with their defaults.
        ``None`` holds out nothing (unless ``early_stopping``).
    n_iter_no_change : int, default=10
        Epochs without a lower ``valid_loss`` before ``early_stopping`` ends
        training.
"""

#: ``n_query=None`` of the episodic classifiers.
N_QUERY_PARAMETER = """\
    n_query : int or None, default=None
        Query samples per class in training episodes. ``None`` means 5, or
        fewer (at least 1) where the ``n_way``-th largest class has fewer
        than ``k_shot + 5`` samples, so that small data sets train with the
        defaults; a class with fewer than ``k_shot + n_query`` samples is
        never drawn into an episode.
"""

#: What every torch-backed estimator records of its training (``steps``: what
#: one training step is).
TRAINING_ATTRIBUTES = """\
    n_steps_ : int
        Training steps run: {steps}.
    stop_reason_ : str
        Why training ended: ``"max_epochs"``, ``"time_limit"`` (a
        :class:`skmeta.callbacks.TimeLimit`), ``"early_stopping"`` or
        ``"interrupted"`` (a ``KeyboardInterrupt``, with a warning).
"""

EPISODIC = {
    "validation_what": "the same 100 validation episodes",
    "steps": "episodes",
}
META_BATCHES = {
    "validation_what": "the same 100 validation episodes",
    "steps": "meta-batches of ``meta_batch_size`` tasks",
}
EMBEDDING = {
    "validation_what": "the same 100 nearest-prototype episodes",
    "steps": "P x K batches",
}


def fill_doc(values=None, /, **sections):
    """Class decorator: put the shared docstring sections in place.

    Each line ``    {name}`` of the docstring becomes ``sections[name]``, or
    the shared section of that name (``training_parameters``,
    ``training_attributes``), formatted with ``values``.
    """
    values = values or {}
    # The given sections first: they may hold the shared markers themselves.
    texts = {
        **sections,
        "n_query_parameter": N_QUERY_PARAMETER,
        "training_parameters": TRAINING_PARAMETERS.format(**values) if values else "",
        "training_attributes": TRAINING_ATTRIBUTES.format(**values) if values else "",
    }

    def fill(cls):
        for name, text in texts.items():
            cls.__doc__ = cls.__doc__.replace(f"    {{{name}}}\n", text)
        return cls

    return fill
