"""Image ops of the input pipeline: the papers' five-crop and evaluation resize.

Training augmentation of seed 000 section 4.1 and seed 001 section III
(after Wang et al. / ML-GCN): resize the image to 256x256, take one of five
patches (the four corners or the centre) whose side is drawn from
{256, 224, 192, 168, 128}, resize the patch to the model's input size (224),
optionally flip it horizontally. Evaluation: resize the whole image to the
input size.

The resize to 256x256, the crop and the resize to 224 are done here as one
crop and one resize: the patch's window is mapped back to the original
image's pixels (rounded to whole pixels) and only that window is resampled
to the input size. For JPEG records the window is cut out while decoding
(``tf.image.decode_and_crop_jpeg``, using the height and width stored in the
record), so no time goes to pixels the patch does not use. The patch covers
the region the two-step recipe covers (exactly for records written at
256x256, within half an original pixel otherwise), resampled once instead of
twice; this keeps the training pipeline at least as fast as a plain
decode-and-resize (see benchmarks/pipeline.py). Resampling is bilinear
without antialiasing, ``tf.image.resize``'s default; write records resized to
256 (``make_tfrecords.py --resize=256``) to keep large downscales out of
training, as the papers' recipe does.

Every op takes a single HxWxC image (uint8 or float) and returns float32
values in [0, 255]. Randomness is stateless: each op takes a ``seed`` tensor
of shape [2], so a pipeline is reproducible whatever its parallelism.
"""

from typing import Optional, Sequence

import tensorflow as tf

from mltf.utils.sizes import Size, as_hw  # noqa: F401  (re-exported)

CROP_SIZES = (256, 224, 192, 168, 128)
# Patch positions, in the order of ``five_crop_offsets``.
POSITIONS = ("top_left", "top_right", "bottom_left", "bottom_right", "center")



def five_crop_offsets(position, crop_h, crop_w, base_h, base_w):
    """Top-left (y, x) of patch ``position`` (index into POSITIONS) of size
    crop_h x crop_w in a base_h x base_w image."""
    dy = tf.cast(base_h - crop_h, tf.float32)
    dx = tf.cast(base_w - crop_w, tf.float32)
    # Corners take 0 or the full offset; the centre takes half of it.
    ys = tf.stack([0.0, 0.0, dy, dy, tf.floor(dy / 2)])
    xs = tf.stack([0.0, dx, 0.0, dx, tf.floor(dx / 2)])
    return tf.gather(ys, position), tf.gather(xs, position)


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


def five_crop_window(height, width, position, side_h, side_w,
                     resize_size: Size = 256):
    """The pixel window (y, x, h, w) of the original height x width image
    that patch ``position`` of side side_h x side_w covers once the image is
    resized to ``resize_size``. int32 scalars; h, w >= 1."""
    base_h, base_w = as_hw(resize_size)
    side_h = tf.cast(side_h, tf.float32)
    side_w = tf.cast(side_w, tf.float32)
    y0, x0 = five_crop_offsets(position, side_h, side_w, float(base_h), float(base_w))
    sy = tf.cast(height, tf.float32) / base_h
    sx = tf.cast(width, tf.float32) / base_w

    def span(start, length, scale, limit):
        a = tf.cast(tf.round(start * scale), tf.int32)
        b = tf.cast(tf.round((start + length) * scale), tf.int32)
        a = tf.clip_by_value(a, 0, limit - 1)
        return a, tf.maximum(tf.minimum(b, limit) - a, 1)

    y, h = span(y0, side_h, sy, tf.cast(height, tf.int32))
    x, w = span(x0, side_w, sx, tf.cast(width, tf.int32))
    return y, x, h, w


def _finish(patch, output_size, flip):
    out = tf.image.resize(tf.cast(patch, tf.float32), as_hw(output_size),
                          method="bilinear")
    return tf.cond(tf.convert_to_tensor(flip), lambda: tf.reverse(out, axis=[1]),
                   lambda: out)


def five_crop(image, position, side_h, side_w, *, output_size: Size = 224,
              resize_size: Size = 256, flip=False):
    """Patch ``position`` (index into POSITIONS) of side side_h x side_w of a
    decoded ``image`` as if resized to ``resize_size``, resampled to
    ``output_size``, flipped horizontally when ``flip``. float32 output in
    [0, 255]."""
    shape = tf.shape(image)
    y, x, h, w = five_crop_window(shape[0], shape[1], position, side_h, side_w,
                                  resize_size)
    return _finish(image[y:y + h, x:x + w], output_size, flip)


def five_crop_encoded(encoded, height, width, position, side_h, side_w, *,
                      output_size: Size = 224, resize_size: Size = 256,
                      flip=False):
    """``five_crop`` on encoded bytes of a height x width image; a JPEG is
    decoded only inside the patch's window."""
    y, x, h, w = five_crop_window(height, width, position, side_h, side_w,
                                  resize_size)
    patch = tf.cond(
        tf.io.is_jpeg(encoded),
        lambda: tf.image.decode_and_crop_jpeg(encoded, tf.stack([y, x, h, w]),
                                              channels=3),
        lambda: decode(encoded)[y:y + h, x:x + w])
    patch.set_shape([None, None, 3])
    return _finish(patch, output_size, flip)


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
    _check_sizes(resize_size, crop_sizes)
    position, side_h, side_w, do_flip = draw_five_crop(seed, tuple(crop_sizes),
                                                       max_distort)
    return five_crop(image, position, side_h, side_w, output_size=output_size,
                     resize_size=resize_size,
                     flip=tf.logical_and(do_flip, flip))


def random_five_crop_encoded(encoded, height, width, seed, *,
                             output_size: Size = 224,
                             resize_size: Size = 256,
                             crop_sizes: Sequence[int] = CROP_SIZES,
                             max_distort: int = 0,
                             flip: bool = True):
    """``random_five_crop`` from encoded bytes and the image's stored height
    and width (what the input pipeline uses): same draws, same patch, but a
    JPEG is decoded only inside the patch."""
    _check_sizes(resize_size, crop_sizes)
    position, side_h, side_w, do_flip = draw_five_crop(seed, tuple(crop_sizes),
                                                       max_distort)
    return five_crop_encoded(encoded, height, width, position, side_h, side_w,
                             output_size=output_size, resize_size=resize_size,
                             flip=tf.logical_and(do_flip, flip))


def _check_sizes(resize_size, crop_sizes):
    base_h, base_w = as_hw(resize_size)
    if max(crop_sizes) > min(base_h, base_w):
        raise ValueError(f"crop sizes {tuple(crop_sizes)} exceed the resized "
                         f"image {base_h}x{base_w}")


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
