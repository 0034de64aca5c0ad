import jax
import jax.numpy as jnp
import numpy as np
import pytest

from embeddinggemma.model.layout import ParamLayout
from embeddinggemma.training.config import base_config
from embeddinggemma.training.mesh import make_mesh, resolve_mesh_shape
from embeddinggemma.training.optimizer import make_optimizer, make_schedule


def _layout(params, axes):
    return jax.tree.map(lambda x, a: ParamLayout(x.shape, a), params, axes,
                        is_leaf=lambda a: isinstance(a, tuple))


def _opt(**fields):
    opt = base_config().optimizer
    for key, value in fields.items():
        opt[key] = value
    return opt


def test_warmup_then_cosine():
    schedule = make_schedule(_opt(learning_rate=1.0, warmup_steps=10, decay="cosine",
                                  end_learning_rate_fraction=0.1), num_steps=110)
    for step in (0, 5, 10, 60, 110):
        if step <= 10:
            want = step / 10
        else:
            progress = (step - 10) / 100
            want = 0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * progress))
        np.testing.assert_allclose(schedule(step), want, rtol=1e-5)


def test_linear_decay_reaches_the_end_value():
    schedule = make_schedule(_opt(learning_rate=2.0, warmup_steps=0, decay="linear",
                                  end_learning_rate_fraction=0.25), num_steps=100)
    np.testing.assert_allclose([schedule(0), schedule(50), schedule(100)], [2.0, 1.25, 0.5], rtol=1e-6)


@pytest.mark.parametrize("name", ["adamw", "adafactor"])
def test_weight_decay_skips_norm_scales(name):
    # A stacked matrix, and a norm scale stacked over layers: 2-D, but a vector per layer.
    params = {"dense": jnp.full((2, 4, 4), 2.0), "norm": {"scale": jnp.full((2, 4), 2.0)}}
    layout = _layout(params, {"dense": ("layers", "embed", "mlp"), "norm": {"scale": ("layers", "embed")}})
    tx, _ = make_optimizer(_opt(name=name, learning_rate=0.1, warmup_steps=0, decay="constant",
                                weight_decay=0.5), num_steps=10, layout=layout)
    zero = jax.tree.map(jnp.zeros_like, params)
    updates, _ = tx.update(zero, tx.init(params), params)
    # With a zero gradient only weight decay moves a parameter.
    assert float(jnp.abs(updates["dense"]).max()) > 0
    np.testing.assert_array_equal(updates["norm"]["scale"], 0.0)


def test_clipping_bounds_the_global_norm():
    params = {"w": jnp.zeros(3)}
    layout = {"w": ParamLayout((3,), ("embed",))}
    # b1 = b2 = 0 and a large eps make Adam's update -g / (|g| + eps): linear enough in g to show
    # whether g was clipped to norm 1 first.
    tx, _ = make_optimizer(_opt(name="adamw", clip_norm=1.0, warmup_steps=0, decay="constant",
                                learning_rate=1.0, weight_decay=0.0, b1=0.0, b2=0.0, eps=1000.0),
                           num_steps=1, layout=layout)
    updates, _ = tx.update({"w": jnp.array([30.0, 40.0, 0.0])}, tx.init(params), params)
    clipped = np.array([0.6, 0.8, 0.0])
    np.testing.assert_allclose(updates["w"], -clipped / (clipped + 1000.0), rtol=1e-5)


def test_unknown_names_are_refused():
    with pytest.raises(ValueError, match="optimizer.name='sgdx'"):
        make_optimizer(_opt(name="sgdx"), 10, {})
    with pytest.raises(ValueError, match="optimizer.decay='step'"):
        make_schedule(_opt(decay="step"), 10)


def test_mesh_shape_fills_and_checks():
    assert resolve_mesh_shape((-1, 2, 1), 8) == (4, 2, 1)
    with pytest.raises(ValueError, match="cannot fill 8 devices"):
        resolve_mesh_shape((-1, 3, 1), 8)
    with pytest.raises(ValueError, match="at most one -1"):
        resolve_mesh_shape((-1, -1, 1), 8)
    with pytest.raises(ValueError, match="holds 4 devices, but 8"):
        resolve_mesh_shape((2, 2, 1), 8)
    mesh = make_mesh(("data", "fsdp", "tensor"), (-1, 2, 2))
    assert dict(mesh.shape) == {"data": 2, "fsdp": 2, "tensor": 2}
