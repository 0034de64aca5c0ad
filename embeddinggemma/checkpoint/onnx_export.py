"""Writing an embedding model as an ONNX directory that ONNX Runtime and transformers.js load.

The layout is the one of the release's ONNX build (onnx-community/embeddinggemma-300m-ONNX):

    DIR/onnx/model.onnx | model_fp16.onnx | model_quantized.onnx | model_q4.onnx   (one per --onnx-type)
    DIR/config.json                 Gemma 3 text config, `transformers.js_config.dtype` = the type
    DIR/config_sentence_transformers.json   prompts, Matryoshka dims, cosine similarity
    DIR/tokenizer.json, tokenizer_config.json, special_tokens_map.json, tokenizer.model
    DIR/embeddinggemma_onnx_export.json   the marker: what `--overwrite` may replace

The graph takes `input_ids` and `attention_mask` (int64 [batch, sequence], right-padded; both axes
dynamic) and returns `last_hidden_state` (float32 [batch, sequence, D], the final norm's output)
and `sentence_embedding` (float32 [batch, P]: pooled, projected by the Dense layers, L2-normalised;
truncate to a Matryoshka dim and re-normalise for a shorter one), as the release's build does.

The graph is written operator by operator from the parameter tree and the architecture config
(not traced from JAX or PyTorch), so that every weight lands in the operator its type calls for:

  f32   float32 initialisers, MatMul and Gather
  f16   float16 initialisers cast up to float32 where they are used: the compute stays float32,
        because Gemma 3's activations overflow float16 (the codebase refuses float16 compute)
  q8    every matrix on this codebase's `int8-block` grid (GGUF Q8_0): `MatMulNBits` bits=8 and,
        for the embedding table, `GatherBlockQuantized` bits=8 (both com.microsoft, ONNX Runtime)
  q4    every matrix on the `int4-block` grid (GGUF Q4_0): the same operators with bits=4

The quantised types hold `quantization.quantize`'s codes and float16 scales (stored as float32,
exactly), so ONNX Runtime dequantises to the very weights this codebase's fake quantisation (and a
quantisation-aware run trained on that grid) computes with; norm scales stay float32.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from embeddinggemma.atomic import atomic_directory, refuse_replacing
from embeddinggemma.checkpoint.hf_config import embedder_to_hf_config
from embeddinggemma.checkpoint.hf_tokenizer import checked_tokenizer, write_tokenizer_files
from embeddinggemma.files import require_file
from embeddinggemma.model.config import GLOBAL, LOCAL, EmbedderConfig
from embeddinggemma.model.layout import ParamLayout, embedder_layout
from embeddinggemma.model.masks import local_max_distance
from embeddinggemma.quantization import BLOCK, Grid, grid_of, quantize

ONNX_TYPES = ("f32", "f16", "q8", "q4")
# The file transformers.js looks for under `onnx/` for each type, and its name for the type.
MODEL_FILES = {"f32": "model.onnx", "f16": "model_fp16.onnx", "q8": "model_quantized.onnx",
               "q4": "model_q4.onnx"}
JS_DTYPES = {"f32": "fp32", "f16": "fp16", "q8": "q8", "q4": "q4"}
# The quantisation scheme of this codebase whose grid each quantised type is.
SCHEME_OF_TYPE = {"q8": "int8-block", "q4": "int4-block"}
INPUTS = ("input_ids", "attention_mask")
OUTPUTS = ("last_hidden_state", "sentence_embedding")
EXPORT_MARKER = "embeddinggemma_onnx_export.json"
EXPORT_VERSION = 1
WHAT = "an ONNX export"
OPSET = 17  # long supported; the quantised operators are ONNX Runtime contrib ops (com.microsoft)
MICROSOFT = "com.microsoft"
# The IR version of opset 17: the onnx package writes its newest by default, which older runtimes
# (onnxruntime-node 1.30 under transformers.js 4.3) refuse to load.
IR_VERSION = 8
_PROTOBUF_LIMIT = 2 ** 31 - 1
_POOLINGS = ("mean", "first", "last")
# onnx.TensorProto's FLOAT, BOOL and INT64, here without importing onnx (an optional dependency).
_FLOAT, _BOOL, _INT64 = 1, 9, 7


def check_onnx_type(onnx_type: str) -> str:
    """`onnx_type` if it is one of ONNX_TYPES; otherwise a ValueError that lists them."""
    if onnx_type not in ONNX_TYPES:
        raise ValueError(f"Unknown ONNX type {onnx_type!r}; choose one of {', '.join(ONNX_TYPES)}.")
    return onnx_type


class _Graph:
    """Nodes and initialisers of one graph under construction; every value gets a fresh name."""

    def __init__(self):
        self.nodes: list = []
        self.initializers: list = []
        self._count = 0

    def _name(self, hint: str) -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def op(self, op_type: str, *inputs: str, domain: str = "", **attributes: Any) -> str:
        """One node with one output; returns the output's name."""
        from onnx import helper

        out = self._name(op_type.lower())
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], domain=domain or None,
                                           **attributes))
        return out

    def ops(self, op_type: str, *inputs: str, outputs: int, **attributes: Any) -> list[str]:
        """One node with several outputs."""
        from onnx import helper

        outs = [self._name(op_type.lower()) for _ in range(outputs)]
        self.nodes.append(helper.make_node(op_type, list(inputs), outs, **attributes))
        return outs

    def const(self, value: Any, hint: str = "const", dtype: Any = None) -> str:
        """An initialiser holding `value` (a numpy array or scalar, in `dtype` if given)."""
        from onnx import numpy_helper

        name = self._name(hint)
        self.initializers.append(numpy_helper.from_array(np.asarray(value, dtype), name))
        return name

    def ints(self, *values: int) -> str:
        return self.const(np.array(values, np.int64), "shape")

    def f32(self, value: float) -> str:
        return self.const(np.float32(value), "scalar")


class _Builder:
    """The graph of one embedding model with its weights in one ONNX type."""

    def __init__(self, config: EmbedderConfig, params: Mapping, onnx_type: str):
        self.c, self.t = config, config.transformer
        self.params, self.onnx_type = params, onnx_type
        self.layout = embedder_layout(config)
        self.g = _Graph()

    # Weights ----------------------------------------------------------------------------------

    def _grid(self, layout: ParamLayout) -> Grid | None:
        return grid_of(SCHEME_OF_TYPE[self.onnx_type], layout) if self.onnx_type in SCHEME_OF_TYPE else None

    def matmul(self, x: str, w: np.ndarray, layout: ParamLayout, hint: str) -> str:
        """x [..., K] times one matrix (one layer's slice `w`, with its `layout`), its contraction
        axes flattened into K and its other axes, in order, into the output's last axis."""
        g = self.g
        layout = layout.per_layer()
        axes = layout.contraction_axes
        outer = tuple(i for i in range(w.ndim) if i not in axes)
        k = int(np.prod([w.shape[i] for i in axes]))
        n = int(np.prod([w.shape[i] for i in outer]))
        grid = self._grid(layout)
        if grid is None:
            matrix = np.transpose(np.asarray(w, np.float32), (*axes, *outer)).reshape(k, n)
            return g.op("MatMul", x, self._float_weight(matrix, hint))
        codes, scales = self._quantize(w, grid, axes, hint)  # [*outer, k / 32, 32], [*outer, k / 32]
        blocks = _unsigned_blocks(codes.reshape(n, k // BLOCK, BLOCK), grid.bits)
        return g.op("MatMulNBits", x, g.const(blocks, f"{hint}_q"),
                    g.const(scales.reshape(-1), f"{hint}_scales", np.float32),
                    domain=MICROSOFT, K=k, N=n, bits=grid.bits, block_size=BLOCK)

    def _quantize(self, w: np.ndarray, grid: Grid, axes: tuple[int, ...], hint: str) -> tuple:
        """`quantization.quantize`'s (codes, scales) as numpy; its refusal names the matrix."""
        try:
            return jax.device_get(quantize(w, grid, axes))
        except ValueError as e:
            raise ValueError(f"{hint}: {e} --onnx-type {self.onnx_type} cannot hold it; nothing was "
                             "written.") from None

    def _float_weight(self, w: np.ndarray, hint: str) -> str:
        if self.onnx_type == "f16":
            return self.g.op("Cast", self.g.const(w, hint, np.float16), to=_FLOAT)
        return self.g.const(w, hint, np.float32)

    def embed(self, ids: str) -> str:
        """[B, T] ids -> [B, T, D] rows of the token table, scaled by sqrt(D) (rounded to float32
        first, as the model does)."""
        g, table = self.g, self.params["transformer"]["embedding"]
        layout = self.layout["transformer"]["embedding"]
        grid = self._grid(layout)
        if grid is None:
            rows = g.op("Gather", self._float_weight(np.asarray(table), "embedding"), ids, axis=0)
        else:
            axes = layout.contraction_axes
            if axes != (1,):
                raise ValueError(f"The token table contracts axes {axes}, not its rows (1,).")
            codes, scales = self._quantize(table, grid, axes, "embedding")  # [V, D / 32, 32], [V, D / 32]
            packed = _unsigned_blocks(codes, grid.bits).reshape(table.shape[0], -1)
            rows = g.op("GatherBlockQuantized", g.const(packed, "embedding_q"), ids,
                        g.const(scales, "embedding_scales", np.float32), domain=MICROSOFT,
                        bits=grid.bits, block_size=BLOCK, gather_axis=0, quantize_axis=1)
        return g.op("Mul", rows, g.f32(self.t.embed_dim ** 0.5))

    # Layers -----------------------------------------------------------------------------------

    def rms_norm(self, x: str, scale: np.ndarray) -> str:
        """`x * rsqrt(mean(x^2) + eps) * (1 + scale)` over the last axis, in float32."""
        g = self.g
        mean = g.op("ReduceMean", g.op("Mul", x, x), axes=[-1], keepdims=1)
        inverse = g.op("Reciprocal", g.op("Sqrt", g.op("Add", mean, g.f32(self.t.norm_eps))))
        return g.op("Mul", g.op("Mul", x, inverse), g.const(1.0 + np.asarray(scale, np.float32), "norm"))

    def rope(self, x: str, sin: str, cos: str) -> str:
        """[B, T, N, H] rotated by position; sin and cos [1, T, 1, H/2]."""
        g = self.g
        first, second = g.ops("Split", x, g.ints(self.t.head_dim // 2, self.t.head_dim // 2),
                              outputs=2, axis=-1)
        return g.op("Concat", g.op("Sub", g.op("Mul", first, cos), g.op("Mul", second, sin)),
                    g.op("Add", g.op("Mul", second, cos), g.op("Mul", first, sin)), axis=-1)

    def attention(self, x: str, layer: Mapping, layout: Mapping, sin: str, cos: str, mask: str) -> str:
        """[B, T, D] -> [B, T, D]; the N query heads in K groups of G sharing a key/value head,
        kept on their own axis: [B, K, G, T, H] against keys [B, K, 1, H, S]."""
        g, t = self.g, self.t
        N, K, H = t.num_heads, t.num_kv_heads, t.head_dim
        heads = lambda y, count: g.op("Reshape", y, g.ints(0, 0, count, H))  # noqa: E731
        q = heads(self.matmul(x, layer["query"], layout["query"], "query"), N)
        k = heads(self.matmul(x, layer["key"], layout["key"], "key"), K)
        v = heads(self.matmul(x, layer["value"], layout["value"], "value"), K)
        q = self.rope(self.rms_norm(q, layer["query_norm"]["scale"]), sin, cos)
        k = self.rope(self.rms_norm(k, layer["key_norm"]["scale"]), sin, cos)
        q = g.op("Mul", q, g.f32(t.query_pre_attn_scalar ** -0.5))
        q = g.op("Transpose", g.op("Reshape", q, g.ints(0, 0, K, N // K, H)), perm=[0, 2, 3, 1, 4])
        k = g.op("Unsqueeze", g.op("Transpose", k, perm=[0, 2, 3, 1]), g.ints(2))  # [B, K, 1, H, S]
        v = g.op("Unsqueeze", g.op("Transpose", v, perm=[0, 2, 1, 3]), g.ints(2))  # [B, K, 1, S, H]
        logits = g.op("MatMul", q, k)  # [B, K, G, T, S]
        # A finite minimum (not -inf) keeps fully masked rows (padding) from producing NaN.
        logits = g.op("Where", mask, logits, g.const(np.finfo(np.float32).min, dtype=np.float32))
        encoded = g.op("MatMul", g.op("Softmax", logits, axis=-1), v)  # [B, K, G, T, H]
        encoded = g.op("Reshape", g.op("Transpose", encoded, perm=[0, 3, 1, 2, 4]), g.ints(0, 0, N * H))
        return self.matmul(encoded, layer["out"], layout["out"], "out")

    def feed_forward(self, x: str, layer: Mapping, layout: Mapping) -> str:
        """GeGLU with the tanh approximation of GELU, as `jax.nn.gelu(approximate=True)`."""
        g = self.g
        gate = self.matmul(x, layer["gate"], layout["gate"], "gate")
        up = self.matmul(x, layer["up"], layout["up"], "up")
        cubic = g.op("Mul", g.op("Mul", g.op("Mul", gate, gate), gate), g.f32(0.044715))
        inner = g.op("Mul", g.op("Add", gate, cubic), g.f32(np.sqrt(2 / np.pi)))
        cdf = g.op("Mul", g.op("Add", g.op("Tanh", inner), g.f32(1.0)), g.f32(0.5))
        return self.matmul(g.op("Mul", g.op("Mul", gate, cdf), up), layer["down"], layout["down"], "down")

    # The model --------------------------------------------------------------------------------

    def positions(self, ids: str) -> tuple[str, str]:
        """(positions 0..T-1 as int64 [T], as float32 [T]) for the ids' sequence length."""
        g = self.g
        length = g.op("Squeeze", g.op("Shape", ids, start=1, end=2), g.ints(0))
        index = g.op("Range", g.const(np.int64(0)), length, g.const(np.int64(1)))
        return index, g.op("Cast", index, to=_FLOAT)

    def rope_tables(self, positions: str, base: float) -> tuple[str, str]:
        """(sin, cos) [1, T, 1, H/2], as `attention.rope_tables` computes them."""
        g, H = self.g, self.t.head_dim
        inv_freq = np.asarray(1.0 / (base ** (2.0 * jnp.arange(H // 2, dtype=jnp.float32) / H)))
        angles = g.op("Mul", g.op("Unsqueeze", positions, g.ints(1)), g.const(inv_freq, "inv_freq"))
        return (g.op("Unsqueeze", g.op("Sin", angles), g.ints(0, 2)),
                g.op("Unsqueeze", g.op("Cos", angles), g.ints(0, 2)))

    def masks(self, attention_mask: str, index: str) -> tuple[str, str]:
        """(global, local) bool masks broadcasting to the scores [B, K, G, T, S]: real keys, and
        for local layers |i - j| <= the window's reach (`masks.local_max_distance`)."""
        g = self.g
        keys = g.op("Unsqueeze", g.op("Cast", attention_mask, to=_BOOL), g.ints(1, 2, 3))  # [B, 1, 1, 1, S]
        distance = g.op("Abs", g.op("Sub", g.op("Unsqueeze", index, g.ints(1)),
                                    g.op("Unsqueeze", index, g.ints(0))))  # [T, S]
        reach = local_max_distance(self.t.sliding_window, causal=False)
        band = g.op("LessOrEqual", distance, g.const(np.int64(reach)))
        return keys, g.op("And", band, keys)

    def pool(self, hidden: str, attention_mask: str) -> str:
        """[B, T, D] -> [B, D] float32 by the config's pooling (`model.pooling`)."""
        g = self.g
        if self.c.pooling == "first":
            return g.op("Gather", hidden, g.const(np.int64(0)), axis=1)
        weights = g.op("Cast", attention_mask, to=_FLOAT)  # [B, T]
        count = g.op("ReduceSum", weights, g.ints(1), keepdims=1)  # [B, 1]
        if self.c.pooling == "mean":
            total = g.op("ReduceSum", g.op("Mul", hidden, g.op("Unsqueeze", weights, g.ints(2))), g.ints(1),
                         keepdims=0)
            return g.op("Div", total, g.op("Max", count, g.f32(1.0)))
        last = g.op("Cast", g.op("Max", g.op("Sub", count, g.f32(1.0)), g.f32(0.0)),
                    to=_INT64)  # [B, 1]
        index = g.op("Expand", g.op("Unsqueeze", last, g.ints(2)), g.ints(1, 1, self.t.embed_dim))
        return g.op("Squeeze", g.op("GatherElements", hidden, index, axis=1), g.ints(1))

    def build(self):
        """The ModelProto."""
        from onnx import TensorProto, helper

        g, t = self.g, self.t
        ids, attention_mask = INPUTS
        index, positions = self.positions(ids)
        tables = {kind: self.rope_tables(positions, base)
                  for kind, base in ((LOCAL, t.local_rope_base), (GLOBAL, t.global_rope_base))}
        global_mask, local_mask = self.masks(attention_mask, index)
        x = self.embed(ids)
        stacked, stacked_layout = self.params["transformer"]["layers"], self.layout["transformer"]["layers"]
        for i, kind in enumerate(t.layer_types):
            layer = jax.tree.map(lambda w, i=i: np.asarray(w[i]), stacked)
            sin, cos = tables[kind]
            mask = global_mask if kind == GLOBAL else local_mask
            attended = self.attention(self.rms_norm(x, layer["pre_attn_norm"]["scale"]), layer["attn"],
                                      stacked_layout["attn"], sin, cos, mask)
            x = g.op("Add", x, self.rms_norm(attended, layer["post_attn_norm"]["scale"]))
            mlp = self.feed_forward(self.rms_norm(x, layer["pre_ffw_norm"]["scale"]), layer["mlp"],
                                    stacked_layout["mlp"])
            x = g.op("Add", x, self.rms_norm(mlp, layer["post_ffw_norm"]["scale"]))
        hidden = self.rms_norm(x, self.params["transformer"]["final_norm"]["scale"])
        pooled = self.pool(hidden, attention_mask)
        for i in range(len(self.c.projection_dims)):
            pooled = self.matmul(pooled, np.asarray(self.params[f"projection_{i}"]),
                                 self.layout[f"projection_{i}"], f"projection_{i}")
        squared = g.op("ReduceSum", g.op("Mul", pooled, pooled), g.ints(-1), keepdims=1)
        inverse = g.op("Reciprocal", g.op("Sqrt", g.op("Max", squared, g.f32(1e-24))))
        g.nodes.append(helper.make_node("Identity", [hidden], [OUTPUTS[0]]))
        g.nodes.append(helper.make_node("Mul", [pooled, inverse], [OUTPUTS[1]]))

        dims = ["batch_size", "sequence_length"]
        graph = helper.make_graph(
            g.nodes, "embeddinggemma",
            [helper.make_tensor_value_info(name, TensorProto.INT64, dims) for name in INPUTS],
            [helper.make_tensor_value_info(OUTPUTS[0], TensorProto.FLOAT, [*dims, t.embed_dim]),
             helper.make_tensor_value_info(OUTPUTS[1], TensorProto.FLOAT,
                                           ["batch_size", (t.embed_dim, *self.c.projection_dims)[-1]])],
            g.initializers)
        opsets = [helper.make_opsetid("", OPSET), helper.make_opsetid(MICROSOFT, 1)]
        model = helper.make_model(graph, producer_name="embeddinggemma", opset_imports=opsets,
                                  ir_version=IR_VERSION)
        helper.set_model_props(model, {"embeddinggemma.onnx_type": self.onnx_type})
        return model


def _unsigned_blocks(codes: np.ndarray, bits: int) -> np.ndarray:
    """Signed codes [..., blocks, 32] -> uint8 as MatMulNBits / GatherBlockQuantized read them with
    their default zero point 2^(bits-1): 8 bits one per byte, 4 bits two per byte (value 2j in the
    low nibble, 2j + 1 in the high one). [..., blocks, 32 * bits / 8]."""
    unsigned = (np.asarray(codes, np.int16) + (1 << (bits - 1))).astype(np.uint8)
    if bits == 8:
        return unsigned
    return unsigned[..., 0::2] | (unsigned[..., 1::2] << np.uint8(4))


def build_onnx_model(config: EmbedderConfig, params: Mapping, onnx_type: str = "f32"):
    """The embedding model as an `onnx.ModelProto` (see the module docstring for its inputs,
    outputs and operators per type).

    Args:
      params: the embedder's parameter tree (`transformer`, `projection_{i}` [in, out]), float.
      onnx_type: one of ONNX_TYPES.

    Raises:
      ValueError for a bad type, a pooling ONNX is not written for (`attention`), or a matrix a
      block grid cannot hold (a contraction length not a multiple of 32).
    """
    check_onnx_type(onnx_type)
    if config.pooling not in _POOLINGS:
        raise ValueError(f"pooling={config.pooling!r}: the ONNX export pools by {', '.join(_POOLINGS)} only.")
    return _Builder(config, params, onnx_type).build()


def written_by_us(path: str | Path) -> bool:
    """Whether `path` is a directory this module wrote (it holds EXPORT_MARKER)."""
    return (Path(path) / EXPORT_MARKER).is_file()


def export_onnx(out: str | Path, config: EmbedderConfig, params: Mapping, tokenizer_path: str | Path,
                prompts: Mapping[str, str], onnx_type: str = "f32", overwrite: bool = False) -> Path:
    """Writes the ONNX directory `out` (built in a hidden sibling, renamed at the end).

    Everything (type, pooling, grids, tokenizer conversion, the graph itself) is checked and built
    in memory before anything is written. `out` must be absent, empty, or (with `overwrite=True`)
    an ONNX export of ours, which is replaced; anything else is refused untouched.

    Raises:
      ValueError (see `build_onnx_model`; TokenizerConversionError for a tokenizer transformers.js
      would read differently); FileExistsError / NotOurDirectoryError when `out` is taken.
    """
    out = Path(out).expanduser()
    check_onnx_type(onnx_type)
    try:
        import onnx  # noqa: F401
    except ImportError:
        raise ValueError("The ONNX export needs the onnx package: pip install -e '.[onnx]'.") from None
    if not overwrite:
        refuse_replacing(out, EXPORT_MARKER, WHAT)
    tokenizer_path = require_file(tokenizer_path, "Tokenizer model")
    hf_tokenizer = checked_tokenizer(tokenizer_path)
    model = build_onnx_model(config, params, onnx_type)
    size = model.ByteSize()
    if size > _PROTOBUF_LIMIT:
        raise ValueError(f"The {onnx_type} graph is {size / 2 ** 30:.1f} GiB, over protobuf's 2 GiB; "
                         "models this large are not supported by the ONNX export yet.")
    t = config.transformer
    hf_config = {**embedder_to_hf_config(config), "transformers.js_config": {"dtype": JS_DTYPES[onnx_type]}}
    with atomic_directory(out, EXPORT_MARKER, WHAT) as partial:
        (partial / "onnx").mkdir()
        (partial / "onnx" / MODEL_FILES[onnx_type]).write_bytes(model.SerializeToString())
        _write_json(partial / "config.json", hf_config)
        _write_json(partial / "config_sentence_transformers.json", {
            "model_type": "SentenceTransformer", "prompts": dict(prompts), "default_prompt_name": None,
            "similarity_fn_name": "cosine", "matryoshka_dims": list(config.matryoshka_dims)})
        write_tokenizer_files(partial, hf_tokenizer, tokenizer_path, t.max_length)
        _write_json(partial / EXPORT_MARKER, {
            "format_version": EXPORT_VERSION, "onnx_type": onnx_type,
            "model": f"onnx/{MODEL_FILES[onnx_type]}", "inputs": list(INPUTS), "outputs": list(OUTPUTS),
            "pooling": config.pooling, "matryoshka_dims": list(config.matryoshka_dims),
            "quantization": SCHEME_OF_TYPE.get(onnx_type)})
    return out


def _write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, indent=2) + "\n")
