"""int8 twins of the local model (assistant/llm/int8.py) and the managed server's choice of weights."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from foundation.config import PROJECT_ROOT, Settings
from assistant.llm import int8
from assistant.llm.protocol import LLMError
from assistant.llm.server import VLLMServer
from tests.conftest import SMALL_MODEL, free_port

SMALL = PROJECT_ROOT / ".models" / SMALL_MODEL


def _tiny_model(folder: Path, layers: dict[str, torch.Tensor] | None = None) -> Path:
    """A folder shaped like a Qwen checkpoint with two small layers (for what the real one would take minutes)."""
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    weights = layers if layers is not None else {
        "model.layers.0.mlp.down_proj.weight": torch.randn(8, 16, dtype=torch.bfloat16),
        "model.norm.weight": torch.ones(16, dtype=torch.bfloat16)}
    save_file(weights, folder / "model.safetensors")
    (folder / "config.json").write_text(json.dumps({"model_type": "qwen2"}))
    (folder / "tokenizer.json").write_text("{}")
    return folder


@pytest.mark.model  # quantises the real 0.5B checkpoint
def test_the_twin_of_the_real_model_holds_int8_weights_within_half_a_step(tmp_path: Path) -> None:
    twin = tmp_path / "twin"
    int8.quantise(SMALL, twin)
    original = load_file(next(SMALL.glob("*.safetensors")))
    packed = load_file(twin / "model.safetensors")
    name = "model.layers.3.self_attn.q_proj.weight"
    q, scale = packed[name], packed[name.replace(".weight", ".weight_scale")].float()
    assert q.dtype == torch.int8 and scale.shape == (q.shape[0], 1)
    error = (q.float() * scale - original[name].float()).abs()
    assert (error <= scale * 0.5 + 1e-2 * scale).all()  # round to nearest, one scale per output channel
    assert torch.equal(packed["model.embed_tokens.weight"], original["model.embed_tokens.weight"])  # kept as is
    config = json.loads((twin / "config.json").read_text())
    assert config["quantization_config"]["quant_method"] == "compressed-tensors"
    assert (twin / "tokenizer.json").is_file() and int8.is_current(SMALL, twin)


def test_a_twin_goes_stale_when_the_weights_change(tmp_path: Path) -> None:
    source = _tiny_model(tmp_path / "m")
    twin = int8.ensure_twin(source)
    assert twin == tmp_path / "m-w8a8" and int8.is_current(source, twin)
    assert int8.ensure_twin(source) == twin  # current: not made again
    _tiny_model(source, {"model.layers.0.mlp.down_proj.weight": torch.randn(4, 16, dtype=torch.bfloat16)})
    assert not int8.is_current(source, twin)
    int8.ensure_twin(source)
    assert load_file(twin / "model.safetensors")["model.layers.0.mlp.down_proj.weight"].shape == (4, 16)


def test_a_corrupt_source_gives_a_clear_error_and_leaves_no_twin(tmp_path: Path) -> None:
    source = _tiny_model(tmp_path / "m")
    (source / "model.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(int8.Int8Error, match="making int8 weights"):
        int8.ensure_twin(source)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]  # no twin, no temporary folder


def test_a_model_without_linear_layers_is_refused(tmp_path: Path) -> None:
    source = _tiny_model(tmp_path / "m", {"encoder.weight": torch.ones(4, 4, dtype=torch.bfloat16)})
    with pytest.raises(int8.Int8Error, match="no q_proj"):
        int8.quantise(source, tmp_path / "twin")
    assert not (tmp_path / "twin").exists()


def _server(tmp_path: Path, model: Path, choice: str) -> VLLMServer:
    return VLLMServer(Settings(home=tmp_path / "home", llm_model="m", llm_model_path=model, vllm_port=free_port(),
                               vllm_python=Path(sys.executable), vllm_int8=choice))


def test_the_server_serves_the_twin_when_int8_is_on_and_the_folder_otherwise(tmp_path: Path) -> None:
    source = _tiny_model(tmp_path / "m")
    on, off = _server(tmp_path, source, "on"), _server(tmp_path, source, "off")
    assert on.command()[on.command().index("--model") + 1] == str(tmp_path / "m-w8a8")
    assert off.command()[off.command().index("--model") + 1] == str(source)
    quantised = tmp_path / "q"
    int8.quantise(source, quantised)
    assert not _server(tmp_path, quantised, "auto").int8()  # already quantised: served as it is
    with pytest.raises(LLMError, match="not a local safetensors model folder"):
        _server(tmp_path, quantised, "on")._make_int8_weights(lambda _msg: None)
