"""The learned layer: a text classifier consulted when the rules are unsure.

Features: TF-IDF of the words and character n-grams of the failing step, the
error and the pod's reasons and events, plus one-hot case kind and template
kind; a multinomial logistic regression gives a probability per category.
It is trained on the shipped corpus (corpus/*.jsonl) and on operators' labels
(RunDiagnosis.labelled_category), stored in the database as a joblib pickle
(ClassifierModel, versioned) and loaded once per process per version.
"""

from __future__ import annotations

import io
import json
import random
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
from sklearn.feature_extraction import DictVectorizer
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import FeatureUnion, Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer

from apps.diagnosis.rules import Evidence

CORPUS_DIR = Path(__file__).resolve().parent / "corpus"


@dataclass(frozen=True)
class Sample:
    evidence: Evidence
    category: str


def sample_of(row: dict[str, Any]) -> Sample:
    """One corpus line: message, step, case kind, pod reason, category."""
    return Sample(
        evidence=Evidence(
            case_kind=row.get("case_kind", ""),
            template_kind=row.get("template_kind", "probe"),
            step=row.get("step", ""),
            error=row["message"],
            reasons=tuple(r for r in [row.get("pod_reason", "")] if r),
        ),
        category=row["category"],
    )


def corpus(directory: Path = CORPUS_DIR) -> list[Sample]:
    """The shipped labelled corpus, in file and line order."""
    samples = []
    for path in sorted(directory.glob("*.jsonl")):
        for line in path.read_text().splitlines():
            if line.strip():
                samples.append(sample_of(json.loads(line)))
    return samples


def split(
    samples: list[Sample], *, held_out: float = 0.25, seed: int = 7
) -> tuple[list[Sample], list[Sample]]:
    """A stratified train / held-out split: the same share of every category held out."""
    rng = random.Random(seed)  # noqa: S311 (a reproducible split, not a secret)
    by_category: dict[str, list[Sample]] = {}
    for s in samples:
        by_category.setdefault(s.category, []).append(s)
    train, test = [], []
    for category in sorted(by_category):
        group = by_category[category][:]
        rng.shuffle(group)
        n = max(1, round(len(group) * held_out)) if len(group) > 1 else 0
        test += group[:n]
        train += group[n:]
    return train, test


# Module-level functions, so a pickled pipeline finds them again when loaded.
def texts(items: Iterable[Evidence]) -> list[str]:
    return [f"{e.step}\n{e.text}" for e in items]


def kinds(items: Iterable[Evidence]) -> list[dict[str, str]]:
    return [{"case_kind": e.case_kind, "template_kind": e.template_kind} for e in items]


def build() -> Pipeline:
    features = FeatureUnion(
        [
            (
                "words",
                make_pipeline(
                    FunctionTransformer(texts),
                    TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1),
                ),
            ),
            (
                "chars",
                make_pipeline(
                    FunctionTransformer(texts),
                    TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), sublinear_tf=True),
                ),
            ),
            ("kinds", make_pipeline(FunctionTransformer(kinds), DictVectorizer())),
        ]
    )
    return Pipeline([("features", features), ("model", LogisticRegression(C=20.0, max_iter=3000))])


def train(samples: list[Sample]) -> Pipeline:
    pipeline = build()
    pipeline.fit([s.evidence for s in samples], [s.category for s in samples])
    return pipeline


def predict(pipeline: Pipeline, evidence: Evidence) -> tuple[str, float]:
    """The likeliest category and its probability."""
    probabilities = pipeline.predict_proba([evidence])[0]
    best = int(probabilities.argmax())
    return str(pipeline.classes_[best]), float(probabilities[best])


def accuracy(pipeline: Pipeline, samples: list[Sample]) -> float:
    if not samples:
        return 0.0
    predicted = pipeline.predict([s.evidence for s in samples])
    return sum(p == s.category for p, s in zip(predicted, samples, strict=True)) / len(samples)


def dumps(pipeline: Pipeline) -> bytes:
    buffer = io.BytesIO()
    joblib.dump(pipeline, buffer, compress=3)
    return buffer.getvalue()


def loads(blob: bytes) -> Pipeline:
    # Only blobs this module stored in the portal's own database are loaded.
    loaded: Pipeline = joblib.load(io.BytesIO(bytes(blob)))
    return loaded
