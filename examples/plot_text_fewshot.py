"""
Few-shot text classification: SetFit and Prototypical Networks on texts
=======================================================================

Any skmeta estimator takes texts as X when its backbone is a
:class:`~skmeta.text.TextBackbone`: a Hugging Face transformer whose token
embeddings are mean-pooled into one embedding per text, as
sentence-transformers does. SetFit (Tunstall et al., 2022) is two steps:
fine-tune the sentence embedding contrastively on pairs of the few labelled
texts (:class:`~skmeta.ContrastiveEmbedder` forms every pair of a P x K
batch), then fit any scikit-learn classifier on the embeddings: one
:class:`~sklearn.pipeline.Pipeline`. A few-shot classifier
(:class:`~skmeta.PrototypicalClassifier`) takes the same backbone, and
``adapt`` gives it new intents from a handful of texts each.

With a model in your Hugging Face cache (or the hub within reach), the
backbone is one line::

    backbone = TextBackbone("sentence-transformers/all-MiniLM-L6-v2")

This page is built where the hub is not reachable, so it makes everything
locally instead: **the texts are made up below** from templates (short
requests of six intents), and the transformer is a **tiny BERT with random
weights** (2 layers, hidden size 64) with a word-level tokenizer of the
texts' own words. It knows no language: what it learns, it learns from the
32 training texts, so the numbers below show the pipeline at work, not what a
pre-trained model gives. The ``text`` extra installs transformers
(``pip install "skmeta[text]"``).
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # this page never downloads

import matplotlib.pyplot as plt
import numpy as np
import torch
from sklearn.decomposition import PCA
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

from skmeta import ContrastiveEmbedder, PrototypicalClassifier
from skmeta.text import TextBackbone

# %%
# A small text set, made here
# ---------------------------
# Each intent has its own words; every text puts two of them in one of a few
# templates, among words that every intent shares. The first four intents
# are the base classes; "alarm" and "shopping" are novel, for
# ``adapt`` at the end.
INTENTS = {
    "weather": "rain sunny forecast snow windy cloudy storm temperature",
    "music": "song playlist album guitar volume singer track radio",
    "food": "pizza recipe dinner restaurant soup menu lunch dessert",
    "travel": "flight hotel train ticket airport luggage trip passport",
    "alarm": "alarm wake timer snooze clock morning reminder minutes",
    "shopping": "cart order buy price delivery store discount basket",
}
TEMPLATES = [
    "can you check the {} and the {} for me",
    "i want to know about the {} {} today",
    "please tell me the {} with {} now",
    "what is the {} for the {} tomorrow",
    "show me a {} and a {} please",
]
rng = np.random.default_rng(0)


def make_texts(intent, n):
    words = INTENTS[intent].split()
    return [
        TEMPLATES[rng.integers(len(TEMPLATES))].format(*rng.choice(words, 2))
        for _ in range(n)
    ]


base = ["weather", "music", "food", "travel"]
X_train = np.array([t for i in base for t in make_texts(i, 8)])  # 8 shots each
y_train = np.repeat(base, 8)
X_test = np.array([t for i in base for t in make_texts(i, 50)])
y_test = np.repeat(base, 50)
print(X_train[:3])

# %%
# A tiny transformer and its tokenizer, made locally
# --------------------------------------------------
# A word-level tokenizer (:mod:`tokenizers`) over the words of all the
# templates and intents, and a BERT of random weights.
words = sorted({w for t in TEMPLATES for w in t.split() if w != "{}"})
words += sorted({w for v in INTENTS.values() for w in v.split()})
vocabulary = {w: i for i, w in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", *words])}
tokenizer = Tokenizer(models.WordLevel(vocabulary, unk_token="[UNK]"))
tokenizer.normalizer = normalizers.Lowercase()
tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
tokenizer.post_processor = processors.TemplateProcessing(
    single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
)
tokenizer = PreTrainedTokenizerFast(
    tokenizer_object=tokenizer,
    unk_token="[UNK]",
    pad_token="[PAD]",
    cls_token="[CLS]",
    sep_token="[SEP]",
)
torch.manual_seed(0)
layers = dict(num_hidden_layers=2, num_attention_heads=4)  # BERT-base: 12 and 12
widths = dict(hidden_size=64, intermediate_size=128)  # BERT-base: 768 and 3072
config = BertConfig(
    vocab_size=len(vocabulary), max_position_embeddings=32, **layers, **widths
)
backbone = TextBackbone(BertModel(config), tokenizer=tokenizer, max_length=32)

# %%
# SetFit: a contrastive fine-tuning, then a classifier
# ----------------------------------------------------
# The same pipeline with ``max_epochs=0`` keeps the transformer as it is
# (the embedding without fine-tuning), and TF-IDF with a logistic regression
# is scikit-learn's classic baseline for text. The transformer's learning rate
# is much higher than the 2e-5 of SetFit's pre-trained models: this one starts
# from random weights.


def setfit(max_epochs):
    embedder = ContrastiveEmbedder(
        backbone=backbone,
        n_samples_per_class=4,
        batches_per_epoch=10,
        max_epochs=max_epochs,
        lr=1e-3,
        random_state=0,
    )
    return make_pipeline(embedder, LogisticRegression(max_iter=1000))


pipelines = {
    "TF-IDF + logistic regression": make_pipeline(
        TfidfVectorizer(), LogisticRegression(max_iter=1000)
    ),
    "random tiny BERT, not fine-tuned": setfit(0),
    "SetFit: fine-tuned (50 steps)": setfit(5),
}
accuracy = {
    name: model.fit(X_train, y_train).score(X_test, y_test)
    for name, model in pipelines.items()
}
for name, value in accuracy.items():
    print(f"{name}: {100 * value:.1f} %")

# %%
# The test texts in the two embeddings, projected on their first two
# principal components: contrastive fine-tuning gathers each intent.
fig, axes = plt.subplots(1, 3, figsize=(12, 3.8))
for ax, name in zip(axes[:2], list(pipelines)[1:], strict=True):
    z = PCA(2).fit_transform(pipelines[name][0].transform(X_test))
    for intent in base:
        ax.scatter(*z[y_test == intent].T, s=8, label=intent)
    ax.set_title(name, fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
axes[0].legend(fontsize=8)
axes[2].barh(list(accuracy), [100 * v for v in accuracy.values()], color="tab:blue")
for i, value in enumerate(accuracy.values()):
    axes[2].text(2, i, f"{100 * value:.1f} %", va="center", color="white")
axes[2].set_xlim(0, 100)
axes[2].set_xlabel("accuracy on 200 new texts, 4 intents (%)")
axes[2].invert_yaxis()
fig.tight_layout()
plt.show()

# %%
# A few-shot classifier on texts
# ------------------------------
# :class:`~skmeta.PrototypicalClassifier` meta-trains the same backbone on
# 4-way 3-shot episodes of the base intents. After ``fit``, its support set
# is the training texts: the 200 new texts are classified by the nearest
# class mean of the 8 texts of each intent.
episodes = dict(n_way=4, k_shot=3, n_query=5)
budget = dict(max_epochs=5, episodes_per_epoch=10)  # 50 episodes
fewshot = PrototypicalClassifier(
    backbone=backbone, **episodes, **budget, random_state=0
).fit(X_train, y_train)
print(f"base intents, 8 shots: {100 * fewshot.score(X_test, y_test):.1f} %")

# %%
# ``adapt`` takes a support set of new intents, three texts each, and changes
# no weight. Here the new intents' words never occurred in training, and a
# transformer of random weights knows nothing else of them, so expect little
# better than chance (50 %): what a pre-trained model brings is precisely
# what it already knows of words and phrasings the few examples never show.
novel = ["alarm", "shopping"]
X_support = [t for i in novel for t in make_texts(i, 3)]
X_query = [t for i in novel for t in make_texts(i, 50)]
fewshot.adapt(X_support, np.repeat(novel, 3))
score = fewshot.score(X_query, np.repeat(novel, 50))
print(f"novel intents, 2-way 3-shot: {100 * score:.1f} %")
