"""The CPU kernel choice: its setting, the rule, the record per machine, and that the options
really change the compiled program."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from embeddinggemma import cpu_kernels


@pytest.fixture
def fresh(monkeypatch, tmp_path):
    """An empty cache directory and no remembered choice, before and after the test."""
    monkeypatch.setenv("EMBEDDINGGEMMA_CACHE", str(tmp_path))
    monkeypatch.delenv(cpu_kernels.SWITCH, raising=False)
    cpu_kernels.chosen.cache_clear()
    yield tmp_path / cpu_kernels.CACHE_FILE
    cpu_kernels.chosen.cache_clear()


def test_setting_is_auto_unless_named():
    assert cpu_kernels.requested({}) == "auto"
    assert cpu_kernels.requested({cpu_kernels.SWITCH: " "}) == "auto"
    assert cpu_kernels.requested({cpu_kernels.SWITCH: "xla"}) == "xla"
    with pytest.raises(ValueError, match="EMBEDDINGGEMMA_CPU_KERNELS='mkl' is not one of auto, ynnpack, xla"):
        cpu_kernels.requested({cpu_kernels.SWITCH: "mkl"})


@pytest.mark.parametrize("seconds, expected", [
    ({"ynnpack": 1.0, "xla": 0.90}, "xla"),
    ({"ynnpack": 1.0, "xla": 0.97}, "ynnpack"),  # inside the margin: the default stays
    ({"ynnpack": 0.8, "xla": 1.0}, "ynnpack"),
    ({"ynnpack": 1.0}, "ynnpack"),  # a jaxlib without the option
])
def test_xla_kernels_replace_the_default_only_when_clearly_faster(seconds, expected):
    assert cpu_kernels.choose(seconds) == expected


def test_measured_once_per_machine_then_read(fresh, monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(cpu_kernels, "measure", lambda: calls.append(1) or {"ynnpack": 0.5, "xla": 0.4})
    assert cpu_kernels.chosen() == "xla"
    assert "ynnpack 0.500 s, xla 0.400 s -> xla" in capsys.readouterr().err
    record = json.loads(fresh.read_text())[cpu_kernels.machine_key()]
    assert record["choice"] == "xla" and record["seconds"] == {"ynnpack": 0.5, "xla": 0.4}
    cpu_kernels.chosen.cache_clear()
    assert cpu_kernels.chosen() == "xla" and calls == [1]  # the second process reads the record
    assert cpu_kernels.compiler_options() == cpu_kernels.KERNELS["xla"]


def test_other_machines_records_are_kept(fresh, monkeypatch):
    fresh.write_text(json.dumps({"Other CPU | 64 cores | jaxlib 0.1": {"choice": "ynnpack"}}))
    monkeypatch.setattr(cpu_kernels, "measure", lambda: {"ynnpack": 0.5, "xla": 0.6})
    assert cpu_kernels.chosen() == "ynnpack"
    recorded = set(json.loads(fresh.read_text()))
    assert recorded == {"Other CPU | 64 cores | jaxlib 0.1", cpu_kernels.machine_key()}


def test_a_file_not_ours_is_never_overwritten(fresh, monkeypatch, capsys):
    fresh.write_text("my notes\n")
    monkeypatch.setattr(cpu_kernels, "measure", lambda: {"ynnpack": 0.5, "xla": 0.4})
    assert cpu_kernels.chosen() == "xla"
    assert fresh.read_text() == "my notes\n"
    assert "not saved" in capsys.readouterr().err


def test_a_named_library_is_not_measured(fresh, monkeypatch):
    monkeypatch.setenv(cpu_kernels.SWITCH, "ynnpack")
    monkeypatch.setattr(cpu_kernels, "measure", lambda: pytest.fail("measured although named"))
    assert cpu_kernels.chosen() == "ynnpack" and cpu_kernels.compiler_options() is None
    assert not fresh.exists()


def test_the_options_change_the_compiled_program():
    """Guards the option's name and meaning in the installed jaxlib: YNNPACK fuses the normed
    product by default and not under "xla"; both compute the same numbers."""
    def normed_product(x, w):
        return (x * jax.lax.rsqrt(jnp.mean(x * x, -1, keepdims=True) + 1e-6)) @ w

    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((64, 32), np.float32), rng.standard_normal((32, 48), np.float32)
    out = {}
    for name, options in cpu_kernels.KERNELS.items():
        compiled = jax.jit(normed_product, compiler_options=options or None).lower(x, w).compile()
        assert ("__ynn_fusion" in compiled.as_text()) == (name == "ynnpack"), name
        out[name] = np.asarray(compiled(x, w))
    normed = x / np.sqrt((x.astype(np.float64) ** 2).mean(-1, keepdims=True) + 1e-6)
    for name in out:
        np.testing.assert_allclose(out[name], normed @ w, rtol=1e-4, atol=1e-4)


def test_measure_times_each_library():
    seconds = cpu_kernels.measure(rows=256, rounds=2)
    assert set(seconds) == set(cpu_kernels.KERNELS) and all(0 < s < 10 for s in seconds.values())
