"""Docstring sections that several estimators share, and the decorator that fills them.

A docstring holds a line ``    {name}`` where a shared section goes;
:func:`fill_doc` replaces it, so that one text serves every estimator.
"""

__all__ = ["fill_doc"]

#: What every torch-backed estimator records of its training and its data
#: (``steps``: what one training step is).
TRAINING_ATTRIBUTES = """\
{episode_attributes}    n_steps_ : int
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

EPISODIC = {
    "validation_what": "the same 100 validation episodes",
    "steps": "episodes",
    "episode_attributes": EPISODE_ATTRIBUTES,
}
META_BATCHES = {
    **EPISODIC,
    "steps": "meta-batches of ``meta_batch_size`` tasks",
}
EMBEDDING = {
    "validation_what": "the same 100 nearest-prototype episodes",
    "steps": "P x K batches",
    "episode_attributes": "",
}


def fill_doc(values=None, /, **sections):
    """Class decorator: put the shared docstring sections in place.

    Each line ``    {name}`` of the docstring becomes ``sections[name]``, or
    the shared section ``training_attributes`` formatted with ``values``.
    (The Parameters section comes from each estimator's ``_parameters``: see
    :mod:`skmeta._params`.)
    """
    values = values or {}
    # The given sections first: they may hold the shared markers themselves.
    texts = {
        **sections,
        "training_attributes": TRAINING_ATTRIBUTES.format(**values) if values else "",
    }

    def fill(cls):
        for name, text in texts.items():
            cls.__doc__ = cls.__doc__.replace(f"    {{{name}}}\n", text)
        return cls

    return fill
