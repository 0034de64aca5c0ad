"""The codebase's own checkpoint layout: Orbax parameters plus the files needed to use them.

    DIR/params/            Orbax PyTree checkpoint of the parameter tree
    DIR/embeddinggemma.json   {"format_version", "config", "prompts", "quantization"?}
    DIR/tokenizer.model    SentencePiece model

A quantised checkpoint names its scheme in "quantization" (embeddinggemma/quantization.py) and
holds each weight matrix as integer codes plus scales (int4 packed two per byte, see
`quantization.store_params`); it is dequantised to float32 on load, never stored in float.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp

from embeddinggemma.atomic import atomic_directory, refuse_replacing
from embeddinggemma.files import read_json, require_file
from embeddinggemma.model.config import EmbedderConfig
from embeddinggemma.model.layout import embedder_layout
from embeddinggemma.paths import absolute, as_path
from embeddinggemma.quantization import SCHEMES, check_scheme, load_params, store_params

CHECKPOINTS_DIR = "checkpoints"  # a run directory's train states: checkpoints/<step>/state (Orbax)
METADATA_FILE = "embeddinggemma.json"
FORMAT_VERSION = 1
WHAT = "an Orbax checkpoint"


def is_orbax_dir(path: str | Path) -> bool:
    return (as_path(path) / METADATA_FILE).is_file()


def save_orbax(directory: str | Path, config: EmbedderConfig, params: Mapping,
               tokenizer_model: str | Path, prompts: Mapping[str, str], overwrite: bool = False,
               quantization: str | None = None, extra_files: Mapping[str, str] | None = None) -> Path:
    """Writes parameters, config, prompts and tokenizer into `directory`, atomically; with a
    `quantization` scheme, the weight matrices as that scheme's integer codes and scales.

    `directory` must be absent, empty, or (with `overwrite=True`) an Orbax checkpoint, which is
    replaced; a directory holding anything else is refused untouched (NotOurDirectoryError).
    `extra_files` (name -> text, e.g. a soup's manifest) are written beside them, in the same
    atomic step.
    """
    directory = absolute(directory)
    if not overwrite:
        refuse_replacing(directory, METADATA_FILE, WHAT)
    tokenizer_model = require_file(tokenizer_model, "Tokenizer model")
    if quantization is not None:
        params = store_params(params, quantization, embedder_layout(config))
    with atomic_directory(directory, METADATA_FILE, WHAT) as partial:
        _synchronous_checkpointer().save(partial / "params",
                                         args=ocp.args.PyTreeSave(jax.tree.map(np.asarray, dict(params))))
        write_orbax_metadata(partial, config, tokenizer_model, prompts, quantization)
        for name, text in (extra_files or {}).items():
            (partial / name).write_text(text)
    return directory


def _synchronous_checkpointer() -> ocp.Checkpointer:
    """A checkpointer that writes before it returns, so host arrays need no defensive copy: Orbax's
    default copies every array first (a second model in memory when souping a 300m)."""
    t = ocp.type_handlers
    registry = t.create_type_handler_registry(
        (np.ndarray, t.NumpyHandler(deepcopy_host_arrays=False)),
        (np.number, t.ScalarHandler()), (int, t.ScalarHandler()), (float, t.ScalarHandler()),
        (jax.Array, t.ArrayHandler()))  # never used (the tree is numpy); Orbax warns without it
    return ocp.Checkpointer(ocp.PyTreeCheckpointHandler(type_handler_registry=registry))


def write_orbax_metadata(directory: str | Path, config: EmbedderConfig, tokenizer_model: str | Path,
                         prompts: Mapping[str, str], quantization: str | None = None) -> None:
    """The files beside `params/`: the tokenizer and `embeddinggemma.json` (config, prompts, and
    the quantisation scheme of a quantised checkpoint); `embeddinggemma.json`, the marker, last."""
    directory = as_path(directory)
    (directory / "tokenizer.model").write_bytes(as_path(tokenizer_model).read_bytes())
    metadata = {"format_version": FORMAT_VERSION, "config": config.to_dict(), "prompts": dict(prompts)}
    if quantization is not None:
        metadata["quantization"] = check_scheme(quantization)
    (directory / METADATA_FILE).write_text(json.dumps(metadata, indent=2))


def read_orbax_metadata(directory: str | Path) -> tuple[EmbedderConfig, dict[str, str]]:
    """(config, prompts) from an Orbax checkpoint directory; errors name the metadata file."""
    path = as_path(directory) / METADATA_FILE
    metadata = _read_metadata(path)
    if metadata.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path}: format_version {metadata.get('format_version')} is not "
                         f"{FORMAT_VERSION}.")
    missing = [key for key in ("config", "prompts") if key not in metadata]
    if missing:
        raise ValueError(f"{path}: missing the fields {missing}.")
    try:
        config = EmbedderConfig.from_dict(metadata["config"])
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"{path}: field 'config' does not describe a model: {e!r}") from None
    prompts = metadata["prompts"]
    if not isinstance(prompts, dict) or not all(isinstance(v, str) for v in prompts.values()):
        raise ValueError(f"{path}: field 'prompts' must map prompt names to strings.")
    return config, prompts


def read_orbax_quantization(directory: str | Path) -> str | None:
    """The quantisation scheme an Orbax checkpoint is stored in; None for float parameters."""
    path = as_path(directory) / METADATA_FILE
    scheme = _read_metadata(path).get("quantization")
    if scheme is not None and scheme not in SCHEMES:
        raise ValueError(f"{path}: field 'quantization' is {scheme!r}, not one of {', '.join(SCHEMES)}.")
    return scheme


def _read_metadata(path: Path) -> dict:
    metadata = read_json(path, "Checkpoint file")
    if not isinstance(metadata, dict):
        raise ValueError(f"{path}: expected a JSON object, found {type(metadata).__name__}.")
    return metadata


def restore_params_tree(directory: str | Path) -> dict:
    """The tree stored in `directory/params` as it is (any of our checkpoints: embedders, decoders,
    encoder-decoders)."""
    path = absolute(directory) / "params"
    if not path.is_dir():
        raise FileNotFoundError(f"Checkpoint parameters not found: {path}")
    return ocp.StandardCheckpointer().restore(path)


def load_orbax_params(directory: str | Path) -> dict:
    """The float parameter tree of an embedder's Orbax checkpoint directory: as stored, or
    dequantised when the checkpoint is quantised."""
    stored = restore_params_tree(directory)
    scheme = read_orbax_quantization(directory)
    if scheme is None:
        return stored
    config, _ = read_orbax_metadata(directory)
    return load_params(stored, scheme, embedder_layout(config), what=str(as_path(directory) / "params"))


def orbax_leaf_shapes(tree_dir: str | Path) -> dict[tuple[str, ...], tuple[int, ...]]:
    """Path -> shape of every array of an Orbax PyTree checkpoint directory (e.g. `DIR/params`),
    read from its metadata alone."""
    tree_dir = absolute(tree_dir)
    if not tree_dir.is_dir():
        raise FileNotFoundError(f"Checkpoint parameters not found: {tree_dir}")
    tree = ocp.PyTreeCheckpointer().metadata(tree_dir).item_metadata.tree
    flat = jax.tree_util.tree_flatten_with_path(tree, is_leaf=lambda x: hasattr(x, "shape"))[0]
    return {tuple(str(getattr(k, "key", getattr(k, "idx", k))) for k in path): tuple(leaf.shape)
            for path, leaf in flat}


def read_orbax_leaf(tree_dir: str | Path, path: tuple[str, ...]) -> np.ndarray:
    """One array of an Orbax PyTree checkpoint directory (a path of `orbax_leaf_shapes`), restored
    alone: nothing else of the checkpoint is read."""
    item: dict = {}
    restore_args: dict = {}
    node, args = item, restore_args
    for key in path[:-1]:
        node, args = node.setdefault(key, {}), args.setdefault(key, {})
    node[path[-1]] = 0
    args[path[-1]] = ocp.RestoreArgs(restore_type=np.ndarray)
    restored = ocp.PyTreeCheckpointer().restore(absolute(tree_dir), args=ocp.args.PyTreeRestore(
        item=item, restore_args=restore_args, partial_restore=True))
    for key in path:
        restored = restored[key]
    return np.asarray(restored)
