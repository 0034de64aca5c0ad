"""The denoising stage's config (the adapt command's, UL2): its `ul2` section (data/ul2_config.py),
its part of a model size and its checks. Registered as "denoising" in
training/config.STAGE_CONFIGS; the stage itself is training/denoising.py.
"""

from __future__ import annotations

import functools

import ml_collections

from embeddinggemma.data.ul2_config import ul2_config, validate_ul2_config
from embeddinggemma.errors import ConfigError
from embeddinggemma.model.config import TransformerConfig
from embeddinggemma.training.config import preset_config

STAGE = "embeddinggemma.training.denoising:DenoisingStage"

SECTIONS = {"ul2": ul2_config}


def size(config: ml_collections.ConfigDict, size: str) -> None:
    """Nothing of a model size is this stage's own (configs/ul2_adapt.py sets the lengths)."""


def transformer_config(config: ml_collections.ConfigDict) -> TransformerConfig:
    """The architecture of both halves: the preset's transformer, cut to `model.keep_layers`."""
    return preset_config(config).transformer


def abstract_params(config: ml_collections.ConfigDict) -> dict:
    """The shapes and dtypes (jax.ShapeDtypeStruct) of the encoder-decoder this config trains."""
    import jax

    from embeddinggemma.model import encoder_decoder
    from embeddinggemma.training.config import runtime_config

    init = functools.partial(encoder_decoder.init_params, transformer_config(config),
                             runtime=runtime_config(config))
    return jax.eval_shape(init, jax.random.PRNGKey(0))


def validate(config: ml_collections.ConfigDict) -> None:
    """The denoising stage's checks; raises ConfigError naming the field."""
    transformer_config(config)
    try:
        validate_ul2_config(config.ul2)
    except ValueError as e:
        raise ConfigError(str(e)) from e
