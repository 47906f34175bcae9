"""Judges for ASCL-v0 episodes.

- :func:`classify_response`: offline, rule-based three-way classifier (XSTest's classes:
  full compliance, full refusal, partial refusal), the default safety judge;
  :func:`detect_refusal` is its boolean (full or partial refusal).
- :mod:`ascl_env.judges.labels` reads human-labelled responses (refusal or harm labels) and
  :mod:`ascl_env.judges.agreement` measures a judge against them (the library side of
  ``ascl-bench judge-eval``, whose command is :mod:`ascl_env.bench.judge_eval`).
- :func:`check_math`: final-answer extraction plus math-verify equivalence, in bounded time.
- :class:`LLMJudge`: a judge model behind any OpenAI-compatible endpoint; failures raise
  :class:`JudgeError`, which the environment reports as ``judge_error``.
- :mod:`ascl_env.judges.registry`: every judge by name (``keyword``, ``minilm``, ``offline``,
  ``refusal-proxy``, ``llm`` and the guard-model presets of :mod:`ascl_env.judges.guards`), built
  from a spec ``NAME`` or ``NAME:URL#MODEL``; each returns a :class:`Verdict`.
"""

from ascl_env.judges.llm import JudgeError, JudgeVerdict, LLMJudge
from ascl_env.judges.math import check_math, extract_final_answer
from ascl_env.judges.refusal import (
    RESPONSE_CLASSES,
    ResponseClass,
    classify_response,
    detect_refusal,
    strip_think,
)

__all__ = [
    "RESPONSE_CLASSES",
    "ResponseClass",
    "classify_response",
    "JudgeError",
    "JudgeVerdict",
    "LLMJudge",
    "check_math",
    "detect_refusal",
    "extract_final_answer",
    "strip_think",
]
