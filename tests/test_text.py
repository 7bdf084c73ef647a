"""Text as X: TextBackbone, the tokenization in validation, text estimators.

A tiny randomly initialised BERT (2 layers, hidden size 32) and a word-level
tokenizer built in memory stand in for a real model; nothing reaches the
network (``HF_HUB_OFFLINE=1``).
"""

import os
import pickle
import sys

os.environ["HF_HUB_OFFLINE"] = "1"  # before transformers reads it

import numpy as np
import pytest
import torch
from helpers import short
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from skmeta import ContrastiveEmbedder, MetricEmbedder, PrototypicalClassifier
from skmeta.text import PAD, TextBackbone, encode_text, is_text

transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
POSITIVE = ["good", "great", "fine", "nice"]
NEGATIVE = ["bad", "awful", "poor", "dull"]
NEUTRAL = ["the", "a", "cat", "dog", "sat", "ran", "on", "mat", "movie", "film"]
VOCABULARY = {w: i for i, w in enumerate(SPECIAL + POSITIVE + NEGATIVE + NEUTRAL)}
MAX_LENGTH = 12


def _tokenizer():
    """A lower-casing word-level tokenizer: ``[CLS] words [SEP]``, unknown -> 1."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

    tokenizer = Tokenizer(models.WordLevel(VOCABULARY, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
    )


def _model(seed=0):
    torch.manual_seed(seed)
    config = transformers.BertConfig(
        vocab_size=len(VOCABULARY),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=16,
    )
    return transformers.BertModel(config)


@pytest.fixture(scope="module")
def backbone():
    return TextBackbone(_model(), tokenizer=_tokenizer(), max_length=MAX_LENGTH)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """The tiny model and its tokenizer saved as a hub model's folder."""
    path = tmp_path_factory.mktemp("tiny-bert")
    _model().save_pretrained(path)
    _tokenizer().save_pretrained(path)
    return str(path)


def _texts(words, n, rng):
    """``n`` texts of two words of ``words`` among three neutral ones."""
    return [
        " ".join([*rng.choice(words, 2), *rng.choice(NEUTRAL, 3)]) for _ in range(n)
    ]


@pytest.fixture(scope="module")
def sentiment():
    """20 positive and 20 negative texts (labels 1 and 0), as an object array."""
    rng = np.random.default_rng(0)
    X = np.array(_texts(POSITIVE, 20, rng) + _texts(NEGATIVE, 20, rng), dtype=object)
    return X, np.repeat([1, 0], 20)


# -- which X is text ------------------------------------------------------------------


@pytest.mark.parametrize(
    "X",
    [
        ["a cat", "a dog"],
        np.array(["a cat", "a dog"]),
        np.array(["a cat", "a dog"], dtype=object),
        "a cat",
        [["a cat"], ["a dog"]],
    ],
)
def test_strings_are_text(X):
    assert is_text(X)


@pytest.mark.parametrize(
    "X",
    [
        np.zeros((3, 4), np.float32),
        np.zeros((3, 4), object),
        [[1.0, 2.0], [3.0, 4.0]],
        torch.zeros(3, 4),
        [],
        [[1.0], [2.0, 3.0]],
    ],
)
def test_numbers_are_not_text(X):
    assert not is_text(X)


def test_a_dataframe_is_text_when_its_first_row_holds_a_str():
    pd = pytest.importorskip("pandas")
    assert is_text(pd.DataFrame({"n": [1.0, 2.0], "text": ["good", "bad"]}))
    assert not is_text(pd.DataFrame({"n": [1.0, 2.0], "m": [3, 4]}))


def test_a_pandas_series_of_strings_is_text_and_encodes_as_its_array(backbone):
    pd = pytest.importorskip("pandas")
    series = pd.Series(["good movie", "bad film"], index=[7, 3])
    assert is_text(series)
    np.testing.assert_array_equal(
        encode_text(series, backbone), encode_text(list(series), backbone)
    )


# -- token ids -------------------------------------------------------------------------


def test_token_ids_by_hand(backbone):
    ids = encode_text(["The cat sat", "good zebra"], backbone)
    v = VOCABULARY
    pad = [PAD] * MAX_LENGTH
    first = [v["[CLS]"], v["the"], v["cat"], v["sat"], v["[SEP]"]]
    second = [v["[CLS]"], v["good"], v["[UNK]"], v["[SEP]"]]
    assert ids.dtype == np.float32 and ids.shape == (2, MAX_LENGTH)
    np.testing.assert_array_equal(ids[0], (first + pad)[:MAX_LENGTH])
    np.testing.assert_array_equal(ids[1], (second + pad)[:MAX_LENGTH])


def test_a_long_text_is_truncated_to_max_length_special_tokens_included(backbone):
    ids = encode_text(["cat " * 50], backbone)
    v = VOCABULARY
    expected = [v["[CLS]"]] + [v["cat"]] * (MAX_LENGTH - 2) + [v["[SEP]"]]
    np.testing.assert_array_equal(ids[0], expected)


def test_a_single_str_is_a_type_error(backbone):
    with pytest.raises(TypeError, match=r"one text per sample.*Pass \[X\]"):
        encode_text("good movie", backbone)


def test_a_value_that_is_not_a_str_is_a_type_error_naming_its_index(backbone):
    with pytest.raises(TypeError, match=r"X\[2\] is None of type NoneType"):
        encode_text(np.array(["good", "bad", None], dtype=object), backbone)


def test_texts_in_two_dimensions_are_a_value_error(backbone):
    with pytest.raises(ValueError, match=r"must be 1-D.*shape \(2, 1\)"):
        encode_text([["good"], ["bad"]], backbone)


# -- the backbone's forward pass -----------------------------------------------------


def _states(backbone, text):
    """The transformer's last hidden states of one text alone, no padding."""
    ids = torch.tensor([backbone.tokenizer(text)["input_ids"]])
    with torch.no_grad():
        return backbone.model.eval()(input_ids=ids).last_hidden_state[0]


def test_mean_pooling_is_the_mean_of_the_token_states_of_the_text_alone(backbone):
    texts = ["good", "the cat sat on the mat"]  # padded to the longer one
    with torch.no_grad():
        z = backbone.eval()(torch.from_numpy(encode_text(texts, backbone)))
    for row, text in zip(z, texts, strict=True):
        torch.testing.assert_close(row, _states(backbone, text).mean(0))


def test_cls_pooling_is_the_first_token_state(backbone):
    cls = TextBackbone(
        backbone.model, tokenizer=backbone.tokenizer, max_length=8, pooling="cls"
    )
    texts = ["good", "the cat sat"]
    with torch.no_grad():
        z = cls.eval()(torch.from_numpy(encode_text(texts, cls)))
    for row, text in zip(z, texts, strict=True):
        torch.testing.assert_close(row, _states(cls, text)[0])


def test_an_embedding_does_not_depend_on_max_length(backbone):
    texts = ["good movie", "a dog ran"]
    longer = TextBackbone(backbone.model, tokenizer=backbone.tokenizer, max_length=16)
    with torch.no_grad():
        short = backbone.eval()(torch.from_numpy(encode_text(texts, backbone)))
        long = longer.eval()(torch.from_numpy(encode_text(texts, longer)))
    torch.testing.assert_close(short, long)


def test_a_folder_loads_the_model_and_tokenizer_it_holds(folder, backbone):
    loaded = TextBackbone(folder, max_length=MAX_LENGTH)
    texts = ["good movie", "bad film on the mat"]
    np.testing.assert_array_equal(
        encode_text(texts, loaded), encode_text(texts, backbone)
    )
    with torch.no_grad():
        torch.testing.assert_close(
            loaded.eval()(torch.from_numpy(encode_text(texts, loaded))),
            backbone.eval()(torch.from_numpy(encode_text(texts, backbone))),
        )
    assert repr(loaded) == f"TextBackbone({folder!r}, max_length=12, pooling='mean')"


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"pooling": "max"}, ValueError, r"pooling must be 'mean' or 'cls'; got 'max'"),
        ({"max_length": 0}, ValueError, r"max_length must be a positive int"),
        ({"max_length": 17}, ValueError, r"max_length=17 exceeds .*\(16\)"),
        ({"tokenizer": None}, TypeError, r"tokenizer must be given"),
    ],
)
def test_bad_arguments_are_errors_naming_them(backbone, kwargs, error, match):
    arguments = {"tokenizer": backbone.tokenizer, **kwargs}
    with pytest.raises(error, match=match):
        TextBackbone(backbone.model, **arguments)


def test_a_model_that_is_not_a_name_or_module_is_a_type_error(backbone):
    with pytest.raises(TypeError, match=r"model must be a model name"):
        TextBackbone(42, tokenizer=backbone.tokenizer)


def test_without_transformers_the_error_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(ImportError, match=r'pip install "skmeta\[text\]"'):
        TextBackbone("sentence-transformers/all-MiniLM-L6-v2")


# -- estimators on texts ---------------------------------------------------------------


def _embedder(backbone, **kwargs):
    settings = {"max_epochs": 2, "batches_per_epoch": 4, "lr": 1e-3, "random_state": 0}
    return ContrastiveEmbedder(backbone=backbone, **{**settings, **kwargs})


def test_setfit_pipeline_learns_the_sentiment_of_new_texts(backbone, sentiment):
    X, y = sentiment
    rng = np.random.default_rng(1)
    X_new = _texts(POSITIVE, 10, rng) + _texts(NEGATIVE, 10, rng)
    y_new = np.repeat([1, 0], 10)
    untrained = make_pipeline(_embedder(backbone, max_epochs=0), LogisticRegression())
    setfit = make_pipeline(_embedder(backbone, max_epochs=3), LogisticRegression())
    setfit.fit(X, y)
    assert setfit[0].transform(X).shape == (40, 32)
    assert setfit.score(X_new, y_new) == 1.0
    losses = setfit[0].history_[:, "train_loss"]
    assert losses[-1] < losses[0]
    assert untrained.fit(X, y).score(X_new, y_new) < 1.0


def test_transform_accepts_a_list_an_array_and_agrees_row_by_row(backbone, sentiment):
    X, y = sentiment
    embedder = _embedder(backbone, max_epochs=1).fit(list(X), y)
    z = embedder.transform(X)
    np.testing.assert_allclose(embedder.transform(list(X[:3])), z[:3], atol=1e-6)
    np.testing.assert_allclose(embedder.transform(X.astype(str)), z, atol=1e-6)


def test_the_backbone_class_with_params_trains_as_the_instance(folder, sentiment):
    X, y = sentiment
    instance = _embedder(TextBackbone(folder, max_length=MAX_LENGTH)).fit(X, y)
    by_class = _embedder(
        TextBackbone, backbone_params={"model": folder, "max_length": MAX_LENGTH}
    ).fit(X, y)
    np.testing.assert_allclose(by_class.transform(X), instance.transform(X), atol=1e-6)


def test_a_clone_and_a_pickled_copy_embed_as_the_original(backbone, sentiment):
    X, y = sentiment
    embedder = _embedder(backbone).fit(X, y)
    np.testing.assert_array_equal(
        clone(embedder).fit(X, y).transform(X), embedder.transform(X)
    )
    copy = pickle.loads(pickle.dumps(embedder))
    np.testing.assert_array_equal(copy.transform(X), embedder.transform(X))


def test_prototypical_classifier_adapts_to_novel_classes_of_texts(backbone, sentiment):
    X, y = sentiment
    model = short(
        PrototypicalClassifier, backbone=backbone, n_way=2, k_shot=2, n_query=3
    ).fit(X, y)
    support = ["the cat sat", "a cat ran", "the dog sat", "a dog ran"]
    model.adapt(support, ["cat", "cat", "dog", "dog"])
    queries = np.array(["cat on the mat", "dog on the mat", "the cat", "the dog"])
    # The nearest prototype (class mean) in squared Euclidean distance.
    z_support, z_query = model.transform(support), model.transform(queries)
    prototypes = np.stack([z_support[:2].mean(0), z_support[2:].mean(0)])
    nearest = ((z_query[:, None] - prototypes) ** 2).sum(-1).argmin(1)
    np.testing.assert_array_equal(
        model.predict(queries), np.array(["cat", "dog"])[nearest]
    )


def test_texts_for_a_backbone_without_text_are_a_value_error_naming_x(sentiment):
    X, y = sentiment
    with pytest.raises(ValueError, match=r"X holds texts.*backbone='mlp'.*TextBack"):
        MetricEmbedder(backbone="mlp", max_epochs=1).fit(X, y)


def test_texts_for_a_model_fitted_on_numbers_are_a_value_error(sentiment):
    X, y = sentiment
    model = MetricEmbedder(max_epochs=0).fit(np.eye(40, 5, dtype=np.float32), y)
    with pytest.raises(ValueError, match=r"X holds texts.*fitted MetricNetwork has"):
        model.transform(X)


def test_numbers_of_another_width_for_a_text_model_are_a_value_error(
    backbone, sentiment
):
    X, y = sentiment
    embedder = _embedder(backbone, max_epochs=0).fit(X, y)
    with pytest.raises(ValueError, match=r"X has 5 features.*expecting 12"):
        embedder.transform(np.zeros((2, 5), np.float32))


def test_a_saved_text_model_loads_with_the_same_embeddings(folder, sentiment, tmp_path):
    from skmeta import persistence

    X, y = sentiment
    params = {"model": folder, "max_length": MAX_LENGTH}
    embedder = _embedder(TextBackbone, backbone_params=params).fit(X, y)
    persistence.save(embedder, tmp_path / "text.skmeta")
    loaded = persistence.load(tmp_path / "text.skmeta", trusted=[TextBackbone])
    np.testing.assert_array_equal(loaded.transform(X), embedder.transform(X))


def test_the_registered_name_text_trains_as_the_class(folder, sentiment):
    from skmeta.backbones import BACKBONES

    assert BACKBONES["text"] is TextBackbone
    X, y = sentiment
    params = {"model": folder, "max_length": MAX_LENGTH}
    by_name = _embedder("text").set_params(
        backbone__model=folder, backbone__max_length=MAX_LENGTH
    )
    by_class = _embedder(TextBackbone, backbone_params=params)
    np.testing.assert_array_equal(
        by_name.fit(X, y).transform(X), by_class.fit(X, y).transform(X)
    )


def test_a_diverged_text_model_is_not_blamed_on_its_token_ids(
    backbone, sentiment, monkeypatch
):
    # Token ids reach the vocabulary's size (here 21, counted large below):
    # no input scale is in question.
    from skmeta.callbacks import _StopOnDivergence

    monkeypatch.setattr(_StopOnDivergence, "_LARGE_INPUT", 1.0)
    X, y = sentiment
    with pytest.raises(ValueError, match="Training diverged") as error:
        _embedder(backbone, lr=1e12).fit(X, y)
    assert "inputs reach" not in str(error.value)


def test_self_supervised_views_of_texts_are_refused(sentiment):
    from skmeta import SelfSupervisedEmbedder

    X, _ = sentiment
    with pytest.raises(ValueError, match="perturb token ids"):
        SelfSupervisedEmbedder(backbone=TextBackbone).fit(X)
