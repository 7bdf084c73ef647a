"""Text as X: a Hugging Face transformer as the backbone, sentence embeddings out.

An estimator given a text backbone (:class:`TextBackbone`) takes X as texts: a
list of str, a 1-D NumPy array of str or object, or a pandas Series. Its
validation (:meth:`skmeta._base.TorchEstimator._validate_X`) turns them into
token ids through the backbone's tokenizer (:func:`encode_text`), once per
call, so that episodes, P x K batches, held-out validation and inference
slice a numeric array as they do for any other X; the backbone's forward pass
reads the ids back and mean-pools the transformer's token embeddings over the
attention mask, as sentence-transformers does (Reimers & Gurevych, 2019).

Fine-tuned by :class:`~skmeta.ContrastiveEmbedder` on the pairs of a batch,
then followed by any scikit-learn classifier in a Pipeline, it is SetFit
(Tunstall et al., 2022); a few-shot classifier with it
(``PrototypicalClassifier(backbone=TextBackbone(...))``) classifies texts of
novel classes from a support set.

The ``text`` extra installs what it needs (``pip install "skmeta[text]"``:
transformers). Models come from the user's Hugging Face cache, a local
folder, or the hub, when the backbone is built.

References
----------
.. [1] N. Reimers, I. Gurevych. "Sentence-BERT: Sentence Embeddings using
   Siamese BERT-Networks". EMNLP 2019.
.. [2] L. Tunstall, N. Reimers, U. E. S. Jo, L. Bates, D. Korat, M. Wasserblat,
   O. Pereg. "Efficient Few-Shot Learning Without Prompts". arXiv:2209.11055,
   2022 (SetFit).
"""

import inspect
from numbers import Integral

import numpy as np
import torch
from torch import nn

from . import backbones

__all__ = ["TextBackbone", "encode_text", "is_text"]

#: Token ids travel as float32, which holds every integer up to 2 ** 24 exactly.
_MAX_VOCABULARY = 2**24

#: The token id that marks a padding position in an encoded text.
PAD = -1


def _transformers():
    """The ``transformers`` package, or an ImportError naming the extra."""
    try:
        import transformers
    except ImportError as error:
        raise ImportError(
            "Text backbones need the transformers package: pip install "
            '"skmeta[text]" (or pip install transformers).'
        ) from error
    return transformers


def is_text(X):
    """Whether X holds strings, the input of a text backbone.

    Cheap whatever X's size: a dtype answers without reading the values, and
    otherwise only the first sample is looked at.

    Parameters
    ----------
    X : object
        What an estimator was given as X.

    Returns
    -------
    bool
        True for a str, an array of dtype str (``"U"``), and an object array,
        a pandas Series or DataFrame, or a (nested) list whose first sample
        holds a str.
    """
    if isinstance(X, str):
        return True
    kind = getattr(getattr(X, "dtype", None), "kind", None)
    if kind == "U":
        return True
    if hasattr(X, "dtype") and kind != "O":
        return False  # numbers (NumPy, a memmap, a torch tensor)
    try:
        first = np.asarray(X.iloc[:1] if hasattr(X, "iloc") else X[:1], dtype=object)
    except (TypeError, ValueError):  # not sliceable, ragged: sklearn says what
        return False
    return any(isinstance(value, str) for value in first.flat)


def _check_texts(X):
    """X as a list of str, one per sample, or a TypeError/ValueError naming X."""
    if isinstance(X, str):
        raise TypeError(
            "X must hold one text per sample, (n_samples,) strings; got a single "
            f"str ({X[:40]!r}). Pass [X] for one sample."
        )
    values = np.asarray(X, dtype=object)
    if values.ndim != 1:
        raise ValueError(
            "X of texts must be 1-D, one str per sample (n_samples,); got an array "
            f"of shape {values.shape}. Pass a column (df['text']) or X.ravel()."
        )
    for index, value in enumerate(values):
        if not isinstance(value, str):
            raise TypeError(
                f"X holds texts, so every sample must be a str; X[{index}] is "
                f"{value!r} of type {type(value).__name__}."
            )
    return values.tolist()


def _check_max_length(max_length):
    if not (isinstance(max_length, Integral) and max_length >= 1):
        raise ValueError(
            f"max_length must be a positive int (tokens); got {max_length!r}."
        )


def _load_tokenizer(model, tokenizer):
    """A tokenizer instance: ``tokenizer`` as it is, or loaded by name."""
    if tokenizer is None:
        if not isinstance(model, str):
            raise TypeError(
                "tokenizer must be given when model is a module instance; got "
                f"model={type(model).__name__} and tokenizer=None."
            )
        tokenizer = model
    if isinstance(tokenizer, str):
        return _transformers().AutoTokenizer.from_pretrained(tokenizer)
    if not callable(tokenizer):
        raise TypeError(
            "tokenizer must be None, a model name or folder, or a transformers "
            f"tokenizer; got {tokenizer!r}."
        )
    return tokenizer


def _from_pretrained(name):
    """The model ``name`` (a hub name or a folder), float32 whatever its checkpoint.

    On torch's meta device (where :mod:`skmeta.persistence` checks the shapes
    of a network before it builds it) the architecture alone, from its
    configuration: no weights are read.
    """
    transformers = _transformers()
    if torch.get_default_device().type == "meta":
        config = transformers.AutoConfig.from_pretrained(name)
        return transformers.AutoModel.from_config(config, dtype=torch.float32)
    return transformers.AutoModel.from_pretrained(name, dtype=torch.float32)


def _token_ids(texts, tokenizer, max_length):
    """Token ids of ``texts``, (n, max_length) float32, :data:`PAD` after each text.

    Texts longer than ``max_length`` tokens (special tokens included) are
    truncated, as sentence-transformers truncates at its ``max_seq_length``.
    """
    if len(tokenizer) > _MAX_VOCABULARY:
        raise ValueError(
            f"The tokenizer has {len(tokenizer)} tokens; text backbones take at "
            f"most {_MAX_VOCABULARY}, whose ids float32 holds exactly."
        )
    ids = np.full((len(texts), max_length), PAD, dtype=np.float32)
    if texts:
        encoded = tokenizer(
            texts,
            truncation=True,
            max_length=max_length,
            return_attention_mask=False,
            return_token_type_ids=False,
        )["input_ids"]
        for row, tokens in zip(ids, encoded, strict=True):
            row[: len(tokens)] = tokens
    return ids


def _text_backbone_in(module):
    """The first :class:`TextBackbone` among ``module``'s submodules, or None."""
    if not isinstance(module, nn.Module):
        return None
    return next((m for m in module.modules() if isinstance(m, TextBackbone)), None)


def encode_text(X, backbone, params=None):
    """Token ids of the texts X, as the text backbone ``backbone`` reads them.

    Parameters
    ----------
    X : list of str, ndarray of shape (n_samples,) of str or object, or Series
        One text per sample.
    backbone : str, torch.nn.Module class or instance
        An estimator's ``backbone`` parameter (a :class:`TextBackbone`
        instance, the class, or a name of :data:`skmeta.backbones.BACKBONES`
        for it), or a fitted network holding a :class:`TextBackbone`.
    params : dict or None, default=None
        The backbone's constructor arguments (``backbone_params``) when
        ``backbone`` is a class or a name: its ``model``, ``tokenizer`` and
        ``max_length`` say how texts are tokenized.

    Returns
    -------
    ndarray of shape (n_samples, max_length), dtype float32
        The ids of each text's tokens, truncated to ``max_length``, then
        :data:`PAD` (-1) up to ``max_length``.

    Raises
    ------
    TypeError
        If X is a single str, or holds a value that is not a str (the message
        names its index).
    ValueError
        If X is not 1-D; or if ``backbone`` takes no text, with the backbone
        to use.
    ImportError
        If transformers is not installed and a tokenizer must be loaded.
    """
    texts = _check_texts(X)
    given = backbone
    if isinstance(backbone, str):
        backbone = backbones.BACKBONES.get(backbone, backbone)
    text_backbone = _text_backbone_in(backbone)
    if text_backbone is not None:
        tokenizer, max_length = text_backbone.tokenizer, text_backbone.max_length
    elif isinstance(backbone, type) and issubclass(backbone, TextBackbone):
        arguments = inspect.signature(backbone).bind(**(params or {}))
        arguments.apply_defaults()
        max_length = arguments.arguments["max_length"]
        _check_max_length(max_length)
        tokenizer = _load_tokenizer(
            arguments.arguments["model"], arguments.arguments["tokenizer"]
        )
    else:
        what = (
            f"the fitted {type(backbone).__name__} has none"
            if isinstance(backbone, nn.Module)
            else f"got backbone={getattr(given, '__name__', given)!r}"
        )
        raise ValueError(
            f"X holds texts (strings), which only a text backbone reads; {what}. "
            "Fit with backbone=skmeta.text.TextBackbone(<model name or folder>), "
            "for instance TextBackbone('sentence-transformers/all-MiniLM-L6-v2'), "
            "or pass numeric X."
        )
    return _token_ids(texts, tokenizer, max_length)


class TextBackbone(nn.Module):
    """A Hugging Face transformer whose pooled token embeddings embed a text.

    The backbone of an estimator given texts as X. The estimator's validation
    tokenizes the texts with :attr:`tokenizer` (:func:`encode_text`); the
    forward pass runs the transformer on a batch of token ids and pools its
    last hidden states over each text's tokens:

    - ``"mean"``: :math:`z = \\sum_t m_t h_t / \\sum_t m_t`, with :math:`m_t` the
      attention mask (1 on the text's tokens, 0 on padding), the pooling of
      sentence-transformers (Reimers & Gurevych, 2019) and of SetFit;
    - ``"cls"``: :math:`z = h_0`, the first token's state (BERT's ``[CLS]``).

    Its embedding has the transformer's hidden size (384 for
    all-MiniLM-L6-v2); ``embedding_dim`` does not size it. The whole
    transformer is fine-tuned; ``backbone_lr`` gives it its own learning
    rate, and ``backbone_lr=0`` freezes it.

    Parameters
    ----------
    model : str or transformers.PreTrainedModel, \
            default="sentence-transformers/all-MiniLM-L6-v2"
        A model name on the Hugging Face hub or a local folder, loaded with
        ``transformers.AutoModel.from_pretrained`` (from the cache when it
        is there; ``HF_HUB_OFFLINE=1`` never reaches the network), or a model
        instance, used as it is (copied by the estimator).
    tokenizer : None, str or transformers tokenizer, default=None
        ``None`` loads the tokenizer of ``model`` (a name); a name or folder
        is loaded with ``transformers.AutoTokenizer.from_pretrained``; an
        instance is used as it is. Required when ``model`` is an instance.
    max_length : int, default=128
        Tokens per text, special tokens included; longer texts are
        truncated, as sentence-transformers truncates at its
        ``max_seq_length`` (256 for all-MiniLM-L6-v2). At most the model's
        ``max_position_embeddings``.
    pooling : {"mean", "cls"}, default="mean"
        How token states become one embedding, as above.

    Attributes
    ----------
    model : transformers.PreTrainedModel
        The transformer, whose ``last_hidden_state`` is pooled.
    tokenizer : transformers tokenizer
        What turns texts into token ids.

    Raises
    ------
    ValueError
        If ``pooling`` is not an option, ``max_length`` is not a positive int
        or exceeds the model's ``max_position_embeddings``.
    TypeError
        If ``model`` is neither a name nor a module, or ``tokenizer`` is
        missing with a model instance.
    ImportError
        If transformers is not installed (the ``text`` extra).

    Notes
    -----
    Input: float tensor ``(batch, max_length)`` of token ids, -1 at padding
    (what :func:`encode_text` gives). The batch is cut to its longest text
    before the transformer runs, so short texts cost little whatever
    ``max_length``. Output: float tensor ``(batch, hidden_size)``.

    Examples
    --------
    With a model in the Hugging Face cache::

        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from skmeta import ContrastiveEmbedder
        from skmeta.text import TextBackbone

        setfit = make_pipeline(
            ContrastiveEmbedder(
                backbone=TextBackbone("sentence-transformers/all-MiniLM-L6-v2"),
                lr=2e-5, max_epochs=1,
            ),
            LogisticRegression(),
        )
        setfit.fit(texts, labels)
    """

    def __init__(
        self,
        model="sentence-transformers/all-MiniLM-L6-v2",
        *,
        tokenizer=None,
        max_length=128,
        pooling="mean",
    ):
        super().__init__()
        if pooling not in ("mean", "cls"):
            raise ValueError(f"pooling must be 'mean' or 'cls'; got {pooling!r}.")
        _check_max_length(max_length)
        if isinstance(model, str):
            tokenizer = _load_tokenizer(model, tokenizer)
            # float32 weights, whatever the checkpoint's dtype: ``precision``
            # sets the forward passes' (skmeta's estimators keep float32).
            model = _from_pretrained(model)
        elif isinstance(model, nn.Module):
            tokenizer = _load_tokenizer(model, tokenizer)
        else:
            raise TypeError(
                "model must be a model name, a folder, or a transformers model "
                f"instance; got {model!r}."
            )
        config = getattr(model, "config", None)
        positions = getattr(config, "max_position_embeddings", None)
        if positions is not None and max_length > positions:
            raise ValueError(
                f"max_length={max_length} exceeds the model's "
                f"max_position_embeddings ({positions}); use max_length <= "
                f"{positions}."
            )
        self.model = model
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.pooling = pooling
        pad = getattr(tokenizer, "pad_token_id", None)
        #: The id given to the model at padding positions (masked out).
        self.pad_id = 0 if pad is None else int(pad)

    def forward(self, x):
        ids = x.long()
        mask = ids != PAD
        if x.is_meta:
            # A shape check on the meta device (skmeta.persistence): no values,
            # which the transformer's code reads; the output's shape only.
            return x.new_empty(len(x), self.model.config.hidden_size)
        # Texts are padded at the end: keep the columns up to the longest text.
        length = max(int(mask.sum(1).max()) if len(ids) else 0, 1)
        ids, mask = ids[:, :length], mask[:, :length]
        states = self.model(
            input_ids=ids.masked_fill(~mask, self.pad_id), attention_mask=mask.long()
        ).last_hidden_state
        if self.pooling == "cls":
            return states[:, 0]
        weights = mask.unsqueeze(-1).to(states.dtype)
        # sentence-transformers' mean pooling: no token left gives zeros.
        return (states * weights).sum(1) / weights.sum(1).clamp(min=1e-9)

    def __repr__(self):
        # One line, not the transformer's layers: it shows in estimators' reprs.
        name = getattr(self.model, "name_or_path", "") or type(self.model).__name__
        return (
            f"{type(self).__name__}({name!r}, max_length={self.max_length}, "
            f"pooling={self.pooling!r})"
        )
