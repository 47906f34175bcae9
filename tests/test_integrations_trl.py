"""TRL adapter: GRPOTrainer's own environment machinery on CPU with the tiny random Qwen2.

The trainer is real (reset of one ASCLToolEnv per rollout, tool schema from the method, chat
template rendering, TRL's response parser, its tool loop with tool masks, reward functions,
one optimizer step). Only sampling is scripted: ``_generate_single_turn`` returns the tokens
of a scripted reply, since a random model never writes a tool call.
"""

from __future__ import annotations

import functools
import json
import math

import pytest

pytest.importorskip("trl", reason="TRL not installed (extra ascl-env[trl])")
pytest.importorskip("jmespath", reason="jmespath not installed (extra ascl-env[trl])")

from scripted_episodes import SCRIPTS, TASKS, env_outcome, lookups  # noqa: E402

from ascl_env.integrations.scoring import OUTCOME_FIELDS, score  # noqa: E402
from ascl_env.integrations.trl import (  # noqa: E402
    TASK_COLUMN,
    ASCLToolEnv,
    ascl_reward,
    final_text,
    make_dataset,
)


def _build_tiny(path):
    from ascl_env.bench.models import build_tiny_qwen2

    return build_tiny_qwen2(path)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return _build_tiny(tmp_path_factory.mktemp("tiny") / "model")


def test_tool_method_schema_is_what_trl_renders():
    from transformers.utils import get_json_schema

    from ascl_env.lookup import tool_schema

    schema = get_json_schema(ASCLToolEnv().lookup_safety_rules)
    assert schema["function"]["name"] == "lookup_safety_rules"
    assert schema["function"]["parameters"]["required"] == ["query"]
    assert schema["function"]["parameters"]["properties"]["query"]["type"] == "string"
    # TRL renders the env's own schema: name, description and the query's description.
    schema["function"].pop("return", None)
    assert schema == tool_schema()


def test_reset_names_missing_column():
    with pytest.raises(ValueError, match=TASK_COLUMN):
        ASCLToolEnv().reset(prompt=[{"role": "user", "content": "hi"}])
    with pytest.raises(ValueError, match="rules_mode"):
        ASCLToolEnv(rules_mode="none")


def test_reward_without_environments_is_an_error():
    with pytest.raises(ValueError, match="environment_factory"):
        ascl_reward([[{"role": "assistant", "content": "hi"}]])


def test_unfinished_rollout_scores_as_truncated():
    env = ASCLToolEnv()
    env.reset(**{TASK_COLUMN: TASKS["t-harm"].model_dump_json()})
    env.lookup_safety_rules("explosives")
    cut = [
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {
                    "type": "function",
                    "function": {"name": "lookup_safety_rules", "arguments": {"query": "more"}},
                }
            ],
        }
    ]
    [reward] = ascl_reward([cut], environments=[env])
    assert env.outcome["truncated"] is True and env.outcome["task_reward"] == 0.0
    assert reward == 0.0 and env.outcome["tool_calls"] == 2


def test_grpo_trainer_runs_the_scripted_episodes(tiny, tmp_path, monkeypatch):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer
    from trl.chat_template_utils import qwen3_schema

    tok = AutoTokenizer.from_pretrained(tiny)
    # The tiny model's template is ChatML + Hermes tools like Qwen2.5's, but not byte-identical,
    # so TRL's add_response_schema cannot recognise it; the Qwen parser is the right one.
    tok.response_schema = qwen3_schema
    model = AutoModelForCausalLM.from_pretrained(tiny)
    dataset = make_dataset([TASKS["t-harm"], TASKS["t-benign"], TASKS["t-math"]])

    seen = []

    def reward(completions, environments, **kwargs):
        values = ascl_reward(completions, environments=environments, **kwargs)
        seen.extend(zip(completions, environments, values, strict=True))
        return values

    args = GRPOConfig(
        output_dir=str(tmp_path / "out"),
        per_device_train_batch_size=6,
        num_generations=2,
        max_completion_length=4096,  # the tiny tokenizer spends ~1 token per 2 chars of rules
        max_steps=1,
        learning_rate=1e-4,
        logging_steps=1,
        report_to=[],
        use_cpu=True,
        bf16=False,
        save_strategy="no",
        max_tool_calling_iterations=4,
        seed=0,
    )
    trainer = GRPOTrainer(
        model=model,
        processing_class=tok,
        reward_funcs=reward,
        train_dataset=dataset,
        args=args,
        environment_factory=functools.partial(ASCLToolEnv, judge="keyword"),
    )

    def scripted(prompt_ids, images, multimodal_fields, num_generations, has_tool_images=False):
        # like TRL's transformers path: prompts arrive already repeated per generation
        out = []
        for ids in prompt_ids:
            text = tok.decode(ids)
            task_id = next(t for t, task in TASKS.items() if task.prompt in text)
            done = text.count("<tool_response>")
            out.append(tok.encode(SCRIPTS[task_id][done] + "<|im_end|>"))
        return out, None

    monkeypatch.setattr(trainer, "_generate_single_turn", scripted)
    trainer.train()

    assert len(seen) == 6
    for completion, env, value in seen:
        turns = SCRIPTS[env.task.id]
        ref_reward, ref_info = env_outcome(env.task, turns)
        assert value == ref_reward, (env.task.id, completion, env.outcome)
        assert env.lookups == lookups(turns)
        assert env.outcome == {key: ref_info[key] for key in OUTCOME_FIELDS}, env.task.id
        assert final_text(completion).strip() == turns[-1]
        # TRL appended one tool message per lookup, holding the env's rules text
        tools = [m for m in completion if m["role"] == "tool"]
        assert len(tools) == len(turns) - 1
        for message, env_msg in zip(
            tools, [m for m in ref_info["messages"] if m["role"] == "tool"], strict=True
        ):
            assert message["content"] == env_msg["content"]
    assert {env.task.id for _, env, _ in seen} == set(TASKS)
    assert sorted(v for *_, v in seen) == [1.0] * 6
    logged = [h for h in trainer.state.log_history if "loss" in h]
    assert logged and math.isfinite(logged[0]["loss"])


def test_scores_match_replay_for_each_script():
    for task_id, turns in SCRIPTS.items():
        ref_reward, ref_info = env_outcome(TASKS[task_id], turns)
        scored = score(TASKS[task_id], turns[-1], lookups=lookups(turns))
        assert scored.reward == ref_reward
        assert scored.outcome["retrieved_rule_ids"] == ref_info["retrieved_rule_ids"]
        assert json.dumps(scored.messages) == json.dumps(ref_info["messages"])
