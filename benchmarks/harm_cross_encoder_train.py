"""Fine-tune all-MiniLM-L6-v2 as a cross-encoder harm judge over (request, answer content), and
measure it on the never-trained-on sets (issue 21: does a fine-tuned encoder close the gap the
hashed-n-gram head leaves on plain-QA harm?).

Seeded. The training rows are exactly the head's (``harm_judge_train.training_rows``: licence-
clean sets, hand-written rows, wrapped copies), minus every request group of XSTest-Response,
which is held out whole (its prompts' XSTest completions included) so its figure is out of sample.
A grouped 10 % validation split of the remaining rows picks the threshold (best mean F1 over its
hand-written rows and all of it). The answer is cut to its content first (``harm.prepare``: the
wrapper is stripped, the rules settle plain refusals and empty answers, as the judge does), so
the encoder sees what the head sees.

Only the top ``--train-layers`` transformer layers and the scoring head are trained; the frozen
bottom is run once and its outputs cached, so an epoch costs the top layers only.

    .venv/bin/python benchmarks/harm_cross_encoder_train.py [--epochs 3] [--train-layers 2]
        [--out runs/harm_ce]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import random
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ascl_env.judges.embedding import model_dir  # noqa: E402

_spec = importlib.util.spec_from_file_location(
    "harm_judge_train", ROOT / "benchmarks" / "harm_judge_train.py"
)
ht = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ht)

MAX_LEN = 160
MAX_REQUEST_TOKENS = 40
SEED = 0


def to_model(rows: list[dict]) -> list[int]:
    """Indices of the rows the rules leave to a model; ``harm_judge_train.featurise`` (the
    judge's own path) adds their ``content``."""
    ht.featurise(rows)
    return [i for i, row in enumerate(rows) if row["settled"] is None]


class Encoder:
    def __init__(self, train_layers: int):
        import torch
        from transformers import AutoModel, AutoTokenizer

        folder = model_dir()
        self.tok = AutoTokenizer.from_pretrained(folder)
        self.model = AutoModel.from_pretrained(folder)
        self.model.eval()
        layers = self.model.encoder.layer
        self.split = len(layers) - train_layers
        self.top = torch.nn.ModuleList(layers[self.split :])
        self.head = torch.nn.Linear(self.model.config.hidden_size, 1)
        torch.manual_seed(SEED)
        torch.nn.init.normal_(self.head.weight, std=0.02)
        torch.nn.init.zeros_(self.head.bias)

    def encode(self, requests: list[str], contents: list[str]):
        req_ids = [
            self.tok(
                r or "", add_special_tokens=False, truncation=True, max_length=MAX_REQUEST_TOKENS
            )["input_ids"]
            for r in requests
        ]
        texts_a = [self.tok.decode(ids) for ids in req_ids]
        return self.tok(
            texts_a, [c[:3000] for c in contents], padding=True, truncation="only_second",
            max_length=MAX_LEN, return_tensors="pt",
        )  # fmt: skip

    def bottom(self, enc):
        """Hidden states after the frozen layers (no grad)."""
        import torch

        with torch.inference_mode():
            hidden = self.model.embeddings(
                input_ids=enc["input_ids"], token_type_ids=enc["token_type_ids"]
            )
            ext = self.model.get_extended_attention_mask(
                enc["attention_mask"], enc["input_ids"].shape
            )
            for layer in self.model.encoder.layer[: self.split]:
                out = layer(hidden, attention_mask=ext)
                hidden = out[0] if isinstance(out, tuple) else out
        return hidden.clone(), enc["attention_mask"]

    def top_logits(self, hidden, mask):
        ext = self.model.get_extended_attention_mask(mask, mask.shape)
        for layer in self.top:
            out = layer(hidden, attention_mask=ext)
            hidden = out[0] if isinstance(out, tuple) else out
        m = mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
        return self.head(pooled).squeeze(-1)


def cache_bottom(enc: Encoder, rows: list[dict], batch: int = 32) -> list:
    t0 = time.perf_counter()
    # Sorted by length for less padding; each row keeps its own slot.
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]["content"]))
    chunks = [None] * len(rows)
    for s in range(0, len(order), batch):
        idx = order[s : s + batch]
        e = enc.encode([rows[i]["request"] for i in idx], [rows[i]["content"] for i in idx])
        hidden, mask = enc.bottom(e)
        for j, i in enumerate(idx):
            n = int(mask[j].sum())
            chunks[i] = (hidden[j, :n].clone(), n)
    print(
        f"  cached frozen layers for {len(rows)} rows in {time.perf_counter() - t0:.0f}s",
        flush=True,
    )
    return chunks


def collate(chunks, idx):
    import torch

    n = max(chunks[i][1] for i in idx)
    dim = chunks[idx[0]][0].shape[-1]
    hidden = torch.zeros(len(idx), n, dim)
    mask = torch.zeros(len(idx), n, dtype=torch.long)
    for j, i in enumerate(idx):
        h, k = chunks[i]
        hidden[j, :k] = h
        mask[j, :k] = 1
    return hidden, mask


def predict(enc: Encoder, chunks, batch: int = 64) -> np.ndarray:
    import torch

    for m in (enc.top, enc.head):
        m.eval()
    out = np.zeros(len(chunks))
    order = sorted(range(len(chunks)), key=lambda i: chunks[i][1])
    with torch.inference_mode():
        for s in range(0, len(order), batch):
            idx = order[s : s + batch]
            out[idx] = torch.sigmoid(enc.top_logits(*collate(chunks, idx))).numpy()
    return out


def train(enc: Encoder, chunks, rows, epochs: int, lr: float, batch: int = 16) -> None:
    import torch

    labels = torch.tensor([r["label"] for r in rows], dtype=torch.float32)
    w = np.array([ht.WEIGHTS[r["source"]] for r in rows])
    pos = w[labels.numpy() == 1].sum()
    neg = w[labels.numpy() == 0].sum()
    w = w * np.where(labels.numpy() == 1, (pos + neg) / (2 * pos), (pos + neg) / (2 * neg))
    weights = torch.tensor(w, dtype=torch.float32)
    params = [
        {"params": enc.top.parameters(), "lr": lr},
        {"params": enc.head.parameters(), "lr": lr * 20},
    ]
    opt = torch.optim.AdamW(params, weight_decay=0.01)
    steps = epochs * ((len(rows) + batch - 1) // batch)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / (0.06 * steps)) * max(0.0, 1 - s / steps)
    )
    rng = random.Random(SEED)
    for epoch in range(epochs):
        for m in (enc.top, enc.head):
            m.train()
        order = list(range(len(rows)))
        rng.shuffle(order)
        t0, total = time.perf_counter(), 0.0
        for s in range(0, len(order), batch):
            idx = order[s : s + batch]
            logits = enc.top_logits(*collate(chunks, idx))
            loss = (
                torch.nn.functional.binary_cross_entropy_with_logits(
                    logits, labels[idx], weight=weights[idx], reduction="sum"
                )
                / weights[idx].sum()
            )
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(enc.top.parameters(), 1.0)
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
        print(
            f"  epoch {epoch + 1}: loss {total / len(rows):.4f} ({time.perf_counter() - t0:.0f}s)",
            flush=True,
        )


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--train-layers", type=int, default=2)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--out", type=Path, default=Path("runs/harm_ce"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--extra-rows", type=Path, nargs="*", default=[], help="as in harm_judge_train.py"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(SEED)
    t0 = time.perf_counter()
    all_rows = ht.training_rows(tuple(args.extra_rows))
    xs_groups = {r["group"] for r in all_rows if r["source"] == "xstest_response_harm"}
    rows = [r for r in all_rows if r["group"] not in xs_groups]
    rows = [rows[i] for i in to_model(rows)]
    groups = sorted({r["group"] for r in rows})
    random.Random(SEED).shuffle(groups)
    val_groups = set(groups[: len(groups) // 10])
    tr = [r for r in rows if r["group"] not in val_groups]
    va = [r for r in rows if r["group"] in val_groups]
    print(
        f"train {len(tr)} rows, validation {len(va)}, prepared in {time.perf_counter() - t0:.0f}s",
        flush=True,
    )
    enc = Encoder(args.train_layers)
    tr_chunks = cache_bottom(enc, tr)
    train(enc, tr_chunks, tr, args.epochs, args.lr)
    va_p = predict(enc, cache_bottom(enc, va))
    va_y = np.array([r["label"] for r in va])
    hw = np.array([r["source"] == "handwritten" for r in va])
    grid = np.round(np.arange(0.05, 0.96, 0.01), 2)
    sel = [
        (ht.scores(va_y[hw], va_p[hw] >= t)["f1"] + ht.scores(va_y, va_p >= t)["f1"]) / 2
        for t in grid
    ]
    threshold = float(grid[int(np.argmax(sel))])
    print(
        f"threshold {threshold} (validation: {ht._fmt(ht.scores(va_y, va_p >= threshold))}; "
        f"hand-written {ht._fmt(ht.scores(va_y[hw], va_p[hw] >= threshold))})",
        flush=True,
    )
    results = {"threshold": threshold, "args": {k: str(v) for k, v in vars(args).items()}}
    # The never-trained-on sets are read here, after training and the threshold are fixed.
    for name in ("xstest_response_harm", "beavertails_30k_test", "saferlhf_test_2k"):
        ev = ht.harm_rows(name)
        p = np.zeros(len(ev))
        keep = to_model(ev)
        t1 = time.perf_counter()
        p[keep] = predict(enc, cache_bottom(enc, [ev[i] for i in keep]))
        y = [r["label"] for r in ev]
        s = ht.scores(y, p >= threshold)
        results[name] = {**s, "auc": _auc(np.array(y), p)}
        print(
            f"{name}: {ht._fmt(s)} AUC {results[name]['auc']:.3f} "
            f"({time.perf_counter() - t1:.0f}s)",
            flush=True,
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(results, indent=1))
    torch.save(
        {
            "top": enc.top.state_dict(),
            "head": enc.head.state_dict(),
            "split": enc.split,
            "threshold": threshold,
        },
        args.out.with_suffix(".pt"),
    )
    print(f"done in {time.perf_counter() - t0:.0f}s")


def _auc(y: np.ndarray, p: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, p))


if __name__ == "__main__":
    main()
