"""as_config: the one way a config is built from layers of settings (env kwargs, adapters,
episode runners, verl rows)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from ascl_env.config import ASCLConfig, RewardConfig, as_config


def test_a_lone_config_comes_back_as_it_is():
    config = ASCLConfig(top_k=5)
    assert as_config(config) is config
    assert as_config(None, config, None) is config
    assert as_config() == ASCLConfig()
    assert as_config(None) == ASCLConfig()


def test_later_layers_win_field_by_field_and_rewards_whole():
    base = ASCLConfig(top_k=5, max_turns=3, rewards=RewardConfig(format_penalty=0.5))
    merged = as_config(
        base, {"max_turns": 2, "rewards": {"lookup_cost": 0.1}}, {"max_turns": 6}, judge="minilm"
    )
    assert (merged.top_k, merged.max_turns, merged.judge) == (5, 6, "minilm")
    # rewards replaced whole: the base's format_penalty is back to its default
    assert merged.rewards == RewardConfig(lookup_cost=0.1)
    assert base.max_turns == 3  # the layers are not touched


def test_fields_set_are_the_fields_given():
    """verl's data writer records only the fields a user set; merging must not set the rest."""
    config = as_config({"top_k": 4}, None, {"max_turns": 2})
    assert config.model_fields_set == {"top_k", "max_turns"}


def test_a_bad_merged_field_is_named_and_a_bad_layer_is_refused():
    with pytest.raises(ValidationError, match="top_k"):
        as_config({"top_k": 5}, top_k=0)
    with pytest.raises(ValidationError, match="nonsense"):
        as_config(ASCLConfig(), {"nonsense": 1})
    with pytest.raises(TypeError, match="mapping of its fields, got list"):
        as_config([("top_k", 5)])  # type: ignore[arg-type]
