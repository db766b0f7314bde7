"""Shared test fixtures: tiny deterministic images and datasets in tmp_path."""

import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# mltf.train's final figures cost 1-2 s a run (mltf.training.trainer.FIGURES_ENV);
# the tests that check them turn them back on.
os.environ.setdefault("MLTF_FINAL_FIGURES", "0")

import gin  # noqa: E402
from absl import flags  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from mltf.core import distribute  # noqa: E402

# Two logical CPU devices for the tf.distribute tests; must precede any op.
distribute.logical_cpus(2)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_DATA = os.path.normpath(os.path.join(
    os.path.dirname(__file__), "..", "..", "shared", "data"))


def benchmark_snippet(snippet, *args):
    """Runs ``snippet`` in a fresh Python from ``benchmarks/``, as its scripts
    run (their absl flags stay out of the test process); the JSON of its
    last printed line."""
    import subprocess
    import sys
    proc = subprocess.run([sys.executable, "-c", snippet, *args],
                          cwd=os.path.join(ROOT, "benchmarks"), capture_output=True, text=True,
                          timeout=300,
                          env=dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


_STRATEGIES = {}


def mirrored_strategy(num_devices):
    """One shared MirroredStrategy per device count: separate instances in one
    process reuse collective instance keys and abort each other's all-reduce."""
    if num_devices not in _STRATEGIES:
        devices = [d.name for d in tf.config.list_logical_devices("CPU")][:num_devices]
        assert len(devices) == num_devices
        _STRATEGIES[num_devices] = tf.distribute.MirroredStrategy(devices)
    return _STRATEGIES[num_devices]


def image_array(height, width, seed=0):
    """A deterministic uint8 RGB image with some structure."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack([(yy * 255 // max(height - 1, 1)),
                     (xx * 255 // max(width - 1, 1)),
                     np.full_like(yy, (seed * 37) % 256)], axis=-1)
    noise = rng.integers(0, 20, size=base.shape)
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def write_image(path, height=20, width=24, seed=0, fmt=None):
    """Writes a small JPEG (or PNG if the name ends in .png) and returns it."""
    os.makedirs(os.path.dirname(str(path)) or ".", exist_ok=True)
    array = image_array(height, width, seed)
    fmt = fmt or ("png" if str(path).endswith(".png") else "jpeg")
    data = (tf.io.encode_png(array) if fmt == "png"
            else tf.io.encode_jpeg(array, quality=95)).numpy()
    with open(path, "wb") as f:
        f.write(data)
    return array


def write_corrupt(path, kind="garbage"):
    """A file that is not a decodable image: ``garbage`` bytes or a
    ``truncated`` JPEG."""
    os.makedirs(os.path.dirname(str(path)) or ".", exist_ok=True)
    if kind == "truncated":
        data = tf.io.encode_jpeg(image_array(32, 32, 5)).numpy()
        data = data[: len(data) // 2]
    else:
        data = b"this is not an image\n" * 10
    with open(path, "wb") as f:
        f.write(data)


def read_records(data_dir, split):
    """All records of a split as dicts of numpy values, in file order."""
    from mltf.data import schema
    info = schema.read_info(str(data_dir))
    spec = schema.feature_spec(info.kind, info.feature_dim)
    out = []
    for shard in info.split(split).shards:
        for raw in tf.data.TFRecordDataset(os.path.join(str(data_dir), shard)):
            ex = tf.io.parse_single_example(raw, spec)
            rec = {"id": ex[schema.KEY_ID].numpy().decode(),
                   "labels": sorted(tf.sparse.to_dense(ex[schema.KEY_LABELS]).numpy().tolist())}
            if info.kind == schema.KIND_IMAGE:
                rec["encoded"] = ex[schema.KEY_IMAGE].numpy()
                rec["height"] = int(ex[schema.KEY_HEIGHT])
                rec["width"] = int(ex[schema.KEY_WIDTH])
            else:
                rec["features"] = ex[schema.KEY_FEATURES].numpy()
            out.append(rec)
    return info, out


def write_split_images(data_dir, split, folder):
    """(the records of a split, their images written as files in ``folder``
    under their ids, in record order)."""
    _, records = read_records(data_dir, split)
    files = []
    for r in records:
        path = folder / r["id"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(r["encoded"])
        files.append(str(path))
    return records, files


@pytest.fixture
def shared_data():
    """Path of ../shared/data; skips the test when it is absent."""
    if not os.path.isdir(SHARED_DATA):
        pytest.skip(f"{SHARED_DATA} is absent (real datasets are only beside "
                    "the project's own checkout, not in a fresh clone)")
    return SHARED_DATA


# --- tiny training runs --------------------------------------------------------


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    """A tiny demo dataset (96 train, 40 val images of 32 px, 2 shards)."""
    from mltf.data import sources, writer
    from mltf.data.sources import SourceOptions
    out = tmp_path_factory.mktemp("demo") / "ds"
    data = sources.load("demo", SourceOptions(demo_num_train=96, demo_num_val=40,
                                              demo_image_size=32, seed=3))
    writer.write_dataset(data, str(out), num_shards=2, progress=False)
    return str(out)


def tiny_bindings(data_dir, **extra):
    """Gin bindings of a small, fast image run on ``data_dir`` (plus ``extra``)."""
    bindings = [f"pipelines.InputConfig.data_dir = '{data_dir}'",
                "pipelines.InputConfig.image_size = 24",
                "pipelines.InputConfig.resize_size = 32",
                "pipelines.InputConfig.crop_sizes = (32, 24)",
                "pipelines.InputConfig.batch_size = 8",
                "mltf.build_backbone.widths = (8, 16)",
                "mltf.train.epochs = 2",
                # configs/demo.gin decodes label sets; the tests that need it
                # bind it back on.
                "mltf.train.set_decoding = False"]
    bindings += [f"{k} = {v}" for k, v in extra.items()]
    return bindings


def run_main(module, argv, capsys):
    """Runs ``module.main`` in-process with fresh flags; (code, out, err)."""
    fv = flags.FlagValues()
    module.define_flags(fv)
    rest = fv(["prog"] + list(argv))
    capsys.readouterr()
    code = module.main(rest, fv)
    out, err = capsys.readouterr()
    return code, out, err


def train_in_process(config, model_dir, bindings):
    """``mltf.train.train`` in this process on ``configs/<config>`` plus
    ``bindings``; gin cleared before and after."""
    from mltf import train
    from mltf.training import gin_setup
    gin_setup.register_all()
    gin.clear_config()
    try:
        gin.parse_config_files_and_bindings([os.path.join(ROOT, "configs", config)],
                                            bindings)
        return train.train(str(model_dir))
    finally:
        gin.clear_config()


# --- a tiny COCO tree ----------------------------------------------------------

# Listed out of id order on purpose: COCO order is by category id.
COCO_CATEGORIES = [{"id": 7, "name": "toaster", "supercategory": "appliance"},
                   {"id": 1, "name": "person", "supercategory": "person"},
                   {"id": 3, "name": "car", "supercategory": "vehicle"}]


def write_text(folder, name, text):
    """Writes ``text`` to ``folder/name`` (a small ARFF or label file); returns the path."""
    path = folder / name
    path.write_text(text)
    return str(path)


def load_arff(**options):
    """The arff source's result for these ``arff_source.Options``."""
    from mltf.data.sources import arff_source
    return arff_source.load(arff_source.Options(**options))


def coco_json(path, images, annotations, categories=COCO_CATEGORIES):
    """images: [(id, file_name)], annotations: [(image_id, category_id, crowd)]."""
    dataset = {
        "info": {"description": "fake"}, "licenses": [],
        "images": [{"id": i, "file_name": f, "height": 20, "width": 24}
                   for i, f in images],
        "annotations": [{"id": n + 1, "image_id": i, "category_id": c,
                         "iscrowd": crowd, "area": 10.0,
                         "bbox": [1.0, 1.0, 4.0, 4.0], "segmentation": []}
                        for n, (i, c, crowd) in enumerate(annotations)],
        "categories": categories,
    }
    os.makedirs(os.path.dirname(str(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(dataset, f)


def coco_tree(root, year="2014"):
    """A tiny COCO tree under ``root`` (train: a, b, c, d.jpg; val: v1, v2.jpg); returns it."""
    train = [(10, "a.jpg"), (5, "b.jpg"), (20, "c.jpg"), (30, "d.jpg")]
    val = [(1, "v1.jpg"), (2, "v2.jpg")]
    for seed, (_, name) in enumerate(train):
        write_image(root / f"train{year}" / name, 16, 20, seed=seed)
    for seed, (_, name) in enumerate(val):
        write_image(root / f"val{year}" / name, 20, 16, seed=10 + seed)
    # a.jpg: person twice + toaster; b.jpg: car; c.jpg: nothing;
    # d.jpg: a crowd toaster (crowd annotations count).
    coco_json(root / "annotations" / f"instances_train{year}.json", train,
               [(10, 1, 0), (10, 7, 0), (10, 1, 0), (5, 3, 0), (30, 7, 1)])
    coco_json(root / "annotations" / f"instances_val{year}.json", val,
               [(1, 3, 0)])
    return root


# --- tiny feature models ---------------------------------------------------------


def tiny_features(n, num_labels, seed=0):
    """``n`` feature vectors of 6 and multi-hot labels (about 40% on)."""
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, 6)).astype("float32"),
            (rng.random((n, num_labels)) < 0.4).astype("float32"))


def tiny_classifier(num_labels, activation=None, **kwargs):
    """A built ``MultiLabelClassifier`` on a one-Dense(5) backbone over 6
    features (seeded); ``kwargs`` go to the classifier."""
    import keras
    from mltf import models
    keras.utils.set_random_seed(0)
    inputs = keras.Input((6,))
    backbone = keras.Model(inputs, keras.layers.Dense(5, activation=activation, name="d")(inputs),
                           name="bb")
    model = models.MultiLabelClassifier(backbone, num_labels, **kwargs)
    model.build((None, 6))
    return model


def tiny_wgan(generator, n_critic, optimizer, **kwargs):
    """A compiled WGAN-gp model around ``generator`` with a 4-wide critic of
    depth 1; ``optimizer()`` makes each of the two optimizers."""
    from mltf.methods import wgan_gp
    critic = wgan_gp.LabelCritic(generator.num_labels, projection_dim=4, hidden_dim=4, depth=1)
    model = wgan_gp.WGANGPClassifier(generator, critic, wgan_gp.frozen_copy(generator.backbone),
                                     n_critic=n_critic, **kwargs)
    model.build((None, 6))
    model.compile(critic_optimizer=optimizer(), generator_optimizer=optimizer())
    return model


def bound_parameters(config, *names):
    """The values ``configs/<config>`` binds to gin ``names``."""
    from mltf.training import gin_setup
    gin_setup.register_all()
    gin.clear_config()
    cwd = os.getcwd()
    os.chdir(ROOT)  # includes are relative to the project root
    try:
        gin.parse_config_files_and_bindings([os.path.join("configs", config)], [])
        return tuple(gin.query_parameter(name) for name in names)
    finally:
        os.chdir(cwd)
        gin.clear_config()
