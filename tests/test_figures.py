"""ops/figures.py: a figure is drawn once per content; anything that changes it draws it again."""

from pathlib import Path

import numpy as np
import pandas as pd

from ops.figures import cached_png, figure_key
from warehouse.store import ResultCache

calls: list = []


def _draw(df, title, scale=1):
    calls.append(title)
    return f"{title}:{float(df['v'].sum()) * scale}".encode()


def test_the_same_figure_is_drawn_once_and_any_change_draws_it_again(tmp_path):
    cache = ResultCache(tmp_path / "figures")
    calls.clear()
    df = pd.DataFrame({"epoch": [1, 2, 3], "v": [0.5, 0.25, 0.125]})
    first = cached_png(cache, _draw, df, "run-a")
    assert first == b"run-a:0.875" and calls == ["run-a"]
    assert cached_png(cache, _draw, df.copy(), "run-a") == first and calls == ["run-a"]   # found again

    changed = df.assign(v=[0.5, 0.25, 0.126])
    assert cached_png(cache, _draw, changed, "run-a") == b"run-a:0.876"
    assert cached_png(cache, _draw, df, "run-b") == b"run-b:0.875"
    assert cached_png(cache, _draw, df, "run-a", scale=2) == b"run-a:1.75"
    assert cached_png(cache, _draw, df.astype({"v": "float32"}), "run-a") == b"run-a:0.875"   # another dtype
    assert calls == ["run-a", "run-a", "run-b", "run-a", "run-a"]


def test_arrays_nested_lists_and_unkeyable_arguments():
    m = np.arange(9).reshape(3, 3)
    k = figure_key(_draw, (m, ["a", "b"]), {})
    assert k == figure_key(_draw, (m.copy(), ["a", "b"]), {})
    assert k != figure_key(_draw, (m.T, ["a", "b"]), {}) and k != figure_key(_draw, (m.tolist(), ["a", "b"]), {})
    assert figure_key(_draw, (object(),), {}) is None
    calls.clear()
    # drawn each time, and nothing is written to the store
    store = ResultCache(Path("/nonexistent-never-written"))
    assert [cached_png(store, lambda o: b"x", object()) for _ in range(2)] == [b"x", b"x"]
    assert not store.root.exists()


def test_a_real_plot_comes_back_byte_identical_without_matplotlib(tmp_path, monkeypatch):
    from ops.training import plots

    cache = ResultCache(tmp_path / "figures")
    curves = pd.DataFrame({"epoch": [1, 2, 3], "train_loss": [1.0, 0.7, 0.5], "val_loss": [1.1, 0.9, 0.8]})
    png = cached_png(cache, plots.curves_png, curves, "run-a")
    assert png.startswith(b"\x89PNG")

    def no_draw(*a, **k):
        raise AssertionError("matplotlib drew a figure that was stored")
    monkeypatch.setattr(plots, "_png", no_draw)
    assert cached_png(cache, plots.curves_png, curves.copy(), "run-a") == png
