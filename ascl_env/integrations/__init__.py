"""Adapters that put ASCL-v0 where RL frameworks already work (see ``docs/integrations.md``).

* :mod:`ascl_env.integrations.trl`: TRL's ``environment_factory`` class and GRPO reward function.
* :mod:`ascl_env.integrations.verifiers`: a verifiers environment (``load_environment``).
* :mod:`ascl_env.episode`: one episode against any OpenAI-compatible endpoint.

Each adapter scores through :func:`ascl_env.integrations.scoring.score`, which replays the
episode through ``ASCLEnv.step``, so its reward equals the env's for the same turns. The
framework modules import their library lazily (extras ``ascl-env[trl]``, ``ascl-env[verifiers]``).
"""
