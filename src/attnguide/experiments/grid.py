"""The experiment grid of ``attnguide compare``: a YAML file or flags, validated, expanded into cells.

A cell is one ``attnguide train`` run: one data set, model, training setting, guide setting and
seed. Its directory name is made from every setting it depends on, so a name means one thing in
every grid that writes to the same output directory, and adding values to a list later reuses the
cells already run. Settings that a guide combination does not use (the MDG weight of a PDG-only
run, every guide setting of the unguided baseline) are dropped before expansion, so no cell is run
twice under two names.
"""

from __future__ import annotations

import difflib
import hashlib
import itertools
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from ..errors import AttnguideError, DataError
from ..files import load_yaml
from ..guiding.config import PROFILE_KINDS, SCOPES, GuideConfig, parse_guides, parse_layers
from ..guiding.registry import GuideSetting, guide_settings, setting_owner
from ..tasks import TASKS, get_task
from ..tasks.readers import Columns

BASELINE = "none"
DEFAULT_MODEL = "default"
DEFAULT_SEEDS = (1, 2, 3, 4, 5)

TRAINING_KEYS = ("epochs", "batch_size", "max_length", "lr")
ADAPTER_KEYS = ("lora_r", "lora_alpha", "lora_dropout", "lora_targets")
"""LoRA settings; a cell has them only where ``lora_r`` is given (else it fine-tunes every weight)."""
DATA_KEYS = ("name", "train", "dev", "test", "format", "task", "metric", "train_options", *Columns.names())
"""``train_options``: further ``attnguide train`` flags of the task (``[--encoder, bi]``), as a list."""


def swept_guide_settings() -> list[GuideSetting]:
    """The guide settings a grid can sweep (those with a short name for run directories), from the
    guide registry: every guide's weight, then MDG's temperature, ..."""
    return [s for s in guide_settings() if s.short is not None]


def guide_keys() -> tuple[str, ...]:
    """The grid keys of a guide setting: ``guides``, the registry's swept settings, layers, scope,
    profile (``released-code`` reproduces the authors' released code)."""
    return ("guides", *(s.name for s in swept_guide_settings()), "layers", "scope", "profile")


def sweep_keys() -> tuple[str, ...]:
    """The keys that take a value or a list, the grid being every combination."""
    return ("models", *guide_keys(), *TRAINING_KEYS, *ADAPTER_KEYS, "seeds")


def top_keys() -> tuple[str, ...]:
    """Every key of a grid file."""
    return (*sweep_keys(), *DATA_KEYS, "datasets", "output_dir", "test_all")


_SHORT_TRAINING = {
    "epochs": "e", "batch_size": "bs", "max_length": "len", "lr": "lr",
    "lora_r": "lora", "lora_alpha": "la", "lora_dropout": "ld", "lora_targets": "lt",
}  # fmt: skip
_SAFE = re.compile(r"[^A-Za-z0-9._+=-]+")


@dataclass(frozen=True)
class DataSet:
    """One data set of the grid: its files (absolute paths), layout, task and the metric compared."""

    name: str
    train: str
    dev: str
    test: str | None
    format: str
    task: str | None
    metric: str
    columns: Columns = Columns()
    train_options: tuple[str, ...] = ()

    @property
    def format_option(self) -> str:
        """The option of ``attnguide train`` that names the layout (each task has its own)."""
        return get_task(self.task).format_option

    def data_args(self) -> list[str]:
        """The layout, column names and ``--task``, as ``attnguide train`` and ``eval`` take them."""
        args = [] if self.format == "auto" else ["--" + self.format_option.replace("_", "-"), self.format]
        args += self.columns.to_args()
        return args + (["--task", self.task] if self.task else [])


@dataclass(frozen=True)
class Cell:
    """One training run of the grid; ``guide`` and ``training`` map setting names to values."""

    data: DataSet
    model: str
    model_slug: str
    guide: Mapping[str, Any]
    training: Mapping[str, Any]
    seed: int

    @property
    def setting_id(self) -> str:
        """The run directory without the seed: identifies the setting that seeds repeat."""
        training = "-".join(
            f"{_SHORT_TRAINING[k]}{v.replace(',', '.') if isinstance(v, str) else _number(v)}"
            for k, v in self.training.items()
        )
        parts = (self.data.name, self.model_slug, _shorten(training), _shorten(guide_slug(self.guide)))
        return "/".join(parts)

    @property
    def baseline_id(self) -> str:
        """``setting_id`` of the unguided run with the same data, model and training settings."""
        return self.setting_id.rsplit("/", 1)[0] + "/" + BASELINE

    @property
    def is_baseline(self) -> bool:
        return self.guide["guides"] == BASELINE

    @property
    def path(self) -> str:
        """The run directory, relative to the grid's ``runs/`` folder."""
        return f"{self.setting_id}/seed{self.seed}"

    def train_args(self, output_dir: Path) -> list[str]:
        """The ``attnguide train`` arguments of this cell."""
        args = ["train", "--model", self.model, "--train", self.data.train, "--dev", self.data.dev]
        args += [*self.data.data_args(), *self.data.train_options]
        args += ["--guide", self.guide["guides"]]
        for key in guide_keys()[1:]:
            if key in self.guide:
                args += [f"--{key.replace('_', '-')}", str(self.guide[key])]
        for key, value in self.training.items():
            args += [f"--{key.replace('_', '-')}", str(value)]
        return [*args, "--seed", str(self.seed), "--output-dir", str(output_dir)]


@dataclass(frozen=True)
class Grid:
    """A validated grid: where it writes, its data sets, seeds and cells (seed-major order)."""

    source: str
    output_dir: Path
    datasets: tuple[DataSet, ...]
    seeds: tuple[int, ...]
    cells: tuple[Cell, ...]
    test_all: bool = False
    """Evaluate every finished cell on its data set's test file, not only the dev choice and its
    baseline: for a grid whose dev file is a selection split and whose test file is the split the
    results are reported on (docs/STUDY.md)."""


def guide_slug(guide: Mapping[str, Any]) -> str:
    """``mdg+pdg-a0.001-b0.001-t2``: the guides and the settings they use (layers, scope and profile
    if not the default)."""
    short = {s.name: s.short for s in swept_guide_settings()}
    parts = [guide["guides"]]
    for key, value in guide.items():
        if key in short:
            parts.append(f"{short[key]}{_number(value)}")
        elif key == "layers" and value != "all":
            parts.append("L" + str(value).replace(":", "").replace(",", "."))
        elif (key == "scope" and value != "joint") or (key == "profile" and value != "received"):
            parts.append(value)
    return "-".join(parts)


def _number(value: float) -> str:
    """A number as text that is unique per value: ``2``, ``0.001``, ``5e-05``."""
    value = float(value)
    return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)


def _shorten(name: str, limit: int = 64) -> str:
    """A file-name-safe ``name``; a long one keeps its start and gains a hash of the whole."""
    safe = _SAFE.sub("_", name).strip("._") or "_"
    if len(safe) <= limit and safe == name:
        return safe
    return f"{safe[: limit - 9]}-{hashlib.sha1(name.encode()).hexdigest()[:8]}"


class _Source:
    """Values by key, each remembering where it came from, for one-line errors that name it."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self.origin: dict[str, str] = {}

    def set(self, key: str, value: Any, origin: str) -> None:
        self.values[key] = value
        self.origin[key] = origin

    def error(self, key: str, message: str) -> AttnguideError:
        origin = self.origin.get(key, "grid")
        where = origin if origin.startswith("--") else f"{origin}: {key}"
        return AttnguideError(f"{where}: {message}")


def read_grid_file(path: str | Path) -> dict[str, Any]:
    """The mapping of a grid YAML file, with unknown keys refused (closest known key suggested)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise DataError(path, f"cannot read the grid file ({error.strerror or error})") from None
    try:
        data = load_yaml(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise DataError(path, f"not valid YAML: {problem}", mark.line + 1 if mark else None) from None
    if not isinstance(data, dict):
        raise DataError(path, "expected a mapping of grid keys such as train, dev, guides, seeds")
    known = top_keys()
    for key in data:
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else f"; known keys: {', '.join(known)}"
            raise DataError(path, f"unknown key {key!r}{hint}")
    return data


def build_grid(
    config: str | Path | None = None, overrides: Mapping[str, tuple[Any, str]] | None = None
) -> Grid:
    """Validate a grid from a YAML file and/or flags and expand it into cells.

    ``overrides`` maps grid keys to ``(value, flag)`` and replaces the file's value of that key.
    Errors are one line naming the file and key, or the flag.
    """
    source = _Source()
    if config is not None:
        for key, value in read_grid_file(config).items():
            source.set(key, value, str(config))
    for key, (value, flag) in (overrides or {}).items():
        source.set(key, value, flag)
    if "output_dir" not in source.values:
        raise AttnguideError("the grid needs an output_dir (a key of the grid file, or --output-dir)")
    output_dir = source.values["output_dir"]
    if not isinstance(output_dir, str) or not output_dir.strip():
        raise source.error("output_dir", f"expected a directory name, got {output_dir!r}")

    test_all = source.values.get("test_all", False)
    if not isinstance(test_all, bool):
        raise source.error("test_all", f"expected true or false, got {test_all!r}")
    defaults = _train_defaults()
    sweeps = {key: _sweep(source, key, defaults[key]) for key in sweep_keys()}
    datasets = _datasets(source)
    guides = _guide_settings(source, sweeps)
    trainings = _training_settings(sweeps)
    models = _models(sweeps["models"])
    cells = [
        Cell(data, model, slug, guide, training, seed)
        for seed in sweeps["seeds"]
        for data in datasets
        for model, slug in models
        for training in trainings
        for guide in guides
    ]
    return Grid(
        source=str(config) if config is not None else "command line",
        output_dir=Path(output_dir),
        datasets=tuple(datasets),
        seeds=tuple(sweeps["seeds"]),
        cells=tuple(cells),
        test_all=test_all,
    )


def _product(sweeps: dict[str, list], keys: tuple[str, ...]) -> list[tuple]:
    return list(itertools.product(*(sweeps[k] for k in keys)))


def _training_settings(sweeps: dict[str, list]) -> list[dict[str, Any]]:
    """Every distinct training setting; the LoRA settings only where a LoRA rank is given."""
    keys = (*TRAINING_KEYS, *ADAPTER_KEYS)
    settings: list[dict[str, Any]] = []
    for values in _product(sweeps, keys):
        setting = dict(zip(keys, values, strict=True))
        if setting["lora_r"] is None:
            setting = {k: v for k, v in setting.items() if k not in ADAPTER_KEYS}
        if setting not in settings:
            settings.append(setting)
    return settings


def _guide_settings(source: _Source, sweeps: dict[str, list]) -> list[dict[str, Any]]:
    """Every distinct guide setting, the unguided baseline first (added when the grid lacks it)."""
    keys = guide_keys()
    owners = {s.name: setting_owner(s.name).name for s in swept_guide_settings()}
    settings: list[dict[str, Any]] = [{"guides": BASELINE}]
    for values in _product(sweeps, keys):
        setting = dict(zip(keys, values, strict=True))
        names = parse_guides(setting["guides"])
        if not names:
            continue  # a guide setting that no guide of this combination uses is dropped
        setting = {k: v for k, v in setting.items() if k not in owners or owners[k] in names}
        try:
            GuideConfig(**setting)
        except AttnguideError as error:
            raise source.error("guides", str(error)) from None
        if setting not in settings:
            settings.append(setting)
    return settings


def _models(names: list[str]) -> list[tuple[str, str]]:
    """``(model argument, directory name)`` per model; ``default`` is the packaged MiniLM."""
    from ..models import default_model_path

    slugs = [_shorten(Path(n.rstrip("/")).name or n) for n in names]
    models = []
    for name, slug in zip(names, slugs, strict=True):
        if slugs.count(slug) > 1:
            slug = f"{slug}-{hashlib.sha1(name.encode()).hexdigest()[:8]}"
        models.append((default_model_path() if name == DEFAULT_MODEL else name, slug))
    return models


# --- one key at a time --------------------------------------------------------------------------


def number_value(value: Any, integer: bool = False) -> float | int:
    """A finite int or float from YAML or a flag (text too: YAML 1.1 reads ``5e-5`` as a string);
    raises ValueError or TypeError for anything else (``true`` included)."""
    if isinstance(value, bool):
        raise ValueError
    number = float(value)
    if not math.isfinite(number) or (integer and not number.is_integer()):
        raise ValueError
    return int(number) if integer else number


def _numbers(integer: bool, check: Callable[[float], bool], expected: str) -> Callable:
    def convert(value: Any) -> float | int:
        try:
            number = number_value(value, integer)
        except (TypeError, ValueError):
            raise ValueError(expected) from None
        if not check(number):
            raise ValueError(expected)
        return number

    return convert


def _text(value: Any) -> str:
    if not isinstance(value, (str, int)) or isinstance(value, bool) or str(value).strip() == "":
        raise ValueError("expected a non-empty text value")
    return str(value).strip()


def _guides(value: Any) -> str:
    try:
        return "+".join(parse_guides(_text(value))) or BASELINE
    except AttnguideError as error:
        raise ValueError(str(error)) from None


def _layers(value: Any) -> str:
    """A layer selection: ``all``, ``last:K``, an index, or a list of indices (one selection)."""
    if isinstance(value, list):
        value = ",".join(
            str(_numbers(True, lambda n: True, "layer indices are whole numbers")(v)) for v in value
        )
    try:
        spec = parse_layers(_text(value))
    except AttnguideError as error:
        raise ValueError(str(error)) from None
    return spec if isinstance(spec, str) else ",".join(map(str, spec))


def _one_of(choices: tuple[str, ...]) -> Callable[[Any], str]:
    def convert(value: Any) -> str:
        if value not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}, got {value!r}")
        return value

    return convert


def _guide_setting(setting: GuideSetting) -> Callable[[Any], float]:
    """A grid value of a numeric guide setting, checked against the setting's bound."""
    low = setting.minimum
    check = (lambda n: n >= low) if setting.inclusive else (lambda n: n > low)
    return _numbers(False, check, f"expected {setting.expected}")


_CONVERT: dict[str, Callable[[Any], Any]] = {
    "models": _text,
    "guides": _guides,
    "layers": _layers,
    "scope": _one_of(SCOPES),
    "profile": _one_of(PROFILE_KINDS),
    "seeds": _numbers(True, lambda n: n >= 0, "expected whole numbers >= 0"),
    "epochs": _numbers(False, lambda n: n > 0, "expected numbers > 0"),
    "batch_size": _numbers(True, lambda n: n >= 1, "expected whole numbers >= 1"),
    "max_length": _numbers(True, lambda n: n >= 1, "expected whole numbers >= 1"),
    "lr": _numbers(False, lambda n: n > 0, "expected numbers > 0"),
    "lora_r": _numbers(True, lambda n: n >= 1, "expected whole numbers >= 1"),
    "lora_alpha": _numbers(False, lambda n: n > 0, "expected numbers > 0"),
    "lora_dropout": _numbers(False, lambda n: 0 <= n < 1, "expected numbers from 0 to below 1"),
    "lora_targets": _text,
}


def _convert(key: str) -> Callable[[Any], Any]:
    """The converter of a sweep key's values."""
    if key in _CONVERT:
        return _CONVERT[key]
    return _guide_setting(next(s for s in swept_guide_settings() if s.name == key))


def _train_defaults() -> dict[str, Any]:
    """The defaults of ``attnguide train`` for the keys a grid may leave out."""
    from ..training.options import option_default

    guide = GuideConfig()
    return {
        "models": DEFAULT_MODEL,
        "guides": [BASELINE, "mdg+pdg"],
        **{key: getattr(guide, key) for key in guide_keys()[1:]},
        **{key: option_default(key) for key in (*TRAINING_KEYS, *ADAPTER_KEYS)},
        "seeds": list(DEFAULT_SEEDS),
    }


def _sweep(source: _Source, key: str, default: Any) -> list:
    """A sweep key's values as a list without repeats: a single value is a list of one."""
    raw = source.values.get(key, default)
    if raw is None:  # a setting that is off unless given (lora_r)
        return [None]
    values = raw if isinstance(raw, list) else [raw]
    if not values:
        raise source.error(key, "needs at least one value")
    converted = []
    for value in values:
        if value is None and default is None:  # off (lora_r: [null, 8] compares with and without)
            item = None
        else:
            try:
                item = _convert(key)(value)
            except ValueError as error:
                raise source.error(key, f"{error} (got {value!r})") from None
        if key == "seeds" and item in converted:  # a repeated seed would repeat a run, not add one
            raise source.error(key, f"seed {item} is given twice; each seed is one more repetition")
        if item not in converted:
            converted.append(item)
    return converted


def _datasets(source: _Source) -> list[DataSet]:
    """The data sets: a ``datasets:`` list of mappings, or ``train``/``dev``/... lists paired by position."""
    given = [k for k in DATA_KEYS if k in source.values]
    if "datasets" in source.values:
        if given:
            raise source.error(
                given[0], "give data sets either under datasets: or as top-level keys, not both"
            )
        entries = source.values["datasets"]
        if not isinstance(entries, list) or not entries or not all(isinstance(e, dict) for e in entries):
            raise source.error("datasets", "expected a list of mappings with keys train, dev, test, ...")
        for entry in entries:
            unknown = [k for k in entry if k not in DATA_KEYS]
            if unknown:
                raise source.error("datasets", f"unknown key {unknown[0]!r}; expected {', '.join(DATA_KEYS)}")
        key_of = {i: "datasets" for i in range(len(entries))}
    else:
        if "train" not in source.values:
            raise AttnguideError(
                "the grid needs data: train and dev files (keys or flags), or a datasets: list"
            )
        count = len(source.values["train"]) if isinstance(source.values["train"], list) else 1
        entries = [{} for _ in range(count)]
        for key in given:
            value = source.values[key]
            paired = isinstance(value, list)
            if key == "train_options":  # a list of flags for every data set; a list of lists pairs them
                paired = paired and bool(value) and all(isinstance(v, list) for v in value)
            if paired:
                if len(value) != count:
                    raise source.error(
                        key, f"has {len(value)} values; train has {count} (paired by position)"
                    )
            else:
                value = [value] * count
            for entry, item in zip(entries, value, strict=True):
                entry[key] = item
        key_of = {}
    datasets = [_dataset(source, entry, key_of.get(i)) for i, entry in enumerate(entries)]
    return _name_datasets(source, datasets)


def _dataset(source: _Source, entry: dict[str, Any], key: str | None) -> DataSet:
    """One data set from its entry; ``key`` is ``datasets`` for entries of that list."""

    def fail(name: str, message: str) -> AttnguideError:
        return source.error(key or name, f"{name}: {message}" if key else message)

    files = {}
    for name in ("train", "dev", "test"):
        value = entry.get(name)
        if value is None:
            if name != "test":
                raise fail(name, f"missing {name} (a data file); the grid compares settings on dev")
            continue
        if not isinstance(value, str) or not Path(value).is_file():
            raise fail(name, f"no such data file: {value}")
        files[name] = str(Path(value).resolve())
    task = entry.get("task")
    if task is not None and task not in TASKS:
        raise fail("task", f"unknown task {task!r}; expected one of {', '.join(TASKS)}")
    kind = get_task(task)
    layout = entry.get("format", "auto")
    if layout not in kind.formats:
        raise fail(
            "format", f"unknown {kind.name} format {layout!r}; expected one of {', '.join(kind.formats)}"
        )
    metric = entry.get("metric", kind.metrics[0])
    if metric not in kind.metrics:
        raise fail("metric", f"expected one of {', '.join(kind.metrics)} (higher is better), got {metric!r}")
    columns = Columns(**{k: _text(entry[k]) for k in Columns.names() if entry.get(k) is not None})
    name = entry.get("name")
    if name is not None and (not isinstance(name, str) or _shorten(name) != name):
        raise fail("name", f"expected a plain file-name-safe name, got {name!r}")
    options = _train_options(entry.get("train_options", []), fail)
    return DataSet(
        name or "", files["train"], files["dev"], files.get("test"), layout, task, metric, columns, options
    )


def _train_options(value: Any, fail: Callable[[str, str], AttnguideError]) -> tuple[str, ...]:
    """A data set's further ``train`` flags; those the grid sets itself (model, guides, seed, ...) refused."""
    if not isinstance(value, list) or not all(isinstance(v, (str, int, float)) for v in value):
        raise fail("train_options", f"expected a list of train flags and values, got {value!r}")
    options = tuple(str(v) for v in value)
    owned = {"--model", "--train", "--dev", "--test", "--guide", "--seed", "--output-dir", "--task"}
    owned |= {"--" + k.replace("_", "-") for k in (*guide_keys()[1:], *TRAINING_KEYS, *ADAPTER_KEYS)}
    taken = next((o for o in options if o.split("=", 1)[0] in owned), None)
    if taken is not None:
        raise fail("train_options", f"{taken} is set by the grid itself; use its grid key instead")
    return options


def _name_datasets(source: _Source, datasets: list[DataSet]) -> list[DataSet]:
    """Unnamed data sets take their folder's name, or the train file's name where folders repeat."""
    folders = [Path(d.train).parent.name for d in datasets]
    named = []
    for data, folder in zip(datasets, folders, strict=True):
        name = data.name or _shorten(folder if folders.count(folder) == 1 else Path(data.train).stem)
        named.append(replace(data, name=name))
    names = [d.name for d in named]
    repeated = next((n for n in names if names.count(n) > 1), None)
    if repeated is not None:
        key = "datasets" if "datasets" in source.values else "train"
        raise source.error(key, f"two data sets are named {repeated!r}; give each a distinct name")
    return named
