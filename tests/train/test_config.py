"""Training configs: YAML into frozen dataclasses, and one-sentence errors naming the key."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from depthlens.errors import UsageError
from depthlens.models.midas_small import PRESETS
from depthlens.train.config import (
    TrainConfig,
    config_from_dict,
    config_to_dict,
    dump_config,
    load_config,
)

CONFIGS = Path(__file__).resolve().parents[2] / "configs"

MINIMAL = """\
output_dir: runs/x
steps: 10
batch_size: 4
data:
  - kind: synth
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "run.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("name", ["tiny.yaml", "bundled-stage1.yaml", "bundled.yaml"])
def test_shipped_configs_load_and_round_trip(name):
    config = load_config(CONFIGS / name)
    assert isinstance(config, TrainConfig)
    assert config_from_dict(config_to_dict(config)) == config
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.steps = 1


def test_bundled_configs_are_the_zoo_preset_in_two_stages():
    stage1 = load_config(CONFIGS / "bundled-stage1.yaml")
    config = load_config(CONFIGS / "bundled.yaml")
    for c in (stage1, config):
        assert c.model.network_config() == PRESETS["depthlens-small"]
        assert c.export_name == "depthlens-small" and c.bf16 and c.loss.scale_anchor > 0
        assert c.data == stage1.data
    # Stage 2 starts from stage 1's export and ends at the zoo row's input size.
    assert config.init_from == f"{stage1.output_dir}/export" and stage1.init_from is None
    assert stage1.input_size == 128 and config.input_size == 256


def test_minimal_config_takes_defaults(tmp_path):
    config = load_config(write(tmp_path, MINIMAL))
    assert config.steps == 10 and config.input_size == 256
    assert config.data[0].kind == "synth" and config.data[0].weight == 1.0
    assert config.optimizer.betas == (0.9, 0.999)
    assert not config.metric.enabled


def test_yaml_round_trip_through_dump(tmp_path):
    config = load_config(write(tmp_path, MINIMAL))
    again = load_config(write(tmp_path, dump_config(config)))
    assert again == config


def test_scientific_notation_without_a_dot_is_a_number(tmp_path):
    config = load_config(write(tmp_path, MINIMAL + "optimizer:\n  lr: 1e-3\n"))
    assert config.optimizer.lr == pytest.approx(1e-3)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("stpes: 3\n", "Unknown key 'stpes' in .*run.yaml; expected one of"),
        ("optimizer:\n  learning_rate: 0.1\n", "Unknown key 'optimizer.learning_rate'"),
        ("augment:\n  hflip: maybe\n", "Key 'augment.hflip' in .*run.yaml must be true or false"),
        ("input_size: 250\n", "'input_size' must be a multiple of 32"),
        ("optimizer:\n  betas: [0.9]\n", "'optimizer.betas' .* must be a list of 2 values"),
        ("metric:\n  transform: pixels\n", "'metric.transform' .* must be one of 'label', 'image'"),
        ("validation:\n  seeds: [0, 100]\n", r"'data\[0\].seeds' overlaps the validation seeds"),
        ("ema_decay: 1.5\n", "'ema_decay' must lie strictly between 0 and 1"),
        ("batch_size_extra: 1\n", "Unknown key 'batch_size_extra'"),
    ],
)
def test_bad_keys_and_values_are_named_with_the_file(tmp_path, extra, message):
    with pytest.raises(UsageError, match=message):
        load_config(write(tmp_path, MINIMAL + extra))


def test_unknown_key_inside_a_source_is_named_with_its_index(tmp_path):
    text = MINIMAL.replace(
        "  - kind: synth\n", "  - kind: synth\n  - kind: folder\n    wieght: 2\n"
    )
    with pytest.raises(UsageError, match=r"Unknown key 'data\[1\].wieght' in .*run.yaml"):
        load_config(write(tmp_path, text))


def test_missing_required_keys_are_named(tmp_path):
    with pytest.raises(UsageError, match=r"Missing key 'steps' in .*run.yaml"):
        load_config(write(tmp_path, MINIMAL.replace("steps: 10\n", "")))
    with pytest.raises(UsageError, match=r"Missing key 'data\[0\].kind'"):
        load_config(write(tmp_path, MINIMAL.replace("kind: synth", "weight: 1")))


def test_folder_sources_need_a_path_and_pseudo_labels_no_metric_training(tmp_path):
    text = MINIMAL.replace("kind: synth", "kind: folder")
    with pytest.raises(UsageError, match=r"'data\[0\].path' is required for a folder source"):
        load_config(write(tmp_path, text))
    text = MINIMAL.replace("kind: synth", "kind: pseudo\n    path: labels")
    text += "metric:\n  enabled: true\nloss:\n  silog: 1.0\n"
    with pytest.raises(UsageError, match="relative pseudo-labels"):
        load_config(write(tmp_path, text))


def test_wrong_type_and_not_yaml(tmp_path):
    with pytest.raises(UsageError, match=r"Key 'steps' .* must be an integer, got 'ten'"):
        load_config(write(tmp_path, MINIMAL.replace("steps: 10", "steps: ten")))
    with pytest.raises(UsageError, match="not valid YAML at line"):
        load_config(write(tmp_path, "steps: [1,\n"))
    with pytest.raises(UsageError, match="Expected a mapping of keys at the top level"):
        load_config(write(tmp_path, "- 1\n- 2\n"))
    with pytest.raises(UsageError, match="Cannot read the config"):
        load_config(tmp_path / "missing.yaml")
