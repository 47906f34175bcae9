"""Tasks for ASCL-v0: the :class:`Task` model, bundled sets, upstream loaders and mixtures.

- :func:`bundled_tasks`: hand-written harmful and benign requests across the rule categories plus
  generated math word problems (:func:`generate_math_tasks`).
- ``load_xstest``, ``load_strongreject``, ``load_jailbreakbench``, ``load_harmbench``,
  ``load_advbench``, ``load_gsm8k``, ``load_math500``: upstream files in their published formats;
  :mod:`ascl_env.tasks.paper_sets`: the ASCL paper's other sets (WildJailbreak, WildGuardTest,
  OR-Bench, Salad-Bench, WildChat toxic, OKTest, JailbreakBench artifacts, and the
  multiple-choice GPQA, MMLU-Pro, ARC).
- :func:`load_task_spec`: ``"bundled"`` or ``"xstest=PATH,gsm8k=PATH:200,..."`` (``:N`` samples
  N tasks stratified by kind and category; :func:`sample_tasks`).
- :class:`TaskPool`: the environment's tasks indexed by id and kind, and its seeded draw.
"""

from ascl_env.tasks.bundled import bundled_tasks, load_task_yaml
from ascl_env.tasks.loaders import (
    BUILTIN_SOURCES,
    FILE_LOADERS,
    SAMPLING_METHODS,
    describe_sampling,
    load_advbench,
    load_gsm8k,
    load_harmbench,
    load_jailbreakbench,
    load_math500,
    load_strongreject,
    load_task_selection,
    load_task_spec,
    load_xstest,
    sample_tasks,
)
from ascl_env.tasks.math_gen import TEMPLATES, generate_math_tasks
from ascl_env.tasks.model import ATTACKS, TASK_KINDS, Task, TaskError, TaskKind
from ascl_env.tasks.paper_sets import (
    format_choice_prompt,
    load_arc,
    load_gpqa,
    load_jbb_artifacts,
    load_mmlu_pro,
    load_oktest,
    load_or_bench,
    load_salad_bench,
    load_wildchat,
    load_wildguardtest,
    load_wildjailbreak,
)
from ascl_env.tasks.pool import TaskPool, spec_pool

__all__ = [
    "ATTACKS",
    "BUILTIN_SOURCES",
    "FILE_LOADERS",
    "SAMPLING_METHODS",
    "TASK_KINDS",
    "TEMPLATES",
    "Task",
    "TaskError",
    "TaskKind",
    "TaskPool",
    "bundled_tasks",
    "describe_sampling",
    "format_choice_prompt",
    "load_arc",
    "load_gpqa",
    "load_jbb_artifacts",
    "load_mmlu_pro",
    "load_oktest",
    "load_or_bench",
    "load_salad_bench",
    "load_wildchat",
    "load_wildguardtest",
    "load_wildjailbreak",
    "generate_math_tasks",
    "load_advbench",
    "load_gsm8k",
    "load_harmbench",
    "load_jailbreakbench",
    "load_math500",
    "load_strongreject",
    "load_task_selection",
    "load_task_spec",
    "load_task_yaml",
    "load_xstest",
    "sample_tasks",
    "spec_pool",
]
