"""The device mesh and the mapping of logical axes onto it, both from the config."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence

import flax.linen as nn
import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from embeddinggemma.training.config import ConfigError

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


def logical_sharding(tree, mesh: Mesh, rules: Rules):
    """NamedShardings for a tree of logically annotated (boxed) values or PartitionSpecs."""
    specs = nn.get_partition_spec(tree)
    return nn.logical_to_mesh_sharding(specs, mesh, [tuple(r) for r in rules])


@contextlib.contextmanager
def activation_sharding(mesh: Mesh, rules: Rules) -> Iterator[None]:
    """Within it, what a program traces lays out its activations' logical axes
    (`model.layers.constrain`) on `mesh` by `rules`: enter it inside a jitted function, so that
    FSDP gathers each layer's weights instead of splitting the activations' width."""
    with jax.sharding.use_abstract_mesh(mesh.abstract_mesh), nn.logical_axis_rules([tuple(r) for r in rules]):
        yield


def batch_sharding(mesh: Mesh, rules: Rules, ndim: int) -> NamedSharding:
    """Sharding of a batch array: the leading axis over the `batch` mesh axes."""
    spec = nn.logical_to_mesh_axes(("batch",) + (None,) * (ndim - 1), [tuple(r) for r in rules])
    return NamedSharding(mesh, PartitionSpec(*spec))


def mesh_platform(mesh: Mesh) -> str:
    """The platform the mesh's devices are ("cpu", "gpu", "tpu"): what its programs compile for,
    which is not the default backend when the devices are a TPU slice's compile-only ones."""
    return mesh.devices.flat[0].platform
