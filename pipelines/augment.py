"""Image ops of the input pipeline: the papers' five-crop and evaluation resize.

Training augmentation of seed 000 section 4.1 and seed 001 section III
(after Wang et al. / ML-GCN): resize the image to 256x256, take one of five
patches (the four corners or the centre) whose side is drawn from
{256, 224, 192, 168, 128}, resize the patch to the model's input size (224),
optionally flip it horizontally. Evaluation: resize the whole image to the
input size.

The resize to 256x256, the crop and the resize to 224 are done here as one
bilinear resampling of the patch's region of the *original* image
(``tf.image.crop_and_resize`` with the box placed so that sampling follows
``tf.image.resize``'s half-pixel convention). The patch covers exactly the
region the two-step recipe covers, with one resampling instead of two, at the
cost of a single resize: this keeps the training pipeline as fast as a plain
decode-and-resize (see benchmarks/pipeline.py). Like ``tf.image.resize``'s
default, sampling is bilinear without antialiasing; write records resized to
256 (``make_tfrecords.py --resize=256``) to keep large downscales out of the
training loop, as the papers' recipe does.

Every op takes a single HxWxC image (uint8 or float) and returns float32
values in [0, 255]. Randomness is stateless: each op takes a ``seed`` tensor
of shape [2], so a pipeline is reproducible whatever its parallelism.
"""

from typing import Optional, Sequence, Tuple, Union

import tensorflow as tf

CROP_SIZES = (256, 224, 192, 168, 128)
# Patch positions, in the order of ``five_crop_offsets``.
POSITIONS = ("top_left", "top_right", "bottom_left", "bottom_right", "center")

Size = Union[int, Tuple[int, int], Sequence[int]]


def as_hw(size: Size) -> Tuple[int, int]:
    if isinstance(size, int):
        return (size, size)
    size = tuple(int(s) for s in size)
    if len(size) != 2:
        raise ValueError(f"a size is N or (height, width), got {size}")
    return size


def five_crop_offsets(position, crop_h, crop_w, base_h, base_w):
    """Top-left (y, x) of patch ``position`` (index into POSITIONS) of size
    crop_h x crop_w in a base_h x base_w image."""
    dy = tf.cast(base_h - crop_h, tf.float32)
    dx = tf.cast(base_w - crop_w, tf.float32)
    # Corners take 0 or the full offset; the centre takes half of it.
    ys = tf.stack([0.0, 0.0, dy, dy, tf.floor(dy / 2)])
    xs = tf.stack([0.0, dx, 0.0, dx, tf.floor(dx / 2)])
    return tf.gather(ys, position), tf.gather(xs, position)


def _region_boxes(y0, x0, h, w, in_h, in_w, out_h, out_w):
    """Normalized crop_and_resize box that samples the continuous region
    [y0, y0+h) x [x0, x0+w) of an in_h x in_w image onto out_h x out_w pixels
    at half-pixel centres (what tf.image.resize does on a cropped image)."""
    in_h = tf.cast(in_h, tf.float32)
    in_w = tf.cast(in_w, tf.float32)

    def axis(r0, length, size, out):
        scale = length / out
        first = r0 + 0.5 * scale - 0.5   # source coordinate of output pixel 0
        last = first + scale * (out - 1)
        denom = tf.maximum(size - 1.0, 1.0)
        return first / denom, last / denom

    y1, y2 = axis(y0, h, in_h, float(out_h))
    x1, x2 = axis(x0, w, in_w, float(out_w))
    return tf.stack([y1, x1, y2, x2])[tf.newaxis]


def crop_region_and_resize(image, y0, x0, h, w, output_size: Size):
    """Bilinear resampling of the region [y0, y0+h) x [x0, x0+w) (in pixels
    of ``image``, fractional allowed) to ``output_size``; float32 output.

    For integer regions this equals ``tf.image.resize(image[y0:y0+h,
    x0:x0+w], output_size)`` (bilinear, half-pixel centres, clamped at the
    image border), except that when upsampling, the outermost half output
    pixel of an edge that lies inside the image interpolates with the pixels
    just outside the region instead of repeating the edge.
    """
    out_h, out_w = as_hw(output_size)
    # crop_and_resize extrapolates outside [0, size-1] while tf.image.resize
    # clamps; a one-pixel edge copy turns the clamp into plain interpolation.
    padded = tf.pad(image, [[1, 1], [1, 1], [0, 0]], mode="SYMMETRIC")
    shape = tf.shape(padded)
    box = _region_boxes(tf.cast(y0, tf.float32) + 1.0,
                        tf.cast(x0, tf.float32) + 1.0,
                        tf.cast(h, tf.float32), tf.cast(w, tf.float32),
                        shape[0], shape[1], out_h, out_w)
    return tf.image.crop_and_resize(
        padded[tf.newaxis], box, tf.zeros([1], tf.int32), (out_h, out_w),
        method="bilinear")[0]


def draw_five_crop(seed, crop_sizes: Sequence[int] = CROP_SIZES,
                   max_distort: int = 0):
    """Random five-crop parameters: (position, side_h, side_w, flip).

    ``position`` indexes POSITIONS (uniform); the sides come from
    ``crop_sizes`` (uniform over allowed (h, w) index pairs, with
    |index_h - index_w| <= max_distort); ``flip`` is a bool with p = 1/2.
    ``seed``: int tensor of shape [2].
    """
    n = len(crop_sizes)
    pairs = [(i, j) for i in range(n) for j in range(n) if abs(i - j) <= max_distort]
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 3)
    pick = tf.random.stateless_uniform([], seeds[0], 0, len(pairs), dtype=tf.int32)
    pair = tf.gather(tf.constant(pairs, tf.int32), pick)
    sizes = tf.constant(crop_sizes, tf.float32)
    position = tf.random.stateless_uniform([], seeds[1], 0, 5, dtype=tf.int32)
    flip = tf.random.stateless_uniform([], seeds[2]) < 0.5
    return position, tf.gather(sizes, pair[0]), tf.gather(sizes, pair[1]), flip


def five_crop(image, position, side_h, side_w, *, output_size: Size = 224,
              resize_size: Size = 256, flip=False):
    """Patch ``position`` (index into POSITIONS) of side side_h x side_w of
    ``image`` as if resized to ``resize_size``, resampled to ``output_size``,
    flipped horizontally when ``flip``. float32 output in [0, 255]."""
    base_h, base_w = as_hw(resize_size)
    side_h = tf.cast(side_h, tf.float32)
    side_w = tf.cast(side_w, tf.float32)
    y0, x0 = five_crop_offsets(position, side_h, side_w, float(base_h), float(base_w))
    # Patch coordinates in the resize_size frame, mapped to the original image.
    shape = tf.cast(tf.shape(image), tf.float32)
    sy, sx = shape[0] / base_h, shape[1] / base_w
    out = crop_region_and_resize(image, y0 * sy, x0 * sx, side_h * sy,
                                 side_w * sx, output_size)
    return tf.cond(tf.convert_to_tensor(flip), lambda: tf.reverse(out, axis=[1]),
                   lambda: out)


def random_five_crop(image, seed, *,
                     output_size: Size = 224,
                     resize_size: Size = 256,
                     crop_sizes: Sequence[int] = CROP_SIZES,
                     max_distort: int = 0,
                     flip: bool = True):
    """The papers' training augmentation on one image.

    Args:
      image: HxWxC image, any size, uint8 or float in [0, 255].
      seed: int32/int64 tensor of shape [2] (stateless randomness).
      output_size: the model's input size (224 in the papers).
      resize_size: the size the image is first resized to (256).
      crop_sizes: patch sides to draw from, in resize_size pixels.
      max_distort: 0 gives square patches (the papers' text); k > 0 draws the
        height and width sides separately, at most k steps apart in
        ``crop_sizes`` (ML-GCN's MultiScaleCrop uses 1).
      flip: flip horizontally with probability 1/2.

    Returns:
      float32 image of ``output_size`` with values in [0, 255].
    """
    base_h, base_w = as_hw(resize_size)
    if max(crop_sizes) > min(base_h, base_w):
        raise ValueError(f"crop sizes {tuple(crop_sizes)} exceed the resized "
                         f"image {base_h}x{base_w}")
    position, side_h, side_w, do_flip = draw_five_crop(seed, tuple(crop_sizes),
                                                       max_distort)
    return five_crop(image, position, side_h, side_w, output_size=output_size,
                     resize_size=resize_size,
                     flip=tf.logical_and(do_flip, flip))


def eval_resize(image, output_size: Size = 224):
    """Evaluation: resize the whole image to ``output_size`` (bilinear),
    float32 output in [0, 255]."""
    return tf.image.resize(tf.cast(image, tf.float32), as_hw(output_size),
                           method="bilinear")


def decode(encoded, channels: int = 3):
    """Decodes JPEG, PNG, BMP or (first frame of) GIF bytes to uint8 HxWxC."""
    image = tf.io.decode_image(encoded, channels=channels, expand_animations=False)
    image.set_shape([None, None, channels])
    return image


def apply_layers(images, layers: Optional[Sequence] = None):
    """Applies Keras preprocessing layers (Keras core's, keras-cv's, or any
    callable on a batch) in training mode."""
    for layer in layers or ():
        try:
            images = layer(images, training=True)
        except TypeError:  # a plain callable without a training argument
            images = layer(images)
    return images
