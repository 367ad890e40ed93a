"""GuideConfig parsing and validation."""

from __future__ import annotations

import pytest

from attnguide import GuideConfig
from attnguide.errors import ConfigError


def test_defaults_follow_spec() -> None:
    config = GuideConfig()
    assert config.guides == ("mdg", "pdg")
    assert (config.mdg_weight, config.pdg_weight, config.temperature) == (1e-3, 1e-3, 2.0)
    assert config.layer_indices(6) == [0, 1, 2, 3, 4, 5]
    assert config.scope == "joint" and config.profile == "received" and config.active


@pytest.mark.parametrize(
    ("spec", "want"),
    [("none", ()), ("mdg", ("mdg",)), ("pdg+mdg", ("pdg", "mdg")), (["mdg", "mdg"], ("mdg",)), ("", ())],
)
def test_guide_specs(spec, want) -> None:
    assert GuideConfig(guides=spec).guides == want


def test_inactive_when_no_guide_or_zero_weights() -> None:
    assert not GuideConfig(guides="none").active
    assert not GuideConfig(mdg_weight=0, pdg_weight=0).active
    assert GuideConfig(guides="pdg", mdg_weight=0).active
    assert GuideConfig(guides="mdg").weight("pdg") == 0.0


@pytest.mark.parametrize(
    ("layers", "want"), [("last:2", [4, 5]), ("0,3", [0, 3]), ("5,-6", [0, 5]), ([1], [1])]
)
def test_layer_selection(layers, want) -> None:
    assert GuideConfig(layers=layers).layer_indices(6) == want


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"guides": "mdg+foo"}, "unknown guide 'foo'"),
        ({"mdg_weight": -1}, "mdg_weight must be a finite number >= 0"),
        ({"pdg_weight": float("nan")}, "pdg_weight must be a finite number >= 0"),
        ({"temperature": 0}, "temperature must be a finite number > 0"),
        ({"layers": "last:0"}, "last:K with K a whole number >= 1"),
        ({"layers": "first"}, "expected all, last:K or comma-separated"),
        ({"scope": "global"}, "unknown scope"),
        ({"profile": "keys"}, "unknown profile"),
        ({"warmup_steps": -3}, "warmup_steps"),
    ],
)
def test_invalid_settings(kwargs, message) -> None:
    with pytest.raises(ConfigError, match=message):
        GuideConfig(**kwargs)


def test_layers_out_of_range() -> None:
    with pytest.raises(ConfigError, match="out of range"):
        GuideConfig(layers="0,6").layer_indices(6)
    with pytest.raises(ConfigError, match="only 6 layers"):
        GuideConfig(layers="last:7").layer_indices(6)


def test_warmup_ramp_and_round_trip() -> None:
    config = GuideConfig(warmup_steps=10, layers="last:2")
    assert [config.ramp(s) for s in (0, 5, 10, 20)] == [0.0, 0.5, 1.0, 1.0]
    assert GuideConfig(**config.to_dict()) == config
