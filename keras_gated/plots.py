"""Small plots drawn with Pillow and NumPy, for the pictures `GateMonitor` logs.

Each function returns an RGB image as a uint8 array (height, width, 3),
ready for `tf.summary.image` or `PIL.Image.fromarray(...).save(path)`.
Pillow is the only requirement (`pip install keras-gated[examples]`).
"""

import math

import numpy as np

PALETTE = [
    (31, 119, 180), (214, 39, 40), (44, 160, 44), (255, 127, 14),
    (148, 103, 189), (140, 86, 75), (227, 119, 194), (127, 127, 127),
]
_MARGIN_LEFT, _MARGIN_RIGHT, _MARGIN_TOP, _MARGIN_BOTTOM = 48, 12, 24, 34


def _pillow():
    try:
        from PIL import Image, ImageDraw, ImageFont
    except ImportError as error:  # pragma: no cover - depends on the install
        raise ImportError(
            "Drawing the GateMonitor pictures needs Pillow: "
            "`pip install keras-gated[examples]` or `pip install pillow`."
        ) from error
    return Image, ImageDraw, ImageFont


def _font(size=11):
    _, _, ImageFont = _pillow()
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has one bitmap font size.
        return ImageFont.load_default()


def _frame(image, draw, box, font, title, xlabel, ylabel):
    left, top, right, bottom = box
    draw.rectangle(box, outline=(0, 0, 0))
    if title:
        draw.text(((left + right) / 2, top - 4), title, fill=(0, 0, 0), font=font, anchor="md")
    if xlabel:
        draw.text(((left + right) / 2, bottom + 20), xlabel, fill=(0, 0, 0), font=font, anchor="mt")
    if ylabel:
        _vertical_text(image, (left - 38, (top + bottom) / 2), ylabel, font)


def _vertical_text(image, position, text, font):
    """Draws `text` rotated by 90 degrees, centred at `position` (x, y)."""
    Image, ImageDraw, _ = _pillow()
    left, top, right, bottom = font.getbbox(text)
    label = Image.new("RGB", (right - left + 2, bottom - top + 2), (255, 255, 255))
    ImageDraw.Draw(label).text((1 - left, 1 - top), text, fill=(0, 0, 0), font=font)
    label = label.rotate(90, expand=True)
    x, y = position
    image.paste(label, (int(x - label.width / 2), int(y - label.height / 2)))


def _canvas(width, height):
    Image, ImageDraw, _ = _pillow()
    image = Image.new("RGB", (int(width), int(height)), (255, 255, 255))
    return image, ImageDraw.Draw(image)


def saturation_scatter(panels, size=200):
    """Karpathy, Johnson & Fei-Fei (2015), Fig. 2: one panel per gate.

    Args:
        panels: List of (title, series), series a list of (label,
            left_fractions, right_fractions): per unit, the fraction of
            steps the gate was left-saturated (< 0.1, x axis) and
            right-saturated (> 0.9, y axis). One colour per series (the
            levels of a stack, as the paper colours its layers); a legend is
            drawn when there are several.
        size: Width and height of each panel's plot area, in pixels.
    """
    Image, ImageDraw, _ = _pillow()
    font = _font()
    cell_w = size + _MARGIN_LEFT + _MARGIN_RIGHT
    cell_h = size + _MARGIN_TOP + _MARGIN_BOTTOM
    image, draw = _canvas(cell_w * max(len(panels), 1), cell_h)
    # Translucent dots: units that share a point show as a darker dot.
    dots = Image.new("RGBA", image.size, (255, 255, 255, 0))
    dot_draw = ImageDraw.Draw(dots)
    for k, (title, series) in enumerate(panels):
        left = k * cell_w + _MARGIN_LEFT
        top = _MARGIN_TOP
        box = (left, top, left + size, top + size)
        # Every point lies below the diagonal x + y = 1.
        draw.line((left, top, left + size, top + size), fill=(200, 200, 200))
        for tick in (0.0, 0.5, 1.0):
            draw.text((left + tick * size, top + size + 3), f"{tick:g}", fill=(90, 90, 90), font=font, anchor="mt")
            draw.text((left - 3, top + size - tick * size), f"{tick:g}", fill=(90, 90, 90), font=font, anchor="rm")
        for j, (label, xs, ys) in enumerate(series):
            color = PALETTE[(j if len(series) > 1 else k) % len(PALETTE)]
            for x, y in zip(np.asarray(xs, float), np.asarray(ys, float)):
                px, py = left + x * size, top + size - y * size
                dot_draw.ellipse((px - 3, py - 3, px + 3, py + 3), fill=color + (150,))
            if len(series) > 1:
                draw.text((left + size - 4, top + 4 + 13 * j), label, fill=color, font=font, anchor="ra")
        _frame(image, draw, box, font, title, "fraction left-saturated", "fraction right-saturated")
    image = Image.alpha_composite(image.convert("RGBA"), dots).convert("RGB")
    return np.asarray(image)


def _log_ticks(low, high):
    return [10.0**e for e in range(math.floor(low), math.ceil(high) + 1)]


def curves(series, title="", xlabel="time step", ylabel="", log_scale=True, width=420, height=220):
    """Line plot of one or more curves over the same x = 0, 1, ..., T-1.

    Args:
        series: Dict label -> 1-D array of values (same length).
        log_scale: Plot log10 of the values (zeros are clipped to the
            smallest positive value), with a tick at every power of ten.
    """
    font = _font()
    image, draw = _canvas(width + _MARGIN_LEFT + _MARGIN_RIGHT + 10, height + _MARGIN_TOP + _MARGIN_BOTTOM)
    left, top = _MARGIN_LEFT + 10, _MARGIN_TOP
    box = (left, top, left + width, top + height)
    values = {k: np.asarray(v, "float64").ravel() for k, v in series.items()}
    everything = np.concatenate([v for v in values.values() if v.size] or [np.zeros(1)])
    finite = everything[np.isfinite(everything)]
    if log_scale:
        positive = finite[finite > 0]
        floor = positive.min() if positive.size else 1e-12
        transform = lambda v: np.log10(np.clip(np.nan_to_num(v, nan=floor), floor, None))
    else:
        transform = lambda v: np.nan_to_num(v)
    scaled = transform(finite) if finite.size else np.zeros(1)
    low, high = float(scaled.min()), float(scaled.max())
    if high - low < 1e-9:
        low, high = low - 0.5, high + 0.5
    length = max((v.size for v in values.values()), default=1)

    def to_pixel(t, v):
        x = left + (t / max(length - 1, 1)) * width
        y = top + height - (v - low) / (high - low) * height
        return x, y

    if log_scale:
        ticks = [math.log10(t) for t in _log_ticks(low, high)]
        ticks = [t for t in ticks if low - 1e-9 <= t <= high + 1e-9]
        stride = max(1, math.ceil(len(ticks) / 7))
        ticks = ticks[::-stride][::-1]
        labels = [f"1e{int(round(t))}" for t in ticks]
        if len(ticks) < 2:  # less than a decade: label values instead
            ticks = list(np.linspace(low, high, 3))
            labels = [f"{10.0**t:.2g}" for t in ticks]
    else:
        ticks = list(np.linspace(low, high, 3))
        labels = [f"{t:.3g}" for t in ticks]
    for tick, label in zip(ticks, labels):
        _, y = to_pixel(0, tick)
        draw.line((left, y, left + width, y), fill=(230, 230, 230))
        draw.text((left - 3, y), label, fill=(90, 90, 90), font=font, anchor="rm")
    for t in sorted({0, length // 2, length - 1}):
        x, _ = to_pixel(t, low)
        draw.text((x, top + height + 3), str(t), fill=(90, 90, 90), font=font, anchor="mt")
    for k, (label, v) in enumerate(values.items()):
        color = PALETTE[k % len(PALETTE)]
        points = [to_pixel(t, s) for t, s in enumerate(transform(v))]
        if len(points) > 1:
            draw.line(points, fill=color, width=2)
        elif points:
            x, y = points[0]
            draw.ellipse((x - 2, y - 2, x + 2, y + 2), fill=color)
    if len(values) > 1:
        # Lower right: curves of gradient norms rise towards the last step.
        legend_w = max(draw.textlength(label, font=font) for label in values) + 12
        legend_h = 6 + 13 * len(values)
        x0, y0 = left + width - 6 - legend_w, top + height - 6 - legend_h
        draw.rectangle(
            (x0, y0, x0 + legend_w, y0 + legend_h),
            fill=(255, 255, 255), outline=(200, 200, 200),
        )
        for k, label in enumerate(values):
            color = PALETTE[k % len(PALETTE)]
            draw.text((x0 + 6, y0 + 2 + 13 * k), label, fill=color, font=font)
    _frame(image, draw, box, font, title, xlabel, "")
    if ylabel:
        draw.text((4, 4), ylabel, fill=(0, 0, 0), font=font)
    return np.asarray(image)


def _colormap(values, vmin, vmax):
    """Blue (low) - white - red (high), NaN as light grey."""
    scaled = np.clip((np.asarray(values, "float64") - vmin) / max(vmax - vmin, 1e-12), 0, 1)
    low, mid, high = np.array([59, 76, 192]), np.array([247, 247, 247]), np.array([180, 4, 38])
    s = np.nan_to_num(scaled, nan=0.5)[..., None]
    rgb = np.where(s < 0.5, low + (mid - low) * (s * 2), mid + (high - mid) * (s * 2 - 1))
    rgb[np.isnan(scaled)] = (210, 210, 210)
    return rgb.astype(np.uint8)


def heatmaps(panels, xlabel="unit", ylabel="layer", cell=20):
    """Matrices as coloured grids, one panel each, rows top to bottom.

    Args:
        panels: List of (title, matrix, vmin, vmax).
        cell: Pixels per matrix entry (shrunk for wide matrices).
    """
    Image, _, _ = _pillow()
    font = _font()
    widths = []
    for _, matrix, _, _ in panels:
        rows, cols = np.asarray(matrix).shape
        widths.append((rows, cols))
    size = max(2, min(cell, 360 // max(max(c for _, c in widths), 1)))
    row_size = max(2, min(cell, 200 // max(max(r for r, _ in widths), 1)))
    panel_w = max(c for _, c in widths) * size
    panel_h = max(r for r, _ in widths) * row_size
    legend_w = 46
    cell_w = panel_w + _MARGIN_LEFT + _MARGIN_RIGHT + legend_w
    image, draw = _canvas(cell_w * len(panels), panel_h + _MARGIN_TOP + _MARGIN_BOTTOM)
    for k, (title, matrix, vmin, vmax) in enumerate(panels):
        matrix = np.asarray(matrix, "float64")
        rows, cols = matrix.shape
        left, top = k * cell_w + _MARGIN_LEFT, _MARGIN_TOP
        grid = _colormap(matrix, vmin, vmax).repeat(row_size, 0).repeat(size, 1)
        image.paste(Image.fromarray(grid), (left, top))
        box = (left, top, left + cols * size, top + rows * row_size)
        for r in range(rows):
            if rows <= 12 or r in (0, rows - 1):
                draw.text((left - 3, top + (r + 0.5) * row_size), str(r + 1), fill=(90, 90, 90), font=font, anchor="rm")
        for c in sorted({0, cols - 1}):
            draw.text((left + (c + 0.5) * size, top + rows * row_size + 3), str(c + 1), fill=(90, 90, 90), font=font, anchor="mt")
        _frame(image, draw, box, font, title, xlabel, ylabel if k == 0 else "")
        bar_left = left + cols * size + 8
        bar = _colormap(np.linspace(vmax, vmin, panel_h)[:, None], vmin, vmax).repeat(10, 1)
        image.paste(Image.fromarray(bar), (bar_left, top))
        draw.text((bar_left + 12, top), f"{vmax:.2g}", fill=(90, 90, 90), font=font, anchor="lt")
        draw.text((bar_left + 12, top + panel_h), f"{vmin:.2g}", fill=(90, 90, 90), font=font, anchor="lb")
    return np.asarray(image)
