"""Cloud TPU slices by their Cloud names (`v5e-64`, `v5p-64`, ...) and their compile-only devices.

A slice's name counts chips for v5e and v6e (v5e-64: 64 chips) and TensorCores for v4 and v5p (two
per chip, one device per chip in megacore mode: v5p-64 is 32 chips). Peak FLOP/s are bf16 dense
matrix throughput per chip, and HBM is per chip, both from Cloud TPU's published system
architecture pages.
"""

from __future__ import annotations

import dataclasses
import math
import os

GiB = 2 ** 30


@dataclasses.dataclass(frozen=True)
class Generation:
    """What every slice of a TPU generation shares."""

    prefix: str                  # the topology string's prefix: v4, v5 (v5p), v5e, v6e
    chip_config: str             # libtpu's chip config: "megacore" (two cores, one device) or "default"
    cores_per_chip: int          # how many of the slice name's count make one chip
    hbm_bytes: int               # per chip
    peak_bf16_flops: float       # per chip per second


GENERATIONS = {
    "v4": Generation("v4", "megacore", 2, 32 * GiB, 275e12),
    "v5e": Generation("v5e", "default", 1, 16 * GiB, 197e12),
    "v5p": Generation("v5", "megacore", 2, 95 * GiB, 459e12),
    "v6e": Generation("v6e", "default", 1, 32 * GiB, 918e12),
}

# Slice name -> chip grid. v5e and v6e hosts hold 4 chips (2x2) in multi-host slices and 8 (2x4)
# in the 8-chip single host; v4 and v5p hosts hold 4 chips (2x2x1).
_GRIDS = {
    "v4": {8: (2, 2, 1), 16: (2, 2, 2), 32: (2, 2, 4), 64: (2, 4, 4), 128: (4, 4, 4), 256: (4, 4, 8),
           512: (4, 8, 8)},
    "v5p": {8: (2, 2, 1), 16: (2, 2, 2), 32: (2, 2, 4), 64: (2, 4, 4), 128: (4, 4, 4), 256: (4, 4, 8),
            512: (4, 8, 8)},
    "v5e": {4: (2, 2), 8: (2, 4), 16: (4, 4), 32: (4, 8), 64: (8, 8), 128: (8, 16), 256: (16, 16)},
    "v6e": {4: (2, 2), 8: (2, 4), 16: (4, 4), 32: (4, 8), 64: (8, 8), 128: (8, 16), 256: (16, 16)},
}


@dataclasses.dataclass(frozen=True)
class Slice:
    """One Cloud TPU slice: its chips, their grid and what one chip holds and computes."""

    name: str                    # e.g. "v5e-64"
    generation: Generation
    grid: tuple[int, ...]        # chips along each torus dimension

    @property
    def chips(self) -> int:
        return math.prod(self.grid)

    @property
    def topology(self) -> str:
        """libtpu's topology name, e.g. "v5e:8x8" or "v5:2x4x4"."""
        return f"{self.generation.prefix}:{'x'.join(map(str, self.grid))}"

    @property
    def chips_per_host_bounds(self) -> tuple[int, int, int]:
        if self.chips == 8 and len(self.grid) == 2:
            return (2, 4, 1)  # the single 8-chip host of v5e-8 and v6e-8
        return (2, 2, 1) if self.chips >= 4 else (*self.grid, 1)[:3]

    @property
    def hosts(self) -> int:
        return max(1, self.chips // math.prod(self.chips_per_host_bounds))

    @property
    def hbm_bytes(self) -> int:
        return self.generation.hbm_bytes

    @property
    def peak_bf16_flops(self) -> float:
        return self.generation.peak_bf16_flops

    def devices(self) -> list:
        """Compile-only TPU devices of this slice, one per chip (needs libtpu: `pip install
        '.[tpu]'`); works on a machine without TPUs, whatever JAX_PLATFORMS says."""
        from jax.experimental import topologies

        # libtpu takes a machine-wide lock when it loads, for the chips it would drive; compile-only
        # devices drive none, so several planners (test workers, a grid's checks) may load it at once.
        os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")
        return list(topologies.get_topology_desc(
            platform="tpu", topology_name=self.topology, chip_config_name=self.generation.chip_config,
            chips_per_host_bounds=self.chips_per_host_bounds, num_slices=1).devices)


SLICES: dict[str, Slice] = {
    f"{kind}-{count}": Slice(f"{kind}-{count}", GENERATIONS[kind], grid)
    for kind, grids in _GRIDS.items() for count, grid in grids.items()
}


class UnknownSliceError(ValueError):
    """A slice name that is not in SLICES; the message lists the known ones."""


def get_slice(name: str) -> Slice:
    """The slice called `name` (Cloud TPU's accelerator type, e.g. "v5e-64").

    Raises:
      UnknownSliceError listing the known names.
    """
    try:
        return SLICES[name]
    except KeyError:
        raise UnknownSliceError(f"unknown TPU slice {name!r}; known slices: {', '.join(SLICES)}") from None
