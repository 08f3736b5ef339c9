"""config/README.md's models table is the one scripts/config_models_table.py writes from the code's registry, and
the registry says what each model accepts."""

import importlib.util

import pytest

from conftest import REPO
from epiflow.models import available_models, describe_models, make_model, model_params, unknown_params


def table_script():
    spec = importlib.util.spec_from_file_location("config_models_table", REPO / "scripts" / "config_models_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_models_table_matches_the_code():
    script = table_script()
    text = (REPO / "config" / "README.md").read_text()
    assert script.replace_block(text, script.models_table()) == text, (
        "config/README.md: the models table differs from epiflow.models.describe_models; "
        "run .venv/bin/python scripts/config_models_table.py"
    )


def test_replace_block_needs_both_markers():
    script = table_script()
    with pytest.raises(SystemExit, match="markers"):
        script.replace_block("no markers here", script.models_table())


def test_every_registered_model_is_described():
    described = describe_models()
    assert [m["name"] for m in described] == list(available_models())
    for m in described:
        assert m["family"] and m["needs"], m["name"]
        assert m["preset_of"] is None or m["preset_of"] in available_models(), m


@pytest.mark.parametrize("name", list(available_models()))
def test_described_defaults_are_the_models_params(name):
    """The documented defaults are what the model runs with when model_params is empty."""
    model = make_model(name, {}, 0)
    params = model_params(name)
    assert {k: params[k] for k in model.params} == model.params
    assert unknown_params(name, model.params) == []


def test_unknown_params_names_keys_and_grid_keys():
    assert unknown_params("gbm", {"max_iter": 5, "max_iters": 5, "grid": {"lr": [1], "max_depth": [2]}}) == [
        "max_iters",
        "grid.lr",
    ]
    assert unknown_params("epinet_irm", {"irm": 0.5, "ensemble": 3, "predict_batch": 512}) == []
    with pytest.raises(KeyError, match="unknown model"):
        unknown_params("forest", {})
