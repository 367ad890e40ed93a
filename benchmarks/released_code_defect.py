"""The released code's defect on real inputs: its head profile, its loss values and its gradient,
against the received-attention profile of docs/METHOD.md, for docs/STUDY.md.

The first 32 pairs of SICK_trial (padded per batch, as training pads them), through the packaged
MiniLM-L6 and, where installed, MPNet-base (``--models minilm-l6 mpnet-base``), in eval mode (no
dropout) and in train mode (attention dropout as the model ships, 5 draws). Prints a Markdown table
and writes it with the raw numbers as JSON.

    python benchmarks/released_code_defect.py --output docs/perf/released_code_defect.json
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import torch

from attnguide.capture.routes import use_eager_attention
from attnguide.files import write_json
from attnguide.guiding.attention_losses import map_discrimination_loss, pattern_decorrelation_loss
from attnguide.guiding.profiles import attention_profiles
from attnguide.models import load_model, load_tokenizer
from attnguide.tasks.pairs.data import read_pairs

KINDS = ("received", "released-code")


def measure(model, batch, kind: str) -> dict[str, float]:
    """The profile's spread, both losses and the gradient norm of their sum over the weights."""
    model.zero_grad()
    outputs = model(**batch, output_attentions=True)
    mask = batch["attention_mask"]
    profiles = attention_profiles(outputs.attentions, mask, kind=kind)
    mdg = map_discrimination_loss(profiles, mask)
    pdg = pattern_decorrelation_loss(profiles, mask)
    (mdg + pdg).backward()
    grad = torch.sqrt(sum(p.grad.pow(2).sum() for p in model.parameters() if p.grad is not None))
    valid = mask[:, None, :].expand_as(profiles).bool()
    values = profiles[valid]
    # spread across heads at one position: 0 where every head has the same profile
    across_heads = profiles.std(dim=1)[mask.bool()].mean()
    return {
        "profile_min": values.min().item(),
        "profile_max": values.max().item(),
        "profile_std_across_heads": across_heads.item(),
        "mdg_loss": mdg.item(),
        "pdg_loss": pdg.item(),
        "grad_norm": grad.item(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/sick/SICK_trial.txt")
    parser.add_argument("--models", nargs="+", default=["minilm-l6"])
    parser.add_argument("--pairs", type=int, default=32)
    parser.add_argument("--output", default="docs/perf/released_code_defect.json")
    args = parser.parse_args()
    pairs = read_pairs(args.data, "sick")
    results = []
    for name in args.models:
        tokenizer = load_tokenizer(name)
        torch.manual_seed(0)
        model = load_model(name, ["a", "b", "c"])
        use_eager_attention(model)
        batch = tokenizer(
            pairs.text_a[: args.pairs], pairs.text_b[: args.pairs], padding=True, return_tensors="pt"
        )
        for mode in ("eval", "train"):
            model.train(mode == "train")
            draws = 1 if mode == "eval" else 5
            for kind in KINDS:
                runs = [measure(model, batch, kind) for _ in range(draws)]
                mean = {k: sum(r[k] for r in runs) / draws for k in runs[0]}
                results.append({"model": name, "mode": mode, "profile": kind, "draws": draws, **mean})
    print("| model | mode | profile | profile range | sd across heads | MDG loss | PDG loss | ‖∇‖ |")
    print("|---|---|---|---|---:|---:|---:|---:|")
    for r in results:
        print(
            f"| {r['model']} | {r['mode']} | {r['profile']} | {r['profile_min']:.3g}–{r['profile_max']:.3g} "
            f"| {r['profile_std_across_heads']:.2e} | {r['mdg_loss']:.4f} | {r['pdg_loss']:.4f} "
            f"| {r['grad_norm']:.3g} |"
        )
    write_json(
        Path(args.output),
        {
            "date": time.strftime("%Y-%m-%d"),
            "machine": f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}",
            "command": "python benchmarks/released_code_defect.py "
            + " ".join(f"--models {m}" for m in args.models),
            "data": f"{args.data}, first {args.pairs} pairs",
            "results": results,
        },
    )


if __name__ == "__main__":
    main()
