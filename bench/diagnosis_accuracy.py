"""Top-1 accuracy of the diagnosis on a held-out part of the shipped corpus.

    python bench/diagnosis_accuracy.py [--held-out 0.25] [--seed 7] [--errors]

Three numbers on the same held-out examples (a stratified split, the same
share of each category): the shipped rule tree alone (no match = wrong), the
classifier alone (trained on the rest of the corpus), and both as the portal
combines them (apps/diagnosis/services.py: the rule when it is sure, the
classifier when no rule matches or the rule is less sure than
KUBEPROBE_DIAGNOSIS_MIN_CONFIDENCE and the classifier is surer). No database.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kubeprobe_site.settings")
os.environ.setdefault("KUBEPROBE_DEBUG", "1")

import django

django.setup()

from django.conf import settings  # noqa: E402

from apps.diagnosis import classifier  # noqa: E402
from apps.diagnosis.defaults import rule_specs  # noqa: E402
from apps.diagnosis.rules import first_match  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--held-out", type=float, default=0.25)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--errors", action="store_true", help="print the misses")
    args = parser.parse_args()

    samples = classifier.corpus()
    train, test = classifier.split(samples, held_out=args.held_out, seed=args.seed)
    started = time.perf_counter()
    pipeline = classifier.train(train)
    trained_in = time.perf_counter() - started
    rules = rule_specs()
    threshold = settings.KUBEPROBE_DIAGNOSIS_MIN_CONFIDENCE

    hits: Counter[str] = Counter()
    misses = []
    started = time.perf_counter()
    for sample in test:
        rule = first_match(rules, sample.evidence)
        learned, probability = classifier.predict(pipeline, sample.evidence)
        combined = rule.category if rule else ""
        if (rule is None or rule.confidence < threshold) and probability > (
            rule.confidence if rule else 0.0
        ):
            combined = learned
        hits["rules"] += bool(rule and rule.category == sample.category)
        hits["classifier"] += learned == sample.category
        hits["combined"] += combined == sample.category
        if combined != sample.category:
            misses.append((sample, rule.name if rule else "-", learned, combined))
    per_sample_ms = (time.perf_counter() - started) * 1000 / max(1, len(test))

    print(
        f"corpus {len(samples)} examples, {len(Counter(s.category for s in samples))} categories; "
        f"trained on {len(train)} in {trained_in:.1f} s, held out {len(test)} "
        f"(seed {args.seed})"
    )
    for name in ("rules", "classifier", "combined"):
        print(f"{name:>10}: {hits[name] / len(test):6.1%}  ({hits[name]}/{len(test)})")
    print(f"diagnosis time: {per_sample_ms:.2f} ms per failure (rules + classifier)")
    if args.errors:
        for sample, rule, learned, combined in misses:
            print(
                f"  want {sample.category}, got {combined} (rule {rule}, learned {learned}): "
                f"[{sample.evidence.case_kind}/{sample.evidence.step}] {sample.evidence.error[:100]}"
            )
    return 0 if hits["combined"] / len(test) >= 0.9 else 1


if __name__ == "__main__":
    sys.exit(main())
