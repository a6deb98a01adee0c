"""The pictures `GateMonitor` logs, drawn with matplotlib.

Three pictures, each in three forms:

* `draw_saturation(ax, series)`, `draw_curves(ax, series)`,
  `draw_heatmap(ax, matrix, vmin, vmax)` draw onto a matplotlib `Axes` of
  yours, to restyle or combine them freely;
* `saturation_figure(panels)`, `curves_figure(series)`,
  `heatmaps_figure(panels)` return a `matplotlib.figure.Figure` (save it
  with `figure.savefig(path)`);
* `saturation_scatter(panels)`, `curves(series)`, `heatmaps(panels)`
  return the figure as an RGB image, a uint8 array (height, width, 3),
  ready for `tf.summary.image(name, image[None], step)`.

The figures are drawn with matplotlib's Agg renderer onto a `Figure` of
their own, without pyplot, so they never touch the backend or the figures
of a user's session; they follow matplotlib's rcParams, so
`with matplotlib.rc_context({...}):` restyles them. matplotlib comes with
`pip install keras-gated[examples]`.
"""

import numpy as np

# The colours of one picture's series, in order (matplotlib's tab10 colours).
PALETTE = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e",
    "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
]
# Figures are sized in pixels at this resolution.
DPI = 100
# Entries of a heatmap without a value (NaN): light grey.
MISSING_COLOR = "#d2d2d2"


def _figure(width, height):
    """A `Figure` of `width` x `height` pixels with an Agg canvas attached."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as error:  # pragma: no cover - depends on the install
        raise ImportError(
            "Drawing the GateMonitor pictures needs matplotlib: "
            "`pip install keras-gated[examples]` or `pip install matplotlib`."
        ) from error
    figure = Figure(figsize=(width / DPI, height / DPI), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _label(ax, title, xlabel, ylabel):
    """Sets the title and axis labels of `ax` that are not empty."""
    if title:
        ax.set_title(title)
    if xlabel:
        ax.set_xlabel(xlabel)
    if ylabel:
        ax.set_ylabel(ylabel)


def figure_to_array(figure):
    """The RGB pixels of `figure` (drawn with Agg), uint8 (height, width, 3)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = figure.canvas
    if not isinstance(canvas, FigureCanvasAgg):
        canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return np.array(canvas.buffer_rgba())[..., :3]


# -- gate saturation (Karpathy, Johnson & Fei-Fei 2015, Fig. 2) ---------------


def draw_saturation(ax, series, title="", colors=None):
    """One panel of the saturation plot on `ax`: a dot per unit.

    Args:
        ax: A matplotlib `Axes`.
        series: List of (label, left_fractions, right_fractions): per unit,
            the fraction of steps the gate was left-saturated (< 0.1, x
            axis) and right-saturated (> 0.9, y axis). One colour per
            series (the levels of a stack, as the paper colours its
            layers), with a legend when there are several.
        title: The panel's title (the gate).
        colors: One matplotlib colour per series; default `PALETTE`.
    """
    colors = colors or PALETTE
    # Every point lies below the diagonal x + y = 1.
    ax.plot([0, 1], [1, 0], color="#c8c8c8", linewidth=1, zorder=1)
    for j, (label, xs, ys) in enumerate(series):
        # Translucent dots: units that share a point show as a darker dot.
        ax.scatter(
            np.asarray(xs, float), np.asarray(ys, float),
            s=30, alpha=0.6, linewidths=0,
            color=colors[j % len(colors)], label=label or None, zorder=2,
        )
    ax.set_xlim(-0.03, 1.03)
    ax.set_ylim(-0.03, 1.03)
    ax.set_xticks([0, 0.5, 1])
    ax.set_yticks([0, 0.5, 1])
    ax.set_aspect("equal")
    _label(ax, title, "fraction left-saturated", "fraction right-saturated")
    if len(series) > 1:
        ax.legend(loc="upper right", fontsize="small", frameon=False)


def saturation_figure(panels, size=200):
    """Karpathy, Johnson & Fei-Fei (2015), Fig. 2: one panel per gate.

    Args:
        panels: List of (title, series), `series` as `draw_saturation`
            takes it.
        size: Width and height of each panel's plot area, in pixels.
    """
    count = max(len(panels), 1)
    figure = _figure(count * (size + 70), size + 70)
    axes = figure.subplots(1, count, squeeze=False)[0]
    for k, (title, series) in enumerate(panels):
        # One series (a one-level cell): each gate's panel its own colour.
        colors = [PALETTE[k % len(PALETTE)]] if len(series) == 1 else None
        draw_saturation(axes[k], series, title, colors)
    return figure


def saturation_scatter(panels, size=200):
    """`saturation_figure(panels, size)` as an RGB uint8 array (H, W, 3)."""
    return figure_to_array(saturation_figure(panels, size))


# -- curves over time -----------------------------------------------------------


def draw_curves(ax, series, title="", xlabel="time step", ylabel="", log_scale=True):
    """Curves over the same x = 0, 1, ..., T-1 on `ax`.

    Args:
        ax: A matplotlib `Axes`.
        series: Dict label -> 1-D array of values (same length); a legend
            (lower right, where gradient-norm curves end high) when there
            are several.
        log_scale: A logarithmic y axis; zeros and NaNs are clipped to the
            smallest positive value, so a vanishing curve stays drawn.
    """
    values = {label: np.asarray(v, "float64").ravel() for label, v in series.items()}
    everything = np.concatenate([v for v in values.values() if v.size] or [np.zeros(1)])
    finite = everything[np.isfinite(everything)]
    floor = None
    if log_scale:
        positive = finite[finite > 0]
        floor = positive.min() if positive.size else 1e-12
    for k, (label, v) in enumerate(values.items()):
        shown = (
            np.clip(np.nan_to_num(v, nan=floor), floor, None) if log_scale else np.nan_to_num(v)
        )
        ax.plot(
            np.arange(v.size), shown,
            color=PALETTE[k % len(PALETTE)], linewidth=2,
            marker="o" if v.size == 1 else None, label=label or None,
        )
    if log_scale:
        ax.set_yscale("log")
    length = max((v.size for v in values.values()), default=1)
    ax.set_xticks(sorted({0, length // 2, max(length - 1, 0)}))
    ax.set_xlim(0, max(length - 1, 1))
    ax.grid(axis="y", color="#e6e6e6")
    ax.set_axisbelow(True)
    _label(ax, title, xlabel, ylabel)
    if len(values) > 1:
        ax.legend(loc="lower right", fontsize="small")


def curves_figure(series, title="", xlabel="time step", ylabel="", log_scale=True, width=420, height=220):
    """A figure of `draw_curves`; `width` x `height` is the plot area in pixels."""
    figure = _figure(width + 70, height + 70)
    draw_curves(figure.subplots(), series, title, xlabel, ylabel, log_scale)
    return figure


def curves(series, title="", xlabel="time step", ylabel="", log_scale=True, width=420, height=220):
    """`curves_figure(...)` as an RGB uint8 array (H, W, 3)."""
    return figure_to_array(
        curves_figure(series, title, xlabel, ylabel, log_scale, width, height)
    )


# -- heatmaps -------------------------------------------------------------------


def draw_heatmap(ax, matrix, vmin, vmax, title="", xlabel="unit", ylabel="layer", colorbar=True):
    """A matrix as a coloured grid on `ax`, rows top to bottom, 1-based labels.

    Blue (vmin) - white - red (vmax), NaN (no value) light grey. Returns
    the `AxesImage`.
    """
    import matplotlib

    colormap = matplotlib.colormaps["coolwarm"].with_extremes(bad=MISSING_COLOR)
    matrix = np.asarray(matrix, "float64")
    rows, cols = matrix.shape
    image = ax.imshow(
        np.ma.masked_invalid(matrix), cmap=colormap, vmin=vmin, vmax=vmax,
        aspect="auto", interpolation="nearest",
    )
    row_ticks = range(rows) if rows <= 12 else sorted({0, rows - 1})
    ax.set_yticks(list(row_ticks), [str(r + 1) for r in row_ticks])
    column_ticks = sorted({0, cols - 1})
    ax.set_xticks(column_ticks, [str(c + 1) for c in column_ticks])
    _label(ax, title, xlabel, ylabel)
    if colorbar:
        ax.figure.colorbar(image, ax=ax, ticks=[vmin, vmax], format="%.2g", fraction=0.08)
    return image


def heatmaps_figure(panels, xlabel="unit", ylabel="layer", cell=20):
    """Matrices as coloured grids, one panel each (see `draw_heatmap`).

    Args:
        panels: List of (title, matrix, vmin, vmax).
        cell: Pixels per matrix entry (shrunk for wide or tall matrices).
    """
    shapes = [np.asarray(matrix).shape for _, matrix, _, _ in panels]
    columns = max(c for _, c in shapes)
    rows = max(r for r, _ in shapes)
    panel_width = max(2, min(cell, 360 // max(columns, 1))) * columns
    panel_height = max(2, min(cell, 200 // max(rows, 1))) * rows
    figure = _figure(len(panels) * (panel_width + 130), panel_height + 80)
    axes = figure.subplots(1, len(panels), squeeze=False)[0]
    for k, (title, matrix, vmin, vmax) in enumerate(panels):
        draw_heatmap(axes[k], matrix, vmin, vmax, title, xlabel, ylabel if k == 0 else "")
    return figure


def heatmaps(panels, xlabel="unit", ylabel="layer", cell=20):
    """`heatmaps_figure(...)` as an RGB uint8 array (H, W, 3)."""
    return figure_to_array(heatmaps_figure(panels, xlabel, ylabel, cell))
