"""The data config: fields, adding datasets in a config file, overriding weights on the command line."""

import json

import pytest
from absl import flags
from ml_collections import config_flags

from embeddinggemma.data.config import corpus_datasets, data_config, dataset_config, validate_data_config


def test_defaults_and_locked_fields():
    c = data_config()
    assert (c.skip_malformed, c.teacher, c.bucket_lengths) == (False, "", True)
    with pytest.raises(AttributeError):
        c.skip_malformd = True
    d = dataset_config("a.jsonl", fields={"query": "question"})
    assert d.fields.query == "question" and d.fields.positive == "positive"
    with pytest.raises(AttributeError):
        d.wieght = 2.0
    with pytest.raises(ValueError, match="Unknown record fields"):
        dataset_config("a.jsonl", fields={"answer": "a"})


def test_datasets_added_in_a_config_and_weights_overridden_on_the_command_line():
    c = data_config()
    with c.unlocked():
        c.datasets.code = dataset_config("code.jsonl", weight=2.0)
        c.datasets.bitext = dataset_config("bitext.jsonl")
    argv = ["prog", "--data.datasets.code.weight=0.25", "--data.skip_malformed=true"]
    values = flags.FlagValues()
    config_flags.DEFINE_config_dict("data", c, flag_values=values, sys_argv=argv)
    values(argv)
    assert values.data.datasets.code.weight == 0.25 and values.data.skip_malformed is True
    assert values.data.datasets.bitext.weight == 1.0
    misspelt = ["prog", "--data.datasets.code.wieght=1"]
    with pytest.raises(AttributeError, match='Did you mean "weight"'):
        config_flags.DEFINE_config_dict("data", c, flag_values=flags.FlagValues(), sys_argv=misspelt)


@pytest.mark.parametrize("change, message", [
    (lambda c: setattr(c.datasets.a, "weight", 0.0), "no dataset with a weight above 0"),
    (lambda c: setattr(c.datasets.a, "format", "csv"), "data.datasets.a.format='csv'"),
    (lambda c: setattr(c.datasets.a, "path", ""), "data.datasets.a.path is empty"),
])
def test_invalid_values_are_named(change, message):
    c = data_config()
    with c.unlocked():
        c.datasets.a = dataset_config("a.jsonl")
    change(c)
    with pytest.raises(ValueError, match=message):
        validate_data_config(c)


def test_corpus_datasets_reads_the_manifest(tmp_path):
    manifest = {"datasets": {"code": {"splits": {"train": {"path": "code/train.jsonl"},
                                                 "heldout": {"path": "code/heldout.jsonl"}}}}}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    datasets = corpus_datasets(tmp_path, split="heldout")
    assert list(datasets) == ["code"] and datasets.code.path == str(tmp_path / "code/heldout.jsonl")
    with pytest.raises(ValueError, match="no split 'dev'"):
        corpus_datasets(tmp_path, split="dev")


def test_a_missing_or_corrupt_manifest_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=f"not found: {tmp_path / 'manifest.json'}"):
        corpus_datasets(tmp_path)
    (tmp_path / "manifest.json").write_text('{"datasets": {')
    with pytest.raises(ValueError, match=f"{tmp_path / 'manifest.json'}: invalid JSON at line 1"):
        corpus_datasets(tmp_path)
    (tmp_path / "manifest.json").write_text('{"name": "corpus"}')
    with pytest.raises(ValueError, match=f"{tmp_path / 'manifest.json'}: no \"datasets\" object"):
        corpus_datasets(tmp_path)


def test_a_mixture_sets_its_weights_switches_the_other_datasets_off_and_names_unknown_ones():
    from embeddinggemma.data.config import with_mixture_weights

    c = data_config()
    with c.unlocked():
        c.datasets.code = dataset_config("code.jsonl", weight=2.0)
        c.datasets.bitext = dataset_config("bitext.jsonl")
    mixed = with_mixture_weights(c, {"bitext": 0.75})
    assert (mixed.datasets.bitext.weight, mixed.datasets.code.weight) == (0.75, 0.0)
    assert c.datasets.code.weight == 2.0  # a copy
    with pytest.raises(AttributeError):
        mixed.datasets.bitext.wieght = 1.0  # locked
    with pytest.raises(ValueError, match=r"unknown datasets \['nq'\]; the config has bitext, code"):
        with_mixture_weights(c, {"nq": 1.0})


def test_data_mixture_weighs_a_corpus_datasets_once_they_are_added(tmp_path):
    from embeddinggemma.data.config import with_corpus_datasets, with_mixture_weights

    splits = {n: {"splits": {"train": {"path": f"{n}/train.jsonl"}}} for n in ("bitext", "code", "meta")}
    (tmp_path / "manifest.json").write_text(json.dumps({"datasets": splits}))
    c = data_config()
    c.corpus, c.mixture = str(tmp_path), "code=0.6, bitext=0.4"
    resolved = with_corpus_datasets(c)
    assert {n: d.weight for n, d in resolved.datasets.items()} == {"bitext": 0.4, "code": 0.6, "meta": 0.0}
    assert resolved.mixture == "" and with_corpus_datasets(resolved).to_dict() == resolved.to_dict()
    # A search's trial mixture replaces the config's, and does not come back when resolved again.
    trial = with_mixture_weights(c, {"meta": 1.0})
    assert {n: d.weight for n, d in with_corpus_datasets(trial).datasets.items()} == {
        "bitext": 0.0, "code": 0.0, "meta": 1.0}
    c.mixture = "code=0.6,nq=0.4"
    with pytest.raises(ValueError, match=r"data.mixture='code=0.6,nq=0.4': unknown datasets \['nq'\]"):
        with_corpus_datasets(c)


@pytest.mark.parametrize("text", ["code", "code=x", "=1", "code=-1", "code=1,code=2", "code=1,"])
def test_a_malformed_data_mixture_is_a_config_error_naming_the_entry(text):
    from embeddinggemma.errors import ConfigError
    from embeddinggemma.training.config import validate_config
    from embeddinggemma.training.config_files import load_config

    config = load_config("finetune:tiny", {"data.mixture": text})
    with pytest.raises(ConfigError, match=r"data.mixture=.*is not NAME=WEIGHT"):
        validate_config(config)
