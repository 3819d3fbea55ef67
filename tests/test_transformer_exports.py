"""Small models a new user would export from PyTorch, through both exporters (the dynamo one and
the classic TorchScript one): a ViT (patch-embedding conv, class token, LayerNorm, multi-head
attention, GELU MLP), a BERT-style encoder (int64 token ids, embeddings, attention, LayerNorm)
and a CNN with adaptive average pooling exported at a fixed batch.

Each loads with `rsim.load` and its float path matches onnxruntime at any batch; the transformers
simulate on `mid-ws-int8` with per-layer drift, and the attention products' isolated SQNR is that
of an independent numpy fake quantization of the same formats (operands quantized to the
formats the simulation chose, multiplied in float64, the product quantized to the output
format).
"""

from __future__ import annotations

import io
import math
import warnings
from contextlib import redirect_stdout

import numpy as np
import onnxruntime as ort
import pytest

import hwconfigs
import rsim
from formats import FixedPoint
from rsim.datasets import open_dataset
from rsim.quant.qspec import QSpec
from rsim.simulation import prepare

torch = pytest.importorskip("torch")
nn = torch.nn

pytestmark = pytest.mark.slow
EXPORTERS = ("dynamo", "classic")
SAMPLES = 12


class Block(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.attention = nn.MultiheadAttention(width, heads, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(width, 2 * width), nn.GELU(),
                                 nn.Linear(2 * width, width))

    def forward(self, x):
        y = self.norm1(x)
        x = x + self.attention(y, y, y, need_weights=False)[0]
        return x + self.mlp(self.norm2(x))


class TinyViT(nn.Module):
    def __init__(self, width: int = 32, heads: int = 4):
        super().__init__()
        self.patch = nn.Conv2d(3, width, 4, 4)
        self.cls = nn.Parameter(torch.randn(1, 1, width))
        self.position = nn.Parameter(0.1 * torch.randn(1, 17, width))
        self.block, self.norm, self.head = Block(width, heads), nn.LayerNorm(width), \
            nn.Linear(width, 10)

    def forward(self, x):
        x = self.patch(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], 1) + self.position
        return self.head(self.norm(self.block(x))[:, 0])


class TinyBert(nn.Module):
    def __init__(self, vocabulary: int = 50, width: int = 32, heads: int = 4, length: int = 8):
        super().__init__()
        self.tokens, self.positions = nn.Embedding(vocabulary, width), nn.Embedding(length, width)
        self.norm = nn.LayerNorm(width)
        self.encoder = nn.TransformerEncoderLayer(width, heads, 64, dropout=0.0,
                                                  batch_first=True, activation="gelu")
        self.head = nn.Linear(width, 2)

    def forward(self, ids):
        x = self.norm(self.tokens(ids) + self.positions(torch.arange(ids.shape[1])))
        return self.head(self.encoder(x).mean(1))


class TinyCnn(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                  nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(),
                                  nn.AdaptiveAvgPool2d(1))
        self.head = nn.Linear(16, 4)

    def forward(self, x):
        return self.head(self.body(x).flatten(1))


def _export(model, example, path, exporter: str) -> None:
    """The model exported as a user would (dynamo: fixed shapes; classic: a dynamic batch)."""
    model.eval()
    with warnings.catch_warnings(), redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        try:
            if exporter == "dynamo":
                torch.onnx.export(model, (example,), str(path), dynamo=True)
            else:
                torch.onnx.export(model, (example,), str(path), dynamo=False,
                                  input_names=["input"], dynamic_axes={"input": {0: "batch"}})
        except Exception as error:  # an exporter missing a dependency here
            pytest.skip(f"the {exporter} exporter cannot run here: {type(error).__name__}: "
                        f"{error}")


def _data(kind: str, count: int) -> np.ndarray:
    rng = np.random.default_rng(7)
    if kind == "bert":
        return rng.integers(0, 50, (count, 8)).astype(np.int64)
    side = 8 if kind == "cnn" else 16
    return rng.normal(size=(count, 3, side, side)).astype(np.float32)


MODELS = {"vit": TinyViT, "bert": TinyBert, "cnn": TinyCnn}


@pytest.fixture(scope="module", params=[(m, e) for m in ("vit", "bert") for e in EXPORTERS],
                ids=lambda p: f"{p[0]}-{p[1]}")
def exported(request, tmp_path_factory):
    kind, exporter = request.param
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp(kind) / f"{kind}-{exporter}.onnx"
    _export(MODELS[kind](), torch.from_numpy(_data(kind, 2)), path, exporter)
    return kind, path


def _load(path, kind: str) -> rsim.Network:
    """The model bound at batch 2: a symbolic batch bound at 1 cannot tell where reshapes put
    the batch (sequence-first attention folds it with the heads), so it would run batch 1 only."""
    session = ort.InferenceSession(str(path))
    feed = session.get_inputs()[0]
    return rsim.load(path, input_shapes={feed.name: (2,) + _data(kind, 1).shape[1:]})


def _onnxruntime(path, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path))
    feed = session.get_inputs()[0]
    if feed.shape and isinstance(feed.shape[0], int):  # a fixed-batch export: one batch at a time
        rows = feed.shape[0]
        return np.concatenate([session.run(None, {feed.name: x[i:i + rows]})[0]
                               for i in range(0, len(x), rows)])
    return session.run(None, {feed.name: x})[0]


def test_the_float_path_matches_onnxruntime_at_any_batch(exported):
    kind, path = exported
    network = _load(path, kind)
    x = _data(kind, 4)
    expected = _onnxruntime(path, x)
    for batch in (1, 2, 4):
        got = network.run_float({network.inputs[0]: x[:batch]})[network.outputs[0]]
        assert np.abs(got - expected[:batch]).max() <= 1e-5 * max(1.0, np.abs(expected).max())


def _fake_quantized(x: np.ndarray, fmt: FixedPoint) -> np.ndarray:
    """x on the format's grid: round half to even, saturate (numpy, independent of rsim)."""
    scale = 2.0 ** fmt.fl
    return np.clip(np.round(x.astype(np.float64) * scale), fmt.min_code, fmt.max_code) / scale


def test_an_int8_simulation_reports_drift_and_the_attention_products_match_fake_quant(exported):
    kind, path = exported
    network = _load(path, kind)
    x = _data(kind, SAMPLES)
    hw = hwconfigs.load("mid-ws-int8")
    result = rsim.simulate(network, hw=hw, inputs=x, batch_size=4)
    assert set(result.layers) == {layer.name for layer in network.layers}
    for name, layer in result.layers.items():
        assert layer.propagated.sqnr_db is not None, name
    emulated = {layer.op for layer in result.layers.values() if layer.float_emulated}
    assert {"layernorm", "softmax", "gelu"} <= emulated
    assert not {"matmul", "gemm", "gather", "conv"} & emulated
    run = prepare(network, hw, QSpec(), open_dataset(x), batch_size=4)
    quants = {q.layer.name: q for q in run.quants}
    reference = network.run_float({network.inputs[0]: x}, collect=True, dtype=np.float64)
    products = [q for q in run.quants if q.layer.op == "matmul" and len(q.layer.inputs) == 2]
    assert len(products) == 2  # Q·Kᵀ and the probabilities times V
    for quant in products:
        a, b = (_fake_quantized(reference[t], fmt)
                for t, fmt in zip(quant.layer.inputs, quant.in_fmts, strict=True))
        want = reference[quant.layer.outputs[0]]
        noise = want - _fake_quantized(np.matmul(a, b), quant.out_fmt)
        fake_sqnr = 10 * math.log10(np.sum(want**2) / np.sum(noise**2))
        simulated = result.layers[quant.layer.name].isolated.sqnr_db
        assert abs(simulated - fake_sqnr) <= 1.0, (quant.layer.name, simulated, fake_sqnr)
        assert quants[quant.layer.name].plan is not None  # scheduled on the MAC array


def test_the_integer_nonlinear_unit_runs_every_layernorm_softmax_and_gelu(exported):
    """On `nonlinear: integer` no layernorm, softmax or GELU of the exports is float-emulated,
    and the unit's approximations keep the outputs close to the float-emulated run's."""
    kind, path = exported
    network = _load(path, kind)
    x = _data(kind, SAMPLES)
    data = hwconfigs.load("mid-ws-int8").model_dump(mode="json")
    data["datapath"]["nonlinear"] = "integer"
    results = {unit: rsim.simulate(network, hw=hwconfigs.from_dict(data) if unit == "integer"
                                   else "mid-ws-int8", inputs=x, batch_size=4)
               for unit in ("integer", "float")}
    integer = results["integer"].layers.values()
    assert {"layernorm", "softmax", "gelu"} <= {layer.op for layer in integer}
    assert not {"layernorm", "softmax", "gelu"} & {layer.op for layer in integer
                                                   if layer.float_emulated}
    last = network.layers[-1].name
    sqnr = {unit: result.layers[last].propagated.sqnr_db for unit, result in results.items()}
    assert sqnr["integer"] > sqnr["float"] - 6, sqnr


def test_token_ids_stay_integer_and_quantization_starts_at_the_embedding(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "bert.onnx"
    _export(TinyBert(), torch.from_numpy(_data("bert", 2)), path, "dynamo")
    network = rsim.load(path)
    x = _data("bert", 4)
    run = prepare(network, hwconfigs.load("mid-ws-int8"), QSpec(), open_dataset(x))
    ids = network.inputs[0]
    assert network.index_inputs == {ids}
    assert run.fmts[ids] == FixedPoint(32, 0)
    embedding = next(q for q in run.quants if q.layer.inputs == (ids,))
    assert embedding.layer.op == "gather" and not embedding.float_emulated
    assert embedding.out_fmt.bits == 8


def test_a_fixed_batch_dynamo_cnn_with_adaptive_average_pooling_matches_onnxruntime(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "cnn.onnx"
    _export(TinyCnn(), torch.from_numpy(_data("cnn", 2)), path, "dynamo")
    network = rsim.load(path)
    assert "reduce_mean" in {layer.op for layer in network.layers} or \
        "global_avgpool" in {layer.op for layer in network.layers}
    x = _data("cnn", 6)
    expected = _onnxruntime(path, x)
    for batch in (2, 6, 1):
        got = network.run_float(x[:batch])[network.outputs[0]]
        np.testing.assert_allclose(got, expected[:batch], rtol=1e-5, atol=1e-5)
    result = rsim.simulate(network, hw="mid-ws-int8", inputs=x, batch_size=3)
    assert result.agreement is not None
