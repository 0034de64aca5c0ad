"""The embedding stage's config (the train command's): its `loss` section, its part of a model
size, its checks, and the architecture it trains (`model_config`: the preset with the loss's
Matryoshka dims). Registered as "embedding" in training/config.STAGE_CONFIGS.

`model.init` (where the encoder starts, training/initialisation.py) is checked here too: only
this stage reads it.
"""

from __future__ import annotations

import functools

import ml_collections

from embeddinggemma.errors import ConfigError
from embeddinggemma.model.config import EmbedderConfig
from embeddinggemma.training.config import preset_config

STAGE = "embeddinggemma.training.embedding_stage:EmbeddingStage"

# model.init values: "random" and the starts training/initialisation.INITIALISERS reads.
INIT_CHOICES = ("random", "embedder", "decoder", "encoder_decoder")


def loss_config() -> ml_collections.ConfigDict:
    """The `loss` section: every term of the objective (training/objective.LOSS_TERMS) is switched
    on by a weight above 0, `<term>_weight`."""
    c = ml_collections.ConfigDict()
    c.temperature = 0.05
    c.hard_negative_alpha = 5.0   # w_i = exp(alpha * sg(s(q_i, n_i)))
    c.include_own_positive = True  # standard InfoNCE denominator (see losses/contrastive.py)
    c.contrastive_weight = 1.0
    c.spread_out_weight = 1.0
    c.distillation_weight = 0.0
    c.distillation_distance = "cosine"  # cosine, l2, squared_l2
    c.teacher_dim = 0             # teacher width; 0 = the student's (no learned map)
    # True: the teacher is the starting checkpoint (model.init_checkpoint, an embedder), its
    # embeddings of the training records computed once into the run directory
    # (training/inputs.init_teacher_datasets); instead of data.teacher.
    c.teacher_is_init = False
    c.matryoshka_dims = (768, 512, 256, 128)
    return c


SECTIONS = {"loss": loss_config}

MATRYOSHKA_DIMS = {"tiny": (64, 32, 16), "300m": (768, 512, 256, 128)}


def size(config: ml_collections.ConfigDict, size: str) -> None:
    """This stage's part of a model size (training/config.sized_config): the Matryoshka dims."""
    config.loss.matryoshka_dims = MATRYOSHKA_DIMS[size]


def model_config(config: ml_collections.ConfigDict) -> EmbedderConfig:
    """The architecture an embedding config trains: the preset with `loss.matryoshka_dims`.

    Raises:
      ConfigError naming the field when the preset, the pooling or a dimension is invalid.
    """
    return preset_config(config, matryoshka_dims=tuple(config.loss.matryoshka_dims))


def abstract_params(config: ml_collections.ConfigDict) -> dict:
    """The shapes and dtypes (jax.ShapeDtypeStruct) of the parameters this config trains."""
    import jax

    from embeddinggemma.model import embedder
    from embeddinggemma.training.config import runtime_config

    init = functools.partial(embedder.init_params, model_config(config), runtime=runtime_config(config))
    return jax.eval_shape(init, jax.random.PRNGKey(0))


def init_choice(model: ml_collections.ConfigDict) -> str:
    """`model.init` with "" resolved; ConfigError when it and `model.init_checkpoint` disagree."""
    choice = model.init or ("embedder" if model.init_checkpoint else "random")
    if choice not in INIT_CHOICES:
        raise ConfigError(f"model.init={model.init!r}; choose one of {', '.join(INIT_CHOICES)}.")
    if choice == "random" and model.init_checkpoint:
        raise ConfigError(f"model.init='random' but model.init_checkpoint={model.init_checkpoint!r} "
                          "is set; clear one of them.")
    if choice != "random" and not model.init_checkpoint:
        raise ConfigError(f"model.init={choice!r} needs model.init_checkpoint.")
    return choice


def validate(config: ml_collections.ConfigDict) -> None:
    """The embedding stage's checks; raises ConfigError naming the field."""
    model_config(config)  # preset, pooling, Matryoshka dims within the width
    init_choice(config.model)  # model.init and model.init_checkpoint agree
    if not config.loss.temperature > 0:
        raise ConfigError(f"loss.temperature={config.loss.temperature} must be > 0.")
    if config.loss.teacher_is_init:
        if init_choice(config.model) != "embedder":
            raise ConfigError("loss.teacher_is_init needs model.init='embedder' (a trained embedding "
                              f"checkpoint as model.init_checkpoint), not {config.model.init!r}.")
        if config.data.teacher:
            raise ConfigError(f"loss.teacher_is_init and data.teacher={config.data.teacher!r} both name a "
                              "teacher; clear one of them.")
        if not config.loss.distillation_weight > 0:
            raise ConfigError("loss.teacher_is_init is set but loss.distillation_weight is 0: the "
                              "teacher would not be used.")
    if config.loss.teacher_dim < 0:
        raise ConfigError(f"loss.teacher_dim={config.loss.teacher_dim} must be >= 0.")
