"""Architecture configs: frozen dataclasses and named presets.

The fields mirror a Hugging Face Gemma 3 `config.json` so that an imported checkpoint and a preset
are the same kind of object (checkpoint/hf_config.py translates). Axis letters used in the model
code: B batch, T query length, S key length, N query heads, K kv heads, H head dim, D model dim,
F MLP hidden, P projection.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp

LOCAL = "local"
GLOBAL = "global"
_ALLOWED_DTYPES = ("float32", "bfloat16")
POOLING_MODES = ("mean", "first", "last", "attention")
LOCAL_ATTENTION = {"auto": None, "dense": False, "banded": True}
# How attention is computed, the one place the choice is made (RuntimeConfig.attention_kernel):
#   einsum  XLA einsums: every score of global layers, local layers dense or banded (local_attention)
#   splash  Pallas splash attention (TPU): local windows, causal or full global, padding by segments
#   cudnn   jax.nn.dot_product_attention's cuDNN kernel (GPU, bfloat16): global layers and causal
#           local windows; bidirectional local layers stay einsum (cuDNN has causal windows only)
EINSUM, SPLASH, CUDNN = "einsum", "splash", "cudnn"
ATTENTION = ("auto", EINSUM, SPLASH, CUDNN)
# What "auto" resolves to on each platform (jax's platform names: a Device's `.platform`).
ATTENTION_BY_PLATFORM = {"tpu": SPLASH, "gpu": CUDNN, "cuda": CUDNN}
# What the backward pass keeps of each block's forward pass; the rest it recomputes.
#   none     everything (the most memory)
#   matmuls  the outputs of the products with weight matrices; the attention scores, norms and
#            activations are recomputed (less memory than none, and on CPU faster:
#            bench/README.md measures both)
#   full     only the block's input (the least memory, the whole block computed twice)
REMAT = ("none", "matmuls", "full")
# Run-time settings that configs written before RuntimeConfig existed hold beside the architecture.
_LEGACY_RUNTIME_FIELDS = ("dtype", "param_dtype", "remat")


def check_dtype(name: str, value: str) -> None:
    """Refuses dtypes the model cannot run in, with the reason."""
    if value == "float16":
        raise ValueError(
            f"{name}='float16' is refused: Gemma 3 activations reach ~8e5, beyond float16's "
            "maximum of 65504, so they overflow to inf. Use 'bfloat16' or 'float32'."
        )
    if value not in _ALLOWED_DTYPES:
        raise ValueError(f"{name}={value!r} is not supported; choose one of {_ALLOWED_DTYPES}.")


def layer_pattern(num_layers: int, local_per_global: int) -> tuple[str, ...]:
    """Gemma 3's pattern: `local_per_global` local layers, then one global, repeated."""
    period = local_per_global + 1
    return tuple(GLOBAL if (i + 1) % period == 0 else LOCAL for i in range(num_layers))


def _target_platform() -> str:
    device = jax.sharding.get_abstract_mesh().abstract_device
    return jax.default_backend() if device is None else device.platform


@dataclasses.dataclass(frozen=True)
class RuntimeConfig:
    """How a model runs, not what it is: models that differ only here share an architecture
    (`TransformerConfig`, `EmbedderConfig`), so their parameters can be compared and averaged.

    `dtype` is the computation's, `param_dtype` the parameters'; `remat` is what the backward pass
    recomputes of each block rather than keeps (`REMAT`; True and False, as configs written before
    the choices existed hold it, read as "full" and "none"); it has no effect on the forward pass.
    `local_attention` is how local layers compute their scores: "dense" (all T x T, masked),
    "banded" (only the blocks near the diagonal, linear in T) or "auto" (banded where it is the
    cheaper, `masks.use_band`); the three agree to rounding.
    `attention` is the implementation (`ATTENTION`): "auto" follows the platform the program is
    compiled for (`attention_kernel`), or one is forced. `interpret` runs Pallas kernels in
    interpret mode, so that the splash path runs (slowly) on a CPU: for tests only.
    """

    dtype: str = "float32"
    param_dtype: str = "float32"
    remat: str = "none"
    local_attention: str = "auto"
    attention: str = "auto"
    interpret: bool = False

    def __post_init__(self):
        check_dtype("dtype", self.dtype)
        check_dtype("param_dtype", self.param_dtype)
        if isinstance(self.remat, bool):
            object.__setattr__(self, "remat", "full" if self.remat else "none")
        if self.remat not in REMAT:
            raise ValueError(f"remat={self.remat!r} is not one of {REMAT}.")
        if self.local_attention not in LOCAL_ATTENTION:
            raise ValueError(f"local_attention={self.local_attention!r} is not one of "
                             f"{tuple(LOCAL_ATTENTION)}.")
        if self.attention not in ATTENTION:
            raise ValueError(f"attention={self.attention!r} is not one of {ATTENTION}.")
        if self.attention == CUDNN and self.dtype != "bfloat16":
            raise ValueError(f"attention='cudnn' needs dtype='bfloat16' (cuDNN's flash attention "
                             f"has no {self.dtype} kernel); use 'einsum' or 'auto'.")

    def attention_kernel(self, platform: str | None = None) -> str:
        """The implementation (einsum, splash or cudnn) for programs compiled for `platform` (a
        Device's `.platform`, e.g. "tpu"). None: the platform being compiled for, that of the
        mesh in context (`jax.sharding.use_abstract_mesh`; the trainer traces its programs under
        its mesh, whose devices may be compile-only TPUs on a CPU host), else the default
        backend's."""
        if self.attention != "auto":
            return self.attention
        kernel = ATTENTION_BY_PLATFORM.get(platform or _target_platform(), EINSUM)
        # cuDNN's flash attention runs in 16-bit types only; float32 models keep the einsums.
        return EINSUM if kernel == CUDNN and self.dtype != "bfloat16" else kernel

    @property
    def banded(self) -> bool | None:
        """What `masks.encoder_masks` takes: True, False, or None to choose by length."""
        return LOCAL_ATTENTION[self.local_attention]

    @property
    def compute_dtype(self) -> jnp.dtype:
        return jnp.dtype(self.dtype)

    @property
    def weight_dtype(self) -> jnp.dtype:
        return jnp.dtype(self.param_dtype)


@dataclasses.dataclass(frozen=True)
class TransformerConfig:
    """A Gemma 3 transformer's architecture; an encoder or a decoder by the masks it is given.

    `sliding_window` is Gemma 3's local window length as its configs state it (512 for the
    released model): a causal local layer sees the query and the `sliding_window - 1` keys before
    it. `masks.py` turns it into the distance a layer attends over, for either direction.
    The attention scale is `query_pre_attn_scalar ** -0.5`.
    """

    vocab_size: int
    embed_dim: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    mlp_dim: int
    layer_types: tuple[str, ...]
    sliding_window: int = 512
    local_rope_base: float = 10_000.0
    global_rope_base: float = 1_000_000.0
    query_pre_attn_scalar: float = 256.0
    norm_eps: float = 1e-6
    max_length: int = 2048
    pad_id: int = 0
    eos_id: int = 1
    bos_id: int = 2

    def __post_init__(self):
        if len(self.layer_types) != self.num_layers:
            raise ValueError(
                f"layer_types has {len(self.layer_types)} entries but num_layers={self.num_layers}."
            )
        unknown = sorted(set(self.layer_types) - {LOCAL, GLOBAL})
        if unknown:
            raise ValueError(f"layer_types holds unknown types {unknown}; use {LOCAL!r} or {GLOBAL!r}.")
        if self.num_heads % self.num_kv_heads:
            raise ValueError(
                f"num_heads={self.num_heads} is not a multiple of num_kv_heads={self.num_kv_heads}."
            )

    def first_layers(self, n: int) -> TransformerConfig:
        """The architecture of the first `n` layers (Gemma 3's pattern is kept for a prefix)."""
        if not 1 <= n <= self.num_layers:
            raise ValueError(f"keep_layers={n} is outside 1..{self.num_layers}")
        return dataclasses.replace(self, num_layers=n, layer_types=self.layer_types[:n])

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TransformerConfig:
        """Reads `dataclasses.asdict`'s form, as our checkpoint files store it (lists for tuples)."""
        return cls(**{**d, "layer_types": tuple(d["layer_types"])})


@dataclasses.dataclass(frozen=True)
class EmbedderConfig:
    """The embedding model: encoder, pooling, a linear projection stack, L2 normalisation.

    `projection_dims` lists the output widths of the bias-free Dense layers after pooling
    (3072 then 768 for the released model); empty means no projection.
    """

    transformer: TransformerConfig
    projection_dims: tuple[int, ...] = (3072, 768)
    pooling: str = "mean"
    matryoshka_dims: tuple[int, ...] = (768, 512, 256, 128)

    def __post_init__(self):
        if self.pooling not in POOLING_MODES:
            raise ValueError(f"pooling={self.pooling!r}; choose one of {POOLING_MODES}.")
        bad = [d for d in self.matryoshka_dims if not 1 <= d <= self.output_dim]
        if bad:
            raise ValueError(f"matryoshka_dims {bad} are outside 1..{self.output_dim}.")

    @property
    def output_dim(self) -> int:
        return self.projection_dims[-1] if self.projection_dims else self.transformer.embed_dim

    def replace(self, **changes: Any) -> EmbedderConfig:
        """A copy with fields changed; transformer fields (e.g. sliding_window) are routed to it."""
        transformer_fields = {f.name for f in dataclasses.fields(TransformerConfig)}
        own_fields = {f.name for f in dataclasses.fields(EmbedderConfig)}
        unknown = sorted(set(changes) - transformer_fields - own_fields)
        if unknown:
            raise ValueError(f"{unknown} are not architecture fields; dtypes and remat are "
                             "RuntimeConfig's.")
        inner = {k: changes.pop(k) for k in list(changes) if k in transformer_fields}
        transformer = dataclasses.replace(self.transformer, **inner)
        return dataclasses.replace(self, transformer=transformer, **changes)

    def to_dict(self) -> dict[str, Any]:
        """The on-disk form (`embeddinggemma.json` of an Orbax checkpoint)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> EmbedderConfig:
        """Reads `to_dict`'s form, including files written when `transformer` also held the
        run-time fields and `bidirectional` (dropped: an embedder is bidirectional)."""
        d = dict(d)
        t = dict(d.pop("transformer"))
        if not t.pop("bidirectional", True):
            raise ValueError("transformer.bidirectional=false: an embedding model attends "
                             "bidirectionally; this config describes another model.")
        for key in _LEGACY_RUNTIME_FIELDS:
            t.pop(key, None)
        for key in ("projection_dims", "matryoshka_dims"):
            if key in d:
                d[key] = tuple(d[key])
        return cls(transformer=TransformerConfig.from_dict(t), **d)


def embeddinggemma_300m(**overrides: Any) -> EmbedderConfig:
    """The released EmbeddingGemma-300M: 24 layers, 307,581,696 parameters."""
    transformer = TransformerConfig(
        vocab_size=262_144,
        embed_dim=768,
        num_layers=24,
        num_heads=3,
        num_kv_heads=1,
        head_dim=256,
        mlp_dim=1152,
        layer_types=layer_pattern(24, 5),
    )
    return EmbedderConfig(transformer=transformer).replace(**overrides)


def gemma3_270m_decoder() -> TransformerConfig:
    """The Gemma 3 270M decoder (as its GGUF states it): 18 layers, width 640, one KV head."""
    return TransformerConfig(
        vocab_size=262_144,
        embed_dim=640,
        num_layers=18,
        num_heads=4,
        num_kv_heads=1,
        head_dim=256,
        mlp_dim=2048,
        layer_types=layer_pattern(18, 5),
        max_length=32_768,
    )


def gemma3_270m(**overrides: Any) -> EmbedderConfig:
    """An embedding model on the Gemma 3 270M decoder, its projection head freshly initialised.

    The head widens 4x and narrows back (640 -> 2560 -> 640), the ratio of the released 300M's
    768 -> 3072 -> 768; Matryoshka dims as the paper's where they fit under 640.
    """
    return EmbedderConfig(transformer=gemma3_270m_decoder(), projection_dims=(2560, 640),
                          matryoshka_dims=(640, 512, 256, 128)).replace(**overrides)


def tiny(**overrides: Any) -> EmbedderConfig:
    """A few-layer model for tests: both layer types, multi-query attention, a short window."""
    transformer = TransformerConfig(
        vocab_size=512,
        embed_dim=64,
        num_layers=3,
        num_heads=4,
        num_kv_heads=2,
        head_dim=16,
        mlp_dim=128,
        layer_types=layer_pattern(3, 2),
        sliding_window=8,
        max_length=128,
    )
    return EmbedderConfig(transformer=transformer, projection_dims=(128, 64),
                          matryoshka_dims=(64, 32, 16)).replace(**overrides)


PRESETS = {"tiny": tiny, "embeddinggemma_300m": embeddinggemma_300m, "gemma3_270m": gemma3_270m}


def get_preset(name: str, **overrides: Any) -> EmbedderConfig:
    """Returns a named preset, with fields overridden."""
    if name not in PRESETS:
        raise ValueError(f"Unknown model preset {name!r}; choose one of {sorted(PRESETS)}.")
    return PRESETS[name](**overrides)
