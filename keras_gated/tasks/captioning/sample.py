"""The embedded captioning dataset: scenes this project renders itself.

Every image holds two groups of objects. A group is one, two or three shapes
of the same colour, shape and size; the two groups sit on either side of the
image (left/right or top/bottom). A small grammar describes the scene, so a
correct caption needs the attributes and count of both groups and where they
are relative to each other:

    a big red circle left of two small blue squares
    two small blue squares right of a big red circle
    there are two small blue squares right of a big red circle

Everything is drawn with Pillow from a seeded `numpy.random.RandomState`, so
the same arguments always give the same images and captions (no files, no
third-party data).
"""

import numpy as np

COLOURS = {
    "red": (220, 45, 45),
    "green": (45, 185, 70),
    "blue": (60, 95, 235),
    "yellow": (235, 215, 50),
}
SHAPES = ("circle", "square", "triangle")
SIZES = {"small": 0.085, "big": 0.14}  # radius as a fraction of the image side
COUNT_WORDS = {1: "a", 2: "two", 3: "three"}
RELATIONS = {
    # relation: (axis along which A comes first, inverse relation)
    "left of": ("x", "right of"),
    "right of": ("x", "left of"),
    "above": ("y", "below"),
    "below": ("y", "above"),
}
BACKGROUND = (24, 24, 28)


def _describe(group, with_sizes):
    count, size, colour, shape = group
    noun = shape if count == 1 else shape + "s"
    words = [COUNT_WORDS[count]]
    if with_sizes:
        words.append(size)
    words += [colour, noun]
    return " ".join(words)


def describe_scene(first, relation, second, with_sizes=True):
    """The reference captions of a scene: `first` is `relation` `second`."""
    a = _describe(first, with_sizes)
    b = _describe(second, with_sizes)
    inverse = RELATIONS[relation][1]
    verb = "is" if second[0] == 1 else "are"
    return [
        f"{a} {relation} {b}",
        f"{b} {inverse} {a}",
        f"there {verb} {b} {inverse} {a}",
    ]


def _draw_shape(draw, shape, centre, radius, colour):
    x, y = centre
    if shape == "circle":
        draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=colour)
    elif shape == "square":
        draw.rectangle([x - radius, y - radius, x + radius, y + radius], fill=colour)
    else:
        draw.polygon(
            [(x, y - radius), (x - radius, y + radius), (x + radius, y + radius)],
            fill=colour,
        )


def _place_group(rng, group, region, image_size, first_axis):
    """Centres for the objects of one group, spread inside `region`."""
    count, size = group[0], group[1]
    radius = SIZES[size] * image_size
    (x0, y0), (x1, y1) = region
    # Objects of a group are lined up across the split so that they never
    # cross into the other group's half.
    spread_axis = "y" if first_axis == "x" else "x"
    centres = []
    for k in range(count):
        lo_s = (y0 if spread_axis == "y" else x0)
        hi_s = (y1 if spread_axis == "y" else x1)
        slot = (hi_s - lo_s) / count
        along = lo_s + slot * (k + 0.5) + rng.uniform(-0.12, 0.12) * slot
        lo_o = (x0 if spread_axis == "y" else y0) + radius + 1
        hi_o = (x1 if spread_axis == "y" else y1) - radius - 1
        other = rng.uniform(lo_o, max(lo_o, hi_o))
        centres.append((other, along) if spread_axis == "y" else (along, other))
    return centres, radius


def render_scene(rng, image_size=48, with_sizes=True):
    """Draws one random scene; returns (uint8 image [S, S, 3], captions)."""
    from PIL import Image
    from PIL import ImageDraw

    def random_group():
        return (
            int(rng.randint(1, 4)),
            str(rng.choice(list(SIZES))) if with_sizes else "big",
            str(rng.choice(list(COLOURS))),
            str(rng.choice(SHAPES)),
        )

    first = random_group()
    second = random_group()
    while second[1:] == first[1:]:
        second = random_group()
    relation = str(rng.choice(list(RELATIONS)))
    axis = RELATIONS[relation][0]
    half = image_size / 2.0
    full = ((0.0, 0.0), (float(image_size), float(image_size)))
    if axis == "x":
        left = ((0.0, 0.0), (half, float(image_size)))
        right = ((half, 0.0), (float(image_size), float(image_size)))
        regions = (left, right) if relation == "left of" else (right, left)
    else:
        top = ((0.0, 0.0), (float(image_size), half))
        bottom = ((0.0, half), (float(image_size), float(image_size)))
        regions = (top, bottom) if relation == "above" else (bottom, top)
    del full

    noise = rng.randint(-8, 9, size=(image_size, image_size, 3))
    canvas = np.clip(np.array(BACKGROUND)[None, None, :] + noise, 0, 255)
    image = Image.fromarray(canvas.astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(image)
    for group, region in ((first, regions[0]), (second, regions[1])):
        centres, radius = _place_group(rng, group, region, image_size, axis)
        for centre in centres:
            _draw_shape(draw, group[3], centre, radius, COLOURS[group[2]])
    captions = describe_scene(first, relation, second, with_sizes=with_sizes)
    return np.asarray(image, dtype=np.uint8), captions


def make_sample_dataset(num_images=1200, image_size=48, seed=0, with_sizes=True):
    """The embedded dataset: `num_images` rendered scenes and their captions.

    Returns:
        `(images, captions)`: a uint8 array `[num_images, S, S, 3]` and a list
        of `num_images` lists of reference captions (three each).
    """
    if int(image_size) < 16:
        raise ValueError(
            f"`image_size` must be at least 16 pixels for the sample scenes. "
            f"Received: image_size={image_size!r}"
        )
    rng = np.random.RandomState(seed)
    images = np.zeros((num_images, image_size, image_size, 3), np.uint8)
    captions = []
    for n in range(num_images):
        images[n], refs = render_scene(rng, image_size, with_sizes)
        captions.append(refs)
    return images, captions


def write_sample_dataset(directory, num_images=200, image_size=48, seed=0):
    """Writes the sample scenes as a Flickr8k-style folder.

    The folder gets `images/000000.png, ...` and `captions.txt` with one
    `image_name#n<TAB>caption` line per reference: the layout of Flickr8k's
    `Flickr8k.token.txt`, so the folder loader can be tried on it.
    """
    import os

    from PIL import Image

    images, captions = make_sample_dataset(num_images, image_size, seed)
    image_dir = os.path.join(directory, "images")
    os.makedirs(image_dir, exist_ok=True)
    lines = []
    for n, (image, refs) in enumerate(zip(images, captions)):
        name = f"{n:06d}.png"
        Image.fromarray(image).save(os.path.join(image_dir, name))
        lines += [f"{name}#{k}\t{ref}" for k, ref in enumerate(refs)]
    path = os.path.join(directory, "captions.txt")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    return path
