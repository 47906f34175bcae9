"""Judges for ASCL-v0 episodes.

- :func:`detect_refusal`: offline, pattern-based refusal detection (the default safety judge).
- :func:`check_math`: final-answer extraction plus math-verify equivalence, in bounded time.
- :class:`LLMJudge`: a judge model behind any OpenAI-compatible endpoint; failures raise
  :class:`JudgeError`, which the environment reports as ``judge_error``.
"""

from ascl_env.judges.llm import JudgeError, JudgeVerdict, LLMJudge
from ascl_env.judges.math import check_math, extract_final_answer
from ascl_env.judges.refusal import detect_refusal, strip_think

__all__ = [
    "JudgeError",
    "JudgeVerdict",
    "LLMJudge",
    "check_math",
    "detect_refusal",
    "extract_final_answer",
    "strip_think",
]
