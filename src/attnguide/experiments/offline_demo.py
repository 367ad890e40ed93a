"""``attnguide demo``: a small NLI task made from templates, trained without and with guiding, offline.

The data is generated here, deterministically from a seed: premises describe a person doing an
activity; hypotheses generalise it (entailment), add a detail the premise does not give
(neutral), or describe another activity or deny it (contradiction).
"""

from __future__ import annotations

import logging
import random
from pathlib import Path

from ..files import write_json, write_jsonl, write_text
from ..guiding.config import GuideConfig
from ..models import default_model_path, load_model, load_tokenizer
from ..rundir import check_output_dir
from ..tasks.classification.run import evaluate
from ..tasks.classification.task import CLASSIFICATION, ClassificationOptions
from ..tasks.pairs.data import read_pairs
from ..tasks.pairs.encoding import encode_pairs
from ..training.pipeline import run_training

logger = logging.getLogger("attnguide")

PEOPLE = [
    ("man", "person"),
    ("woman", "person"),
    ("boy", "child"),
    ("girl", "child"),
    ("chef", "person"),
    ("doctor", "person"),
    ("student", "person"),
    ("farmer", "person"),
    ("teacher", "person"),
]
ADJECTIVES = ["young", "tall", "old", "happy", "tired", "smiling", ""]
ACTIVITIES = [
    ("playing a guitar", "playing an instrument"),
    ("playing a violin", "playing an instrument"),
    ("riding a bicycle", "riding something"),
    ("riding a horse", "riding an animal"),
    ("eating an apple", "eating fruit"),
    ("eating a sandwich", "eating food"),
    ("reading a newspaper", "reading something"),
    ("reading a novel", "reading a book"),
    ("swimming in a lake", "in the water"),
    ("cooking pasta", "preparing food"),
    ("painting a fence", "painting something"),
    ("climbing a mountain", "climbing"),
    ("sleeping on a sofa", "resting"),
    ("running a marathon", "running"),
    ("writing a letter", "writing something"),
    ("washing a car", "cleaning a vehicle"),
]
PLACES = ["in a park", "on a busy street", "at home", "near the beach", "in a garden", "in a small town", ""]
DETAILS = [
    "for a crowd",
    "with a friend",
    "in the morning",
    "for the first time",
    "after work",
    "to win a prize",
    "while it rains",
    "for his family",
]
LABELS = ("entailment", "neutral", "contradiction")


def _sentence(*words: str) -> str:
    text = " ".join(w for w in words if w)
    return text[0].upper() + text[1:] + "."


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def make_example(rng: random.Random, label: str) -> dict[str, str]:
    """One premise-hypothesis pair with the given label."""
    person, kind = rng.choice(PEOPLE)
    adjective = rng.choice(ADJECTIVES)
    activity, general = rng.choice(ACTIVITIES)
    described = f"{adjective} {person}" if adjective else person
    premise = _sentence(_article(described), described, "is", activity, rng.choice(PLACES))
    if label == "entailment":
        hypothesis = rng.choice(
            [
                _sentence(_article(kind), kind, "is", general),
                _sentence(_article(person), person, "is", activity),
                _sentence("someone is", general),
            ]
        )
    elif label == "neutral":
        hypothesis = rng.choice(
            [
                _sentence(_article(person), person, "is", activity, rng.choice(DETAILS)),
                _sentence(
                    "the",
                    person,
                    "is",
                    general,
                    "because",
                    rng.choice(["it is fun", "it pays well", "a friend asked"]),
                ),
            ]
        )
    else:
        other = rng.choice([a for a, _ in ACTIVITIES if a != activity])
        hypothesis = rng.choice(
            [
                _sentence(_article(person), person, "is", other),
                _sentence("nobody is", general),
                _sentence("the", person, "is not", activity),
            ]
        )
    return {"sentence1": premise, "sentence2": hypothesis, "gold_label": label}


def make_dataset(size: int, seed: int) -> list[dict[str, str]]:
    """``size`` examples in a deterministic order, the three labels equally often."""
    rng = random.Random(seed)
    return [make_example(rng, LABELS[i % 3]) for i in range(size)]


def _row(name: str, metrics: dict[str, float]) -> str:
    accuracy = f"{metrics['accuracy']:.3f}" if "accuracy" in metrics else "-"
    return (
        f"| {name} | {accuracy} | {metrics['mdg_loss']:.4f} | {metrics['pdg_loss']:.2f} | "
        f"{metrics['head_similarity']:.3f} | {metrics['special_token_share']:.3f} |"
    )


def run_demo(
    output_dir: str,
    model: str | None = None,
    train_size: int = 1200,
    dev_size: int = 300,
    epochs: float = 2.0,
    seed: int = 42,
    overwrite: bool = False,
) -> str:
    """Write the data, train without and with MDG+PDG, and return (and save) a Markdown table."""
    out = Path(output_dir)
    check_output_dir(out, overwrite)
    write_jsonl(out / "data" / "train.jsonl", make_dataset(train_size, seed))
    write_jsonl(out / "data" / "dev.jsonl", make_dataset(dev_size, seed + 1))
    model_name = model or default_model_path()
    shown_name = "the packaged MiniLM-L6-H384" if model is None else model
    common = dict(
        train=str(out / "data" / "train.jsonl"),
        dev=str(out / "data" / "dev.jsonl"),
        model=model_name,
        epochs=epochs,
        batch_size=32,
        max_length=64,
        seed=seed,
        overwrite=True,
        logging_steps=10,
    )

    dev = read_pairs(common["dev"])
    tokenizer = load_tokenizer(model_name)
    pretrained = load_model(model_name, list(LABELS))
    before = evaluate(pretrained, tokenizer, encode_pairs(dev, tokenizer, 64)).metrics
    results = {"pre-trained, not fine-tuned": before}
    for name, guide in (
        ("fine-tuned, no guiding", GuideConfig(guides=())),
        ("fine-tuned, MDG+PDG", GuideConfig(guides="mdg+pdg")),
    ):
        logger.info("demo: %s", name)
        slug = "guided" if guide.active else "unguided"
        options = ClassificationOptions(output_dir=str(out / slug), guide=guide, **common)
        results[name] = run_training(options, CLASSIFICATION.start(options))
    table = "\n".join(
        [
            f"attnguide demo: {shown_name}, {train_size} template NLI pairs, {epochs:g} epochs, "
            f"dev {dev_size} pairs, MDG+PDG at the default weights (0.001 each)",
            "",
            "| run | dev accuracy | MDG loss | PDG loss | head similarity | [CLS]/[SEP] share |",
            "| --- | --- | --- | --- | --- | --- |",
            *(_row(name, metrics) for name, metrics in results.items()),
            "",
            "MDG/PDG: guiding losses on dev (lower: heads more distinct, positions more decorrelated);",
            "head similarity: mean pairwise cosine of head profiles; share: attention on [CLS]/[SEP].",
            "",
            "This shows the mechanics on generated template data with one seed: a difference in accuracy",
            "here says nothing about your data. On real data (SICK, MSRP, TREC QA, NCBI disease; 3-5 seeds;",
            "docs/STUDY.md and docs/RESULTS.md) guiding at these weights reshaped the attention as above in",
            "every run but improved the dev metric nowhere: ties or losses of 0.5-4 points against the",
            "unguided run. Measure it on your data with `attnguide compare` (several seeds) before using it.",
        ]
    )
    write_text(out / "summary.md", table + "\n")
    write_json(out / "summary.json", results)
    return table
