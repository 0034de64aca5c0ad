"""The train step compiled for compile-only TPU devices (libtpu on a CPU host) takes the splash
kernel, per batch shard under the trainer's mesh. Skipped where libtpu is not installed."""

import re

import jax
import jax.numpy as jnp
import pytest

from embeddinggemma.schema import ROLES
from embeddinggemma.training.config import sized_config
from embeddinggemma.training.state import create_train_state
from embeddinggemma.training.trainer import assemble_trainer

pytest.importorskip("libtpu")


@pytest.mark.slow
def test_the_tiny_train_step_compiles_for_tpu_with_splash_attention():
    from jax.experimental import topologies

    topology = topologies.get_topology_desc(platform="tpu", topology_name="v5e:2x2",
                                            chip_config_name="default", chips_per_host_bounds=(2, 2, 1),
                                            num_slices=1)
    devices = topology.devices
    config = sized_config("tiny")
    config.train.batch_size = 8
    config.mesh.shape = (1, 4, 1)  # the batch over the fsdp axis, as the pod configs have it
    trainer = assemble_trainer(config, devices=devices)
    abstract = jax.eval_shape(lambda rng: create_train_state(trainer.init_boxed, trainer.tx, trainer.mesh,
                                                             trainer.rules, rng)[0], jax.random.PRNGKey(0))
    state = jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), abstract,
                         trainer.state_shardings)
    batch = {role: jax.ShapeDtypeStruct((8, 300), jnp.int32) for role in ROLES}
    batch["query_id"] = batch["positive_id"] = jax.ShapeDtypeStruct((8,), jnp.int32)
    hlo = trainer.train_step.lower(state, batch).compile().as_text()
    # Without the per-shard mapping XLA refuses the kernel; with it, local and global layers'
    # forward and backward kernels are Mosaic custom calls.
    assert len(re.findall(r'custom_call_target="tpu_custom_call"', hlo)) >= 4
