"""tf.data input pipelines for mltf datasets (see ``pipelines.input``)."""

from pipelines import config  # noqa: F401  (registers gin bindings)
from pipelines.augment import CROP_SIZES, eval_resize, random_five_crop
from pipelines.input import (InputConfig, distributed_dataset, make_dataset,
                             model_input, steps_per_epoch)
from pipelines.preprocessing import preprocess
from pipelines.config import input_configs

__all__ = ["CROP_SIZES", "InputConfig", "distributed_dataset", "eval_resize", "input_configs",
           "make_dataset", "model_input", "preprocess", "random_five_crop", "steps_per_epoch"]
