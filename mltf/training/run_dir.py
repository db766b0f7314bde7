"""The run folder: what a run writes, and whether a folder holds a new,
interrupted or finished run."""

import os
import shutil

# What a run writes; --overwrite removes exactly these, nothing else.
RUN_FILES = ("metrics.json", "model.keras", "training_log.csv", "operative_config.gin",
             "pretrained.keras", "pretrain_log.csv", "set_scorer.keras", "set_decoding.npz")
RUN_DIRS = ("checkpoints", "tensorboard")


def prepare_run_dir(model_dir: str, overwrite: bool) -> str:
    """``"new"``, ``"resume"`` (an interrupted run left a backup) or
    ``"overwrite"``; raises FileExistsError for a finished run without
    ``overwrite``."""
    if os.path.isdir(os.path.join(model_dir, "backup")):
        return "resume"
    finished = [n for n in RUN_FILES + RUN_DIRS if os.path.exists(os.path.join(model_dir, n))]
    if not finished:
        return "new"
    if not overwrite:
        raise FileExistsError(
            f"{model_dir} already holds a run ({', '.join(finished)}); pass "
            "--overwrite to replace it or choose another --model_dir")
    for name in finished:
        path = os.path.join(model_dir, name)
        shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
    return "overwrite"
