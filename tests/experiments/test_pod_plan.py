"""`python -m experiments.run NAME --scale pod --topology SLICE`: every training stage is planned
(once per distinct compiled program) before the launch lines, and a stage that does not fit is
named with exit status 4. The compiler is replaced by a stand-in that records what it was asked
to plan (tests/planning compiles for real)."""

from __future__ import annotations

import pytest

from embeddinggemma.planning import plan as planning
from embeddinggemma.planning.slices import Slice
from experiments.run import main


@pytest.fixture
def planned(monkeypatch) -> list:
    """The configs planned; the stand-in says a config with attention pooling does not fit."""
    calls = []

    def fake_plan(config, tpu, *, devices=None):
        calls.append(config)
        fits = config.model.pooling != "attention"
        return {"slice": tpu.name, "fits": fits, "per_chip": {"total_bytes": (1 if fits else 40) * 2 ** 30,
                                                              "hbm_bytes": tpu.hbm_bytes},
                "step_seconds": {"100%": 0.1, "40%": 0.25}}

    monkeypatch.setattr(planning, "plan", fake_plan)
    monkeypatch.setattr(Slice, "devices", lambda self: [])
    return calls


def test_pod_grid_plans_each_distinct_stage_once_and_names_the_cells_that_do_not_fit(planned, capsys):
    status = main(["pooling", "--scale", "pod", "--seeds", "2", "--topology", "v5e-64", "--workdir", "/pod"])
    out, err = capsys.readouterr()
    assert status == 4
    # Four poolings x two seeds: the seeds compile the same programs.
    assert sorted(c.model.pooling for c in planned) == ["attention", "first", "last", "mean"]
    assert "attention/seed0/train, attention/seed1/train do not fit" in err
    assert "# plan v5e-64 mean/seed1/train: fits, 1.00 of 16 GiB per chip" in out
    assert not [line for line in out.splitlines() if line.startswith("python ")]  # nothing to launch


def test_pod_grid_that_fits_prints_the_plans_then_the_launch_lines(planned, capsys):
    assert main(["souping", "--scale", "pod", "--topology", "v5p-64", "--workdir", "/pod"]) == 0
    lines = capsys.readouterr().out.splitlines()
    plans = [i for i, line in enumerate(lines) if line.startswith("# plan v5p-64 ")]
    launches = [i for i, line in enumerate(lines) if line.startswith("python ")]
    assert plans and plans[-1] < launches[0]
    assert all(": fits, 1.00 of 95 GiB per chip" in lines[i] for i in plans)
    assert 0 < len(planned) <= len(plans)


def test_topology_needs_the_pod_scale_and_a_known_slice(planned, capsys):
    assert main(["pooling", "--scale", "cpu", "--topology", "v5e-64"]) == 2
    assert "needs --scale pod" in capsys.readouterr().err
    assert main(["pooling", "--scale", "pod", "--topology", "v5e-3", "--workdir", "/pod"]) == 2
    assert "unknown TPU slice 'v5e-3'" in capsys.readouterr().err and not planned
