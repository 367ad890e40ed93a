"""The search space of ``attnguide tune``: which guides to add (every registered guide by default),
their weights (log scales), MDG's temperature, the guided layers and the weights' warm-up
(``SearchSpace``; a YAML file narrows or widens it), and how a trial draws its setting from it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..errors import AttnguideError, DataError
from ..files import load_yaml
from ..guiding.config import SCOPES, parse_guides, parse_layers
from ..guiding.registry import GUIDES, guide_settings, setting_owner

GENERAL = ("guides", "layers", "scope", "guide_warmup_steps")
FIXED_RANGES: dict[str, Any] = {
    "mdg_weight": {"low": 1e-4, "high": 1e-1, "log": True},
    "pdg_weight": {"low": 1e-5, "high": 3e-3, "log": True},
    "temperature": {"low": 0.5, "high": 8.0, "log": True},
}
"""The ranges of the default space set by hand. PDG's stops at three times its default weight, where
the SICK grids of docs/RESULTS.md already lose points; another registered guide's weight, where the
guides name it, ranges from a hundredth to ten times its default."""


def default_space(capture: str = "auto") -> dict[str, Any]:
    """The default search space: each registered guide alone and MDG with PDG (those that need full
    attention maps left out where ``capture`` is ``efficient``, which keeps none), ``FIXED_RANGES``,
    every layer choice a model may have, and the warm-up."""
    guides = [name for name in [*GUIDES, "mdg+pdg"] if capture != "efficient" or not _needs_maps(name)]
    return {
        "guides": guides,
        **FIXED_RANGES,
        "layers": ["all", "last:2", "last:4"],
        "guide_warmup_steps": [0, 100],
    }


def _needs_maps(guides: str) -> bool:
    """Whether a choice of guides (``mdg+pattern``) names one that needs full attention maps."""
    return any(GUIDES[name].needs_maps for name in parse_guides(guides))


@dataclass(frozen=True)
class Range:
    """A float parameter drawn from [low, high], on a log scale where ``log``."""

    low: float
    high: float
    log: bool = True


@dataclass
class SearchSpace:
    """Categorical parameters (a list of choices), float ranges, and fixed values, by name."""

    params: dict[str, Any] = field(default_factory=default_space)
    source: str = "the default space"
    given: frozenset[str] = frozenset()  # the parameters the space file set

    @classmethod
    def from_file(cls, path: str | Path | None, capture: str = "auto") -> SearchSpace:
        """The default space (``default_space(capture)``) with the keys of a YAML file replacing the
        defaults of the same name; with ``capture`` efficient, a guide choice that needs full attention
        maps is refused."""
        space: dict[str, Any] = default_space(capture)
        if path is not None:
            try:
                loaded = load_yaml(Path(path).read_text(encoding="utf-8"))
            except OSError as error:
                raise DataError(path, f"cannot read the search space ({error.strerror or error})") from None
            except yaml.YAMLError as error:
                raise DataError(path, f"not valid YAML: {str(error).splitlines()[0]}") from None
            if not isinstance(loaded, dict):
                raise DataError(path, "expected a mapping of parameters such as guides, mdg_weight, layers")
            space.update(loaded)
        source = str(path) if path else "the default space"
        checked = _checked(space, source)
        maps = next((choice for choice in checked["guides"] if _needs_maps(str(choice))), None)
        if capture == "efficient" and maps is not None:
            raise AttnguideError(
                f"{source}: guides: {maps!r} needs full attention maps, which --capture efficient does not "
                "keep: use --capture auto or output-attentions, or search other guides"
            )
        return cls(checked, source, frozenset(loaded) if path else frozenset())

    def fitted_to(self, num_layers: int) -> SearchSpace:
        """The space for a model with ``num_layers`` layers: layer choices it does not have are
        dropped from the default space (``last:4`` of a 2-layer model) and refused from a file."""
        kept = [c for c in self.params.get("layers", ["all"]) if _fits(c, num_layers)]
        if len(kept) < len(self.params.get("layers", ["all"])) and "layers" in self.given:
            wrong = next(c for c in self.params["layers"] if c not in kept)
            raise AttnguideError(f"{self.source}: layers: the model has {num_layers} layers (got {wrong!r})")
        return SearchSpace({**self.params, "layers": kept or ["all"]}, self.source, self.given)

    def to_dict(self) -> dict[str, Any]:
        return {k: v.__dict__ if isinstance(v, Range) else v for k, v in self.params.items()}

    def suggest(self, trial: Any) -> dict[str, Any]:
        """A trial's guide settings: the guides, then only the settings those guides use."""
        guides = self._choose(trial, "guides")
        names = parse_guides(guides)
        settings: dict[str, Any] = {"guides": guides}
        for setting in guide_settings():
            owner = setting_owner(setting.name)
            if setting.minimum is not None and owner.name in names:
                settings[setting.name] = self._choose(trial, setting.name, _default_range(setting.name))
        settings["layers"] = self._choose(trial, "layers", "all")
        settings["scope"] = self._choose(trial, "scope", "joint")
        settings["warmup_steps"] = int(self._choose(trial, "guide_warmup_steps", 0))
        return settings

    def _choose(self, trial: Any, name: str, default: Any = None) -> Any:
        value = self.params.get(name, default)
        if isinstance(value, Range):
            return trial.suggest_float(name, value.low, value.high, log=value.log)
        if isinstance(value, list):
            return trial.suggest_categorical(name, value) if len(value) > 1 else value[0]
        return value


def _fits(choice: Any, num_layers: int) -> bool:
    """Whether a layer selection names layers a model of ``num_layers`` has (``last:L`` is ``all``)."""
    spec = parse_layers(str(choice))
    if spec == "all":
        return True
    if isinstance(spec, str):
        return int(spec.split(":")[1]) < num_layers
    return all(-num_layers <= i < num_layers for i in spec)


def _default_range(name: str) -> Range:
    default = next(s.default for s in guide_settings() if s.name == name)
    return Range(default / 100, default * 10)


def _checked(space: Mapping[str, Any], source: str) -> dict[str, Any]:
    """The space with its ranges as ``Range``; an unknown parameter or an empty range is an error."""
    numeric = {s.name: s for s in guide_settings() if s.minimum is not None}
    known = (*GENERAL, *numeric)
    checked: dict[str, Any] = {}
    for name, value in space.items():
        if name not in known:
            raise AttnguideError(f"{source}: unknown parameter {name!r}; expected one of {', '.join(known)}")
        if isinstance(value, dict):
            if (
                name not in numeric
                or set(value) - {"low", "high", "log"}
                or not {"low", "high"} <= set(value)
            ):
                raise AttnguideError(f"{source}: {name}: expected a list of choices or {{low, high[, log]}}")
            low, high = (_number(source, f"{name}: {end}", value[end]) for end in ("low", "high"))
            log = value.get("log", True)
            if not isinstance(log, bool):
                raise AttnguideError(f"{source}: {name}: log: expected true or false, got {log!r}")
            if not low < high:
                raise AttnguideError(
                    f"{source}: {name}: empty range: low {value['low']!r} must be below "
                    f"high {value['high']!r}"
                )
            if log and low <= 0:
                raise AttnguideError(f"{source}: {name}: a log range needs low > 0, got {value['low']!r}")
            try:
                numeric[name].convert(low)
            except AttnguideError as error:
                raise AttnguideError(f"{source}: {name}: low: {error}") from None
            checked[name] = Range(low, high, log)
            continue
        choices = value if isinstance(value, list) else [value]
        if not choices:
            raise AttnguideError(f"{source}: {name}: empty list of choices")
        if name in numeric:  # YAML 1.1 reads 1e-4 as text: numbers in text are numbers
            choices = [_number(source, name, choice) for choice in choices]
        elif name == "guide_warmup_steps":
            choices = [_number(source, name, choice, integer=True) for choice in choices]
        for choice in choices:
            _check_choice(source, name, choice, numeric)
        checked[name] = choices
    return checked


def _number(source: str, where: str, value: Any, integer: bool = False) -> float | int:
    """A number of the space file (``grid.number_value``: text such as ``1e-4`` too); else an error
    naming the file and key."""
    from .grid import number_value

    try:
        return number_value(value, integer)
    except (TypeError, ValueError):
        expected = "a whole number" if integer else "a finite number"
        raise AttnguideError(f"{source}: {where}: expected {expected}, got {value!r}") from None


def _check_choice(source: str, name: str, choice: Any, numeric: dict) -> None:
    try:
        if name == "guides":
            if not parse_guides(str(choice)):
                raise AttnguideError("'none' is the baseline, trial 0, and not a choice of the search")
        elif name == "layers":
            parse_layers(str(choice))
        elif name == "scope":
            if choice not in SCOPES:
                raise AttnguideError(f"expected one of {', '.join(SCOPES)}")
        elif name == "guide_warmup_steps":
            if not isinstance(choice, int) or choice < 0:
                raise AttnguideError("expected whole numbers >= 0")
        else:
            numeric[name].convert(choice)
    except AttnguideError as error:
        raise AttnguideError(f"{source}: {name}: {error} (got {choice!r})") from None
