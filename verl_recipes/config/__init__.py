"""Hydra configs for verl (loaded as ``pkg://verl_recipes.config``)."""
