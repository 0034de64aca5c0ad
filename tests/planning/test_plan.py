"""The plan command on compile-only TPU devices (libtpu, the `tpu` extra): a tiny config on v5e-4
fits and reports every field; one made not to fit exits non-zero naming its largest values; an
unknown slice is refused before anything is compiled."""

from __future__ import annotations

import functools
import json
import math

import jax
import pytest

from embeddinggemma.cli.plan import DOES_NOT_FIT, main
from embeddinggemma.model.config import GLOBAL, LOCAL
from embeddinggemma.planning.plan import architecture, model_flops_per_step, plan
from embeddinggemma.planning.slices import SLICES, UnknownSliceError, get_slice
from embeddinggemma.training.config_files import load_config
from embeddinggemma.training.embedding_config import model_config

libtpu = pytest.importorskip("libtpu", reason="the plan compiles with libtpu: pip install -e '.[tpu]'")


def test_unknown_slice_is_refused_with_the_known_names(capsys):
    with pytest.raises(UnknownSliceError, match="v5e-64.*v6e-64|v6e-64.*v5e-64"):
        get_slice("v5e-3")
    assert main(["--config", "finetune:tiny", "--topology", "v9-8"]) == 2
    err = capsys.readouterr().err
    assert "unknown TPU slice 'v9-8'" in err and "v5p-64" in err


@pytest.mark.parametrize("name, chips, kind", [("v5e-4", 4, "TPU v5 lite"), ("v5p-64", 32, "TPU v5"),
                                               ("v4-8", 4, "TPU v4"), ("v6e-64", 64, "TPU v6 lite")])
def test_slices_give_one_compile_only_device_per_chip(name, chips, kind):
    devices = get_slice(name).devices()
    assert len(devices) == SLICES[name].chips == chips
    assert {d.device_kind for d in devices} == {kind} and {d.platform for d in devices} == {"tpu"}


@pytest.fixture(scope="module")
def tiny_plan():
    config = load_config("finetune:tiny")
    return config, plan(config, get_slice("v5e-4"))


@pytest.mark.slow
def test_tiny_finetune_fits_on_v5e_4_and_reports_every_field(tiny_plan):
    config, report = tiny_plan
    assert report["fits"] is True and report["chips"] == 4
    assert report["mesh"] == {"data": 4, "fsdp": 1, "tensor": 1}
    chip = report["per_chip"]
    assert chip["hbm_bytes"] == 16 * 2 ** 30
    assert 0 < chip["total_bytes"] <= chip["hbm_bytes"]
    assert chip["headroom_bytes"] == chip["hbm_bytes"] - chip["total_bytes"]
    # The tiny mesh replicates the parameters: every chip holds all of them, in float32.
    from embeddinggemma.model import embedder

    init = functools.partial(embedder.init_params, model_config(config))
    shapes = jax.eval_shape(init, jax.random.PRNGKey(0))
    assert chip["parameter_bytes"] == 4 * sum(math.prod(x.shape) for x in jax.tree.leaves(shapes))
    # adamw: two moments shaped like the parameters, plus a few scalars.
    assert 2 * chip["parameter_bytes"] <= chip["optimizer_bytes"] <= 2 * chip["parameter_bytes"] + 64
    assert set(report["collectives"]) == {"all-gather", "reduce-scatter", "all-reduce", "all-to-all",
                                          "collective-permute"}
    # Data parallelism: the gradients are summed over the 4 chips.
    assert report["collectives"]["all-reduce"]["per_step"] >= 1
    assert report["attention"] == {GLOBAL: "splash", LOCAL: "splash"}  # the TPU kernel, in the program
    assert set(report["programs"]) == {"train_step", "embed"}
    assert report["step_seconds"]["40%"] == pytest.approx(report["step_seconds"]["100%"] / 0.4)
    json.dumps(report)  # JSON-ready


def test_model_flops_count_the_parameter_tree_and_the_attention():
    """The analytic count against one made from the parameter tree's matrices: 6 FLOPs per weight
    per token for the layers' matrices, per sequence for the head, plus 3 x 4 x N x H x T per token
    per layer for attention."""
    config = load_config("finetune:tiny")
    from embeddinggemma.model import embedder

    model = model_config(config)
    c = model.transformer
    params = jax.eval_shape(functools.partial(embedder.init_params, model), jax.random.PRNGKey(0))
    paths = [(jax.tree_util.keystr(path), x) for path, x in jax.tree_util.tree_leaves_with_path(params)]
    layer_weights = sum(math.prod(x.shape) for path, x in paths if "layers" in path and "norm" not in path)
    head_weights = sum(math.prod(x.shape) for k, x in params.items() if k.startswith("projection"))
    t = config.train
    expected = 0
    for length in (t.max_query_length, t.max_document_length, t.max_document_length):  # hard negatives
        tokens = t.batch_size * length
        expected += 6 * layer_weights * tokens + 6 * head_weights * t.batch_size
        expected += 3 * 4 * c.num_heads * c.head_dim * length * c.num_layers * tokens
    assert model_flops_per_step(config) == pytest.approx(expected, rel=1e-12)


@pytest.mark.slow
def test_a_config_that_does_not_fit_exits_non_zero_naming_its_largest_values(tmp_path, capsys):
    out = tmp_path / "plan.json"
    # 2**17 examples without gradient caching: the contrastive scores alone are [B, B] per MRL dim.
    status = main(["--config", "finetune:tiny", "--topology", "v5e-4", "--out", str(out),
                   "--config.train.batch_size=131072", "--config.train.grad_cache_chunk_size=0"])
    assert status == DOES_NOT_FIT
    report = json.loads(out.read_text())
    assert report["fits"] is False and report["per_chip"]["total_bytes"] > report["per_chip"]["hbm_bytes"]
    largest = report["largest_values"]
    assert largest and largest[0]["bytes"] >= largest[-1]["bytes"] > 0
    text = capsys.readouterr().out
    assert "fits                NO" in text and "largest values" in text
    assert "train.grad_cache_chunk_size" in text
    assert largest[0]["shape"] in text


def test_out_refuses_a_file_that_is_not_a_plan_report(tmp_path, capsys):
    other = tmp_path / "notes.json"
    other.write_text('{"mine": 1}')
    assert main(["--config", "finetune:tiny", "--topology", "v5e-4", "--out", str(other)]) == 2
    assert other.read_text() == '{"mine": 1}'
    assert "is not a plan report" in capsys.readouterr().err


@pytest.mark.slow
def test_a_ul2_config_is_planned_as_the_adapt_command_runs_it():
    config = load_config("ul2_adapt:tiny")
    report = plan(config, get_slice("v5e-4"))
    assert report["stage"] == "adapt" and report["fits"] is True
    assert set(report["programs"]) == {"train_step", "heldout_denoising"}
    assert report["collectives"]["all-reduce"]["per_step"] >= 1
    # The tied logits of every decoder position are counted (3 x 2 x V x D each), besides the stacks.
    c = architecture(config)
    logits = 3 * 2 * c.vocab_size * c.embed_dim * config.train.batch_size * (config.ul2.max_length + 1)
    assert report["model_flops_per_step"] > logits
