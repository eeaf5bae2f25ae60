import pytest

from textvae.config import Config, ConfigError, ModelConfig, apply_overrides, load_config, save_config


def test_defaults_build_and_round_trip_through_yaml(tmp_path):
    config = load_config(None, ["model.latent.size=16", "model.encoder.type=gru", "train.learning_rate=3e-4"])
    assert config.model.latent.size == 16
    assert config.model.encoder.type == "gru"
    assert config.train.learning_rate == pytest.approx(3e-4)
    path = tmp_path / "c.yaml"
    save_config(config, path)
    assert load_config(path) == config


def test_yaml_sections_and_overrides_compose(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model:\n  decoder:\n    z_mode: concat\n    word_dropout: 0.25\nseed: 7\n")
    config = load_config(path, ["model.decoder.word_dropout=0.5", "data.data_dir=/x/y"])
    assert config.model.decoder.z_mode == "concat"
    assert config.model.decoder.word_dropout == 0.5
    assert config.seed == 7
    assert config.data.data_dir == "/x/y"


def test_unknown_key_names_key_and_nearest_valid(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown config key 'model\.latent\.sise'; did you mean 'model\.latent\.size'\?"):
        load_config(None, ["model.latent.sise=3"])
    path = tmp_path / "c.yaml"
    path.write_text("model:\n  decodr:\n    z_mode: init\n")
    with pytest.raises(ConfigError, match=r"unknown config key 'model\.decodr'; did you mean 'model\.decoder'"):
        load_config(path)


def test_wrong_type_names_key_value_and_type():
    with pytest.raises(ConfigError, match=r"model\.latent\.size: 'big' is not an int"):
        load_config(None, ["model.latent.size=big"])
    with pytest.raises(ConfigError, match=r"model\.decoder\.word_dropout: .*not a float"):
        Config.from_dict({"model": {"decoder": {"word_dropout": "lots"}}})


def test_choices_are_checked_with_a_suggestion():
    with pytest.raises(ConfigError, match=r"z_mode: 'int' is not one of .*did you mean 'init'"):
        load_config(None, ["model.decoder.z_mode=int"])


def test_optional_fields_accept_none_and_values():
    assert load_config(None, ["model.max_length=null"]).model.max_length is None
    assert load_config(None, ["model.max_length=40"]).model.max_length == 40


def test_bad_override_forms():
    with pytest.raises(ConfigError, match="key=value"):
        apply_overrides({}, ["model.latent.size"])
    with pytest.raises(ConfigError, match="names a section"):
        apply_overrides({}, ["model.latent=3"])
    with pytest.raises(ConfigError, match="not found"):
        load_config("/nonexistent/config.yaml")


def test_model_config_from_dict_is_strict():
    from textvae.config import from_dict

    with pytest.raises(ConfigError, match="unknown config key 'model.laten'"):
        from_dict(ModelConfig, {"laten": {}}, prefix="model.")


def test_free_bits_with_capacity_is_an_error_naming_both_keys(tmp_path):
    """Capacity control penalises |KL - C| and never reads free_bits: the pair would silently drop free bits."""
    from textvae.config import ObjectiveConfig

    both = r"model\.objective\.free_bits \(0\.5\) and model\.objective\.capacity \(5\.0\) exclude each other"
    with pytest.raises(ConfigError, match=both):
        load_config(None, ["model.objective.free_bits=0.5", "model.objective.capacity=5"])
    path = tmp_path / "c.yaml"
    path.write_text("model:\n  objective:\n    free_bits: 0.5\n    capacity: 5.0\n")
    with pytest.raises(ConfigError, match=both):
        load_config(path)
    with pytest.raises(ConfigError, match=both):
        ObjectiveConfig(free_bits=0.5, capacity=5.0)
    assert load_config(None, ["model.objective.free_bits=0.5"]).model.objective.free_bits == 0.5
    assert load_config(None, ["model.objective.capacity=5"]).model.objective.capacity == 5.0
