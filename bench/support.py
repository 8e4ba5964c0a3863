"""How well does the support checker (engine/support.py) tell a quote that states a sentence from a near miss?

    python bench/support.py --home DIR --llm-url URL --llm-model NAME [--n 120] [--json]

Pairs are built from the corpus, not from dev: a prose sentence against its own passage, as written and
as an answer would restate it (true); and the hard near-misses of eval/pairs.py (false): the passage two
chunks away in the same section, the sentence with one number changed, the sentence with one name swapped
for another the corpus uses. Prints AUC (all pairs, hard pairs), the code checks alone vs. code + P(Yes),
and the balanced accuracy of each threshold, beside the settings' current threshold.
"""
from __future__ import annotations

import argparse
import json
import random
import re
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from foundation.config import load_settings  # noqa: E402
from foundation.text import is_prose, names_in, numbers_in, sentence_spans, squash  # noqa: E402
from assistant.engine.support import SupportChecker  # noqa: E402
from assistant.llm.client import OpenAICompatibleLLM  # noqa: E402
from eval.calibration.fit import auc  # noqa: E402
from eval.pairs import change_name, change_number, name_pool  # noqa: E402
from indexes.store import Store  # noqa: E402

RESTATE = ((re.compile(r"^We\b"), "The authors"), (re.compile(r"\s*\([A-Z][^()]*?(?:et al\.|\d{4})[^()]*\)"), ""))


def restated(sentence: str) -> str:
    """The sentence as an answer would put it: "We ..." -> "The authors ...", inline references dropped."""
    for pattern, repl in RESTATE:
        sentence = pattern.sub(repl, sentence)
    return sentence


def build_pairs(store: Store, n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    by_paper: dict[str, list] = {}
    for chunk in store.iter_chunks(level=0):
        by_paper.setdefault(chunk.arxiv_id, []).append(chunk)
    pool = name_pool([c.text for cs in by_paper.values() for c in cs[:20]])
    pairs = []
    papers = sorted(by_paper)
    while len(pairs) < 5 * n:
        chunks = by_paper[rng.choice(papers)]
        i = rng.randrange(len(chunks))
        chunk = chunks[i]
        spans = [(a, b) for a, b in sentence_spans(chunk.text) if is_prose(chunk.text[a:b])]
        if not spans:
            continue
        a, b = rng.choice(spans)
        sentence = squash(chunk.text[a:b])
        if not 10 <= len(sentence.split()) <= 45 or not (numbers_in(sentence) or names_in(sentence)):
            continue
        passage = squash(chunk.text)
        pairs += [{"kind": "own", "truth": True, "sentence": sentence, "passage": passage},
                  {"kind": "restated", "truth": True, "sentence": restated(sentence), "passage": passage}]
        far = [c for j, c in enumerate(chunks) if abs(j - i) in (2, 3) and c.section == chunk.section]
        if far:
            pairs.append({"kind": "neighbour", "truth": False, "sentence": sentence, "passage": squash(far[0].text)})
        for kind, changed in (("number", change_number(sentence, rng)), ("name", change_name(sentence, pool, rng))):
            if changed and changed != sentence:
                pairs.append({"kind": kind, "truth": False, "sentence": changed, "passage": passage})
    return pairs[:5 * n]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--home", required=True)
    ap.add_argument("--llm-url", required=True)
    ap.add_argument("--llm-model", required=True)
    ap.add_argument("--n", type=int, default=120, help="source sentences (about 5 pairs each)")
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    settings = load_settings(home=args.home, offline=True)
    store = Store(settings.index_dir / "library.sqlite")
    pairs = build_pairs(store, args.n, args.seed)
    llm = OpenAICompatibleLLM(args.llm_url, args.llm_model, timeout_s=600)
    with_model = SupportChecker(llm, settings)
    code_only = SupportChecker(None, settings)
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda p: with_model.check(p["sentence"], p["passage"]), pairs))
    words = [code_only.check(p["sentence"], p["passage"]) for p in pairs]
    with_model.close()
    truth = [p["truth"] for p in pairs]
    hard = [i for i, p in enumerate(pairs) if p["truth"] or p["kind"] in ("neighbour", "number", "name")]
    scores = [r.score if r.score is not None else 0.0 for r in results]
    code_scores = [w.score or 0.0 for w in words]

    def auc_of(values, idx):
        import numpy as np

        return auc(np.array([values[i] for i in idx]), np.array([int(truth[i]) for i in idx]))

    everything = list(range(len(pairs)))
    summary = {"model": args.llm_model, "pairs": len(pairs),
               "by_kind": {k: sum(p["kind"] == k for p in pairs) for k in ("own", "restated", "neighbour", "number", "name")},
               "auc_all": round(auc_of(scores, everything), 3), "auc_hard": round(auc_of(scores, hard), 3),
               "auc_code_only_hard": round(auc_of(code_scores, hard), 3), "thresholds": {}}
    for t in (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8):
        tp = sum(1 for s, y in zip(scores, truth) if y and s >= t) / max(1, sum(truth))
        tn = sum(1 for s, y in zip(scores, truth) if not y and s < t) / max(1, len(truth) - sum(truth))
        per_kind = {k: round(sum(1 for p, s in zip(pairs, scores) if p["kind"] == k and (s >= t) == p["truth"]) /
                             max(1, sum(p["kind"] == k for p in pairs)), 3) for k in summary["by_kind"]}
        summary["thresholds"][t] = {"tpr": round(tp, 3), "tnr": round(tn, 3), "balanced": round((tp + tn) / 2, 3),
                                    "right_by_kind": per_kind}
    if args.json:
        print(json.dumps(summary, indent=1))
        return
    print(f"support checker, {args.llm_model}: {len(pairs)} corpus pairs {summary['by_kind']}")
    print(f"AUC all pairs {summary['auc_all']}, hard pairs {summary['auc_hard']} "
          f"(code checks alone on hard pairs: {summary['auc_code_only_hard']})")
    print(f"{'threshold':>9} {'TPR':>6} {'TNR':>6} {'balanced':>8}  right by kind")
    for t, row in summary["thresholds"].items():
        mark = "  <- settings.support_threshold" if abs(t - settings.support_threshold) < 1e-9 else ""
        print(f"{t:>9} {row['tpr']:>6} {row['tnr']:>6} {row['balanced']:>8}  {row['right_by_kind']}{mark}")


if __name__ == "__main__":
    main()
