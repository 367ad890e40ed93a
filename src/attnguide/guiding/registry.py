"""The one registry of guides: everything attnguide knows about a guide is its ``Guide`` row.

A row names the guide (the value of ``--guide`` and of a grid's ``guides``), its loss, whether the
loss needs full attention maps or only the heads' profiles, what it needs of the tokenizer, and its
settings: the weight (default, ``--NAME-weight`` flag, grid key ``NAME_weight``, column of
``compare``'s report) and any parameter its loss reads (MDG's temperature, pattern guidance's
spread). ``GuideConfig``, the command line, the grid of ``compare`` and its report, ``analyze``'s
rows and ``tune``'s default space are generated from these rows, so a guide registered with
``register_guide`` before any of them is used is picked up everywhere with no other edit
(``docs/ARCHITECTURE.md``, "Adding a guide").

The module imports no torch: losses are named as ``"module:function"`` and imported when a batch
first needs them, so that ``attnguide --help`` can list the guides at once.
"""

from __future__ import annotations

import functools
import importlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError
from .pattern_spread import DEFAULT_SPREAD, parse_spread


@dataclass(frozen=True)
class GuideSetting:
    """One setting of a guide: its weight, or a parameter of its loss.

    ``name`` is the ``GuideConfig`` attribute and the grid key; the flag is ``--`` + ``name`` with
    dashes. Numbers (``minimum`` not None) must be finite and >= ``minimum`` (> where not
    ``inclusive``); text settings are checked by ``check``. ``short`` prefixes the value in
    ``compare``'s run directory names (``a0.001``); a setting without one is not a grid key.
    """

    name: str
    default: float | str
    help: str
    minimum: float | None = 0.0
    inclusive: bool = True
    short: str | None = None
    check: Callable[[str], object] | None = None

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def expected(self) -> str:
        """What a valid value is, for messages: ``numbers >= 0``."""
        return f"numbers {'>=' if self.inclusive else '>'} {self.minimum:g}"

    def convert(self, value: Any) -> float | str:
        """The value checked and converted (numbers to float); raises ConfigError naming the setting."""
        if self.minimum is None:
            if self.check is not None:
                self.check(value)
            return value
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        ok = ok and (value >= self.minimum if self.inclusive else value > self.minimum)
        if not ok:
            bound = f"{'>=' if self.inclusive else '>'} {self.minimum:g}"
            raise ConfigError(f"{self.name} must be a finite number {bound}, got {value!r}")
        return float(value)


@dataclass(frozen=True)
class Guide:
    """A guiding loss and everything the tool needs to offer it.

    ``loss`` is the function or its ``"module:function"`` name. A profile guide's loss takes
    ``(profiles [batch, heads, positions], mask [batch, positions], config)``, with the heads of a
    ``per-layer`` scope already split into problems of their own; a map guide's
    (``needs_maps``) takes ``(MapInputs, mask, config)`` with the guided layers' full maps, which
    only the output-attentions capture gives. Both return a scalar tensor, lower meaning better
    guided. ``weight`` is the setting that scales the loss; ``settings`` the others it reads.
    ``from_tokenizer`` (a function or its ``"module:function"`` name), where a map guide's loss needs
    more than the batch's token ids, makes that from the model's tokenizer once per run; the loss
    gets it as ``MapInputs.tokens`` (pattern guidance: the delimiter and period tokens).
    ``description`` says what the loss's value means in ``attnguide analyze``'s report (default:
    the title).
    """

    name: str
    title: str
    loss: Callable | str
    weight: GuideSetting
    needs_maps: bool = False
    settings: tuple[GuideSetting, ...] = ()
    reference: str = ""
    from_tokenizer: Callable | str | None = None
    description: str = ""
    _resolved: list = field(default_factory=list, init=False, repr=False, compare=False)

    @property
    def all_settings(self) -> tuple[GuideSetting, ...]:
        return (self.weight, *self.settings)

    def compute(self, inputs: Any, mask: Any, config: Any) -> Any:
        """The loss of a batch (see the class docstring for the arguments)."""
        if not self._resolved:
            self._resolved.append(_resolve(self.loss))
        return self._resolved[0](inputs, mask, config)

    def tokens(self, tokenizer: Any) -> Any:
        """What the loss needs of ``tokenizer`` (``from_tokenizer``; None for a guide that needs nothing)."""
        return None if self.from_tokenizer is None else _resolve(self.from_tokenizer)(tokenizer)


def _resolve(function: Callable | str) -> Callable:
    """A function, or the one a ``"module:name"`` text names (``name`` may be dotted: ``Class.method``)."""
    if not isinstance(function, str):
        return function
    module, _, name = function.partition(":")
    return functools.reduce(getattr, name.split("."), importlib.import_module(module))


def weight_setting(name: str, default: float, short: str, what: str) -> GuideSetting:
    """The weight setting of guide ``name``: ``NAME_weight``, flag ``--NAME-weight``."""
    return GuideSetting(f"{name}_weight", default, f"weight of {what} (default: {default:g})", short=short)


GUIDES: dict[str, Guide] = {}
"""The registered guides by name, in registration order: the built-in ones first."""

# Settings of GuideConfig that belong to no guide; a guide setting may not take these names.
GENERAL_SETTINGS = ("guides", "layers", "scope", "profile", "warmup_steps", "capture")


def register_guide(guide: Guide) -> Guide:
    """Add a guide to the registry; its name and setting names must be new."""
    if guide.name in GUIDES or guide.name == "none" or not guide.name.isidentifier():
        raise ConfigError(f"cannot register guide {guide.name!r}: the name is taken or not an identifier")
    taken = {s.name for g in GUIDES.values() for s in g.all_settings} | set(GENERAL_SETTINGS)
    clash = next((s.name for s in guide.all_settings if s.name in taken), None)
    if clash is not None:
        raise ConfigError(f"cannot register guide {guide.name!r}: setting {clash!r} is taken")
    GUIDES[guide.name] = guide
    return guide


def unregister_guide(name: str) -> None:
    """Remove a guide from the registry (for tests and plug-ins that add one for a while)."""
    del GUIDES[name]


def guide_settings() -> list[GuideSetting]:
    """Every guide's settings: all weights first, in registry order, then the other settings."""
    guides = list(GUIDES.values())
    return [g.weight for g in guides] + [s for g in guides for s in g.settings]


def setting_owner(name: str) -> Guide | None:
    """The guide that a setting belongs to (None for a general setting)."""
    return next((g for g in GUIDES.values() if any(s.name == name for s in g.all_settings)), None)


# --- the built-in guides (docs/METHOD.md defines each) ------------------------------------------

_LOSSES = "attnguide.guiding.builtin_guides"
_PAPER = (
    "Wang et al., Paying More Attention to Self-attention: Improving Pre-trained Language Models "
    "via Attention Guiding, 2022"
)

register_guide(
    Guide(
        "mdg",
        "MDG, map discrimination guiding",
        f"{_LOSSES}:mdg",
        weight_setting("mdg", 1e-3, "a", "the MDG loss (α)"),
        settings=(
            GuideSetting(
                "temperature",
                2.0,
                "MDG temperature τ (default: 2.0)",
                minimum=0.0,
                inclusive=False,
                short="t",
            ),
        ),
        reference=_PAPER,
        description="MDG loss, τ = 2 (log of the number of heads when all are alike, lower as they differ)",
    )
)
register_guide(
    Guide(
        "pdg",
        "PDG, attention pattern decorrelation guiding",
        f"{_LOSSES}:pdg",
        weight_setting("pdg", 1e-3, "b", "the PDG loss (β)"),
        reference=_PAPER,
        description="PDG loss (lower: heads cover different positions)",
    )
)
register_guide(
    Guide(
        "pattern",
        "pattern guidance",
        f"{_LOSSES}:pattern",
        weight_setting("pattern", 1.0, "p", "pattern guidance"),
        needs_maps=True,
        settings=(
            GuideSetting(
                "pattern_spread",
                DEFAULT_SPREAD,
                f"heads per pattern in each layer, in order (default: {DEFAULT_SPREAD})",
                minimum=None,
                check=lambda spec: parse_spread(spec, heads_per_layer=0),
            ),
        ),
        reference="Deshpande and Narasimhan, Findings of EMNLP 2020",
        from_tokenizer="attnguide.guiding.patterns:PatternTokens.from_tokenizer",
        description="pattern guidance loss, the default spread (mean squared distance of the assigned "
        "heads' maps from their patterns; 0 when they follow them)",
    )
)
register_guide(
    Guide(
        "disagreement",
        "disagreement regularisation",
        f"{_LOSSES}:disagreement",
        weight_setting("disagreement", 1.0, "d", "disagreement regularisation"),
        needs_maps=True,
        reference="Li et al., EMNLP 2018",
        description="disagreement loss (mean cosine similarity of a layer's heads' maps: 1 when all "
        "attend alike, 0 when no two attend to the same positions)",
    )
)
