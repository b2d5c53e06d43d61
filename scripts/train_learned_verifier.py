"""Train the weights of llmemo's LearnedVerifier and report cross-validated figures.

    python scripts/train_learned_verifier.py \
        --train fow_cache_pairs.tune.jsonl gptcache_mock_pairs.jsonl \
        --held-out qqp_gptcache_meancache_test.tune.jsonl benchmarks/data/negation_pairs.jsonl \
        --out src/llmemo/verify/learned_weights.json

Only train on files whose licence allows shipping what is derived from them (see the
tuning data's README: fow-cache's pairs, CC BY 4.0; GPTCache's mock pairs, MIT).
``--held-out`` files are only scored with the final model, never trained on.

What is learned: RulesVerifier's hard checks (quantities, polarity, entities, roles) and
its "same content" verdict stay as they are; for the other pairs (the wording decides)
a logistic regression over :func:`llmemo.verify.learned.features` gives the probability
that one answer serves both. The script

1. embeds every text (``--embeddings``: 'local' or module:attribute, as ``llmemo eval``);
2. runs the rules on every pair (``RulesVerifier.assess``);
3. cross-validates (``--folds``, stratified by file and label): each fold's model scores
   that fold's pairs, so every pair of a training file has an out-of-fold probability;
4. picks the probability threshold: the lowest one at which, out of fold, the share of
   different pairs served stays within ``--target-false-hits`` on every training file
   with different pairs (served = distance <= ``--distance-threshold`` and accepted);
5. fits the final model on all training pairs and writes the weights (JSON) with that
   threshold, then reports per file: out-of-fold figures for training files, final-model
   figures for held-out files, next to the rules alone.

numpy is used here (a core dependency); the shipped verifier needs nothing but the JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from llmemo.evaluate import FALSE_HIT_LEVELS, Pair, _make_embeddings, load_pairs
from llmemo.verify.base import Candidate
from llmemo.verify.learned import FEATURES, features
from llmemo.verify.rules import RulesVerifier


@dataclass
class Row:
    file: str
    pair: Pair
    distance: float
    rules_accepts: bool  # the rules' verdict
    soft: bool  # the wording decides (the model's case)
    x: list[float]


def _rows(path: str, rules: RulesVerifier, embeddings: Any) -> list[Row]:
    pairs = load_pairs(path)
    texts = sorted({t for p in pairs for t in (p.a, p.b)})
    vectors = {}
    for start in range(0, len(texts), 64):
        batch = texts[start : start + 64]
        for text, vec in zip(batch, embeddings.embed_documents(batch), strict=True):
            arr = np.asarray(vec, dtype=np.float64)
            vectors[text] = arr / (np.linalg.norm(arr) or 1.0)
    sigs: dict[str, Any] = {}

    def sig(text: str) -> Any:
        if text not in sigs:
            sigs[text] = rules.signature(text)
        return sigs[text]

    rows = []
    for p in pairs:
        d = max(0.0, 1.0 - float(vectors[p.a] @ vectors[p.b])) if p.servable else 2.0
        if not p.servable:
            rows.append(Row(path, p, d, False, False, []))
            continue
        verdict, stats = rules.assess(p.b, sig(p.b), Candidate("a", d, sig(p.a)))
        x = features(d, stats, verdict.accepted) if stats is not None else []
        rows.append(Row(path, p, d, verdict.accepted, stats is not None, x))
    return rows


def _fit(x: np.ndarray, y: np.ndarray, w: np.ndarray, l2: float) -> tuple[Any, ...]:
    """Weighted L2-regularised logistic regression by Newton's method."""
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale < 1e-9] = 1.0
    z = (x - mean) / scale
    a = np.hstack([np.ones((len(z), 1)), z])
    beta = np.zeros(a.shape[1])
    reg = np.full(a.shape[1], l2)
    reg[0] = 0.0
    for _ in range(50):
        p = 1.0 / (1.0 + np.exp(-(a @ beta)))
        grad = a.T @ (w * (p - y)) + reg * beta
        hess = (a * (w * p * (1 - p))[:, None]).T @ a + np.diag(reg) + 1e-9 * np.eye(len(beta))
        step = np.linalg.solve(hess, grad)
        beta -= step
        if np.abs(step).max() < 1e-8:
            break
    return mean, scale, beta[1:], float(beta[0])


def _predict(model: tuple[Any, ...], x: np.ndarray) -> np.ndarray:
    mean, scale, coef, intercept = model
    return 1.0 / (1.0 + np.exp(-(((x - mean) / scale) @ coef + intercept)))


def _weights(rows: Sequence[Row]) -> np.ndarray:
    """Each training file weighs the same; within a file, both labels weigh the same."""
    out = np.zeros(len(rows))
    files = sorted({r.file for r in rows})
    for f in files:
        for label in (True, False):
            idx = [i for i, r in enumerate(rows) if r.file == f and r.pair.same is label]
            if idx:
                out[idx] = 1.0 / len(idx)
    return out * len(rows) / out.sum()


def _served(row: Row, p: float | None, threshold: float | None, dmax: float) -> bool:
    if not row.pair.servable or row.distance > dmax:
        return False
    if threshold is None or not row.soft:
        return row.rules_accepts
    return p is not None and p >= threshold


def _rates(rows: Sequence[Row], probs: Sequence[float | None], t: float | None, dmax: float):
    same = [_served(r, p, t, dmax) for r, p in zip(rows, probs, strict=True) if r.pair.same]
    diff = [_served(r, p, t, dmax) for r, p in zip(rows, probs, strict=True) if not r.pair.same]
    recall = sum(same) / len(same) if same else None
    false_hits = sum(diff) / len(diff) if diff else None
    return recall, false_hits


def _recall_at(rows: Sequence[Row], probs: Sequence[float | None], t: float | None, level: float):
    """Best recall over distance thresholds with false hits <= level (as llmemo eval)."""
    n_same = sum(r.pair.same for r in rows)
    n_diff = len(rows) - n_same
    if not n_diff or not n_same:
        return None
    served = sorted(
        (r.distance, r.pair.same) for r, p in zip(rows, probs, strict=True) if _served(r, p, t, 2.0)
    )
    best = 0.0
    s = d = 0
    for i, (dist, same) in enumerate(served):
        s += same
        d += not same
        if i + 1 < len(served) and served[i + 1][0] == dist:
            continue
        if d / n_diff <= level + 1e-12:
            best = max(best, s / n_same)
    return best


def _report(name: str, rows: Sequence[Row], probs: Sequence[float | None], t: float, dmax: float):
    lines = []
    for label, thr in (("rules", None), ("learned", t)):
        recall, fh = _rates(rows, probs, thr, dmax)
        levels = [_recall_at(rows, probs, thr, lv) for lv in FALSE_HIT_LEVELS]
        cells = " ".join("  n/a" if v is None else f"{100 * v:5.1f}" for v in levels)
        fh_text = "n/a" if fh is None else f"{100 * fh:.1f}%"
        rec_text = "n/a" if recall is None else f"{100 * recall:.1f}%"
        lines.append(
            f"  {name:<42} {label:<8} recall@0.5/1/2/5% FH: {cells} | at {dmax:.2f}: "
            f"recall {rec_text}, false hits {fh_text}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train", nargs="+", required=True, metavar="PAIRS.jsonl")
    parser.add_argument("--held-out", nargs="*", default=[], metavar="PAIRS.jsonl")
    parser.add_argument("--embeddings", default="local")
    parser.add_argument("--out", default=None, help="where to write the weights (JSON)")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--l2", type=float, default=1.0)
    parser.add_argument("--distance-threshold", type=float, default=0.35)
    parser.add_argument("--target-false-hits", type=float, default=0.01)
    args = parser.parse_args(argv)

    embeddings = _make_embeddings(args.embeddings)
    rules = RulesVerifier()
    train = [r for path in args.train for r in _rows(path, rules, embeddings)]
    soft = [i for i, r in enumerate(train) if r.soft]
    x = np.array([train[i].x for i in soft])
    y = np.array([float(train[i].pair.same) for i in soft])
    w = _weights([train[i] for i in soft])

    # Stratified folds by (file, label).
    rng = np.random.default_rng(args.seed)
    fold = np.zeros(len(soft), dtype=int)
    for key in sorted({(train[i].file, train[i].pair.same) for i in soft}):
        idx = [k for k, i in enumerate(soft) if (train[i].file, train[i].pair.same) == key]
        order = rng.permutation(len(idx))
        for rank, j in enumerate(order):
            fold[idx[j]] = rank % args.folds
    oof = np.zeros(len(soft))
    for f in range(args.folds):
        test = fold == f
        model = _fit(x[~test], y[~test], w[~test], args.l2)
        oof[test] = _predict(model, x[test])
    probs: list[float | None] = [None] * len(train)
    for k, i in enumerate(soft):
        probs[i] = float(oof[k])

    # The lowest probability threshold keeping every training file within the target.
    by_file = {path: [i for i, r in enumerate(train) if r.file == path] for path in args.train}
    chosen = 1.0
    for t in sorted({round(float(p), 4) for p in oof} | {1.0}, reverse=True):
        ok = True
        for idx in by_file.values():
            rows = [train[i] for i in idx]
            _, fh = _rates(rows, [probs[i] for i in idx], t, args.distance_threshold)
            if fh is not None and fh > args.target_false_hits + 1e-12:
                ok = False
                break
        if not ok:
            break
        chosen = t

    print(f"soft pairs (the model's case): {len(soft)} of {len(train)}; threshold {chosen:.4f}")
    print("cross-validated (out-of-fold) on training files:")
    for path, idx in by_file.items():
        rows = [train[i] for i in idx]
        print(
            _report(Path(path).name, rows, [probs[i] for i in idx], chosen, args.distance_threshold)
        )

    final = _fit(x, y, w, args.l2)
    mean, scale, coef, intercept = final
    if args.held_out:
        print("held out (final model, never trained on):")
        for path in args.held_out:
            rows = _rows(path, rules, embeddings)
            hp = [float(_predict(final, np.array([r.x]))[0]) if r.soft else None for r in rows]
            print(_report(Path(path).name, rows, hp, chosen, args.distance_threshold))
    if args.out:
        data = {
            "format": 1,
            "about": "LearnedVerifier weights: logistic regression over llmemo.verify.learned."
            "features, trained by scripts/train_learned_verifier.py on "
            + ", ".join(Path(p).name for p in args.train),
            "features": list(FEATURES),
            "mean": [round(float(v), 6) for v in mean],
            "scale": [round(float(v), 6) for v in scale],
            "coef": [round(float(v), 6) for v in coef],
            "intercept": round(intercept, 6),
            "threshold": chosen,
        }
        Path(args.out).write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
        print(f"weights: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
