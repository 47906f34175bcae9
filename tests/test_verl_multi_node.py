"""``train_multi_node.sh`` on a two-node Ray cluster, on one machine (slow).

Two raylets on this machine form the cluster (``ray start --head`` and ``ray start --address``,
each with 8 CPUs and one fake GPU, token auth off so a stray ``~/.ray/auth_token`` does not
split them). ``smoke_cpu.sh`` with ``ASCL_SMOKE_NNODES=2`` then runs ``main_ppo`` through
``train_multi_node.sh`` with ``trainer.nnodes=2``, from a working directory of its own, so every
path the workers use must be absolute. The test asserts that the run trained and validated and
that both nodes hosted an FSDP worker and a rollout server (read from Ray's actor table).

Measured on the shared 2-core machine: 1 min 52 s for the smoke with a warm-started model
(``ASCL_SMOKE_MODEL``; ``main_ppo`` 109 s), plus 35-160 s for the warm start and about 40 s to
start the two raylets. Only the processes this test started are
stopped (by pid; never ``ray stop``, which would end every Ray cluster on the machine).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import pytest

pytest.importorskip("verl")
pytest.importorskip("transfer_queue")
ray = pytest.importorskip("ray")

from verl_recipes.cpu.report import read_steps, read_validations  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "verl_recipes" / "scripts" / "smoke_cpu.sh"
RAY = Path(sys.executable).with_name("ray")
TIMEOUT_S = 1800

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _our_pids(marker: str) -> list[int]:
    """Processes of this cluster: those naming its temp dir, and their children (Ray's agents
    and idle workers rename themselves ``ray::...``)."""
    out = subprocess.run(
        ["ps", "-ww", "-eo", "pid=,ppid=,args="], capture_output=True, text=True
    ).stdout
    rows = [line.split(None, 2) for line in out.splitlines() if line.strip()]
    ours = {int(pid) for pid, _, args in rows if marker in args}
    children = {int(pid) for pid, ppid, _ in rows if int(ppid) in ours}
    return sorted((ours | children) - {os.getpid()})


@pytest.fixture(scope="module")
def cluster():
    # A short path: Ray's socket paths must stay under 107 characters.
    temp_dir = tempfile.mkdtemp(prefix="ascl-ray-", dir="/tmp")
    port = _free_port()
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
    common = ["--num-cpus=8", "--num-gpus=1", "--disable-usage-stats"]
    head = [
        str(RAY),
        "start",
        "--head",
        f"--port={port}",
        f"--temp-dir={temp_dir}",
        "--include-dashboard=false",
        *common,
    ]
    subprocess.run(head, env=env, check=True, capture_output=True, timeout=300)
    try:
        worker = [str(RAY), "start", f"--address=127.0.0.1:{port}", *common]
        subprocess.run(worker, env=env, check=True, capture_output=True, timeout=300)
        yield f"127.0.0.1:{port}", env
    finally:
        # Every process of this cluster has the temp dir (its session folder) in its arguments.
        # (raylets ignore SIGTERM for a while; nothing of this cluster needs a clean exit).
        for pid in _our_pids(temp_dir):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _actors_by_class(address: str, env: dict) -> dict[str, set[str]]:
    code = (
        "import json, ray\n"
        f"ray.init(address={address!r}, logging_level='ERROR')\n"
        "print(json.dumps([[a['ActorClassName'], a['Address']['NodeID']] "
        "for a in ray._private.state.actors().values()]))\n"
        "print(json.dumps([n['NodeID'] for n in ray.nodes() if n['Alive']]))\n"
    )
    out = (
        subprocess.run(
            [sys.executable, "-c", code],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        .stdout.strip()
        .splitlines()
    )
    import json

    nodes = defaultdict(set)
    for name, node in json.loads(out[-2]):
        nodes[name.rsplit(".", 1)[-1]].add(node)
    nodes["__alive__"] = set(json.loads(out[-1]))
    return nodes


def test_smoke_through_the_multi_node_script_on_two_ray_nodes(cluster, tmp_path):
    address, env = cluster
    work, cwd = tmp_path / "work", tmp_path / "elsewhere"
    cwd.mkdir()
    env = {
        **env,
        "RAY_ADDRESS": address,
        "PYTHON": sys.executable,
        "ASCL_SMOKE_DIR": str(work),
        "ASCL_SMOKE_NNODES": "2",
        "ASCL_SMOKE_N": "3",  # ASCL_SMOKE_MODEL, if set, skips the warm start
        "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
    }
    start = time.monotonic()
    process = subprocess.Popen(
        ["bash", str(SMOKE)],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = process.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
    (tmp_path / "smoke.log").write_text(output)
    assert process.returncode == 0, output[-4000:]
    print(f"two-node smoke: {time.monotonic() - start:.0f} s")
    assert "2 node(s), via train_multi_node.sh" in output
    assert [int(s["training/global_step"]) for s in read_steps(work / "metrics.jsonl")] == [1, 2]
    assert read_validations(work / "metrics.jsonl")
    actors = _actors_by_class(address, env)
    assert len(actors["__alive__"]) == 2
    # One FSDP rank and one rollout replica per node.
    assert actors["WorkerDict"] == actors["__alive__"], actors
    assert actors["HFServer"] == actors["__alive__"], actors
