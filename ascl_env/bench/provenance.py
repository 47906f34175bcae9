"""What a run was made with: package versions, git revision, model and judge identity.

:func:`collect` gathers it at the start of every invocation; ``run.json`` keeps the first
invocation's under ``"provenance"`` and each invocation's own copy in its entry. On resume,
:func:`comparable` decides what must match (see ``docs/harness.md``):

* compared: the run configuration (agent spec with the endpoint URL left out, task selection,
  seed, environment and generation settings, the plan fingerprint), the model identity the agent
  reports (path, config/weights/tokenizer/chat-template hashes, dtype; for an endpoint the served
  model name and tool mode) and the judge (kind, model, StrongREJECT, source hash);
* recorded only: package versions, git revision, Python and platform, threads, device, the
  agent's and the judge's endpoint URLs and their timeouts and retries.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

PACKAGES = (
    "ascl-env",
    "torch",
    "transformers",
    "tokenizers",
    "vllm",
    "gymnasium",
    "bm25s",
    "numpy",
    "httpx",
    "pydantic",
)
"""Distributions whose versions are recorded when installed."""

COMPARED = ("model", "judge")
"""Provenance keys that must match on resume (besides the run configuration)."""

# Environment settings that say where/how patiently the judge is reached, not what it judges.
_JUDGE_TRANSPORT = (
    "llm_judge_url",
    "llm_judge_api_key_env",
    "llm_judge_timeout",
    "llm_judge_max_retries",
    "llm_judge_deadline",
)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_text(text: str) -> str:
    return sha256_bytes(text.encode("utf-8"))


def sha256_json(value: Any) -> str:
    return sha256_text(json.dumps(value, sort_keys=True, ensure_ascii=False))


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str]:
    """Installed versions of ``names`` (those not installed are left out)."""
    out: dict[str, str] = {}
    for name in names:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


def git_revision(path: str | os.PathLike | None = None) -> dict[str, Any] | None:
    """``{"commit", "dirty"}`` of the git checkout holding ``path`` (the package by default);
    ``None`` outside a checkout or without git."""
    where = Path(path) if path is not None else Path(__file__).resolve().parents[2]

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(where), *args],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "dirty": dirty}


def threads() -> dict[str, Any]:
    """CPU threads: torch's (when torch is already imported), the OMP setting, the CPU count."""
    torch = sys.modules.get("torch")
    return {
        "torch": torch.get_num_threads() if torch is not None else None,
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "cpu_count": os.cpu_count(),
    }


def judge_identity(env_kwargs: Mapping[str, Any] | None) -> dict[str, Any]:
    """The judges' configuration of ``env_kwargs`` and hashes of what decides their verdicts.

    ``kind`` is the refusal judge; ``source_sha256`` the judges' source files (the keyword
    rules, math checking, the LLM judge's prompts); ``files`` the SHA-256 of every file the
    registry says decides the refusal judge's verdicts (the MiniLM head and weights, ...).
    ``harm`` names the harm judge that decides safety (name, served model, its files' hashes:
    the offline head, ...), so a changed head changes a run's provenance. Transport settings
    (URL, timeouts) are left out.
    """
    from ascl_env import judges
    from ascl_env.config import as_config
    from ascl_env.judges import registry

    config = as_config(env_kwargs)
    folder = Path(judges.__file__).parent
    files = ["refusal.py", "math.py"] + (["llm.py"] if config.judge == "llm" else [])
    source = {name: sha256_bytes((folder / name).read_bytes())[:16] for name in files}
    out: dict[str, Any] = {"kind": config.judge, "source_sha256": source}
    if config.judge != "llm":
        out["files"] = registry.provenance(config.judge)["files"]
    if config.judge == "llm":
        out["model"] = config.llm_judge_model
        out["strongreject"] = config.llm_judge_strongreject
        out["on_judge_error"] = config.on_judge_error
    out["harm"] = harm_judge_identity(config)
    return out


def harm_judge_identity(config: Any) -> dict[str, Any]:
    """Name, served model and file hashes of the harm judge ``config`` puts in force."""
    from ascl_env.judges import registry
    from ascl_env.scoring import harm_judge_build_args, harm_judge_for

    spec = config.harm_judge_spec
    if spec == "refusal-proxy":
        return {"name": spec, "model": None, "files": {}}
    parsed = registry.parse_spec(harm_judge_build_args(config)[0])
    judge = harm_judge_for(config)
    found = (
        registry.provenance(parsed, judge)
        if judge is not None
        else {"model": parsed.model, "files": {}}  # the LLM refusal judge's own verdict
    )
    return {"name": parsed.name, "model": found["model"], "files": found["files"]}


def judge_endpoint(env_kwargs: Mapping[str, Any] | None) -> dict[str, Any]:
    """The judge's transport settings (recorded, not compared)."""
    return {k: v for k, v in (env_kwargs or {}).items() if k in _JUDGE_TRANSPORT}


def describe_agent(agent: Any) -> dict[str, Any]:
    """``agent.describe()`` (``{"model": ..., "runtime": ...}``) or just its name."""
    describe = getattr(agent, "describe", None)
    found = describe() if callable(describe) else {}
    return {
        "model": found.get("model") or {"name": getattr(agent, "name", type(agent).__name__)},
        "runtime": found.get("runtime") or {},
    }


def collect(agent: Any, env_kwargs: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The provenance of one invocation of ``agent`` with ``env_kwargs``."""
    agent_info = describe_agent(agent)
    return {
        "packages": package_versions(),
        "git": git_revision(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "threads": threads(),
        "model": agent_info["model"],
        "agent_runtime": agent_info["runtime"],
        "judge": judge_identity(env_kwargs),
        "judge_endpoint": judge_endpoint(env_kwargs),
    }


def comparable_agent_spec(spec: Any) -> Any:
    """An agent spec without the endpoint URL: ``openai:URL#MODEL`` → ``openai:#MODEL``."""
    if isinstance(spec, str) and spec.strip().startswith("openai:"):
        _, sep, model = spec.strip().rpartition("#")
        return f"openai:#{model}" if sep else spec
    return spec


def comparable(config: Mapping[str, Any], provenance: Mapping[str, Any] | None) -> dict[str, Any]:
    """What must be equal for a directory to be resumed: the configuration with the endpoint
    URLs and judge transport settings left out, plus the compared provenance keys."""
    out = dict(config)
    if "agent" in out:
        out["agent"] = comparable_agent_spec(out["agent"])
    if isinstance(out.get("env"), Mapping):
        out["env"] = {k: v for k, v in out["env"].items() if k not in _JUDGE_TRANSPORT}
    for key in COMPARED:
        out[f"provenance.{key}"] = (provenance or {}).get(key)
    return out


def file_hashes(folder: str | os.PathLike, names: tuple[str, ...]) -> str | None:
    """One hash over the named files present in ``folder`` (``None`` if none is)."""
    folder = Path(folder)
    digest = hashlib.sha256()
    found = False
    for name in names:
        path = folder / name
        if path.is_file():
            found = True
            digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest() if found else None


WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".gguf")
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.json",
    "merges.txt",
    "tokenizer.model",
    "added_tokens.json",
)


def model_folder_identity(path: str | os.PathLike) -> dict[str, Any]:
    """Path, config hash, tokenizer hash and a weights fingerprint (file names and sizes; the
    weights themselves are not read) of a local model folder; for a hub id, just the id."""
    folder = Path(path)
    if not folder.is_dir():
        return {"path": str(path)}
    weights = sorted(
        (p.name, p.stat().st_size)
        for p in folder.iterdir()
        if p.is_file() and p.name.endswith(WEIGHT_SUFFIXES)
    )
    return {
        "path": str(folder.resolve()),
        "config_sha256": file_hashes(folder, ("config.json", "generation_config.json")),
        "tokenizer_sha256": file_hashes(folder, TOKENIZER_FILES),
        "weights_fingerprint": sha256_json(weights) if weights else None,
    }
