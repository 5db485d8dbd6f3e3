from pathlib import Path

import pytest
import yaml

from addgp.config import ConfigError, load_config

DEMO = Path(__file__).resolve().parents[1] / "configs" / "demo.yaml"


def write_config(tmp_path, **changes) -> Path:
    raw = yaml.safe_load(DEMO.read_text())
    for dotted, value in changes.items():
        target = raw
        *parents, last = dotted.split(".")
        for key in parents:
            target = target[int(key)] if key.isdigit() else target[key]
        if value is _DELETE:
            del target[last]
        else:
            target[last] = value
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


_DELETE = object()


def test_demo_config_loads_and_resolves_paths_against_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = load_config(DEMO)
    assert config.name == "demo"
    assert config.workdir == tmp_path / "runs" / "demo"
    assert [d.name for d in config.datasets] == ["demo_studio", "demo_phone", "demo_far"]
    assert config.eval_datasets == ["demo_studio", "demo_phone", "demo_far"]


def test_unknown_key_names_the_key_and_the_file(tmp_path):
    path = write_config(tmp_path, **{"encoder.poolng": "mean"})
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert str(path) in str(error.value) and "encoder.poolng: unknown key" in str(error.value)


def test_missing_required_key(tmp_path):
    path = write_config(tmp_path, **{"encoder": _DELETE})
    with pytest.raises(ConfigError, match=r"encoder: required key is missing"):
        load_config(path)


def test_missing_dataset_root_names_the_path_and_key(tmp_path):
    path = write_config(tmp_path, **{"datasets.1.root": str(tmp_path / "nowhere"), "demo_corpus": _DELETE})
    with pytest.raises(ConfigError) as error:
        load_config(path)
    message = str(error.value)
    assert str(path) in message and "datasets.1.root" in message and "nowhere" in message


def test_bad_value_and_dangling_reference(tmp_path):
    with pytest.raises(ConfigError, match=r"encoder\.pooling"):
        load_config(write_config(tmp_path, **{"encoder.pooling": "max"}))
    with pytest.raises(ConfigError, match=r"train\.datasets names"):
        load_config(write_config(tmp_path, **{"train.datasets": ["not_there"]}))
    with pytest.raises(ConfigError, match=r"train\.layer"):
        load_config(write_config(tmp_path, **{"train.layer": 3}))


def test_not_a_file_and_not_yaml(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
