"""Averages against numpy, greedy soup's decisions on a score the test controls, and refusals."""


import jax
import numpy as np
import pytest

from embeddinggemma.checkpoint.orbax_io import save_orbax
from embeddinggemma.checkpoint.sentence_transformers import export_sentence_transformers
from embeddinggemma.prompts import DEFAULT_PROMPTS
from embeddinggemma.souping.ingredients import open_ingredient
from embeddinggemma.souping.mix import (
    IncompatibleIngredientsError,
    as_tree,
    check_compatible,
    greedy_soup,
    normalise_weights,
    weighted_sum,
)


def _flat(tree):
    return {tuple(k.key for k in path): np.asarray(v, np.float64)
            for path, v in jax.tree_util.tree_flatten_with_path(tree)[0]}


def test_a_weighted_sum_of_mixed_formats_equals_numpy(tmp_path, make_ingredient, tiny_config,
                                                       tiny_tokenizer_path):
    a, params_a = make_ingredient("a", 1)
    b, params_b = make_ingredient("b", 2)
    _, params_c = make_ingredient("c-orbax", 3)
    c = export_sentence_transformers(tmp_path / "c", tiny_config, params_c, tiny_tokenizer_path,
                                     DEFAULT_PROMPTS)
    ingredients = [open_ingredient(str(p)) for p in (a, b, c)]
    soup = weighted_sum(ingredients, [0.5, 0.3, 0.2], progress=False)
    expected = {path: 0.5 * x + 0.3 * _flat(params_b)[path] + 0.2 * _flat(params_c)[path]
                for path, x in _flat(params_a).items()}
    assert soup.keys() == expected.keys()
    for path, value in soup.items():
        np.testing.assert_allclose(value, expected[path], rtol=1e-6, atol=1e-6, err_msg=str(path))


def test_weights_are_checked_and_normalised():
    assert normalise_weights(None, 4) == ([0.25] * 4, False)
    assert normalise_weights([0.5, 0.5], 2) == ([0.5, 0.5], False)
    weights, rescaled = normalise_weights([5, 3, 2], 3)
    assert rescaled and np.allclose(weights, [0.5, 0.3, 0.2])
    with pytest.raises(ValueError, match="positive"):
        normalise_weights([1, 0], 2)
    with pytest.raises(ValueError, match="positive"):
        normalise_weights([1, float("nan")], 2)
    with pytest.raises(ValueError, match="2 weights for 3 ingredients"):
        normalise_weights([1, 2], 3)


def test_greedy_soup_keeps_only_strict_improvements(make_ingredient, tiny_params):
    """Every parameter of an ingredient is one constant (1, 10, 100, 1000), so the mean of a soup's
    parameters tells which ingredients it holds; the score is a table of the test's own.

    Ranked by own score: B, D, A, C. B+D (0.8 > 0.7) stays; B+D+A ties at 0.8, not a strict
    improvement, so A goes; B+D+C (0.9) stays. The soup is B, D, C: every parameter 370.
    """
    values = {"A": 1.0, "B": 10.0, "C": 100.0, "D": 1000.0}
    table = {1.0: 0.5, 10.0: 0.7, 100.0: 0.3, 1000.0: 0.6, 505.0: 0.8, 337.0: 0.8, 370.0: 0.9}
    ingredients = []
    for name, value in values.items():
        constant = jax.tree.map(lambda x, v=value: np.full(np.shape(x), v, np.float32), tiny_params)
        ingredients.append(open_ingredient(str(make_ingredient(name, 0, params=constant)[0])))
    name_of = {i.name: i.path.name for i in ingredients}

    def score(params):
        return table[round(float(params["projection_0"].mean()), 1)]

    members, average, own, steps = greedy_soup(ingredients, score, progress=False)
    assert [m.path.name for m in members] == ["B", "D", "C"]
    assert {name_of[k]: v for k, v in own.items()} == {"A": 0.5, "B": 0.7, "C": 0.3, "D": 0.6}
    assert [(name_of[s.ingredient], s.score_with, s.best_before, s.accepted) for s in steps] == [
        ("D", 0.8, 0.7, True), ("A", 0.8, 0.8, False), ("C", 0.9, 0.8, True)]
    for path, value in average.items():
        np.testing.assert_allclose(value, 370.0, rtol=1e-6, err_msg=str(path))


def test_differences_are_named(make_ingredient, tiny_config, tiny_tokenizer_path, tmp_path):
    import sentencepiece as spm

    base, _ = make_ingredient("base", 1)
    # Run-time settings are not architecture: bfloat16 parameters soup with float32 ones.
    half, _ = make_ingredient("half", 2, params=jax.tree.map(
        lambda x: np.asarray(x, jax.numpy.bfloat16), open_ingredient_params(base)))
    check_compatible([open_ingredient(str(base)), open_ingredient(str(half))])

    wider = tiny_config.replace(mlp_dim=96)
    narrow_mlp = {"gate": lambda w: w[..., :96], "up": lambda w: w[..., :96], "down": lambda w: w[:, :96]}
    params = open_ingredient_params(base)
    params["transformer"]["layers"]["mlp"] = {k: narrow_mlp[k](w)
                                              for k, w in params["transformer"]["layers"]["mlp"].items()}
    wide, _ = make_ingredient("wide", 3, config=wider, params=params)
    with pytest.raises(IncompatibleIngredientsError,
                       match=r"base and .*wide differ at parameter transformer/layers/mlp/down: shape "
                             r"\[3, 128, 64\] vs \[3, 96, 64\]"):
        check_compatible([open_ingredient(str(base)), open_ingredient(str(wide))])

    first, _ = make_ingredient("first", 4, config=tiny_config.replace(pooling="first"))
    with pytest.raises(IncompatibleIngredientsError,
                       match=r"differ in architecture: pooling = 'mean' vs 'first'"):
        check_compatible([open_ingredient(str(base)), open_ingredient(str(first))])

    prompts = {**DEFAULT_PROMPTS, "query": "q: "}
    other_prompts, _ = make_ingredient("prompts", 5, prompts=prompts)
    with pytest.raises(IncompatibleIngredientsError, match=r"different prompts: 'query' is 'task: search"):
        check_compatible([open_ingredient(str(base)), open_ingredient(str(other_prompts))])

    spm.SentencePieceTrainer.train(input="/usr/share/common-licenses/GPL-3",
                                   model_prefix=str(tmp_path / "other"), vocab_size=300, pad_id=0,
                                   eos_id=1, bos_id=2, unk_id=3, model_type="bpe", num_threads=1,
                                   minloglevel=2)
    other_tokenizer, _ = make_ingredient("tokenizer", 6, tokenizer=tmp_path / "other.model")
    with pytest.raises(IncompatibleIngredientsError,
                       match=r"different tokenizers: .*base/tokenizer.model and .*tokenizer/tokenizer.model"):
        check_compatible([open_ingredient(str(base)), open_ingredient(str(other_tokenizer))])


def open_ingredient_params(path):
    ingredient = open_ingredient(str(path))
    return as_tree({p: ingredient.read(p) for p in ingredient.shapes})


def test_an_ingredient_that_is_not_a_checkpoint_is_named(tmp_path, tiny_config, tiny_params,
                                                         tiny_tokenizer_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="empty is neither an Orbax checkpoint"):
        open_ingredient(str(tmp_path / "empty"))
    ckpt = save_orbax(tmp_path / "ckpt", tiny_config, tiny_params, tiny_tokenizer_path, DEFAULT_PROMPTS)
    with pytest.raises(ValueError, match=r"ckpt@3: @STEP names a run's checkpoint"):
        open_ingredient(f"{ckpt}@3")


def test_a_quantised_checkpoint_is_refused_as_an_ingredient(tmp_path, tiny_config, tiny_params,
                                                            tiny_tokenizer_path):
    ckpt = save_orbax(tmp_path / "int8", tiny_config, tiny_params, tiny_tokenizer_path, DEFAULT_PROMPTS,
                      quantization="int8-block")
    with pytest.raises(ValueError, match=r"int8: a int8-block quantised checkpoint; soup float"):
        open_ingredient(str(ckpt))
