"""The device mesh and the mapping of logical axes onto it, both from the config."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence

import flax.linen as nn
import jax
import ml_collections
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from embeddinggemma.errors import ConfigError

Rules = Sequence[tuple[str, str | tuple[str, ...] | None]]


def resolve_mesh_shape(shape: Sequence[int], num_devices: int) -> tuple[int, ...]:
    """Replaces one -1 in `shape` so that the product is `num_devices`."""
    shape = tuple(int(s) for s in shape)
    if shape.count(-1) > 1 or any(s == 0 or s < -1 for s in shape):
        raise ConfigError(f"mesh.shape={shape}: sizes must be positive, with at most one -1.")
    known = math.prod(s for s in shape if s != -1)
    if -1 in shape:
        if num_devices % known:
            raise ConfigError(f"mesh.shape={shape} cannot fill {num_devices} devices.")
        shape = tuple(num_devices // known if s == -1 else s for s in shape)
    if math.prod(shape) != num_devices:
        raise ConfigError(f"mesh.shape={shape} holds {math.prod(shape)} devices, "
                         f"but {num_devices} are available.")
    return shape


def make_mesh(axes: Sequence[str], shape: Sequence[int],
              devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A Mesh over `devices` (default: all) with named axes; -1 in `shape` fills the rest."""
    devices = list(jax.devices() if devices is None else devices)
    if len(axes) != len(shape):
        raise ConfigError(f"mesh.axes={tuple(axes)} and mesh.shape={tuple(shape)} differ in length.")
    shape = resolve_mesh_shape(shape, len(devices))
    return Mesh(np.asarray(devices).reshape(shape), tuple(axes))


def check_batch_fits_mesh(config: ml_collections.ConfigDict, num_devices: int) -> None:
    """Raises ConfigError naming the fields when `train.batch_size` does not split evenly over the
    mesh axes the `batch` rule shards it on (mesh.rules; data x fsdp by default), the mesh being
    `mesh.shape` on `num_devices` devices (a -1 filled); or when that shape does not fit them.
    `config` has passed `training.config.validate_config`."""
    axes = tuple(config.mesh.axes)
    shape = resolve_mesh_shape(config.mesh.shape, num_devices)
    batch_axes = nn.logical_to_mesh_axes(("batch",), [tuple(r) for r in config.mesh.rules])[0]
    batch_axes = () if batch_axes is None else (batch_axes,) if isinstance(batch_axes, str) else batch_axes
    shards = math.prod(shape[axes.index(axis)] for axis in batch_axes)
    if config.train.batch_size % shards:
        raise ConfigError(
            f"train.batch_size={config.train.batch_size} does not split over the mesh: mesh.shape="
            f"{tuple(config.mesh.shape)} on {num_devices} devices is {shape}, and the batch is sharded "
            f"over {' x '.join(batch_axes)} = {shards} shards; choose a multiple of {shards}.")


def logical_sharding(tree, mesh: Mesh, rules: Rules):
    """NamedShardings for a tree of logically annotated (boxed) values or PartitionSpecs."""
    specs = nn.get_partition_spec(tree)
    return nn.logical_to_mesh_sharding(specs, mesh, [tuple(r) for r in rules])


def batch_sharding(mesh: Mesh, rules: Rules, ndim: int) -> NamedSharding:
    """Sharding of a batch array: the leading axis over the `batch` mesh axes."""
    spec = nn.logical_to_mesh_axes(("batch",) + (None,) * (ndim - 1), [tuple(r) for r in rules])
    return NamedSharding(mesh, PartitionSpec(*spec))


@contextlib.contextmanager
def tracing_under(mesh: Mesh, rules: Rules) -> Iterator[None]:
    """Traces a jitted program's body with the mesh and the logical rules in context: the model's
    attention follows the platform of the mesh's devices (`RuntimeConfig.attention_kernel`, so
    compile-only TPU devices on a CPU host get the TPU kernel), and a TPU kernel runs on each
    device's batch shard (model/attention_kernels.py)."""
    with jax.sharding.use_abstract_mesh(mesh.abstract_mesh), nn.logical_axis_rules([tuple(r) for r in rules]):
        yield


def mesh_platform(mesh: Mesh) -> str:
    """The platform the mesh's devices are ("cpu", "gpu", "tpu"): what its programs compile for,
    which is not the default backend when the devices are a TPU slice's compile-only ones."""
    return mesh.devices.flat[0].platform
