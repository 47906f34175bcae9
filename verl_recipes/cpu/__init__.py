"""Run verl 0.9.1's own ``main_ppo`` without an accelerator or vLLM (opt-in test harness).

Load :mod:`verl_recipes.cpu.plugin` in every verl process, before the other modules::

    VERL_USE_EXTERNAL_MODULES=verl_recipes.cpu.plugin,verl_recipes.plugin,verl_recipes.trainer

(``verl_recipes/scripts/smoke_cpu.sh`` does it). Modules:

- :mod:`.platform`: the ``cpu`` platform, selected only with ``VERL_PLATFORM=cpu``,
- :mod:`.hf_rollout`: the ``hf`` rollout backend (``rollout.name=hf``; CPU or one CUDA GPU),
- :mod:`.workarounds`: the two places that reach past verl's public extension points
  (the trl probe patch every verl process needs is :mod:`verl_recipes.compat`),
- :mod:`.warmstart`: the tiny model that uses the lookup tool, :mod:`.report`: metrics output.

This package's ``__init__`` imports nothing from verl on purpose: a Ray actor whose class lives
here (the ``hf`` server) imports this package before verl, and verl's own import must be able to
run ``verl_recipes.cpu.plugin`` to completion at that point.
"""
