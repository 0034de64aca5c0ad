"""A run's export: written whole or not at all, replacing an earlier export and nothing else."""

import jax
import numpy as np
import pytest

from embeddinggemma.checkpoint.orbax_io import load_orbax_params
from embeddinggemma.errors import NotOurDirectoryError
from embeddinggemma.prompts import DEFAULT_PROMPTS
from embeddinggemma.training.checkpoints import export_params
from embeddinggemma.training.state import DISTILLATION_PROJECTION, ENCODER


def _export(workdir, config, params, tokenizer):
    return export_params(workdir, config, {ENCODER: params, DISTILLATION_PROJECTION: np.zeros((64, 8))},
                         tokenizer, DEFAULT_PROMPTS)


def _assert_exported(directory, params):
    got = jax.device_get(load_orbax_params(directory))
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(params), strict=True):
        np.testing.assert_array_equal(a, b)


def test_an_export_replaces_the_previous_one_and_leaves_no_partial(tmp_path, tiny_config, tiny_params,
                                                                    tiny_tokenizer_path):
    out = _export(tmp_path, tiny_config, tiny_params, tiny_tokenizer_path)
    assert out == tmp_path / "export"
    _assert_exported(out, tiny_params)
    doubled = jax.tree.map(lambda x: 2 * x, tiny_params)
    _export(tmp_path, tiny_config, doubled, tiny_tokenizer_path)
    _assert_exported(out, doubled)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]


def test_an_export_directory_holding_somebody_elses_files_is_refused_untouched(
        tmp_path, tiny_config, tiny_params, tiny_tokenizer_path):
    (tmp_path / "export").mkdir()
    (tmp_path / "export" / "model.gguf").write_bytes(b"GGUF by hand")
    with pytest.raises(NotOurDirectoryError, match=r"export is not empty and holds no embeddinggemma.json"):
        _export(tmp_path, tiny_config, tiny_params, tiny_tokenizer_path)
    assert [p.name for p in (tmp_path / "export").iterdir()] == ["model.gguf"]
    assert (tmp_path / "export" / "model.gguf").read_bytes() == b"GGUF by hand"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]


def test_an_export_that_fails_to_write_leaves_the_earlier_export_and_no_partial(
        tmp_path, tiny_config, tiny_params, tiny_tokenizer_path, monkeypatch):
    import errno

    import orbax.checkpoint as ocp

    out = _export(tmp_path, tiny_config, tiny_params, tiny_tokenizer_path)

    def disk_full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ocp.StandardCheckpointer, "save", disk_full)
    with pytest.raises(OSError, match="No space left"):
        _export(tmp_path, tiny_config, jax.tree.map(lambda x: 2 * x, tiny_params), tiny_tokenizer_path)
    _assert_exported(out, tiny_params)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]
