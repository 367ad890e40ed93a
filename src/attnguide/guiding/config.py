"""``GuideConfig``: which guiding losses to add, how strongly, and over which heads.

Its guide settings (weights, MDG's temperature, pattern guidance's spread, and those of any guide
registered later) come from the guide registry; the other settings say where guiding applies.
Imports no torch, so that the command line can check settings before loading anything heavy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from difflib import get_close_matches
from numbers import Integral
from typing import Any

from ..errors import ConfigError
from .registry import GENERAL_SETTINGS, GUIDES, guide_settings

SCOPES = ("joint", "per-layer")
CAPTURES = ("auto", "efficient", "output-attentions")
PROFILE_KINDS = ("received", "released-code")
"""``received``: attention each position receives (docs/METHOD.md); ``released-code``: the authors'
released code's mean over keys, 1/n everywhere (no guiding signal, for reproducing it only)."""


def parse_guides(spec: str | Sequence[str]) -> tuple[str, ...]:
    """``"mdg+pdg"`` or ``["mdg", "pdg"]`` -> ``("mdg", "pdg")``; ``"none"`` or ``""`` -> ``()``."""
    if isinstance(spec, str):
        parts = spec.split("+")
    elif isinstance(spec, Sequence) and all(isinstance(p, str) for p in spec):
        parts = list(spec)
    else:
        raise ConfigError(f"guides: expected text such as 'mdg+pdg' or a list of guide names, got {spec!r}")
    names = tuple(
        dict.fromkeys(p.strip().lower() for p in parts if p.strip() and p.strip().lower() != "none")
    )
    unknown = next((n for n in names if n not in GUIDES), None)
    if unknown is not None:
        raise ConfigError(
            f"unknown guide {unknown!r}{_suggestion(unknown, [*GUIDES, 'none'])}; expected none or a "
            f"'+'-joined choice of {', '.join(GUIDES)}"
        )
    return names


def _suggestion(name: str, known: Sequence[str]) -> str:
    """``" (did you mean 'pdg'?)"`` for a near miss (or a ','-joined list for '+'), else ``""``."""
    if "," in name and all(part.strip() in known for part in name.split(",")):
        return f" (did you mean {'+'.join(part.strip() for part in name.split(','))!r}?)"
    close = get_close_matches(name, known, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def parse_layers(spec: str | Sequence[int]) -> str | tuple[int, ...]:
    """Check a layer selection's syntax: ``"all"``, ``"last:K"`` with K >= 1, or layer indices."""
    if not isinstance(spec, str):
        if not isinstance(spec, Sequence) or not all(
            isinstance(i, Integral) and not isinstance(i, bool) for i in spec
        ):
            raise ConfigError(
                f"layers: expected 'all', 'last:K' or a list of whole layer indices, got {spec!r}"
                + (f" (layer {spec} alone: [{spec}])" if isinstance(spec, int) else "")
            )
        return _distinct(tuple(int(i) for i in spec), spec)
    text = spec.strip().lower()
    if text == "all":
        return "all"
    if text.startswith("last:"):
        count = text[5:]
        if not count.isdigit() or int(count) < 1:
            raise ConfigError(f"--layers {spec!r}: expected last:K with K a whole number >= 1")
        return f"last:{int(count)}"
    try:
        indices = tuple(int(p) for p in text.split(","))
    except ValueError:
        raise ConfigError(
            f"--layers {spec!r}: expected all, last:K or comma-separated layer indices"
        ) from None
    return _distinct(indices, spec)


def _distinct(indices: tuple[int, ...], spec: object) -> tuple[int, ...]:
    """The indices, refused where empty or where one is given twice."""
    if not indices:
        raise ConfigError("layers: name at least one layer (or 'all')")
    twice = next((i for i in indices if indices.count(i) > 1), None)
    if twice is not None:
        raise ConfigError(f"--layers {spec!r}: layer {twice} is given twice")
    return indices


class GuideConfig:
    """Settings of attention guiding (defaults: MDG and PDG, α = β = 0.001, τ = 2.0, all layers, joint).

    ``guides`` names the losses to add (``"mdg+pdg"`` or a sequence; ``"none"`` for none);
    ``layers`` is ``"all"``, ``"last:K"`` or layer indices; ``scope`` is ``"joint"`` (one problem
    over every guided head) or ``"per-layer"`` (heads discriminated within each layer);
    ``profile`` is ``"received"`` or the signal-free ``"released-code"``; ``warmup_steps`` ramps
    every weight linearly from 0; ``capture`` is how profiles are taken: ``"efficient"`` (beside
    the fast attention kernel, no n × n maps kept), ``"output-attentions"`` (eager maps), or
    ``"auto"`` (efficient where the model and the guides allow it).

    Every guide setting of the registry is a keyword too, with the registry's default: the weights
    ``mdg_weight``, ``pdg_weight``, ``pattern_weight``, ``disagreement_weight``, MDG's
    ``temperature`` and pattern guidance's ``pattern_spread``. The peer guides ``pattern`` and
    ``disagreement`` need full attention maps, so they take the output-attentions route; their
    weights (1.0) were not tuned.
    """

    def __init__(
        self,
        guides: str | Sequence[str] = ("mdg", "pdg"),
        *,
        layers: str | Sequence[int] = "all",
        scope: str = "joint",
        profile: str = "received",
        warmup_steps: int = 0,
        capture: str = "auto",
        **settings: Any,
    ) -> None:
        known = {s.name: s for s in guide_settings()}
        unknown = next((name for name in settings if name not in known), None)
        if unknown is not None:
            raise ConfigError(
                f"unknown guide setting {unknown!r}{_suggestion(unknown, [*known, *GENERAL_SETTINGS])}; "
                f"expected one of {', '.join(known)}"
            )
        self.guides = parse_guides(guides)
        self.settings = {name: s.convert(settings.get(name, s.default)) for name, s in known.items()}
        spec = parse_layers(layers)
        self._layer_spec = spec
        self.layers: str | list[int] = spec if isinstance(spec, str) else list(spec)
        self.scope, self.profile, self.capture = scope, profile, capture
        self.warmup_steps = warmup_steps
        self._check()

    def _check(self) -> None:
        if self.scope not in SCOPES:
            raise ConfigError(f"unknown scope {self.scope!r}; expected one of {', '.join(SCOPES)}")
        if self.profile not in PROFILE_KINDS:
            raise ConfigError(f"unknown profile {self.profile!r}; expected one of {', '.join(PROFILE_KINDS)}")
        if (
            not isinstance(self.warmup_steps, int)
            or isinstance(self.warmup_steps, bool)
            or self.warmup_steps < 0
        ):
            raise ConfigError(f"warmup_steps must be a whole number >= 0, got {self.warmup_steps!r}")
        if self.capture not in CAPTURES:
            raise ConfigError(f"unknown capture {self.capture!r}; expected one of {', '.join(CAPTURES)}")
        if self.capture == "efficient" and self.profile != "received":
            raise ConfigError(
                f"capture 'efficient' computes the 'received' profile only; profile {self.profile!r} "
                "needs capture 'output-attentions' or 'auto'"
            )
        if self.capture == "efficient" and self.needs_maps:
            maps = " and ".join(g for g in GUIDES if GUIDES[g].needs_maps)
            raise ConfigError(
                f"the {maps} guides need full attention maps: use capture 'output-attentions' or 'auto'"
            )

    def __getattr__(self, name: str) -> Any:
        settings = self.__dict__.get("settings", {})
        if name in settings:
            return settings[name]
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, GuideConfig) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return f"GuideConfig({', '.join(f'{k}={v!r}' for k, v in self.to_dict().items())})"

    def weight(self, guide: str) -> float:
        """The configured weight of one guide, 0 where that guide is not enabled."""
        return float(self.settings[GUIDES[guide].weight.name]) if guide in self.guides else 0.0

    @property
    def active(self) -> bool:
        """Whether any guide contributes to the loss (a positive weight on an enabled guide)."""
        return any(self.weight(g) > 0 for g in self.guides)

    @property
    def needs_maps(self) -> bool:
        """Whether an active guide needs full attention maps, not only profiles."""
        return any(self.weight(g) > 0 for g in self.guides if GUIDES[g].needs_maps)

    @property
    def trained_guides(self) -> tuple[str, ...]:
        """The guides whose losses a training step computes and logs: the enabled profile guides at
        any weight (they cost little), the map guides only at a positive weight (only then are the
        maps they need captured)."""
        return tuple(g for g in self.guides if not GUIDES[g].needs_maps or self.weight(g) > 0)

    def ramp(self, step: int) -> float:
        """Multiplier of the weights at an optimiser step: linear from 0 to 1 over ``warmup_steps``."""
        return 1.0 if self.warmup_steps == 0 else min(1.0, step / self.warmup_steps)

    def layer_indices(self, num_layers: int) -> list[int]:
        """The guided layers of a model with ``num_layers`` layers, as sorted indices from 0."""
        spec = self._layer_spec
        if spec == "all":
            return list(range(num_layers))
        if isinstance(spec, str):
            count = int(spec.split(":")[1])
            if count > num_layers:
                raise ConfigError(f"--layers {spec}: the model has only {num_layers} layers")
            return list(range(num_layers - count, num_layers))
        bad = [i for i in spec if not -num_layers <= i < num_layers]
        if bad:
            raise ConfigError(
                f"layer index {bad[0]} is out of range: the model has layers 0..{num_layers - 1}"
            )
        same = next(((i, j) for i in spec for j in spec if i < j and i % num_layers == j % num_layers), None)
        if same is not None:
            raise ConfigError(
                f"--layers: {same[0]} and {same[1]} are the same layer of a {num_layers}-layer model"
            )
        return sorted({i % num_layers for i in spec})

    def to_dict(self) -> dict[str, Any]:
        """Plain settings, as ``run.json`` records them; ``GuideConfig(**to_dict())`` gives them back."""
        return {
            "guides": "+".join(self.guides) or "none",
            **self.settings,
            "layers": self.layers,
            "scope": self.scope,
            "profile": self.profile,
            "warmup_steps": self.warmup_steps,
            "capture": self.capture,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GuideConfig:
        """The settings ``to_dict`` wrote (a run's ``run.json``); settings of guides that are not
        registered here are refused by name."""
        if not isinstance(data, Mapping):
            raise ConfigError(
                f"GuideConfig.from_dict: expected a mapping of settings, got {type(data).__name__}"
            )
        return cls(**data)
