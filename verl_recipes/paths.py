"""Absolute paths of the YAML files shipped in ``verl_recipes/config``.

verl resolves ``agent_loop_config_path`` against the working directory and then its own install
folder, never against another package, so pass an absolute path:

    actor_rollout_ref.rollout.agent.agent_loop_config_path=$(
        python -m verl_recipes.paths agent_loops)
"""

from __future__ import annotations

import argparse
from importlib.resources import files
from pathlib import Path

SHIPPED = {
    "agent_loops": "agent_loops.yaml",
    "config_dir": "",
}


def shipped_path(name: str) -> Path:
    """Absolute path of a shipped file: ``agent_loops`` or ``config_dir``."""
    if name not in SHIPPED:
        raise KeyError(f"unknown shipped file {name!r}; choose from {sorted(SHIPPED)}")
    path = Path(str(files("verl_recipes.config"))).resolve()
    return path / SHIPPED[name] if SHIPPED[name] else path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m verl_recipes.paths", description=__doc__)
    parser.add_argument("name", choices=sorted(SHIPPED))
    print(shipped_path(parser.parse_args(argv).name))


if __name__ == "__main__":
    main()
