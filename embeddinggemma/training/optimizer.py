"""The optax optimiser and learning-rate schedule from `config.optimizer`."""

from __future__ import annotations

from typing import Any

import jax
import ml_collections
import optax

from embeddinggemma.errors import ConfigError

DECAYS = ("cosine", "linear", "constant")
OPTIMIZERS = ("adamw", "adafactor")


def make_schedule(opt: ml_collections.ConfigDict, num_steps: int) -> optax.Schedule:
    """Linear warmup from 0 to the peak, then cosine, linear or constant to the end."""
    if opt.decay not in DECAYS:
        raise ConfigError(f"optimizer.decay={opt.decay!r}; choose one of {DECAYS}.")
    peak, warmup = opt.learning_rate, opt.warmup_steps
    decay_steps = max(num_steps - warmup, 1)
    end = peak * opt.end_learning_rate_fraction
    after = {
        "cosine": lambda: optax.cosine_decay_schedule(peak, decay_steps,
                                                      alpha=opt.end_learning_rate_fraction),
        "linear": lambda: optax.linear_schedule(peak, end, decay_steps),
        "constant": lambda: optax.constant_schedule(peak),
    }[opt.decay]()
    if warmup <= 0:
        return after
    return optax.join_schedules([optax.linear_schedule(0.0, peak, warmup), after], [warmup])


def decay_mask(layout: Any) -> Any:
    """A tree of layouts (`model.layout.ParamLayout`) -> True for the parameters that take weight
    decay: the matrices, not the vectors (norm scales, the attention-pooling query)."""
    return jax.tree.map(lambda param: not param.is_vector, layout)


def check_optimizer(opt: ml_collections.ConfigDict, num_steps: int) -> optax.Schedule:
    """The schedule, once the optimizer's and the decay's names are known ones and the learning
    rate is not negative (ConfigError if not)."""
    if opt.name not in OPTIMIZERS:
        raise ConfigError(f"optimizer.name={opt.name!r}; choose one of {OPTIMIZERS}.")
    if opt.learning_rate < 0:  # it would climb the loss; 0 is allowed (a run that keeps its start)
        raise ConfigError(f"optimizer.learning_rate={opt.learning_rate} must be >= 0.")
    return make_schedule(opt, num_steps)


def make_optimizer(opt: ml_collections.ConfigDict, num_steps: int, layout: Any
                   ) -> tuple[optax.GradientTransformation, optax.Schedule]:
    """(transformation, schedule): global-norm clipping, then AdamW or Adafactor.

    `layout` is the tree of `ParamLayout` of the parameters it will update (for the decay mask).
    """
    schedule = check_optimizer(opt, num_steps)
    mask = decay_mask(layout)
    if opt.name == "adamw":
        update = optax.adamw(schedule, b1=opt.b1, b2=opt.b2, eps=opt.eps,
                             weight_decay=opt.weight_decay, mask=mask)
    else:
        update = optax.adafactor(schedule, weight_decay_rate=opt.weight_decay or None,
                                 weight_decay_mask=mask)
    if opt.clip_norm > 0:
        update = optax.chain(optax.clip_by_global_norm(opt.clip_norm), update)
    return update, schedule
