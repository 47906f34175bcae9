"""Math answer checking: final-answer extraction, exact numbers, and math-verify for the rest.

``check_math(response, answer)`` never evaluates model text as code. Its cost is bounded:

- reasoning blocks are stripped and at most :data:`MAX_RESPONSE_CHARS` of the answer's tail are
  scanned, with linear-time searches only;
- the extracted final answer is at most :data:`MAX_ANSWER_CHARS` characters (``\\boxed{`` whose
  braces do not close within that budget is ignored);
- plain numbers (integers, decimals, fractions, percentages, thousands separators, currency
  signs and trailing unit words) are compared exactly with :class:`fractions.Fraction`;
- anything else goes to math-verify with its signal-based timeouts (:data:`TIMEOUT_S`, main
  thread only; signals are unavailable in other threads), after a guard that refuses to hand
  sympy expressions whose evaluation cannot be interrupted (power towers such as ``9**9**9``,
  exponents or factorials of large literals): those are compared as normalised strings.
"""

from __future__ import annotations

import re
import threading
from fractions import Fraction

from ascl_env.judges.refusal import strip_think

MAX_RESPONSE_CHARS = 200_000
MAX_ANSWER_CHARS = 200
TIMEOUT_S = 1

_BOXED = re.compile(r"\\(?:boxed|fbox)\s*")
_ANSWER_IS = re.compile(
    r"(?:final answer|the answer|answer)\s*(?:is|=|:)\s*(?:\\boxed)?", re.IGNORECASE
)
_SENTENCE_END = re.compile(r"\.(?!\d)|;|\n")
_LAST_NUMBER = re.compile(r"[-−]?\d[\d,]*(?:\.\d+)?(?:\s*/\s*\d+)?|[-−]?\.\d+")
_TEXT_WRAPPER = re.compile(r"\\(?:text|mathrm|textbf|mbox|operatorname)\s*\{([^{}]*)\}")
_FRAC = re.compile(r"^\\[dt]?frac\s*\{\s*([-+]?[\d.]+)\s*\}\s*\{\s*([\d.]+)\s*\}$")
_NUMBER = re.compile(
    r"^(?P<sign>[-+]?)\s*(?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)"
    r"(?:\s*/\s*(?P<den>\d+(?:\.\d+)?))?\s*(?P<pct>%|percent)?\s*(?P<unit>[a-z][a-z .²³/]*)?$",
    re.IGNORECASE,
)
# Expressions sympy would evaluate without returning to the interpreter (signals cannot stop it).
_COSTLY = re.compile(
    r"(?:\^|\*\*)\s*[{(]?\s*[-+]?\d{4,}|\d{3,}\s*!|\\(?:binom|choose)\s*\{?\d{4,}"
    r"|[a-zA-Z]\s*\([^)]*\d{4,}"
)


def _last(pattern: re.Pattern[str], text: str) -> re.Match[str] | None:
    found = None
    for found in pattern.finditer(text):  # noqa: B007 (keeps the last match)
        pass
    return found


def _boxed_content(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` (brace-matched, bounded); ``""`` when that box does
    not close within the budget (an answer was boxed but is unusable); ``None`` when none."""
    match = _last(_BOXED, text)
    if match is None:
        return None
    start = match.end()
    if start < len(text) and text[start] != "{":
        token = re.match(rf"[^\s$]{{1,{MAX_ANSWER_CHARS}}}", text[start:])
        return token.group(0) if token else ""
    depth = 0
    for pos in range(start, min(len(text), start + MAX_ANSWER_CHARS + 2)):
        if text[pos] == "{":
            depth += 1
        elif text[pos] == "}":
            depth -= 1
            if depth == 0:
                return text[start + 1 : pos].strip()
    return ""


def extract_final_answer(response: str) -> str | None:
    """The final answer in ``response``: the last ``\\boxed{}``, else the text after the last
    ``####``, else after the last "answer is", else the last number. ``None`` when there is none,
    when it is longer than :data:`MAX_ANSWER_CHARS`, or when the last box does not close."""
    text = strip_think(response)[-MAX_RESPONSE_CHARS:]
    found = _boxed_content(text)
    if found is None:
        marker = text.rfind("####")
        if marker >= 0:
            found = text[marker + 4 :].strip().split("\n", 1)[0]
    if found is None:
        last = _last(_ANSWER_IS, text)
        if last is not None:
            tail = text[last.end() : last.end() + 4 * MAX_ANSWER_CHARS].strip()
            found = _SENTENCE_END.split(tail, 1)[0]
    if found is None:
        last = _last(_LAST_NUMBER, text)
        found = last.group(0) if last is not None else None
    if found is None:
        return None
    found = found.strip().strip("$").strip().rstrip(".").strip()
    if not found or len(found) > MAX_ANSWER_CHARS:
        return None
    return found


def _as_number(text: str) -> tuple[Fraction, bool] | None:
    """``(value, is_percent)`` when ``text`` is a plain number (with optional units), else None."""
    s = text.strip().strip("$").replace("−", "-").replace("\\!", "").replace("{,}", ",")
    s = re.sub(r"(?<=\d)\\,(?=\d{3})", "", s)
    s = _TEXT_WRAPPER.sub(r" \1 ", s).replace("\\%", "%").replace("\\$", "")
    s = s.replace("$", "").replace("€", "").replace("£", "").replace("¥", "").strip()
    frac = _FRAC.match(s)
    if frac:
        s = f"{frac.group(1)}/{frac.group(2)}"
    match = _NUMBER.match(s)
    if match is None:
        return None
    value = Fraction(match.group("num").replace(",", ""))
    if match.group("den") is not None:
        den = Fraction(match.group("den"))
        if den == 0:
            return None
        value /= den
    if match.group("sign") == "-":
        value = -value
    return value, match.group("pct") is not None


def _canonical(text: str) -> str:
    return re.sub(r"\s+|\\[,;!: ]|\\left|\\right", "", text.strip().strip("$")).lower()


def _verify_symbolic(gold: str, pred: str) -> bool:
    if (
        _COSTLY.search(gold)
        or _COSTLY.search(pred)
        or gold.count("^") + gold.count("**") > 1
        or (pred.count("^") + pred.count("**") > 1)
    ):
        return _canonical(gold) == _canonical(pred)
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

    # math-verify's timeouts use SIGALRM, which only the main thread may set.
    timeout = TIMEOUT_S if threading.current_thread() is threading.main_thread() else None
    config = [LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig()]
    try:
        gold_parsed = parse(f"${gold}$", extraction_config=config, parsing_timeout=timeout)
        pred_parsed = parse(f"${pred}$", extraction_config=config, parsing_timeout=timeout)
        if gold_parsed and pred_parsed:
            return bool(verify(gold_parsed, pred_parsed, timeout_seconds=timeout))
    except Exception:  # math-verify/sympy failures mean "not shown equal", never a crash
        pass
    return _canonical(gold) == _canonical(pred)


def check_math(response: str, answer: str) -> bool:
    """Whether the final answer in ``response`` equals the ground truth ``answer``.

    Args:
        response: the model's raw answer (``<think>`` blocks are ignored).
        answer: the exact ground truth, e.g. ``"18"``, ``"3/4"``, ``"\\frac{\\pi}{2}"``.

    Returns:
        ``True`` when equal: exactly for plain numbers (a percentage matches either its number or
        its fraction, so ``25%`` matches ``25`` and ``0.25``), otherwise by math-verify.
    """
    pred = extract_final_answer(response)
    gold = answer.strip()
    if pred is None or not gold:
        return False
    gold_number, pred_number = _as_number(gold), _as_number(pred)
    if gold_number is not None and pred_number is not None:
        (g, g_pct), (p, p_pct) = gold_number, pred_number
        candidates = {p, p / 100} if p_pct else {p}
        golds = {g, g / 100} if g_pct else {g}
        return bool(candidates & golds)
    return _verify_symbolic(gold, pred)
