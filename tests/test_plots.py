"""keras_gated.plots: the GateMonitor pictures, drawn with matplotlib."""

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from keras_gated import plots

RNG = np.random.default_rng(0)


def _assert_picture(image, min_colors=3):
    assert image.dtype == np.uint8
    assert image.ndim == 3 and image.shape[-1] == 3
    assert image.shape[0] > 100 and image.shape[1] > 100
    # Not blank: white background plus ink of several colours.
    colors = np.unique(image.reshape(-1, 3), axis=0)
    assert len(colors) >= min_colors
    assert (image < 250).any(axis=-1).mean() > 0.01


def test_saturation_scatter_is_an_rgb_picture_one_panel_per_gate():
    one = plots.saturation_scatter([("forget", [("", RNG.uniform(size=8), RNG.uniform(size=8))])])
    two = plots.saturation_scatter(
        [
            ("input", [("", RNG.uniform(size=8), RNG.uniform(size=8))]),
            ("forget", [("layer_0", [0.1, 0.2], [0.3, 0.1]), ("layer_1", [0.5], [0.2])]),
        ]
    )
    _assert_picture(one)
    _assert_picture(two)
    assert two.shape[0] == one.shape[0] and two.shape[1] > 1.8 * one.shape[1]


def test_curves_on_a_log_scale_survive_zeros_and_nans():
    image = plots.curves(
        {"level 0": np.exp(-np.arange(30.0)), "level 1": np.r_[0.0, np.nan, np.ones(28)]},
        title="||dL/dh_t||",
        width=300,
        height=150,
    )
    _assert_picture(image)
    _assert_picture(plots.curves({"": [0.5]}, log_scale=False))


def test_heatmaps_with_missing_entries():
    matrix = RNG.uniform(size=(4, 6))
    matrix[1, 3:] = np.nan
    image = plots.heatmaps([("a", matrix, 0.0, 1.0), ("b", -matrix, -1.0, 0.0)])
    _assert_picture(image, min_colors=10)


def test_pictures_draw_on_a_users_axes_and_leave_the_backend_alone():
    backend = matplotlib.get_backend()
    figure = Figure()
    FigureCanvasAgg(figure)
    left, middle, right = figure.subplots(1, 3)
    plots.draw_saturation(left, [("", [0.1], [0.2])], title="forget")
    plots.draw_curves(middle, {"a": [1.0, 0.1, 0.01]})
    plots.draw_heatmap(right, np.eye(3), 0.0, 1.0)
    assert middle.get_yscale() == "log"
    assert left.get_title() == "forget"
    _assert_picture(plots.figure_to_array(figure))
    assert isinstance(plots.curves_figure({"a": [1.0, 2.0]}), Figure)
    assert matplotlib.get_backend() == backend
