"""Where a run's encoder parameters start: `model.init`, resolved in this one module.

    random     fresh parameters (the trainer's initialisers)
    embedder   an embedding checkpoint's encoder (`model.init_checkpoint`: Orbax or
               sentence-transformers), projection head included; its tokenizer and prompts too
    decoder    a Gemma 3 decoder's weights used bidirectionally (`model.init_checkpoint`: anything
               `checkpoint.decoders.load_decoder` reads); the projection head stays freshly
               initialised; the decoder's tokenizer
    encoder_decoder
               the encoder of a UL2-adapted encoder-decoder (`model.init_checkpoint`: an adapt run
               directory, its latest complete checkpoint, or its export); the projection head
               stays freshly initialised; the adaptation's tokenizer
    ""         `embedder` when `model.init_checkpoint` is set, else `random` (configs written
               before `model.init` existed)

A new start is one function added to `INITIALISERS` and its name to
`embedding_config.INIT_CHOICES` (where configs are checked without loading any checkpoint code).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from pathlib import Path

import jax
import ml_collections

from embeddinggemma.checkpoint.decoders import load_decoder
from embeddinggemma.checkpoint.encoder_decoder import load_adapted_encoder
from embeddinggemma.checkpoint.loading import load_checkpoint
from embeddinggemma.errors import ConfigError
from embeddinggemma.training.embedding_config import INIT_CHOICES, init_choice


@dataclasses.dataclass
class InitialEncoder:
    """What a start provides: encoder parameters (all, or top-level subtrees such as
    `transformer`; the rest stay freshly initialised), and the tokenizer and prompts that go with
    them (None: the run's defaults)."""

    params: dict
    tokenizer_path: Path | None
    prompts: dict[str, str] | None


def _from_embedder(path: str) -> InitialEncoder:
    init = load_checkpoint(path)
    return InitialEncoder(init.params, init.tokenizer_path, dict(init.prompts))


def _from_decoder(path: str) -> InitialEncoder:
    decoder = load_decoder(path)
    return InitialEncoder({"transformer": decoder.params}, decoder.tokenizer_path, None)


def _from_encoder_decoder(path: str) -> InitialEncoder:
    encoder = load_adapted_encoder(path)
    return InitialEncoder({"transformer": encoder.params}, encoder.tokenizer_path, None)


# model.init -> a loader of model.init_checkpoint; "random" has none.
INITIALISERS: dict[str, Callable[[str], InitialEncoder]] = {
    "embedder": _from_embedder,
    "decoder": _from_decoder,
    "encoder_decoder": _from_encoder_decoder,
}
assert set(INIT_CHOICES) == {"random", *INITIALISERS}, "embedding_config.INIT_CHOICES is out of date"


def load_initial_encoder(config: ml_collections.ConfigDict) -> InitialEncoder | None:
    """The configured start's parameters, tokenizer and prompts, cut to the first
    `model.keep_layers` layers when set; None for a random start."""
    choice = init_choice(config.model)
    if choice == "random":
        return None
    init = INITIALISERS[choice](config.model.init_checkpoint)
    keep = config.model.keep_layers
    transformer = init.params.get("transformer")
    if keep and transformer is not None and "layers" in transformer:
        layers = jax.tree.map(lambda w: w[:keep], transformer["layers"])
        init.params = {**init.params, "transformer": {**transformer, "layers": layers}}
    return init


def check_init_params(init_params: Mapping, model_params: Mapping, model: ml_collections.ConfigDict
                      ) -> None:
    """Raises one ConfigError naming every parameter whose presence or shape differs between the
    start's parameters and the model's (restricted to the subtrees the start provides); `model`
    is the config's `model` section, named in the message."""
    model_params = {k: v for k, v in model_params.items() if k in init_params}
    flat_ckpt = {jax.tree_util.keystr(k): v.shape
                 for k, v in jax.tree_util.tree_flatten_with_path(init_params)[0]}
    flat_model = {jax.tree_util.keystr(k): v.shape
                  for k, v in jax.tree_util.tree_flatten_with_path(model_params)[0]}
    problems = [f"{k}: checkpoint {flat_ckpt[k]} vs model {flat_model[k]}"
                for k in sorted(flat_ckpt.keys() & flat_model.keys()) if flat_ckpt[k] != flat_model[k]]
    problems += [f"{k}: missing from the checkpoint" for k in sorted(flat_model.keys() - flat_ckpt.keys())]
    problems += [f"{k}: not in the model" for k in sorted(flat_ckpt.keys() - flat_model.keys())]
    if problems:
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        shown = "\n  ".join(problems[:20]) + more
        raise ConfigError(f"model.init_checkpoint={model.init_checkpoint} does not fit the "
                          f"configured model (model.init={init_choice(model)!r}; model.preset "
                          f"and friends):\n  {shown}")

