"""Hugging Face folders: recognised, loaded offline, bound to the data's input names, limits read from the config."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tests.transformer_models import VOCAB, hf_bert_folder, token_data
from trtq.errors import UsageError
from trtq.export.huggingface import hf_limits, is_hf_folder, is_index_name, load_hf_model


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return hf_bert_folder(tmp_path_factory.mktemp("hf") / "bert", layers=1)


def test_index_names_are_the_integer_inputs():
    assert all(map(is_index_name, ("input_ids", "attention_mask", "token_type_ids", "position_ids")))
    assert not any(map(is_index_name, ("pixel_values", "inputs_embeds", "x")))


def test_a_folder_is_hugging_face_when_it_holds_config_json(folder: Path, tmp_path: Path):
    assert is_hf_folder(folder)
    assert not is_hf_folder(tmp_path) and not is_hf_folder(folder / "config.json")


def test_limits_come_from_the_config(folder: Path):
    from transformers import BertConfig

    assert hf_limits(BertConfig.from_pretrained(str(folder))) == {"max_sequence": 64, "vocab_size": VOCAB}
    assert hf_limits(object()) == {}


def test_the_wrapped_model_takes_the_data_by_name_in_any_order(folder: Path):
    from transformers import BertModel

    wrapped = load_hf_model(folder)
    assert wrapped.limits == {"max_sequence": 64, "vocab_size": VOCAB}
    assert wrapped.input_names[:3] == ["input_ids", "attention_mask", "token_type_ids"]
    assert "labels" not in wrapped.input_names and "return_dict" not in wrapped.input_names
    data = {k: torch.from_numpy(v) for k, v in token_data(2, padded=True).items()}
    wrapped.bind(["attention_mask", "input_ids"])
    out = wrapped(data["attention_mask"], data["input_ids"])
    assert list(out) == ["last_hidden_state", "pooler_output"]
    reference = BertModel.from_pretrained(str(folder)).eval()(**data)  # an independent load, by keyword
    torch.testing.assert_close(out["last_hidden_state"], reference.last_hidden_state)


def test_bind_refuses_unknown_names_and_a_missing_main_input(folder: Path):
    wrapped = load_hf_model(folder)
    with pytest.raises(UsageError, match="takes no input 'ids'"):
        wrapped.bind(["ids"])
    with pytest.raises(UsageError, match="no array for 'input_ids'"):
        wrapped.bind(["attention_mask"], what="--calib-data c.npz")


def test_float_token_ids_are_refused_naming_the_input(folder: Path):
    wrapped = load_hf_model(folder)
    with pytest.raises(UsageError, match="--calib-data: input 'input_ids' holds float32"):
        wrapped.check_dtypes({"input_ids": np.zeros((1, 4), np.float32)}, "--calib-data")
    wrapped.check_dtypes({"input_ids": np.zeros((1, 4), np.int64)}, "--calib-data")


def test_a_folder_without_weights_or_with_bad_json_is_one_usage_error(folder: Path, tmp_path: Path):
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "config.json").write_text((folder / "config.json").read_text())
    with pytest.raises(UsageError, match="has config.json but no weights"):
        load_hf_model(bare)
    (bare / "model.safetensors").write_bytes(b"")
    (bare / "config.json").write_text("{not json")
    with pytest.raises(UsageError, match="config.json is not readable JSON"):
        load_hf_model(bare)
