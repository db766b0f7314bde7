"""``demo`` source: an offline multi-label dataset of handwritten-digit scenes.

The objects are scikit-learn's bundled real handwritten digits
(``sklearn.datasets.load_digits``: 1,797 grey 8x8 images of the classes 0-9,
no download). The 10 labels are ``zero`` ... ``nine``. Each scene is an RGB
uint8 image of side ``--demo_image_size`` (default 64; 24 or more) showing
1 to 4 digits, one per label of the scene.

Label sets follow co-occurrence rules, so that knowing which labels go
together helps: a scene picks a *theme*, takes 1 to 3 of the theme's labels
and, rarely, one label from outside the theme.

=========  =========================  ===========
theme      labels                     P(theme)
=========  =========================  ===========
loops      zero, six, eight           0.30
strokes    one, four, seven           0.30
curves     two, three, five           0.25
nines      nine, three, eight         0.15
=========  =========================  ===========

1. Pick a theme with the probability above.
2. Pick how many of its labels appear: 1, 2 or 3 with probability 0.25, 0.40,
   0.35 (mean 2.1); those labels are a uniform random subset of the theme.
3. With probability 0.10 add one *outside* label, uniform over the 7 labels
   not in the theme.

So a scene has 1 to 4 labels (``three`` and ``eight`` belong to two themes;
``nine`` to one only, so it is the rarest label). The exact statistics these
rules imply (``rule_statistics()``; measured frequencies match them):

- label cardinality: P(1, 2, 3, 4) = 0.225, 0.385, 0.355, 0.035; mean 2.20.
- P(label): zero 0.220, one 0.220, two 0.186, three 0.289, four 0.220,
  five 0.186, six 0.220, seven 0.220, eight 0.323, nine 0.117.
- within a theme labels go together, across themes they almost never do:
  P(seven | one) = P(six | zero) = P(three | two) = 0.659,
  P(eight | nine) = 0.645, but P(two | one) = 0.025, P(one | zero) = 0.027.

Rendering. The digit *instances* are split once, by a permutation seeded with
``--seed`` and stratified by class: 80% of each class for train scenes, 20%
for val scenes, so validation handwriting is unseen (``generate`` returns,
per split, its pool of sklearn indices and the index of every digit pasted).
Each digit is padded by one pixel,
upscaled bilinearly to a random box of 0.28-0.42 of the side, tinted with a
random bright colour (random hue, so colour says nothing about the class) and
alpha-blended at a random position onto a noisy background (dark random base
colour, smooth low-frequency variation, per-pixel Gaussian noise). A position
is redrawn (up to 8 times) while the box overlaps an earlier box by more than
25% of the smaller box, so digits overlap only partly.

Hard objects, so that image evidence alone is weak for some labels: each
digit independently is

- normal, probability 0.70: contrast 0.75-1.0;
- faint, probability 0.15: contrast 0.15-0.30, barely above the noise;
- occluded, probability 0.15: normal contrast, but a patch of uniform colour
  noise hides the top, bottom, left or right 40-60% of its box.

Everything is drawn from numpy Generators seeded with ``--seed`` (one for the
instance split, one per split), so the output is deterministic, and changing
``--demo_num_train`` does not change the val scenes. A split of 0 scenes is
left out of the result. 2,500 scenes of 64 px take 1-2 s on two cores.
"""

import dataclasses
import functools
import itertools
import math
from typing import Dict, List, Sequence, Tuple

import numpy as np

from mltf.data.sources.base import Item, SharedOptions, SourceData, SourceError, option

LABEL_NAMES = ["zero", "one", "two", "three", "four",
               "five", "six", "seven", "eight", "nine"]

# (theme name, its labels, probability). Documented in the module docstring.
THEMES: Tuple[Tuple[str, Tuple[str, ...], float], ...] = (
    ("loops", ("zero", "six", "eight"), 0.30),
    ("strokes", ("one", "four", "seven"), 0.30),
    ("curves", ("two", "three", "five"), 0.25),
    ("nines", ("nine", "three", "eight"), 0.15),
)
# P(1, 2, 3 of the theme's labels appear).
THEME_COUNT_PROBS = (0.25, 0.40, 0.35)
# P(one label from outside the theme is added).
OUTSIDE_PROB = 0.10
# Per-object difficulty.
FAINT_PROB = 0.15
OCCLUDED_PROB = 0.15
NORMAL_CONTRAST = (0.75, 1.0)
FAINT_CONTRAST = (0.15, 0.30)
OCCLUDED_FRACTION = (0.4, 0.6)
# Digit box side as a fraction of the image side.
DIGIT_SCALE = (0.28, 0.42)
MAX_OVERLAP = 0.25
PLACEMENT_TRIES = 8
# Fraction of each class's digit instances kept for val scenes.
VAL_INSTANCE_FRACTION = 0.2
MIN_IMAGE_SIZE = 24
MAX_OBJECTS = 4

NORMAL, FAINT, OCCLUDED = 0, 1, 2


@dataclasses.dataclass(frozen=True)
class Options(SharedOptions):
    """Options of the demo source (it also reads ``seed``).

    Args:
      demo_num_train, demo_num_val, demo_image_size: scenes per split, side.
    """
    demo_num_train: int = option("integer", 2000, "training images.")
    demo_num_val: int = option("integer", 500, "validation images.")
    demo_image_size: int = option("integer", 64, "image side in pixels.")


_THEME_SIZE = 3
_NUM_LABELS = len(LABEL_NAMES)
_THEME_LABELS = np.array([[LABEL_NAMES.index(n) for n in labels]
                          for _, labels, _ in THEMES])
_THEME_PROBS = np.array([p for _, _, p in THEMES])
_OUTSIDE_LABELS = np.array([[c for c in range(_NUM_LABELS) if c not in row]
                            for row in _THEME_LABELS])
_CHUNK = 256  # scenes whose backgrounds are drawn at once


@dataclasses.dataclass
class DemoScenes:
    """The scenes of one split, with what was drawn to make them.

    Objects are listed flat, in paste order (a later object lies on top).

    Args:
      images: ``[n, side, side, 3]`` uint8 (None: ``render=False``).
      labels: per scene, its sorted label indices.
      themes: ``[n]`` index into ``THEMES`` of each scene's theme.
      instances: the sklearn digit indices this split may use (its part of
        the instance split).
      object_scene, object_label, object_instance, object_state: ``[m]`` per
        object: its scene, label, sklearn digit index and ``NORMAL``,
        ``FAINT`` or ``OCCLUDED``.
      object_box: ``[m, 3]`` top, left and side of each object's box (or None).
    """
    images: np.ndarray
    labels: List[List[int]]
    themes: np.ndarray
    instances: np.ndarray
    object_scene: np.ndarray
    object_label: np.ndarray
    object_instance: np.ndarray
    object_state: np.ndarray
    object_box: np.ndarray


@functools.lru_cache(maxsize=1)
def _digits() -> Tuple[np.ndarray, np.ndarray]:
    """sklearn's digits as float32 in [0, 1], padded to 10x10, and targets."""
    from sklearn.datasets import load_digits
    digits = load_digits()
    images = np.pad(digits.images.astype(np.float32) / 16.0,
                    ((0, 0), (1, 1), (1, 1)))
    images.setflags(write=False)
    targets = digits.target.astype(np.int64)
    targets.setflags(write=False)
    return images, targets


@functools.lru_cache(maxsize=None)
def _resize_matrix(src: int, dst: int) -> np.ndarray:
    """``[dst, src]`` bilinear resampling matrix (half-pixel centres)."""
    pos = np.clip((np.arange(dst) + 0.5) * src / dst - 0.5, 0, src - 1)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, src - 1)
    weight = (pos - lo).astype(np.float32)
    matrix = np.zeros((dst, src), np.float32)
    rows = np.arange(dst)
    np.add.at(matrix, (rows, lo), 1 - weight)
    np.add.at(matrix, (rows, hi), weight)
    matrix.setflags(write=False)
    return matrix


def _hsv_to_rgb(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
    sector = np.floor(h * 6).astype(np.int64) % 6
    f = h * 6 - np.floor(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    r = np.choose(sector, [v, q, p, p, t, v])
    g = np.choose(sector, [t, v, v, q, p, p])
    b = np.choose(sector, [p, p, t, v, v, q])
    return np.stack([r, g, b], axis=-1)


def split_instances(seed: int) -> Dict[str, np.ndarray]:
    """The seeded, class-stratified split of sklearn digit indices into the
    ``train`` and ``val`` pools (sorted, disjoint)."""
    rng = np.random.default_rng(_seed_sequence(seed).spawn(3)[0])
    _, targets = _digits()
    train, val = [], []
    for c in range(_NUM_LABELS):
        members = rng.permutation(np.flatnonzero(targets == c))
        n_val = max(1, int(round(len(members) * VAL_INSTANCE_FRACTION)))
        val.append(members[:n_val])
        train.append(members[n_val:])
    return {"train": np.sort(np.concatenate(train)),
            "val": np.sort(np.concatenate(val))}


def sample_label_slots(rng: np.random.Generator, num: int
                       ) -> Tuple[np.ndarray, np.ndarray]:
    """Draws ``num`` label sets by the theme rules.

    Returns ``(themes [num], slots [num, 4])``: ``slots`` holds each scene's
    labels in paste order, padded with -1.
    """
    themes = rng.choice(len(THEMES), size=num, p=_THEME_PROBS)
    counts = 1 + rng.choice(_THEME_SIZE, size=num, p=THEME_COUNT_PROBS)
    order = np.argsort(rng.random((num, _THEME_SIZE)), axis=1)
    picked = np.take_along_axis(_THEME_LABELS[themes], order, axis=1)
    outside = rng.random(num) < OUTSIDE_PROB
    outside_label = _OUTSIDE_LABELS[
        themes, rng.integers(0, _OUTSIDE_LABELS.shape[1], size=num)]
    slots = np.full((num, MAX_OBJECTS), -1, np.int64)
    slots[:, :_THEME_SIZE] = np.where(
        np.arange(_THEME_SIZE) < counts[:, None], picked, -1)
    rows = np.flatnonzero(outside)
    slots[rows, counts[rows]] = outside_label[rows]
    # Random paste (z) order, padding last.
    keys = rng.random((num, MAX_OBJECTS)) + 2.0 * (slots < 0)
    slots = np.take_along_axis(slots, np.argsort(keys, axis=1), axis=1)
    return themes, slots


def make_scenes(num: int, image_size: int, instances: np.ndarray,
                rng: np.random.Generator, render: bool = True) -> DemoScenes:
    """Renders ``num`` scenes of side ``image_size`` using only the sklearn
    digits listed in ``instances``; ``render=False``: the same label sets and
    objects, no pixels (``images``, ``object_box`` None), far faster."""
    if image_size < MIN_IMAGE_SIZE:
        raise SourceError(f"demo_image_size must be at least {MIN_IMAGE_SIZE}, "
                          f"got {image_size}")
    digits, targets = _digits()
    instances = np.asarray(instances, np.int64)
    pools = [instances[targets[instances] == c] for c in range(_NUM_LABELS)]
    missing = [LABEL_NAMES[c] for c, p in enumerate(pools) if len(p) == 0]
    if missing:
        raise SourceError(f"no digit instance of class {missing[0]!r} to draw from")
    side = image_size

    themes, slots = sample_label_slots(rng, num)
    valid = slots >= 0
    obj_scene = np.nonzero(valid)[0]
    obj_label = slots[valid]
    m = len(obj_label)
    pool_sizes = np.array([len(p) for p in pools])
    pick = np.floor(rng.random(m) * pool_sizes[obj_label]).astype(np.int64)
    obj_instance = np.array([pools[c][k] for c, k in zip(obj_label, pick)],
                            np.int64).reshape(m)
    obj_size = np.round(side * rng.uniform(*DIGIT_SCALE, size=m)).astype(np.int64)
    u = rng.random(m)
    obj_state = np.where(u < FAINT_PROB, FAINT,
                         np.where(u < FAINT_PROB + OCCLUDED_PROB, OCCLUDED, NORMAL))
    contrast = np.where(obj_state == FAINT,
                        rng.uniform(*FAINT_CONTRAST, size=m),
                        rng.uniform(*NORMAL_CONTRAST, size=m)).astype(np.float32)
    colour = (255.0 * _hsv_to_rgb(rng.random(m), rng.uniform(0.25, 0.75, m),
                                  rng.uniform(0.8, 1.0, m))).astype(np.float32)
    candidates = rng.random((m, PLACEMENT_TRIES, 2))
    occ_side = rng.integers(0, 4, size=m)
    occ_fraction = rng.uniform(*OCCLUDED_FRACTION, size=m)
    occ_offset = rng.random((m, 2))
    scenes = DemoScenes(None, [sorted(int(c) for c in row[row >= 0]) for row in slots],
                        themes, np.sort(instances), obj_scene, obj_label, obj_instance,
                        obj_state, None)
    if not render:  # everything below draws only pixels and boxes
        return scenes
    obj_box = np.zeros((m, 3), np.int64)

    images = np.empty((num, side, side, 3), np.uint8)
    lowfreq = _resize_matrix(4, side)
    first_object = np.searchsorted(obj_scene, np.arange(num + 1))
    for start in range(0, num, _CHUNK):
        n = min(_CHUNK, num - start)
        base = rng.uniform(15, 90, size=(n, 1, 1, 3)).astype(np.float32)
        grid = rng.normal(0, 20, size=(n, 4, 4, 3)).astype(np.float32)
        smooth = lowfreq @ grid.transpose(0, 3, 1, 2) @ lowfreq.T  # n, c, h, w
        canvas = base + smooth.transpose(0, 2, 3, 1)
        canvas += rng.normal(0, 12, size=canvas.shape).astype(np.float32)
        texture = rng.uniform(0, 255, size=(side, side, 3)).astype(np.float32)
        for i in range(n):
            scene = start + i
            image = canvas[i]
            boxes: List[Tuple[int, int, int]] = []
            for o in range(first_object[scene], first_object[scene + 1]):
                s = int(obj_size[o])
                y, x = _place(candidates[o], side, s, boxes)
                boxes.append((y, x, s))
                obj_box[o] = (y, x, s)
                resize = _resize_matrix(digits.shape[1], s)
                alpha = (resize @ digits[obj_instance[o]] @ resize.T)[..., None]
                alpha *= contrast[o]
                region = image[y:y + s, x:x + s]
                region += alpha * (colour[o] - region)
                if obj_state[o] == OCCLUDED:
                    band = max(1, int(round(occ_fraction[o] * s)))
                    h, w = (band, s) if occ_side[o] < 2 else (s, band)
                    top = y + (s - band if occ_side[o] == 1 else 0)
                    left = x + (s - band if occ_side[o] == 3 else 0)
                    ty = int(occ_offset[o, 0] * (side - h + 1))
                    tx = int(occ_offset[o, 1] * (side - w + 1))
                    image[top:top + h, left:left + w] = texture[ty:ty + h, tx:tx + w]
        np.clip(np.round(canvas), 0, 255, out=canvas)
        images[start:start + n] = canvas.astype(np.uint8)
    return dataclasses.replace(scenes, images=images, object_box=obj_box)


def _place(candidates: np.ndarray, side: int, s: int,
           boxes: Sequence[Tuple[int, int, int]]) -> Tuple[int, int]:
    """The first candidate position whose box overlaps no earlier box by more
    than ``MAX_OVERLAP`` of the smaller box, else the least overlapping."""
    best, best_overlap = None, math.inf
    for cy, cx in candidates:
        y, x = int(cy * (side - s + 1)), int(cx * (side - s + 1))
        overlap = 0.0
        for by, bx, bs in boxes:
            dy = min(y + s, by + bs) - max(y, by)
            dx = min(x + s, bx + bs) - max(x, bx)
            if dy > 0 and dx > 0:
                overlap = max(overlap, dy * dx / min(s, bs) ** 2)
        if overlap <= MAX_OVERLAP:
            return y, x
        if overlap < best_overlap:
            best, best_overlap = (y, x), overlap
    return best


def _seed_sequence(seed: int) -> np.random.SeedSequence:
    try:
        return np.random.SeedSequence(int(seed))
    except (TypeError, ValueError):
        raise SourceError(f"the demo seed must be a non-negative integer, "
                          f"got {seed!r}") from None


def generate(options: Options, render: bool = True) -> Dict[str, DemoScenes]:
    """The ``train`` and ``val`` scenes (with their drawing details) that
    ``load`` returns as items (``render``: see ``make_scenes``)."""
    for name in ("demo_num_train", "demo_num_val"):
        if getattr(options, name) < 0:
            raise SourceError(f"{name} must be >= 0, got {getattr(options, name)}")
    _, train_seq, val_seq = _seed_sequence(options.seed).spawn(3)
    pools = split_instances(options.seed)
    return {
        "train": make_scenes(options.demo_num_train, options.demo_image_size,
                             pools["train"], np.random.default_rng(train_seq), render),
        "val": make_scenes(options.demo_num_val, options.demo_image_size,
                           pools["val"], np.random.default_rng(val_seq), render),
    }


def load(options: Options) -> SourceData:
    scenes = generate(options)
    splits = {}
    for split, data in scenes.items():
        if len(data.labels):  # a split of 0 scenes is left out
            splits[split] = [
                Item(key=f"demo-{split}-{i:05d}", labels=labels, array=data.images[i])
                for i, labels in enumerate(data.labels)]
    if not splits:
        raise SourceError("demo_num_train and demo_num_val are both 0")
    return SourceData(label_names=list(LABEL_NAMES), splits=splits, kind="image")


def rule_statistics() -> Dict[str, np.ndarray]:
    """Exact statistics the theme rules imply, by enumerating every outcome.

    Returns ``label`` ``[10]`` P(label), ``pair`` ``[10, 10]`` P(a and b)
    (diagonal: P(a)), ``conditional`` ``[10, 10]`` P(b | a) (row a) and
    ``cardinality`` ``[5]`` P(number of labels = 0..4).
    """
    label = np.zeros(_NUM_LABELS)
    pair = np.zeros((_NUM_LABELS, _NUM_LABELS))
    cardinality = np.zeros(MAX_OBJECTS + 1)
    for t, p_theme in enumerate(_THEME_PROBS):
        for k, p_k in enumerate(THEME_COUNT_PROBS, start=1):
            subsets = list(itertools.combinations(_THEME_LABELS[t], k))
            extras = [((), 1 - OUTSIDE_PROB)] + [
                ((c,), OUTSIDE_PROB / _OUTSIDE_LABELS.shape[1])
                for c in _OUTSIDE_LABELS[t]]
            for subset in subsets:
                for extra, p_extra in extras:
                    p = p_theme * p_k / len(subsets) * p_extra
                    members = list(subset) + list(extra)
                    cardinality[len(members)] += p
                    label[members] += p
                    pair[np.ix_(members, members)] += p
    conditional = pair / label[:, None]
    return {"label": label, "pair": pair, "conditional": conditional,
            "cardinality": cardinality}
