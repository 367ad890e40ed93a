"""``attnguide analyze``: attention diagnostics of one or more models on a data file, with a report.

Every model runs in eval mode over the same first examples of the file, which the task read and
tokenises for each model (``AnalysisData``). The output directory gets
``diagnostics.json`` (every number, per head, per layer and per model), PNG figures and
``report.md``, which embeds the figures and tabulates the numbers with one column per model. It is
written under a hidden partial directory and renamed into place when complete.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from datasets import Dataset
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from ..capture.routes import model_shape
from ..errors import AttnguideError
from ..files import write_json, write_text
from ..guiding.profiles import attention_profiles
from ..models import check_max_length, default_model_path, load_model, load_tokenizer
from ..rundir import check_finished_model, check_output_dir, fresh_partial, publish
from .attention_plots import (
    ExampleProfiles,
    layer_bars,
    profile_heatmaps,
    similarity_matrices,
    training_curves,
)
from .diagnostics import Diagnostics, descriptions, diagnose, special_token_mask

logger = logging.getLogger("attnguide")

FIGURES = {
    "profiles.png": "Attention profiles of one example",
    "similarity.png": "Head-by-head similarity",
    "layers.png": "Per-layer diagnostics",
    "training.png": "Training curves",
}


@dataclass
class AnalysisData:
    """The examples a task gives ``analyze``: where they come from, their texts (the first ``limit``
    of ``available``), and how to tokenise them for a model, as the task does for training."""

    source: str
    layout: str
    available: int
    text_a: list[str]
    text_b: list[str] | None
    encode: Callable[[PreTrainedTokenizerBase, int], Dataset]  # (tokenizer, max_length) -> the examples

    def __len__(self) -> int:
        return len(self.text_a)


@dataclass
class AnalyzeOptions:
    """Settings of one analysis; ``models[0]`` is the main model (default: the packaged MiniLM)."""

    output_dir: str
    models: list[str] = field(default_factory=list)
    names: list[str] | None = None
    limit: int = 256
    example: int = 0
    batch_size: int = 32
    max_length: int = 128
    bertviz: str | None = None
    overwrite: bool = False

    def __post_init__(self) -> None:
        for name in ("models", "names"):
            if isinstance(getattr(self, name), str):
                raise AttnguideError(
                    f"AnalyzeOptions: {name} is a list, one per model, got the text {getattr(self, name)!r}"
                )
        self.models = list(self.models) or [default_model_path()]
        for name, least in (("limit", 0), ("example", 0), ("batch_size", 1), ("max_length", 1)):
            if getattr(self, name) < least:
                raise AttnguideError(f"--{name.replace('_', '-')} must be at least {least}")
        if self.names is not None and (
            len(self.names) != len(self.models) or len(set(self.names)) != len(self.names)
        ):
            raise AttnguideError(
                f"--names needs {len(self.models)} distinct names, one per model, got {len(self.names)}"
            )
        seen: dict[str, str] = {}
        for model in self.models:
            key = str(Path(model).expanduser().resolve()) if Path(model).expanduser().exists() else model
            if key in seen:
                raise AttnguideError(
                    f"--compare {model}: the same model as {seen[key]}, given twice; name each model once"
                )
            seen[key] = model


def model_names(models: list[str]) -> list[str]:
    """Short distinct names: the folder name (the packaged model is ``MiniLM-L6-H384``), else the path."""
    default = Path(default_model_path()).resolve()
    short = ["MiniLM-L6-H384" if Path(m).resolve() == default else Path(m).name or m for m in models]
    return short if len(set(short)) == len(short) else list(models)


def _check_bertviz() -> None:
    if importlib.util.find_spec("bertviz") is None:
        raise AttnguideError(
            "--bertviz needs the optional bertviz package, which is not installed: "
            "pip install 'attnguide[viz]' (or pip install bertviz)"
        )


@torch.no_grad()
def _one_example(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, row: dict
) -> tuple[tuple[torch.Tensor, ...], list[str], list[bool]]:
    """The attention maps of one tokenised example, its tokens and which of them are special."""
    device = next(model.parameters()).device
    inputs = {
        k: torch.tensor([row[k]], device=device)
        for k in ("input_ids", "attention_mask", "token_type_ids")
        if k in row
    }
    attentions = model(**inputs, output_attentions=True).attentions
    special = special_token_mask(inputs["input_ids"], tokenizer)[0].tolist()
    return attentions, tokenizer.convert_ids_to_tokens(row["input_ids"]), special


def _write_bertviz(path: str, attentions, tokens: list[str], row: dict) -> None:
    """bertviz's interactive head view of one example, as a standalone HTML file."""
    try:
        from bertviz import head_view
    except ImportError as error:
        raise AttnguideError(f"--bertviz: the bertviz package cannot be imported ({error})") from None
    types = row.get("token_type_ids") or []
    start = types.index(1) if 1 in types else None
    view = head_view([a.cpu() for a in attentions], tokens, sentence_b_start=start, html_action="return")
    write_text(path, view.data)
    logger.info("bertviz head view written to %s", path)


def _history(model_path: str) -> list[dict] | None:
    """The Trainer log history of a run directory written by ``attnguide train``, if there is one."""
    log = Path(model_path) / "log_history.json"
    return json.loads(log.read_text(encoding="utf-8")) if log.is_file() else None


def _train_source(model_path: str) -> str | None:
    run = Path(model_path) / "run.json"
    if not run.is_file():
        return None
    train = json.loads(run.read_text(encoding="utf-8")).get("data", {}).get("train", {})
    return Path(train["source"]).name if "source" in train else None


def _fmt(name: str, value: float) -> str:
    return (
        f"{value:.4f}"
        if name == "mdg_loss"
        else f"{value:.2f}"
        if name == "effective_positions"
        else f"{value:.3f}"
    )


def summary_table(results: list[tuple[str, Diagnostics]]) -> str:
    """Markdown table of the per-model numbers, one column per model."""
    lines = [
        "| diagnostic | " + " | ".join(name for name, _ in results) + " |",
        "| --- |" + " ---: |" * len(results),
        "| tokens per example | " + " | ".join(f"{d.positions:.1f}" for _, d in results) + " |",
    ]
    for metric in descriptions():
        values = " | ".join(_fmt(metric, d.summary[metric]) for _, d in results)
        lines.append(f"| {metric} | {values} |")
    return "\n".join(lines)


def _layer_tables(results: list[tuple[str, Diagnostics]]) -> list[str]:
    lines = []
    for metric, description in descriptions().items():
        lines += [f"### {metric}", "", description + ".", ""]
        lines += [
            "| layer | " + " | ".join(n for n, _ in results) + " |",
            "| --- |" + " ---: |" * len(results),
        ]
        layers = max(d.layers for _, d in results)
        for layer in range(layers):
            cells = [_fmt(metric, d.per_layer[metric][layer]) if layer < d.layers else "" for _, d in results]
            lines.append(f"| {layer} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def _report(
    data: AnalysisData,
    options: AnalyzeOptions,
    results: list[tuple[str, Diagnostics]],
    figures: list[str],
) -> str:
    example = data.text_a[options.example] + (
        f" / {data.text_b[options.example]}" if data.text_b is not None else ""
    )
    lines = [
        "# Attention diagnostics",
        "",
        f"Data: `{data.source}` ({data.layout}), the first {len(data)} of {data.available} examples, "
        f"at most {options.max_length} tokens each. Models in eval mode; profiles as in docs/METHOD.md "
        "(attention received per position, mean over valid queries).",
        "",
        "| model | path | layers × heads |",
        "| --- | --- | --- |",
        *(
            f"| {name} | `{path}` | {d.layers} × {d.heads} |"
            for (name, d), path in zip(results, options.models, strict=True)
        ),
        "",
        "## Per model",
        "",
        summary_table(results),
        "",
        "Over all heads of all layers: head_similarity and the guides' losses (mdg_loss, pdg_loss, ...) "
        "take every head with every other, as one guiding problem; the rest are means over heads and "
        "examples.",
        "",
        *(f"- **{name}**: {text}" for name, text in descriptions().items()),
        "",
        "## Figures",
        "",
        f"Example {options.example}: {example}",
        "",
        *(f"![{FIGURES[figure]}]({figure})\n" for figure in figures),
        "## Per layer",
        "",
        "head_similarity and the guides' losses take the heads of that layer only; the rest are means "
        "over the layer's heads.",
        "",
        *_layer_tables(results),
    ]
    return "\n".join(lines)


def _rounded(diagnostics: Diagnostics) -> dict:
    data = dataclasses.asdict(diagnostics)
    for key in ("per_head", "per_layer"):
        data[key] = {k: [round(v, 6) for v in values] for k, values in data[key].items()}
    data["summary"] = {k: round(v, 6) for k, v in data["summary"].items()}
    data["similarity"] = [[round(v, 4) for v in row] for row in data["similarity"]]
    data["positions"] = round(data["positions"], 3)
    return data


def check_analysis(options: AnalyzeOptions, data: str | None = None) -> None:
    """Refuse, before any data is read, a model that is an unfinished training run, an output
    directory that would be clobbered (``--overwrite`` included, where it holds a model or the
    ``data`` file) and a ``--bertviz`` without bertviz."""
    for model in options.models:
        check_finished_model(model)
    output_dir = Path(options.output_dir)
    flags = ["--model"] + ["--compare"] * (len(options.models) - 1)
    for flag, model in zip(flags, options.models, strict=True):
        check_output_dir(output_dir, options.overwrite, {flag: model})
    check_output_dir(output_dir, options.overwrite, {"--data": data})
    if options.bertviz is not None:
        if Path(options.bertviz).is_dir() or Path(options.bertviz).absolute() == output_dir.absolute():
            raise AttnguideError(f"--bertviz {options.bertviz}: is a directory; name an .html file")
        _check_bertviz()


def run_analysis(options: AnalyzeOptions, data: AnalysisData) -> list[tuple[str, Diagnostics]]:
    """Diagnose every model on ``data``, draw the figures, write the output directory; returns
    (name, diagnostics)."""
    output_dir = Path(options.output_dir)
    check_analysis(options, data.source)
    if options.example >= len(data):
        raise AttnguideError(f"--example {options.example}: only {len(data)} examples are analysed")
    names = options.names or model_names(options.models)
    progress = logger.level <= logging.INFO  # progress bars unless -q (or the API caller) asked for less
    data_name = Path(data.source).name

    results: list[tuple[str, Diagnostics]] = []
    examples: list[ExampleProfiles] = []
    tokenizers = [load_tokenizer(path) for path in options.models]  # a missing model fails before any work
    view = None
    for index, (name, path) in enumerate(zip(names, options.models, strict=True)):
        tokenizer = tokenizers[index]
        model = load_model(path, attn_implementation="eager")
        check_max_length(path, model, tokenizer, options.max_length)
        model.to("cuda" if torch.cuda.is_available() else "cpu")
        dataset = data.encode(tokenizer, options.max_length)
        diagnostics = diagnose(
            model, tokenizer, dataset, options.batch_size, description=f"analysing {name}", progress=progress
        )
        results.append((name, diagnostics))
        row = dataset[options.example]
        attentions, tokens, special = _one_example(model, tokenizer, row)
        profiles = attention_profiles(attentions, torch.tensor([row["attention_mask"]]))[0].cpu().numpy()
        examples.append(ExampleProfiles(name, tokens, special, profiles, model_shape(model)[1]))
        if index == 0:
            view = (attentions, tokens, row)

    partial = fresh_partial(output_dir)
    if options.bertviz is not None:  # inside the output directory: written into the partial one
        bertviz = Path(options.bertviz).absolute()
        inside = bertviz.is_relative_to(output_dir.absolute())
        _write_bertviz(
            str(partial / bertviz.relative_to(output_dir.absolute()) if inside else bertviz), *view
        )
    counted = f"{data_name}, {len(data)} examples"
    profile_heatmaps(
        examples, f"Attention profiles of example {options.example} of {data_name}", partial / "profiles.png"
    )
    similarity_matrices(
        results, f"Head-by-head similarity of attention profiles ({counted})", partial / "similarity.png"
    )
    layer_bars(results, f"Attention per layer ({counted})", partial / "layers.png")
    figures = ["profiles.png", "similarity.png", "layers.png"]
    histories = [(name, _history(path)) for name, path in zip(names, options.models, strict=True)]
    if any(history for _, history in histories):
        sources = sorted({s for path in options.models if (s := _train_source(path))})
        trained = f" on {', '.join(sources)}" if sources else ""
        training_curves(histories, f"Fine-tuning losses{trained}", partial / "training.png")
        figures.append("training.png")

    write_json(
        partial / "diagnostics.json",
        {
            "data": {
                "source": data.source,
                "layout": data.layout,
                "examples": len(data),
                "available": data.available,
                "max_length": options.max_length,
            },
            "example": {
                "index": options.example,
                "text_a": data.text_a[options.example],
                "text_b": data.text_b[options.example] if data.text_b is not None else None,
            },
            "descriptions": descriptions(),
            "models": [
                {"name": name, "path": path, **_rounded(d)}
                for (name, d), path in zip(results, options.models, strict=True)
            ],
        },
    )
    write_text(partial / "report.md", _report(data, options, results, figures) + "\n")
    publish(partial, output_dir)
    logger.info("analysis written to %s", output_dir)
    return results
