"""tfpot.plots: the figures are written, dense parity plots are density maps, the numbers on them
are the right ones."""

import matplotlib
import matplotlib.axes
import numpy as np
import pytest

from tfpot import plots

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def drawn(monkeypatch):
    """Records which drawing calls the plots make (and the text they put on the axes)."""
    calls = {"hexbin": 0, "scatter": 0, "text": []}
    for name in ("hexbin", "scatter", "text"):
        original = getattr(matplotlib.axes.Axes, name)

        def wrapper(self, *args, _name=name, _original=original, **kwargs):
            if _name == "text":
                calls["text"].append(str(args[2]))
            else:
                calls[_name] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(matplotlib.axes.Axes, name, wrapper)
    return calls


def test_parity_plot_density_above_the_threshold_and_its_numbers(tmp_path, drawn):
    rng = np.random.default_rng(0)
    ref = rng.normal(size=plots.HEXBIN_ABOVE + 1)
    pred = ref + 0.01 * rng.normal(size=ref.size)
    path = plots.parity_plot(ref, pred, "force component", "eV/Å", tmp_path / "f.png",
                             "data: test split", "components")
    assert path.read_bytes()[:8] == PNG and drawn["hexbin"] == 1 and drawn["scatter"] == 0
    err = pred - ref
    assert drawn["text"][-1] == (f"N = {ref.size} components\nMAE = "
                                 f"{np.abs(err).mean() * 1e3:.3g} meV/Å\nRMSE = "
                                 f"{np.sqrt((err ** 2).mean()) * 1e3:.3g} meV/Å")
    plots.parity_plot(ref[:100], pred[:100], "energy", "eV/atom", tmp_path / "e.png", "t",
                      "structures")
    assert drawn["hexbin"] == 1 and drawn["scatter"] == 1  # few points: a translucent scatter


def test_error_stats_drop_missing_references():
    s = plots.error_stats(np.array([1.0, -3.0, np.nan]))
    assert s == {"mae": 2.0, "rmse": pytest.approx(np.sqrt(5.0)), "n": 2}


def test_learning_curve_with_and_without_validation(tmp_path):
    rows = [{"epoch": str(k), "step": str(10 * k), "lr": "0.01", "train_loss": str(1.0 / k),
             "train_forces_mae [eV/Å]": str(0.1 / k), "val_loss": str(1.2 / k),
             "val_forces_mae [eV/Å]": str(0.12 / k)} for k in range(1, 6)]
    assert plots.learning_curve(rows, tmp_path / "a.png", "run").read_bytes()[:8] == PNG
    no_val = [{k: v for k, v in r.items() if not k.startswith("val_")} for r in rows]
    assert plots.learning_curve(no_val, tmp_path / "b.png", "run").read_bytes()[:8] == PNG


def test_md_trace_prints_the_drift(tmp_path, drawn):
    t = np.linspace(0, 1, 101)
    etot = -10.0 + 0.003 * t  # 3 meV/ps over 3 atoms: 1 meV/atom/ps
    epot = etot - 0.1 * (1 + np.sin(20 * t))
    plots.md_trace(t, epot, etot, 300 + 10 * np.sin(20 * t), 3, tmp_path / "md.png", "md")
    assert "total-energy drift +1 meV/atom/ps" in drawn["text"]
    assert (tmp_path / "md.png").read_bytes()[:8] == PNG
