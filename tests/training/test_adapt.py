"""The adapt command: a tiny UL2 adaptation on 8 simulated devices over real corpus text (the loss
and the held-out denoising loss go down), its encoder read back for the embedding model, resumption
after SIGKILL and after Ctrl-C with equal losses, and the start from a decoder checkpoint."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from embeddinggemma.checkpoint.encoder_decoder import SEQ2SEQ, load_adapted_encoder
from embeddinggemma.checkpoint.orbax_io import restore_params_tree, save_orbax
from embeddinggemma.data.ul2_config import SENTINEL_IDS
from embeddinggemma.errors import ConfigError
from embeddinggemma.model import Transformer, init_params, tiny
from embeddinggemma.model.encoder_decoder import CROSS_FROM_SELF, encoder_transformer_params, from_decoder
from embeddinggemma.model.layout import transformer_layout
from embeddinggemma.training.config_files import load_config
from embeddinggemma.training.denoising import DenoisingStage
from embeddinggemma.training.embedding_stage import EmbeddingStage
from embeddinggemma.training.loop import train
from embeddinggemma.training.metrics import read_jsonl
from embeddinggemma.training.state import ENCODER
from embeddinggemma.training.trainer import assemble_trainer
from tests.training.conftest import REPO, process_env, run
from tests.training.test_train_loop import assert_same_params, losses, run_until, saved_steps

STEPS = 24
# A short run on the 8 devices, data- and fsdp-sharded; checkpoints every 4 steps.
OVERRIDES = ("train.batch_size=16", "ul2.max_length=29", "optimizer.warmup_steps=4",
             "checkpoint.every_steps=4", "checkpoint.keep=10", "eval.every_steps=12", "eval.batch_size=16",
             "ul2.heldout_documents=32", "mesh.shape=(4,2,1)", f"train.num_steps={STEPS}")


def _overrides(corpus: Path) -> list[str]:
    return [*OVERRIDES, f"data.corpus={corpus}"]


def _config(corpus: Path, *extra: str):
    return load_config("ul2_adapt:tiny", [*_overrides(corpus), *extra])


@pytest.fixture(scope="module")
def straight_run(small_corpus, tmp_path_factory) -> Path:
    """An uninterrupted run, in this process (8 devices, see tests/conftest.py)."""
    workdir = tmp_path_factory.mktemp("adapt") / "straight"
    config = _config(small_corpus)
    train(config, workdir, stage=DenoisingStage(config))
    return workdir


def test_a_tiny_adaptation_on_8_devices_learns_to_denoise_real_text(straight_run):
    rows = read_jsonl(straight_run / "metrics.jsonl")
    assert [r["step"] for r in rows] == list(range(1, STEPS + 1))
    assert {"loss", "denoising/loss", "denoising/accuracy", "learning_rate", "grad_norm", "dataset",
            "examples_per_second", "tokens_per_second"} <= rows[0].keys()
    first, last = np.mean([r["loss"] for r in rows[:4]]), np.mean([r["loss"] for r in rows[-4:]])
    assert last < first - 0.5, (first, last)
    evaluations = {r["step"]: r for r in read_jsonl(straight_run / "eval.jsonl")}
    assert sorted(evaluations) == [0, 12, 24]
    assert evaluations[24]["eval/denoising_loss"] < evaluations[0]["eval/denoising_loss"] - 0.5
    assert "eval/s_prefix/denoising_loss" in evaluations[24]


def test_the_encoder_of_a_run_and_of_its_export_is_an_embedding_models_transformer(straight_run):
    from_run, from_export = load_adapted_encoder(straight_run), load_adapted_encoder(straight_run / "export")
    assert from_run.config == from_export.config == tiny().transformer
    assert_same_params(from_run.params, from_export.params)
    want = jax.tree.map(lambda layout: layout.shape, transformer_layout(from_run.config))
    assert jax.tree.map(np.shape, from_run.params) == want
    # The encoder runs as the embedding model's transformer, with the run's tokenizer.
    tokens = np.array([[2, 300, 301, 1, 0]], np.int32)
    from embeddinggemma.model.masks import encoder_masks

    hidden = Transformer(from_run.config).apply({"params": from_run.params}, tokens,
                                                 encoder_masks(tokens != 0, from_run.config))
    assert np.isfinite(np.asarray(hidden)).all()
    assert from_run.tokenizer_path.read_bytes() == (straight_run / "tokenizer.model").read_bytes()


def test_an_embedding_run_starts_from_the_adapted_encoder(straight_run, small_corpus):
    config = load_config("finetune:tiny", [f"data.corpus={small_corpus}", "model.init=encoder_decoder",
                                           f"model.init_checkpoint={straight_run / 'export'}"])
    stage = EmbeddingStage(config)
    stage.prepare(straight_run)
    assert stage.tokenizer_path.read_bytes() == (straight_run / "tokenizer.model").read_bytes()
    trainer = assemble_trainer(config)
    state = trainer.init_state()
    start = stage.initial_params(trainer, state)
    seq2seq = load_adapted_encoder(straight_run / "export")
    assert_same_params(start[ENCODER]["transformer"], seq2seq.params)
    # The encoder half of what was trained, not the decoder's; the projection head stays fresh.
    trained = restore_params_tree(straight_run / "export")
    assert_same_params(seq2seq.params, encoder_transformer_params(trained))
    fresh = jax.device_get(state["params"][ENCODER])
    assert_same_params({k: v for k, v in start[ENCODER].items() if k != "transformer"},
                       {k: v for k, v in fresh.items() if k != "transformer"})


def _command(corpus: Path, workdir: Path) -> list[str]:
    return [sys.executable, "-m", "embeddinggemma", "adapt", "--config",
            str(REPO / "configs/ul2_adapt.py:tiny"), "--workdir", str(workdir),
            *(f"--config.{o}" for o in _overrides(corpus))]


def _assert_resumes_like_the_straight_run(command: list[str], workdir: Path, straight_run: Path) -> str:
    resumed = run(command, devices=8)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Resumed" in resumed.stderr and "held-out denoising_loss" in resumed.stderr
    got, expected = losses(workdir), losses(straight_run)
    assert sorted(got) == list(range(1, STEPS + 1))
    np.testing.assert_allclose([got[s] for s in sorted(got)], [expected[s] for s in sorted(expected)],
                               rtol=0, atol=1e-6)
    assert_same_params(load_adapted_encoder(workdir / "export").params,
                       load_adapted_encoder(straight_run / "export").params, atol=1e-6)
    return resumed.stderr


@pytest.mark.slow  # two adapt commands in subprocesses
def test_an_adaptation_killed_halfway_and_resumed_matches_the_uninterrupted_run(straight_run, small_corpus,
                                                                                tmp_path):
    command = _command(small_corpus, tmp_path / "killed")
    process = subprocess.Popen(command, env=process_env(8), cwd=REPO, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    run_until(process, lambda: len(losses(tmp_path / "killed")) >= STEPS // 2)
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL
    assert max(losses(tmp_path / "killed")) < STEPS
    _assert_resumes_like_the_straight_run(command, tmp_path / "killed", straight_run)


@pytest.mark.slow  # two adapt commands in subprocesses
def test_an_adaptation_stopped_by_ctrl_c_saves_its_step_exits_130_and_resumes_like_the_uninterrupted_run(
        straight_run, small_corpus, tmp_path):
    workdir = tmp_path / "stopped"
    command = _command(small_corpus, workdir)
    process = subprocess.Popen(command, env=process_env(8), cwd=REPO, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    run_until(process, lambda: saved_steps(workdir))  # after the first periodic checkpoint (step 4)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=300)
    assert process.returncode == 130, err[-3000:]
    stopped_at = max(losses(workdir))
    # Nothing lost: the last step it trained is saved (the periodic checkpoints are every 4 steps).
    assert 4 < stopped_at < STEPS and saved_steps(workdir)[-1] == stopped_at
    assert f"stopped by SIGINT after step {stopped_at}" in err and "Traceback" not in err
    assert f"from step {stopped_at}" in _assert_resumes_like_the_straight_run(command, workdir, straight_run)


@pytest.fixture(scope="module")
def decoder_checkpoint(tmp_path_factory, small_corpus) -> Path:
    """A tiny model in this codebase's Orbax layout, its tokenizer with Gemma's reserved pieces."""
    from embeddinggemma.training.inputs import corpus_tokenizer

    out = tmp_path_factory.mktemp("decoder") / "decoder"
    params = jax.device_get(init_params(tiny(), jax.random.PRNGKey(4)))
    save_orbax(out, tiny(), params, corpus_tokenizer(small_corpus, 512, gemma_reserved=True), {})
    return out


def test_the_start_from_a_decoder_copies_it_into_both_halves(decoder_checkpoint, small_corpus, tmp_path):
    from embeddinggemma.checkpoint.orbax_io import load_orbax_params

    config = _config(small_corpus, f"model.init_checkpoint={decoder_checkpoint}")
    stage = DenoisingStage(config)
    stage.prepare(tmp_path)
    assert stage.tokenizer.processor.id_to_piece(SENTINEL_IDS[0]) == "<unused3>"
    decoder = load_orbax_params(decoder_checkpoint)["transformer"]
    start = stage.initial_params(None, {})[SEQ2SEQ]
    assert_same_params(start, from_decoder(decoder))
    assert_same_params(start["decoder"]["layers"]["cross_attn"],
                       decoder["layers"][CROSS_FROM_SELF["cross_attn"]])


def test_keep_layers_cuts_the_decoder_start_to_its_first_layers(decoder_checkpoint, small_corpus, tmp_path):
    from embeddinggemma.checkpoint.orbax_io import load_orbax_params

    config = _config(small_corpus, f"model.init_checkpoint={decoder_checkpoint}", "model.keep_layers=2")
    stage = DenoisingStage(config)
    stage.prepare(tmp_path)
    assert stage.transformer.num_layers == 2 and stage.start.config == stage.transformer
    decoder = load_orbax_params(decoder_checkpoint)["transformer"]
    first_two = jax.tree.map(lambda w: np.asarray(w)[:2], decoder["layers"])
    assert_same_params(stage.start.params["layers"], first_two)
    with pytest.raises(ConfigError, match=r"model\.keep_layers=5 is outside 1\.\.3"):
        DenoisingStage(_config(small_corpus, f"model.init_checkpoint={decoder_checkpoint}",
                               "model.keep_layers=5")).prepare(tmp_path)


def test_a_decoder_of_another_architecture_is_named_field_by_field(decoder_checkpoint, small_corpus,
                                                                   tmp_path):
    config = _config(small_corpus, f"model.init_checkpoint={decoder_checkpoint}",
                     "model.preset=embeddinggemma_300m")
    expected = (r"(?s)another architecture.*vocab_size: checkpoint 512 vs model.preset 262144"
                r".*embed_dim: checkpoint 64 vs model.preset 768")
    with pytest.raises(ConfigError, match=expected):
        DenoisingStage(config).prepare(tmp_path)


def test_a_bad_ul2_field_is_exit_status_2_before_anything_is_written(tmp_path, capsys):
    from embeddinggemma.cli.adapt import main

    workdir = tmp_path / "run"
    assert main(["--config", str(REPO / "configs/ul2_adapt.py:tiny"), "--workdir", str(workdir),
                 "--config.ul2.denoisers.x_span3.noise_density=1.5"]) == 2
    assert "ul2.denoisers.x_span3.noise_density=1.5 must be in (0, 1)" in capsys.readouterr().err
    assert not workdir.exists()


def test_the_adapt_command_refuses_an_embedding_config_and_names_the_stage(tmp_path, capsys):
    from embeddinggemma.cli.adapt import main

    workdir = tmp_path / "run"
    assert main(["--config", str(REPO / "configs/finetune.py:tiny"), "--workdir", str(workdir)]) == 2
    assert "stage='embedding'" in capsys.readouterr().err
    assert not workdir.exists()


def test_each_stage_owns_its_section_and_an_unknown_stage_is_named():
    from embeddinggemma.training.config import base_config, validate_config
    from embeddinggemma.training.config_files import load_config

    adapt, finetune = load_config("ul2_adapt:tiny"), load_config("finetune:tiny")
    assert ("ul2" in adapt, "loss" in adapt) == (True, False)
    assert ("ul2" in finetune, "loss" in finetune) == (False, True)
    with pytest.raises(ConfigError, match="stage='distill'"):
        base_config("distill")
    finetune.stage = "distill"
    with pytest.raises(ConfigError, match="stage='distill'"):
        validate_config(finetune)
