"""Local prompt-driven models: answers follow the prompt, probabilities are well formed, bad input is refused."""

from __future__ import annotations

import re
import threading

import numpy as np
import pytest
import taskspace as ts
from taskspace.datasets import builtin as datasets
from taskspace.models.config import load_models
from taskspace.models.encoder import CachedEncoder, HashedNgramEncoder, default_encoder
from taskspace.models.in_context import InContext
from taskspace.models.zero_shot import ZeroShot
from taskspace.probing.endpoints import is_local_model

VOCAB = ["good", "bad", "sport", "money", "happy", "sad"]


def keyword_encoder(texts):
    """A transparent encoder: one dimension per vocabulary word (counts), for exact expectations."""
    words = [re.findall(r"\w+", t.lower()) for t in texts]
    return np.array([[ws.count(w) for w in VOCAB] for ws in words], dtype=np.float64)


keyword_encoder.name = "keyword-test-encoder"  # type: ignore[attr-defined]

REVIEWS, REVIEW_LABELS = datasets.load("product_sentiment")
NEWS, NEWS_LABELS = datasets.load("news_topic")
PROBE = REVIEWS + NEWS


def sentiment(descriptions_pos, descriptions_neg, **kw) -> ZeroShot:
    return ZeroShot("This review is {}.", {"positive": descriptions_pos, "negative": descriptions_neg}, **kw)


# -- zero-shot ----------------------------------------------------------------------------------------
def test_zero_shot_follows_its_descriptions_exactly_with_a_transparent_encoder():
    zs = ZeroShot("{}", {"pos": "good", "neg": "bad"}, encoder=keyword_encoder)
    assert zs.predict(["good good", "bad", "good bad bad"]) == ["pos", "neg", "neg"]
    labels, probs = zs.predict_proba(["good", "sport"])
    assert labels == ["pos", "neg"]
    # cos 1 vs 0 at temperature 0.05 -> e^20 : 1; a text with neither word -> uniform
    np.testing.assert_allclose(probs[0], [1 / (1 + np.exp(-20)), np.exp(-20) / (1 + np.exp(-20))])
    np.testing.assert_allclose(probs[1], [0.5, 0.5])


def test_zero_shot_predictions_change_with_the_descriptions():
    a = sentiment(
        ["great, I love it", "excellent and works well"], ["terrible, I hate it", "broken and useless"]
    )
    b = sentiment(["cheap price", "fast delivery"], ["slow delivery", "expensive price"])
    pa, pb = a.predict(PROBE), b.predict(PROBE)
    changed = sum(x != y for x, y in zip(pa, pb, strict=True))
    assert changed >= len(PROBE) // 10, f"only {changed} of {len(PROBE)} answers changed with the prompt"
    assert a.name != b.name


def test_zero_shot_swapped_descriptions_swap_predictions_and_columns():
    pos, neg = ["great, I love it", "works well"], ["terrible, I hate it", "broken"]
    a, b = sentiment(pos, neg), sentiment(neg, pos)
    flip = {"positive": "negative", "negative": "positive"}
    la, pa = a.predict_proba(PROBE)
    lb, pb = b.predict_proba(PROBE)
    assert la == lb == ["positive", "negative"]
    np.testing.assert_allclose(pa, pb[:, ::-1], atol=1e-12)
    assert b.predict(PROBE) == [flip[y] for y in a.predict(PROBE)]
    assert len(set(a.predict(PROBE))) == 2


def test_zero_shot_template_changes_the_model():
    a = ZeroShot("This review is {}.", {"p": "great", "n": "awful"})
    b = ZeroShot("The weather today is {}.", {"p": "great", "n": "awful"})
    assert a.name != b.name
    assert not np.allclose(a.predict_proba(PROBE)[1], b.predict_proba(PROBE)[1])


def test_zero_shot_label_order_sets_column_order():
    a = ZeroShot("{}", {"pos": "good", "neg": "bad"}, encoder=keyword_encoder)
    b = ZeroShot("{}", {"neg": "bad", "pos": "good"}, encoder=keyword_encoder)
    assert b.labels == ("neg", "pos")
    texts = ["good", "bad", "good good bad"]
    np.testing.assert_allclose(a.predict_proba(texts)[1], b.predict_proba(texts)[1][:, ::-1])
    assert a.predict(texts) == b.predict(texts)


def test_zero_shot_several_descriptions_average_their_hypotheses():
    zs = ZeroShot("{}", {"mood": ["happy", "sad"], "topic": ["sport", "money"]}, encoder=keyword_encoder)
    assert zs.predict(["happy", "sad", "money", "sport"]) == ["mood", "mood", "topic", "topic"]
    assert zs.hypotheses() == {"mood": ["happy", "sad"], "topic": ["sport", "money"]}


def test_zero_shot_temperature_sharpens():
    soft = ZeroShot("{}", {"p": "good", "n": "bad"}, encoder=keyword_encoder, temperature=10.0)
    sharp = ZeroShot("{}", {"p": "good", "n": "bad"}, encoder=keyword_encoder, temperature=0.01)
    assert soft.predict_proba(["good"])[1][0, 0] < 0.6 < 0.99 < sharp.predict_proba(["good"])[1][0, 0]
    assert soft.name != sharp.name


@pytest.mark.parametrize(
    ("template", "descriptions", "error", "match"),
    [
        ("no placeholder", {"a": "x", "b": "y"}, ts.InvalidInputError, "exactly once"),
        ("{} and {}", {"a": "x", "b": "y"}, ts.InvalidInputError, "exactly once"),
        (42, {"a": "x", "b": "y"}, TypeError, "template must be str"),
        ("{}", {"a": "x"}, ts.InvalidInputError, "at least two labels"),
        ("{}", {}, ts.InvalidInputError, "at least two labels"),
        ("{}", [("a", "x"), ("b", "y")], TypeError, "mapping"),
        ("{}", {"a": "", "b": "y"}, ts.InvalidInputError, "description 0 of label 'a' is empty"),
        ("{}", {"a": "   ", "b": "y"}, ts.InvalidInputError, "is empty"),
        ("{}", {"a": [], "b": "y"}, ts.InvalidInputError, "empty list of descriptions"),
        ("{}", {"a": ["x", ""], "b": "y"}, ts.InvalidInputError, "description 1 of label 'a' is empty"),
        ("{}", {"a": 3, "b": "y"}, TypeError, "must be a str or a list of str"),
        ("{}", {"a": ["x", 3], "b": "y"}, TypeError, "description 1 of label 'a' must be str"),
        ("{}", {"": "x", "b": "y"}, ts.InvalidInputError, "label in label_descriptions is empty"),
        ("{}", {1: "x", "b": "y"}, TypeError, "must be str"),
        ("{}", {"a": "same words", "b": "Same  words"}, ts.InvalidInputError, "both labels"),
    ],
)
def test_zero_shot_bad_prompts(template, descriptions, error, match):
    with pytest.raises(error, match=match):
        ZeroShot(template, descriptions)


def test_zero_shot_bad_parameters():
    for bad in (0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ts.InvalidInputError, match="temperature"):
            ZeroShot("{}", {"a": "x", "b": "y"}, temperature=bad)
    with pytest.raises(TypeError, match="temperature"):
        ZeroShot("{}", {"a": "x", "b": "y"}, temperature="hot")
    with pytest.raises(ts.InvalidInputError, match="name is empty"):
        ZeroShot("{}", {"a": "x", "b": "y"}, name=" ")
    with pytest.raises(TypeError, match="name must be str"):
        ZeroShot("{}", {"a": "x", "b": "y"}, name=3)
    with pytest.raises(TypeError, match="encoder must be callable"):
        ZeroShot("{}", {"a": "x", "b": "y"}, encoder="minilm")


def test_zero_shot_refuses_descriptions_the_encoder_cannot_see():
    with pytest.raises(ts.InvalidInputError, match="zero vector"):
        ZeroShot("{}", {"pos": "good", "neg": "unknown words"}, encoder=keyword_encoder)


# -- in-context ---------------------------------------------------------------------------------------
DEMOS = [
    ("good good", "pos"),
    ("good", "pos"),
    ("bad", "neg"),
    ("bad bad", "neg"),
    ("sport", "neg"),
]


def test_in_context_votes_of_nearest_demonstrations():
    icl = InContext(DEMOS, k=1, encoder=keyword_encoder, smoothing=0.0)
    assert icl.labels == ("pos", "neg")
    assert icl.predict(["good", "bad", "sport", "good sport"]) == ["pos", "neg", "neg", "pos"]
    labels, probs = icl.predict_proba(["good"])
    assert labels == ["pos", "neg"]
    np.testing.assert_allclose(probs, [[1.0, 0.0]])


def test_in_context_weights_and_smoothing():
    icl = InContext(DEMOS, k=5, encoder=keyword_encoder, temperature=1e9, smoothing=0.0)
    # an (almost) flat temperature: all five demonstrations vote equally, 2 pos : 3 neg
    np.testing.assert_allclose(icl.predict_proba(["good"])[1], [[0.4, 0.6]], atol=1e-6)
    smoothed = InContext(DEMOS, k=1, encoder=keyword_encoder, smoothing=0.1)
    np.testing.assert_allclose(smoothed.predict_proba(["good"])[1], [[0.95, 0.05]])


def test_in_context_k_larger_than_the_demonstrations_uses_all():
    a = InContext(DEMOS, k=5, encoder=keyword_encoder)
    b = InContext(DEMOS, k=500, encoder=keyword_encoder)
    texts = ["good", "bad sport", "money"]
    np.testing.assert_allclose(a.predict_proba(texts)[1], b.predict_proba(texts)[1])
    assert b.k == 500


def test_in_context_input_without_features_gets_the_label_frequencies():
    icl = InContext(DEMOS, k=1, encoder=keyword_encoder, smoothing=0.0)
    np.testing.assert_allclose(icl.predict_proba(["nothing known here", ""])[1], [[0.4, 0.6], [0.4, 0.6]])


def test_in_context_predictions_change_with_the_demonstrations():
    half = len(REVIEWS) // 2
    a = InContext(list(zip(REVIEWS[:half], REVIEW_LABELS[:half], strict=True)), k=3)
    b = InContext(list(zip(REVIEWS[half:], REVIEW_LABELS[half:], strict=True)), k=3)
    pa, pb = a.predict(PROBE), b.predict(PROBE)
    changed = sum(x != y for x, y in zip(pa, pb, strict=True))
    assert changed >= len(PROBE) // 10, (
        f"only {changed} of {len(PROBE)} answers changed with the demonstrations"
    )
    assert a.name != b.name


def test_in_context_swapped_labels_swap_predictions():
    demos = list(zip(NEWS, NEWS_LABELS, strict=True))[:40]
    swap = {"sports": "business", "business": "sports"}
    a = InContext(demos, k=3)
    b = InContext([(t, swap.get(y, y)) for t, y in demos], k=3, labels=list(a.labels))
    assert b.predict(PROBE) == [swap.get(y, y) for y in a.predict(PROBE)]
    la, pa = a.predict_proba(PROBE)
    lb, pb = b.predict_proba(PROBE)
    assert la == lb
    i, j = la.index("sports"), la.index("business")
    np.testing.assert_allclose(pa[:, [i, j]], pb[:, [j, i]])


def test_in_context_accepts_mappings_and_declared_labels():
    icl = InContext(
        [{"text": "good", "label": "pos"}, {"text": "bad", "label": "neg"}],
        labels=["neg", "pos", "neutral"],
        encoder=keyword_encoder,
        k=1,
    )
    assert icl.labels == ("neg", "pos", "neutral")
    labels, probs = icl.predict_proba(["good", "bad"])
    assert labels == ["neg", "pos", "neutral"] and probs.shape == (2, 3)
    assert icl.predict(["good", "bad"]) == ["pos", "neg"]
    assert (probs[:, 2] > 0).all()  # smoothing: no label gets probability 0
    assert icl.demonstrations == [("good", "pos"), ("bad", "neg")]


@pytest.mark.parametrize(
    ("demos", "kwargs", "error", "match"),
    [
        ([], {}, ts.InvalidInputError, "demonstrations is empty"),
        ("good", {}, TypeError, "sequence of"),
        ({"text": "good", "label": "pos"}, {}, TypeError, "sequence of"),
        (
            [("good", "pos"), ("bad", "neg")],
            {"labels": ["pos", "neutral"]},
            ts.InvalidInputError,
            "not in labels",
        ),
        ([("good", "pos"), ("bad", "neg")], {"labels": ["pos", "pos"]}, ts.InvalidInputError, "duplicates"),
        ([("good", "pos"), ("bad", "neg")], {"labels": "pos"}, TypeError, "labels must be a sequence"),
        ([("good", "pos"), ("bad", "pos")], {}, ts.InvalidInputError, "at least two labels"),
        ([("good", "pos"), ("bad", "neg")], {"k": 0}, ts.InvalidInputError, "k must be >= 1"),
        ([("good", "pos"), ("bad", "neg")], {"k": -3}, ts.InvalidInputError, "k must be >= 1"),
        ([("good", "pos"), ("bad", "neg")], {"k": 2.5}, TypeError, "k must be an int"),
        ([("good", "pos"), ("bad", "neg")], {"k": True}, TypeError, "k must be an int"),
        ([("good", "pos"), ("bad", "neg")], {"smoothing": 1.0}, ts.InvalidInputError, "smoothing"),
        ([("good", "pos"), ("bad", "neg")], {"smoothing": -0.1}, ts.InvalidInputError, "smoothing"),
        ([("good", "pos"), ("bad", "neg")], {"temperature": 0}, ts.InvalidInputError, "temperature"),
        ([("good", "pos"), ("bad",)], {}, TypeError, "demonstration 1 must be"),
        ([("good", "pos"), {"text": "bad"}], {}, ts.InvalidInputError, "demonstration 1 lacks"),
        ([("good", "pos"), (3, "neg")], {}, TypeError, "text of demonstration 1 must be str"),
        ([("good", "pos"), ("bad", 1)], {}, TypeError, "label of demonstration 1 must be str"),
        ([("good", "pos"), ("bad", "")], {}, ts.InvalidInputError, "label of demonstration 1 is empty"),
        ([("good", "pos"), ("bad\ud800", "neg")], {}, ts.InvalidInputError, "not valid Unicode"),
        (
            [("money", "pos"), ("sport", "neg")],
            {"encoder": lambda t: np.zeros((len(t), 3))},
            ts.InvalidInputError,
            "zero vector",
        ),
    ],
)
def test_in_context_bad_prompts(demos, kwargs, error, match):
    with pytest.raises(error, match=match):
        InContext(demos, **kwargs)


# -- shared behaviour ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def models() -> list:
    return [
        sentiment("great, I love it", "terrible, I hate it"),
        InContext(list(zip(REVIEWS, REVIEW_LABELS, strict=True))[:30], k=5),
        ZeroShot("{}", {"a": "good", "b": "bad", "c": "sport"}, encoder=keyword_encoder),
    ]


def test_predict_proba_rows_are_distributions(models):
    for model in models:
        assert is_local_model(model)
        labels, probs = model.predict_proba([*PROBE, "", "!!!", "日本語のテキスト 🙂"])
        assert labels == list(model.labels)
        assert probs.dtype == np.float64 and probs.shape == (len(PROBE) + 3, len(labels))
        assert np.isfinite(probs).all() and (probs >= 0).all()
        np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-12)
        assert model.predict(PROBE) == [labels[j] for j in probs[: len(PROBE)].argmax(axis=1)]


def test_answers_are_deterministic_and_batch_independent(models):
    for model in models:
        whole = model.predict_proba(PROBE)[1]
        one_by_one = np.vstack([model.predict_proba([t])[1] for t in PROBE[:20]])
        np.testing.assert_allclose(whole[:20], one_by_one, atol=1e-12)


def test_bad_texts(models):
    model = models[0]
    assert model.predict([]) == []
    labels, probs = model.predict_proba([])
    assert labels == list(model.labels) and probs.shape == (0, 2)
    with pytest.raises(TypeError, match="not a single str"):
        model.predict("a single text")
    with pytest.raises(TypeError, match=r"texts\[1\] must be str"):
        model.predict_proba(["ok", 3])
    with pytest.raises(ts.InvalidInputError, match="not valid Unicode"):
        model.predict(["bad \ud800"])


def test_default_names_are_stable_and_content_addressed():
    a1 = sentiment("good", "bad")
    a2 = sentiment("good", "bad")
    assert a1.name == a2.name and a1.name.startswith("zero-shot-") and len(a1.name) == len("zero-shot-") + 12
    assert sentiment("good", "bad", name="mine").name == "mine"
    other_encoder = sentiment("good", "bad", encoder=keyword_encoder)
    assert other_encoder.name != a1.name
    assert a1.prompt["encoder"] == default_encoder().name
    i1 = InContext(DEMOS, encoder=keyword_encoder)
    assert i1.name == InContext(list(DEMOS), encoder=keyword_encoder).name
    assert i1.name.startswith("in-context-")
    assert InContext(DEMOS, encoder=keyword_encoder, k=2).name != i1.name
    assert InContext(DEMOS[::-1], encoder=keyword_encoder).name != i1.name


def test_model_embeddings_follow_the_prompt():
    sur = ts.Surrogate(features=64, dim=512)
    a = sentiment(["great, I love it", "works well"], ["terrible, I hate it", "broken"])
    b = sentiment(["cheap price", "fast delivery"], ["slow delivery", "expensive price"])
    ea = sur.model_embedding(PROBE, a.predict_proba(PROBE)[1], name=a.name)
    ea2 = sur.model_embedding(PROBE, sentiment(*a.label_descriptions.values()).predict_proba(PROBE)[1])
    eb = sur.model_embedding(PROBE, b.predict_proba(PROBE)[1], name=b.name)
    assert ea.similarity(ea2) == pytest.approx(1.0, abs=1e-6)
    assert ea.similarity(eb) < 0.99


# -- encoders -----------------------------------------------------------------------------------------
def test_default_encoder_is_independent_of_the_surrogate_defaults():
    enc = default_encoder()
    assert enc is default_encoder()
    assert isinstance(enc.encoder, HashedNgramEncoder) and enc.encoder.features == 384
    sur = ts.Surrogate()
    vec = enc(["a sentence to encode"])
    assert vec.shape == (1, 384) and vec.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vec), 1.0, rtol=1e-5)
    same_size = ts.Surrogate(features=384, seed=sur.seed, hash_bits=sur.hash_bits).encode(
        ["a sentence to encode"]
    )
    assert abs(float(vec[0] @ same_size[0])) < 0.5


def test_cached_encoder_caches_and_is_bounded():
    calls: list[list[str]] = []

    def enc(texts):
        calls.append(list(texts))
        return np.array([[len(t), 1.0] for t in texts])

    cached = CachedEncoder(enc, maxsize=2)
    cached(["a", "bb", "a"])
    assert calls == [["a", "bb"]] and len(cached) == 2
    cached(["a"])  # hit; "bb" is now least recently used
    cached(["ccc"])  # evicts "bb"
    assert calls[-1] == ["ccc"] and len(cached) == 2
    cached(["a", "bb"])
    assert calls[-1] == ["bb"]
    no_cache = CachedEncoder(enc, maxsize=0)
    no_cache(["a"])
    no_cache(["a"])
    assert calls[-2:] == [["a"], ["a"]] and len(no_cache) == 0
    with pytest.raises(ts.InvalidInputError, match="maxsize"):
        CachedEncoder(enc, maxsize=-1)


def test_cached_encoder_is_thread_safe():
    cached = CachedEncoder(HashedNgramEncoder(features=32), maxsize=50)
    texts = [f"text number {i}" for i in range(200)]
    expected = HashedNgramEncoder(features=32)(texts)
    errors: list[BaseException] = []

    def work(offset: int) -> None:
        try:
            for start in range(offset, 200, 17):
                got = cached(texts[start : start + 9])
                np.testing.assert_array_equal(got, expected[start : start + 9])
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(cached) <= 50


@pytest.mark.parametrize(
    ("output", "error", "match"),
    [
        (lambda t: np.ones(len(t)), ts.InvalidInputError, "one row per text"),
        (lambda t: np.ones((len(t) + 1, 3)), ts.InvalidInputError, "one row per text"),
        (lambda t: np.full((len(t), 3), np.nan), ts.InvalidInputError, "NaN"),
        (lambda t: [["x"] * 3 for _ in t], TypeError, "numeric"),
        (lambda t: [[1.0] * (i + 1) for i in range(len(t))], ts.InvalidInputError, "ragged"),
    ],
)
def test_bad_encoder_output_is_reported(output, error, match):
    with pytest.raises(error, match=match):
        ZeroShot("{}", {"a": "x", "b": "y"}, encoder=output)


def test_encoder_dimension_must_not_change():
    dims = iter([3, 4])
    cached = CachedEncoder(lambda t: np.ones((len(t), next(dims))))
    cached(["a"])
    with pytest.raises(ts.InvalidInputError, match="4-d vectors after 3-d"):
        cached(["b"])


# -- config -------------------------------------------------------------------------------------------
CONFIG = """
[models.zs]
kind = "zero-shot"
template = "This review is {}."
temperature = 0.1
[models.zs.label_descriptions]
positive = ["good", "great, I loved it"]
negative = "bad, I hated it"

[models.icl-inline]
kind = "in-context"
k = 1
labels = ["positive", "negative"]
demonstrations = [
  { text = "I loved every minute of it", label = "positive" },
  { text = "a waste of money", label = "negative" },
]

[models.icl-file]
kind = "in-context"
demonstrations_file = "demos/d.jsonl"
"""


def test_load_models_from_toml(tmp_path):
    (tmp_path / "demos").mkdir()
    (tmp_path / "demos" / "d.jsonl").write_text(
        '{"text": "the team won", "label": "sport"}\n\n{"text": "prices fell", "label": "money"}\n'
    )
    path = tmp_path / "models.toml"
    path.write_text(CONFIG)
    models = load_models(path)
    assert list(models) == ["zs", "icl-inline", "icl-file"]
    assert [m.name for m in models.values()] == ["zs", "icl-inline", "icl-file"]
    zs = models["zs"]
    assert isinstance(zs, ZeroShot) and zs.temperature == 0.1 and zs.labels == ("positive", "negative")
    assert zs.label_descriptions == {
        "positive": ("good", "great, I loved it"),
        "negative": ("bad, I hated it",),
    }
    assert models["icl-inline"].k == 1
    assert models["icl-file"].labels == ("sport", "money")
    assert models["icl-file"].predict(["the team lost"]) == ["sport"]


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("[models.x\n", "not valid TOML"),
        ("title = 'x'\n", "unknown top-level keys"),
        ("", "defines no models"),
        ("[models]\n", "defines no models"),
        ("[models.x]\nkind = 'magic'\n", "kind must be 'zero-shot', 'in-context' or 'gguf'"),
        ("[models.x]\nkind = 'zero-shot'\ntemplate = '{}'\n", "needs 'label_descriptions'"),
        ("[models.x]\nkind = 'zero-shot'\ntemplat = '{}'\n", r"unknown keys \['templat'\]"),
        (
            "[models.x]\nkind = 'zero-shot'\ntemplate = 'no slot'\nlabel_descriptions = {a = 'x', b = 'y'}\n",
            r"\[models.x\]: template must contain",
        ),
        ("[models.x]\nkind = 'in-context'\nk = 2\n", "exactly one of 'demonstrations'"),
        (
            "[models.x]\nkind = 'in-context'\ndemonstrations = [{text = 'a', label = 'p'}, {text = 'b', label = 'q'}]\n"
            "k = 0\n",
            "k must be >= 1",
        ),
        (
            "[models.x]\nkind = 'in-context'\ndemonstrations = [{text = 'a', label = 'p'}, {text = 'b', label = 'q'}]\n"
            "labels = ['p']\n",
            "not in labels",
        ),
        ("[models.x]\nkind = 'in-context'\ndemonstrations_file = 'bad.jsonl'\n", "line 2: not valid JSON"),
        ("[models.x]\nkind = 'in-context'\ndemonstrations_file = 'empty.jsonl'\n", "has no demonstrations"),
        (
            "[models.x]\nkind = 'in-context'\ndemonstrations_file = 'nolabel.jsonl'\n",
            "line 1: expected an object",
        ),
    ],
)
def test_bad_configs(tmp_path, text, match):
    (tmp_path / "bad.jsonl").write_text('{"text": "a", "label": "p"}\n{oops\n')
    (tmp_path / "empty.jsonl").write_text("\n")
    (tmp_path / "nolabel.jsonl").write_text('{"text": "a"}\n')
    path = tmp_path / "models.toml"
    path.write_text(text)
    with pytest.raises(ts.InvalidInputError, match=match):
        load_models(path)


def test_missing_config_files(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_models(tmp_path / "absent.toml")
    path = tmp_path / "models.toml"
    path.write_text("[models.x]\nkind = 'in-context'\ndemonstrations_file = 'absent.jsonl'\n")
    with pytest.raises(FileNotFoundError):
        load_models(path)
