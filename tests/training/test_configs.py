"""Every file in configs/ parses, states how to run it, and builds its inputs."""

import glob
import os
import re
import subprocess
import sys

import gin
import pytest

import pipelines
import mltf.train  # noqa: F401  (registers mltf.train, keras optimizers for gin)
import mltf.backbones  # noqa: F401
import mltf.wgan  # noqa: F401
import mltf.retdm  # noqa: F401  (registers mltf.build_retdm for gin)
from conftest import ROOT, write_image
from mltf.data import writer
from mltf.data.sources import Item, SourceData

CONFIGS = sorted(glob.glob(os.path.join(ROOT, "configs", "*.gin")))


def test_there_are_configs():
    assert len(CONFIGS) >= 3


@pytest.mark.parametrize("path", CONFIGS, ids=os.path.basename)
def test_config_parses_and_builds_input_configs(path, monkeypatch):
    monkeypatch.chdir(ROOT)  # includes are relative to the project root
    gin.clear_config()
    try:
        # Base files leave the dataset to the including config.
        gin.parse_config_files_and_bindings(
            [path], [] if re.search(r"^[\w/.]*InputConfig\.data_dir\s*=",
                                    open(path).read(), re.M)
            else ['pipelines.InputConfig.data_dir = "unused"'])
        train, evaluation = pipelines.input_configs()
    finally:
        gin.clear_config()
    if "on its own" in open(path).read().split("\n\n")[0]:
        return  # a fragment other configs include: parsing is the check
    assert train.training and not evaluation.training
    assert train.split != evaluation.split
    assert max(train.crop_sizes) <= min(pipelines.augment.as_hw(train.resize_size))


@pytest.mark.parametrize("path", CONFIGS, ids=os.path.basename)
def test_config_header_says_how_to_run_it(path):
    lines = open(path).read().splitlines()
    header = []
    for line in lines:
        if not line.startswith("#"):
            break
        header.append(line)
    text = "\n".join(header)
    assert header and "# Run:" in text and "# Expect:" in text


def test_a_typo_in_a_config_names_it(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    bad = tmp_path / "bad.gin"
    bad.write_text('include "configs/base_input.gin"\npipelines.InputConfig.imag_size = 32\n')
    gin.clear_config()
    try:
        with pytest.raises(ValueError, match="imag_size"):
            gin.parse_config_files_and_bindings([str(bad)], [])
    finally:
        gin.clear_config()


def test_show_runs_the_demo_config(tmp_path):
    items = []
    for i in range(12):
        write_image(tmp_path / "img" / f"{i}.png", 64, 64, seed=i)
        items.append(Item(f"{i}.png", [i % 3], path=str(tmp_path / "img" / f"{i}.png")))
    writer.write_dataset(SourceData(["a", "b", "c"], {"train": items[:8], "val": items[8:]}),
                         str(tmp_path / "ds"), progress=False)
    proc = subprocess.run(
        [sys.executable, "-m", "pipelines.show", "--config=configs/demo_input.gin",
         f"--gin_bindings=pipelines.InputConfig.data_dir='{tmp_path / 'ds'}'",
         "--gin_bindings=pipelines.InputConfig.batch_size=4", "--batches=3",
         f"--save_grid={tmp_path / 'grid.png'}"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert proc.returncode == 0, proc.stderr
    assert "shape=(4, 56, 56, 3)" in proc.stdout and "images/s" in proc.stdout
    assert (tmp_path / "grid.png").stat().st_size > 0


def test_ci_runs_the_readme_commands():
    """.ci/run must run the quick start's two commands verbatim."""
    readme = open(os.path.join(ROOT, "README.md")).read()
    block = readme.split("## Quick start", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    commands = [line.strip() for line in block.strip().splitlines() if line.strip()]
    assert len(commands) == 2
    ci = open(os.path.join(ROOT, ".ci", "run")).read().splitlines()
    for command in commands:
        assert command in [line.strip() for line in ci], command
