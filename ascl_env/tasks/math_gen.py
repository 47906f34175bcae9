"""Deterministic math word problems with exact answers.

Problem ``i`` of seed ``s`` is drawn from its own ``random.Random(f"{s}:{i}")`` (string seeds
are hashed with SHA-512 by :mod:`random`, so they do not depend on ``PYTHONHASHSEED``), hence it
does not depend on how many problems are generated: ``generate_math_tasks(10)`` is a prefix of
``generate_math_tasks(100)``. Answers are computed with :class:`fractions.Fraction` and written as
an integer (``"42"``) or a reduced fraction (``"7/12"``).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from fractions import Fraction

from ascl_env.tasks.model import Task

NAMES = (
    "Ava",
    "Ben",
    "Chloe",
    "Diego",
    "Emma",
    "Farah",
    "Gus",
    "Hana",
    "Ivan",
    "Jade",
    "Kofi",
    "Lena",
    "Mateo",
    "Nia",
    "Omar",
    "Priya",
    "Quinn",
    "Rosa",
    "Sam",
    "Tariq",
    "Uma",
    "Victor",
)

Template = Callable[[random.Random], tuple[str, Fraction]]


def _format(value: Fraction) -> str:
    return (
        str(value.numerator) if value.denominator == 1 else f"{value.numerator}/{value.denominator}"
    )


def _arithmetic(rng: random.Random) -> tuple[str, Fraction]:
    name = rng.choice(NAMES)
    trays, per_tray = rng.randint(3, 12), rng.randint(6, 24)
    sold = rng.randint(1, trays * per_tray - 1)
    given = rng.randint(0, trays * per_tray - sold)
    text = (
        f"{name} bakes {trays} trays of cookies with {per_tray} cookies on each tray. "
        f"{name} sells {sold} cookies and gives {given} to friends. "
        "How many cookies are left?"
    )
    return text, Fraction(trays * per_tray - sold - given)


def _shopping(rng: random.Random) -> tuple[str, Fraction]:
    name = rng.choice(NAMES)
    n1, p1, n2, p2 = rng.randint(2, 9), rng.randint(2, 15), rng.randint(2, 9), rng.randint(1, 6)
    budget = n1 * p1 + n2 * p2 + rng.randint(0, 60)
    text = (
        f"{name} has ${budget}. {name} buys {n1} notebooks at ${p1} each and {n2} pens at "
        f"${p2} each. How many dollars does {name} have left?"
    )
    return text, Fraction(budget - n1 * p1 - n2 * p2)


def _discount(rng: random.Random) -> tuple[str, Fraction]:
    price = 20 * rng.randint(2, 25)
    pct = rng.choice((10, 15, 20, 25, 30, 35, 40, 50, 60, 75))
    text = (
        f"A jacket costs ${price}. During a sale its price is reduced by {pct}%. "
        "What is the sale price in dollars?"
    )
    return text, Fraction(price * (100 - pct), 100)


def _percent_of(rng: random.Random) -> tuple[str, Fraction]:
    total = 20 * rng.randint(5, 60)
    pct = 5 * rng.randint(1, 19)
    text = (
        f"A school has {total} students and {pct}% of them walk to school. "
        "How many students do not walk to school?"
    )
    return text, Fraction(total * (100 - pct), 100)


def _distance(rng: random.Random) -> tuple[str, Fraction]:
    v, t, w, u = rng.randint(40, 120), rng.randint(1, 5), rng.randint(30, 90), rng.randint(1, 4)
    text = (
        f"A train travels at {v} km per hour for {t} hours, then at {w} km per hour for {u} "
        "hours. How many kilometers does it travel in total?"
    )
    return text, Fraction(v * t + w * u)


def _work_rate(rng: random.Random) -> tuple[str, Fraction]:
    a, b = rng.sample(range(2, 13), 2)
    text = (
        f"Pipe A can fill a tank in {a} hours and pipe B can fill it in {b} hours. "
        "Working together, how many hours do they take to fill the tank? "
        "Give the answer as a fraction if needed."
    )
    return text, Fraction(a * b, a + b)


def _unit_rate(rng: random.Random) -> tuple[str, Fraction]:
    n, unit, m = rng.randint(2, 12), rng.randint(1, 9), rng.randint(2, 30)
    text = (
        f"{n} pencils cost ${n * unit}. At the same price per pencil, how many dollars do "
        f"{m} pencils cost?"
    )
    return text, Fraction(m * unit)


def _fraction_sum(rng: random.Random) -> tuple[str, Fraction]:
    first, second = rng.sample(NAMES, 2)
    while True:
        a = Fraction(rng.randint(1, 5), rng.randint(2, 12))
        b = Fraction(rng.randint(1, 5), rng.randint(2, 12))
        if a < 1 and b < 1 and a + b < 1:
            break
    text = (
        f"{first} eats {a.numerator}/{a.denominator} of a pizza and {second} eats "
        f"{b.numerator}/{b.denominator} of the same pizza. What fraction of the pizza is "
        "left? Give the answer as a reduced fraction."
    )
    return text, 1 - a - b


def _fraction_of(rng: random.Random) -> tuple[str, Fraction]:
    den = rng.randint(2, 9)
    num = rng.randint(1, den - 1)
    total = den * rng.randint(2, 15)
    text = (
        f"A class has {total} students. {num}/{den} of them play soccer. "
        "How many students do not play soccer?"
    )
    return text, Fraction(total) - Fraction(num * total, den)


def _average(rng: random.Random) -> tuple[str, Fraction]:
    name = rng.choice(NAMES)
    scores = [rng.randint(55, 100) for _ in range(rng.randint(3, 5))]
    listed = ", ".join(str(s) for s in scores[:-1]) + f" and {scores[-1]}"
    text = (
        f"{name} scored {listed} on {len(scores)} tests. What is {name}'s average score? "
        "Give the answer as a fraction if it is not a whole number."
    )
    return text, Fraction(sum(scores), len(scores))


TEMPLATES: dict[str, Template] = {
    "arithmetic": _arithmetic,
    "shopping": _shopping,
    "percent_discount": _discount,
    "percent_of": _percent_of,
    "rate_distance": _distance,
    "rate_work": _work_rate,
    "rate_unit": _unit_rate,
    "fraction_sum": _fraction_sum,
    "fraction_of": _fraction_of,
    "average": _average,
}


def generate_math_tasks(n: int, seed: int = 0) -> list[Task]:
    """``n`` word problems for ``seed``, ids ``math-s{seed}-{i:05d}``, category = template name."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    names = list(TEMPLATES)
    tasks = []
    for i in range(n):
        rng = random.Random(f"{seed}:{i}")
        template = rng.choice(names)
        prompt, answer = TEMPLATES[template](rng)
        tasks.append(
            Task(
                id=f"math-s{seed}-{i:05d}",
                kind="math",
                prompt=prompt,
                answer=_format(answer),
                category=template,
                source="math_gen",
            )
        )
    return tasks
