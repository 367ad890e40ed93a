"""``GuideConfig``: which guiding losses to add, how strongly, and over which heads."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from .errors import ConfigError
from .patterns import DEFAULT_SPREAD, parse_spread
from .profiles import PROFILE_KINDS

PROFILE_GUIDES = ("mdg", "pdg")  # computed from attention profiles
MAP_GUIDES = ("pattern", "disagreement")  # computed from full attention maps
GUIDES = PROFILE_GUIDES + MAP_GUIDES
SCOPES = ("joint", "per-layer")
CAPTURES = ("auto", "efficient", "output-attentions")


def parse_guides(spec: str | Sequence[str]) -> tuple[str, ...]:
    """``"mdg+pdg"`` or ``["mdg", "pdg"]`` -> ``("mdg", "pdg")``; ``"none"`` or ``""`` -> ``()``."""
    parts = spec.split("+") if isinstance(spec, str) else list(spec)
    names = tuple(
        dict.fromkeys(p.strip().lower() for p in parts if p.strip() and p.strip().lower() != "none")
    )
    unknown = [n for n in names if n not in GUIDES]
    if unknown:
        raise ConfigError(
            f"unknown guide {unknown[0]!r}; expected none or a '+'-joined choice of {', '.join(GUIDES)}"
        )
    return names


def parse_layers(spec: str | Sequence[int]) -> str | tuple[int, ...]:
    """Check a layer selection's syntax: ``"all"``, ``"last:K"`` with K >= 1, or layer indices."""
    if not isinstance(spec, str):
        return tuple(int(i) for i in spec)
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
    return indices


@dataclass
class GuideConfig:
    """Settings of attention guiding (SPEC defaults: α = β = 0.001, τ = 2.0, all layers, joint).

    ``guides`` names the losses to add (``"mdg+pdg"`` or a sequence); ``layers`` is ``"all"``,
    ``"last:K"`` or layer indices; ``scope`` is ``"joint"`` (one problem over every guided head) or
    ``"per-layer"`` (heads discriminated within each layer); ``profile`` is ``"received"`` or the
    signal-free ``"released-code"``; ``warmup_steps`` ramps every weight linearly from 0.
    The peer guides ``pattern`` (pattern guidance, Deshpande and Narasimhan 2020: heads pulled
    towards fixed patterns, assigned per layer by ``pattern_spread``) and ``disagreement``
    (Li et al. 2018: mean pairwise cosine of a layer's head maps) need full attention maps, so they
    take the output-attentions route; their weights (1.0) were not tuned.
    ``capture`` is how profiles are taken: ``"efficient"`` (beside the fast attention kernel, no
    n × n maps kept), ``"output-attentions"`` (eager maps), or ``"auto"`` (efficient where the
    model allows it; ``released-code`` always takes the output-attentions route).
    """

    guides: str | Sequence[str] = ("mdg", "pdg")
    mdg_weight: float = 1e-3
    pdg_weight: float = 1e-3
    pattern_weight: float = 1.0
    disagreement_weight: float = 1.0
    pattern_spread: str = DEFAULT_SPREAD
    temperature: float = 2.0
    layers: str | Sequence[int] = "all"
    scope: str = "joint"
    profile: str = "received"
    warmup_steps: int = 0
    capture: str = "auto"
    _layer_spec: str | tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.guides = parse_guides(self.guides)
        self._layer_spec = parse_layers(self.layers)
        self.layers = self._layer_spec if isinstance(self._layer_spec, str) else list(self._layer_spec)
        for name in (f"{guide}_weight" for guide in GUIDES):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ConfigError(f"{name} must be a finite number >= 0, got {value!r}")
        if (
            not isinstance(self.temperature, (int, float))
            or not math.isfinite(self.temperature)
            or self.temperature <= 0
        ):
            raise ConfigError(f"temperature must be a finite number > 0, got {self.temperature!r}")
        if self.scope not in SCOPES:
            raise ConfigError(f"unknown scope {self.scope!r}; expected one of {', '.join(SCOPES)}")
        if self.profile not in PROFILE_KINDS:
            raise ConfigError(f"unknown profile {self.profile!r}; expected one of {', '.join(PROFILE_KINDS)}")
        if not isinstance(self.warmup_steps, int) or self.warmup_steps < 0:
            raise ConfigError(f"warmup_steps must be a whole number >= 0, got {self.warmup_steps!r}")
        parse_spread(self.pattern_spread, heads_per_layer=0)  # syntax only: head counts come later
        if self.capture not in CAPTURES:
            raise ConfigError(f"unknown capture {self.capture!r}; expected one of {', '.join(CAPTURES)}")
        if self.capture == "efficient" and self.profile != "received":
            raise ConfigError(
                f"capture 'efficient' computes the 'received' profile only; profile {self.profile!r} "
                "needs capture 'output-attentions' or 'auto'"
            )
        if self.capture == "efficient" and self.needs_maps:
            raise ConfigError(
                "the pattern and disagreement guides need full attention maps: use capture "
                "'output-attentions' or 'auto'"
            )

    def weight(self, guide: str) -> float:
        """The configured weight of one guide, 0 where that guide is not enabled."""
        return float(getattr(self, f"{guide}_weight")) if guide in self.guides else 0.0

    @property
    def active(self) -> bool:
        """Whether any guide contributes to the loss (a positive weight on an enabled guide)."""
        return any(self.weight(g) > 0 for g in self.guides)

    @property
    def needs_maps(self) -> bool:
        """Whether an active guide needs full attention maps, not only profiles."""
        return any(self.weight(g) > 0 for g in MAP_GUIDES)

    @property
    def trained_guides(self) -> tuple[str, ...]:
        """The guides whose losses a training step computes and logs: the enabled profile guides at
        any weight (they cost little), the map guides only at a positive weight (only then are the
        maps they need captured)."""
        return tuple(g for g in self.guides if g not in MAP_GUIDES or self.weight(g) > 0)

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
        return sorted({i % num_layers for i in spec})

    def to_dict(self) -> dict:
        """Plain settings for ``run.json``."""
        data = asdict(self)
        data.pop("_layer_spec")
        data["guides"] = "+".join(self.guides) or "none"
        return data
