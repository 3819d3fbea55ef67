"""Train rsim's shipped default model: a small LeNet-style CNN on scikit-learn's 8x8 digits.

Writes `rsim/data/default_model.onnx` (opset 13, dynamic batch) and `rsim/data/digits_val.npz`
(`x`: float32 N x 1 x 8 x 8 with the data set's pixel values 0..16 as they are, `y`: int64 labels)
holding a stratified 20 % validation split that training never sees. Then it scores the exported
model with rsim's float path.

Needs the `train` extra: pip install 'rsim[train]' (torch==2.13.0, scikit-learn). Seeded and
single-threaded, so a rerun reproduces the same weights on the same machine.
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

import rsim

SEED = 0
DATA_DIR = Path(__file__).resolve().parents[1] / "rsim" / "data"


class LeNetDigits(nn.Module):
    """conv 3x3 (8) - ReLU - maxpool 2 - conv 3x3 (16) - ReLU - maxpool 2 - FC 64->32 - ReLU -
    FC 32->10."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def split_digits() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    digits = load_digits()
    x = digits.images.astype(np.float32)[:, None]
    y = digits.target.astype(np.int64)
    return train_test_split(x, y, test_size=0.2, random_state=SEED, stratify=y)


def train(x: np.ndarray, y: np.ndarray, epochs: int) -> LeNetDigits:
    torch.manual_seed(SEED)
    model = LeNetDigits()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    loss_fn = nn.CrossEntropyLoss()
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    generator = torch.Generator().manual_seed(SEED)
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(xt), generator=generator)
        total = 0.0
        for start in range(0, len(xt), 64):
            batch = order[start : start + 64]
            optimizer.zero_grad()
            loss = loss_fn(model(xt[batch]), yt[batch])
            loss.backward()
            optimizer.step()
            total += loss.item() * len(batch)
        if epoch % 10 == 9:
            print(f"epoch {epoch + 1}: training loss {total / len(xt):.4f}")
    return model.eval()


def export(model: LeNetDigits, path: Path) -> None:
    example = torch.zeros(1, 1, 8, 8)
    # the TorchScript exporter: the newer one needs onnxscript, which the train extra leaves out
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            model,
            (example,),
            str(path),
            input_names=["digit"],
            output_names=["logits"],
            dynamic_axes={"digit": {0: "N"}, "logits": {0: "N"}},
            opset_version=13,
            dynamo=False,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--out", type=Path, default=DATA_DIR)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    x_train, x_val, y_train, y_val = split_digits()
    model = train(x_train, y_train, args.epochs)
    args.out.mkdir(parents=True, exist_ok=True)
    model_path = args.out / "default_model.onnx"
    export(model, model_path)
    np.savez_compressed(args.out / "digits_val.npz", x=x_val, y=y_val)
    logits = rsim.load(model_path).run_float(x_val)["logits"]
    accuracy = float((logits.argmax(axis=1) == y_val).mean())
    print(
        f"wrote {model_path} and digits_val.npz ({len(y_val)} held-out digits); "
        f"rsim float top-1 on them: {accuracy:.2%}"
    )


if __name__ == "__main__":
    main()
