"""Five-crop geometry and preprocessing, eagerly and inside tf.data.map."""

import numpy as np
import pytest
import tensorflow as tf
import keras

import mltf.backbones  # noqa: F401  (backbone names as preprocessing modes)
from pipelines import augment, preprocessing


def coordinate_image(size=256):
    """Channel 0 holds the row, channel 1 the column: a crop reveals where it
    was taken."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    return np.stack([yy, xx, np.zeros_like(yy)], -1)


def expected_offset(position, side, base=256):
    # Hand-written for the five positions of the papers' recipe.
    d = base - side
    return {0: (0, 0), 1: (0, d), 2: (d, 0), 3: (d, d), 4: (d // 2, d // 2)}[position]


def _map_once(fn, image):
    ds = tf.data.Dataset.from_tensors(image).map(fn)
    return next(iter(ds)).numpy()


@pytest.mark.parametrize("in_dataset", [False, True])
@pytest.mark.parametrize("side", augment.CROP_SIZES)
def test_five_crop_geometry_exact_pixels(side, in_dataset):
    image = coordinate_image()
    for position in range(5):
        def fn(img):
            return augment.five_crop(img, position, side, side, output_size=side)
        out = _map_once(fn, image) if in_dataset else fn(image).numpy()
        y0, x0 = expected_offset(position, side)
        np.testing.assert_allclose(out, image[y0:y0 + side, x0:x0 + side], atol=1e-3)


@pytest.mark.parametrize("in_dataset", [False, True])
def test_five_crop_matches_two_step_recipe_on_large_image(in_dataset):
    # On a linear ramp bilinear resampling is exact, so the one-step crop must
    # equal the papers' resize-256 / crop / resize wherever no border
    # clamping happens (the interior of the patch). 512x768 keeps every
    # window on whole pixels.
    h, w = 512, 768
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    image = np.stack([yy * 0.5, xx * 0.3, yy * 0.1 + xx * 0.2], -1)
    for position, side in [(0, 128), (3, 192), (4, 168), (1, 224), (2, 256)]:
        def fn(img):
            return augment.five_crop(img, position, side, side, output_size=64)
        out = _map_once(fn, image) if in_dataset else fn(image).numpy()
        base = tf.image.resize(image, (256, 256)).numpy()
        y0, x0 = expected_offset(position, side)
        ref = tf.image.resize(base[y0:y0 + side, x0:x0 + side], (64, 64)).numpy()
        np.testing.assert_allclose(out[3:-3, 3:-3], ref[3:-3, 3:-3], atol=0.02)


def test_window_on_odd_sizes_stays_inside_the_image():
    for height, width in [(17, 23), (300, 41), (256, 256), (1, 5)]:
        for position in range(5):
            for side in augment.CROP_SIZES:
                y, x, h, w = [int(v) for v in augment.five_crop_window(
                    height, width, position, side, side)]
                assert 0 <= y and y + h <= height and h >= 1
                assert 0 <= x and x + w <= width and w >= 1
                # The window's share of the image is the patch's share of 256.
                assert abs(h / height - side / 256) <= 1 / height + 1e-6
                assert abs(w / width - side / 256) <= 1 / width + 1e-6


@pytest.mark.parametrize("in_dataset", [False, True])
@pytest.mark.parametrize("fmt", ["jpeg", "png"])
def test_encoded_path_equals_decoded_path(fmt, in_dataset):
    # The pipeline decodes only the patch of a JPEG; it must give the patch of
    # the fully decoded image.
    image = np.random.default_rng(2).integers(0, 255, (90, 120, 3)).astype(np.uint8)
    encoded = (tf.io.encode_jpeg(image) if fmt == "jpeg" else tf.io.encode_png(image))
    decoded = tf.io.decode_image(encoded, channels=3).numpy()
    for i in range(6):
        seed = tf.constant([9, i], tf.int64)

        def fn(data):
            return augment.random_five_crop_encoded(data, 90, 120, seed, output_size=40)
        out = _map_once(fn, encoded) if in_dataset else fn(encoded).numpy()
        ref = augment.random_five_crop(decoded, seed, output_size=40).numpy()
        diff = np.abs(out - ref)
        if fmt == "png":
            np.testing.assert_allclose(out, ref, atol=1e-3)
        else:
            # libjpeg upsamples chroma differently along a window's edge when
            # decoding part of an image: a few pixels there may differ.
            assert diff.mean() < 0.1 and (diff > 1e-3).mean() < 0.05


def test_flip_reverses_columns():
    image = coordinate_image(32)
    out = augment.five_crop(image, 4, 16, 16, output_size=16, resize_size=32, flip=True).numpy()
    np.testing.assert_allclose(out[:, :, 1], image[8:24, 8:24, 1][:, ::-1], atol=1e-3)


def test_random_draws_cover_positions_sizes_and_flips():
    seen_pos, seen_side, flips = set(), set(), 0
    n = 400
    for i in range(n):
        pos, sh, sw, flip = augment.draw_five_crop(tf.constant([7, i]))
        assert float(sh) == float(sw)  # square by default
        seen_pos.add(int(pos))
        seen_side.add(int(sh))
        flips += int(flip)
    assert seen_pos == {0, 1, 2, 3, 4}
    assert seen_side == set(augment.CROP_SIZES)
    assert 0.4 < flips / n < 0.6


def test_max_distort_allows_neighbouring_sides_only():
    sizes = augment.CROP_SIZES
    seen = set()
    for i in range(300):
        _, sh, sw, _ = augment.draw_five_crop(tf.constant([1, i]), sizes, max_distort=1)
        ih, iw = sizes.index(int(sh)), sizes.index(int(sw))
        assert abs(ih - iw) <= 1
        seen.add((ih, iw))
    assert any(a != b for a, b in seen)


@pytest.mark.parametrize("in_dataset", [False, True])
def test_random_five_crop_is_a_five_crop_and_reproducible(in_dataset):
    image = coordinate_image()
    seed = tf.constant([3, 11], tf.int64)

    def fn(img):
        return augment.random_five_crop(img, seed, output_size=32)
    out = _map_once(fn, image) if in_dataset else fn(image).numpy()
    pos, sh, sw, flip = augment.draw_five_crop(seed)
    ref = augment.five_crop(image, pos, sh, sw, output_size=32, flip=flip).numpy()
    np.testing.assert_allclose(out, ref, atol=1e-4)
    assert out.shape == (32, 32, 3) and out.dtype == np.float32
    np.testing.assert_array_equal(out, fn(image).numpy())


@pytest.mark.parametrize("in_dataset", [False, True])
def test_eval_resize(in_dataset):
    image = np.random.default_rng(0).integers(0, 255, (40, 30, 3)).astype(np.uint8)

    def fn(img):
        return augment.eval_resize(img, (20, 24))
    out = _map_once(fn, image) if in_dataset else fn(image).numpy()
    ref = tf.image.resize(tf.cast(image, tf.float32), (20, 24)).numpy()
    np.testing.assert_allclose(out, ref, atol=1e-4)


def test_crop_larger_than_resize_is_rejected():
    with pytest.raises(ValueError, match="exceed"):
        augment.random_five_crop(coordinate_image(64), tf.constant([0, 0]),
                                 resize_size=128, crop_sizes=(256,))


@pytest.mark.parametrize("mode,reference", [
    ("vgg16", keras.applications.vgg16.preprocess_input),
    ("resnet101", keras.applications.resnet.preprocess_input),
    ("inception_v3", keras.applications.inception_v3.preprocess_input),
    ("torch", keras.applications.densenet.preprocess_input),
])
@pytest.mark.parametrize("in_dataset", [False, True])
def test_preprocessing_matches_keras_applications(mode, reference, in_dataset):
    images = np.random.default_rng(1).uniform(0, 255, (2, 5, 6, 3)).astype(np.float32)

    def fn(x):
        return preprocessing.preprocess(x, mode)
    out = _map_once(fn, images) if in_dataset else fn(images).numpy()
    np.testing.assert_allclose(out, reference(images.copy()), rtol=1e-5, atol=1e-4)


def test_preprocessing_unit_none_and_unknown():
    x = np.full((1, 2, 2, 3), 255.0, np.float32)
    np.testing.assert_allclose(preprocessing.preprocess(x, "unit"), 1.0)
    np.testing.assert_allclose(preprocessing.preprocess(x, "mobilenet_v3_small"), 255.0)
    with pytest.raises(ValueError, match="unknown preprocessing 'vgg61'"):
        preprocessing.preprocess(x, "vgg61")


def test_keras_preprocessing_layer_inside_tf_data():
    layer = keras.layers.RandomFlip("horizontal", seed=1)
    batch = np.random.default_rng(0).uniform(0, 255, (4, 8, 8, 3)).astype(np.float32)
    ds = tf.data.Dataset.from_tensors(batch).map(lambda b: augment.apply_layers(b, [layer]))
    out = next(iter(ds)).numpy()
    assert out.shape == batch.shape
    for i in range(4):  # each image is itself or its mirror
        assert (np.allclose(out[i], batch[i]) or np.allclose(out[i], batch[i, :, ::-1]))
