"""The tree passes ruff (configured in pyproject.toml): unused imports and
names, undefined names, line length and whitespace."""

import os
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _ruff():
    exe = shutil.which("ruff", path=os.path.dirname(sys.executable)) or shutil.which("ruff")
    assert exe, "ruff is missing: install the test extra (pip install -e '.[cpu,test]')"
    return exe


def test_ruff_passes_on_the_tree():
    proc = subprocess.run([_ruff(), "check", "--output-format", "concise", "."], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_ruff_would_fail_on_a_defect(tmp_path):
    """The check can fail: an unused import in a file under the same config."""
    bad = tmp_path / "bad.py"
    bad.write_text("import os\n")
    proc = subprocess.run([_ruff(), "check", "--config", os.path.join(ROOT, "pyproject.toml"),
                           str(bad)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and "F401" in proc.stdout
