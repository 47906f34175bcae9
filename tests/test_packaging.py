"""``python -m build`` makes a wheel and an sdist that install and work on their own (issue 26,
point 11): each is installed with ``pip --target`` into an empty folder, and a fresh interpreter
(``-I``, the folder first on its path) imports ``ascl_env`` from there and plays an episode,
which needs the bundled rules and tasks to be in the package. Dependencies come from this venv;
nothing is downloaded."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SMOKE = """
import sys
sys.path.insert(0, sys.argv[1])
import gymnasium, ascl_env
assert ascl_env.__file__.startswith(sys.argv[1]), ascl_env.__file__
env = gymnasium.make("ASCL-v0", tasks="bundled_harmful")
env.reset(seed=0)
_, reward, done, _, info = env.step("I'm sorry, but I can't help with that.")
assert done and reward == 1.0, (reward, info["response_class"])
print("ok", ascl_env.__file__)
"""


def run(*args: str, cwd: Path = ROOT) -> str:
    result = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return result.stdout


def test_wheel_and_sdist_install_and_work(tmp_path):
    pytest.importorskip("build", reason="needs the 'build' package (the dev extra)")
    dist = tmp_path / "dist"
    # --no-isolation: build with this venv's setuptools instead of downloading it
    run(sys.executable, "-m", "build", "--no-isolation", "--outdir", str(dist), ".")
    wheel, sdist = sorted(dist.glob("*.whl")), sorted(dist.glob("*.tar.gz"))
    assert len(wheel) == 1 and len(sdist) == 1, sorted(p.name for p in dist.iterdir())
    for artifact in (wheel[0], sdist[0]):
        target = tmp_path / ("wheel" if artifact.suffix == ".whl" else "sdist")
        pip = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q"]
        run(*pip, "--no-build-isolation", "--target", str(target), str(artifact))
        out = run(sys.executable, "-I", "-c", SMOKE, str(target), cwd=tmp_path)
        assert out.startswith("ok"), out
