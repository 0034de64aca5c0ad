"""One place that assembles a trainer from a config: mesh -> optimiser -> state with shardings ->
jitted step. The training loop, the tests and the benchmarks all start here.

    trainer = assemble_trainer(config)                      # the configured embedding objective
    state = trainer.init_state()
    state, metrics = trainer.train_step(state, trainer.global_batch(local_batch))

What varies between stages is injected, the rest is the config's; the defaults are the embedding
stage's (training/embedding_config.py), the other stages pass their own:
  architecture     the EmbedderConfig whose encoder `embed` runs (default: `model_config(config)`)
  objective        an EmbeddingObjective (default: `config.loss`'s) or any (params, batch) ->
                   (loss, metrics), e.g. UL2 denoising over an encoder-decoder's logits; gradient
                   caching needs the first kind (see training/step.py).
  init_params      rng -> the trained parameters, boxed with logical axis names (default: the
                   configured encoder plus the distillation map, see training/state.py).
  param_transform  params -> params inside the loss; the evaluation `embed` sees it too. By
                   default `config.quant.scheme`'s: quantisation-aware training fake-quantises the
                   encoder's weights (straight-through), none when the scheme is "none".
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping, Sequence

import jax
import ml_collections
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from embeddinggemma import cpu_kernels
from embeddinggemma.errors import ConfigError
from embeddinggemma.model import EmbedderConfig, EmbeddingModel
from embeddinggemma.model.layout import param_layouts
from embeddinggemma.quantization import straight_through
from embeddinggemma.training.checkpoints import abstract_like
from embeddinggemma.training.config import runtime_config
from embeddinggemma.training.embedding_config import model_config
from embeddinggemma.training.mesh import Rules, batch_sharding, make_mesh, mesh_platform, tracing_under
from embeddinggemma.training.objective import embedding_objective
from embeddinggemma.training.optimizer import make_optimizer
from embeddinggemma.training.state import (
    ENCODER,
    create_train_state,
    fresh_state,
    init_boxed_params,
    train_state_shardings,
)
from embeddinggemma.training.step import (
    LossAndGrads,
    Objective,
    Params,
    ParamTransform,
    make_loss_and_grads,
    make_train_step,
)


@dataclasses.dataclass(frozen=True)
class Trainer:
    """What a training run needs, assembled once. Holds no train state: the step donates it."""

    config: ml_collections.ConfigDict
    model_config: EmbedderConfig
    mesh: Mesh
    rules: Rules
    tx: optax.GradientTransformation
    schedule: optax.Schedule
    state_shardings: dict            # NamedShardings of {"step", "params", "opt_state"}
    init_boxed: Callable[[jax.Array], Mapping]
    loss_and_grads: LossAndGrads     # (params, batch) -> ((loss, metrics), grads), not jitted
    train_step: Callable             # jitted (state, batch) -> (state, metrics); state donated
    embed: Callable[[Params, jax.Array], jax.Array]  # jitted (params, [B, T] tokens) -> [B, P], replicated

    def init_state(self, seed: int | None = None) -> dict:
        """A fresh state on the devices with its shardings; the seed defaults to `config.seed`."""
        rng = jax.random.PRNGKey(self.config.seed if seed is None else seed)
        state, _ = create_train_state(self.init_boxed, self.tx, self.mesh, self.rules, rng)
        return state

    def abstract_state(self) -> dict:
        """What `init_state` makes, as jax.ShapeDtypeStructs with the state's shardings: nothing
        is computed or allocated (for compiling ahead of time, or a checkpoint's restore target)."""
        init = functools.partial(fresh_state, self.init_boxed, self.tx)
        shapes = jax.eval_shape(init, jax.random.PRNGKey(0))
        return abstract_like(shapes, self.state_shardings)

    def global_batch(self, local: Mapping[str, np.ndarray]) -> dict[str, jax.Array]:
        """This host's slice of the batch -> global arrays sharded over the batch axes."""
        return {k: jax.make_array_from_process_local_data(batch_sharding(self.mesh, self.rules, v.ndim), v)
                for k, v in local.items()}


def quantization_aware(scheme: str, encoder_layout: Mapping) -> ParamTransform:
    """The parameter transform of quantisation-aware training: the encoder's weights fake-quantised
    by `scheme` with straight-through gradients (quantization.straight_through); the head (the
    distillation map, not shipped) stays in float."""
    return lambda params: {**params, ENCODER: straight_through(params[ENCODER], scheme, encoder_layout)}


def assemble_trainer(config: ml_collections.ConfigDict, *, architecture: EmbedderConfig | None = None,
                     objective: Objective | None = None,
                     init_params: Callable[[jax.Array], Mapping] | None = None,
                     param_transform: ParamTransform | None = None,
                     devices: Sequence[jax.Device] | None = None) -> Trainer:
    """The trainer `config` describes, over `devices` (default: all) in the mesh `config.mesh` shapes.

    Raises:
      ConfigError naming the field when the mesh does not fit the devices, when gradient
      caching is asked of an objective that is not an EmbeddingObjective, or when a
      param_transform is passed to a config that asks for quantisation-aware training.
    """
    rules = tuple(tuple(rule) for rule in config.mesh.rules)
    mesh = make_mesh(config.mesh.axes, config.mesh.shape, devices)
    model_cfg = architecture or model_config(config)
    model = EmbeddingModel(model_cfg, runtime_config(config))  # the one place a trainer builds its model
    init_boxed = init_params or functools.partial(init_boxed_params, model, config.loss.teacher_dim)
    abstract_boxed = jax.eval_shape(init_boxed, jax.random.PRNGKey(0))
    # The weight-decay mask follows each parameter's logical axes (see model/layout.py).
    tx, schedule = make_optimizer(config.optimizer, config.train.num_steps, param_layouts(abstract_boxed))
    shardings = train_state_shardings(abstract_boxed, tx, mesh, rules)
    if config.quant.scheme != "none":
        if param_transform is not None:
            raise ConfigError(f"quant.scheme={config.quant.scheme!r} makes its own parameter transform; "
                              "set it to 'none' to pass another.")
        param_transform = quantization_aware(config.quant.scheme, param_layouts(abstract_boxed)[ENCODER])
    transform = param_transform or (lambda params: params)

    def embed(encoder_params, tokens):
        return model.apply({"params": encoder_params}, tokens)

    loss_and_grads = make_loss_and_grads(objective or embedding_objective(config.loss), embed, config.train,
                                         param_transform)
    train_step = make_train_step(loss_and_grads, tx, schedule, mesh, shardings, rules)
    replicated = NamedSharding(mesh, PartitionSpec())

    def embed_params_traced(params, tokens):
        with tracing_under(mesh, rules):
            return embed(transform(params)[ENCODER], tokens)

    embed_params = jax.jit(embed_params_traced, out_shardings=replicated,
                           compiler_options=cpu_kernels.compiler_options(mesh_platform(mesh)))
    return Trainer(config, model_cfg, mesh, rules, tx, schedule, shardings, init_boxed, loss_and_grads,
                   train_step, embed_params)
