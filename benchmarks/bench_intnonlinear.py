"""Integer-only softmax, layer norm and GELU (kernels.intnonlinear) against numpy float versions.

Plain script (not a test): `python benchmarks/bench_intnonlinear.py [--repeat N]`. Softmax runs on
a (64, 12, 128, 128) tensor of int8 attention scores, layer norm and GELU on (64, 128, 768) int8
activations. Two baselines per function, timed in the same run on the same data:

- float64: numpy on the decoded values (what the simulator's float emulation computes);
- emulation: decoding, the float64 function and the quantization to the output codes, which is
  what the integer kernel would replace.

Every candidate runs once before timing (compilation); each figure is the best of --repeat runs in
each of several rounds over all candidates (the machine may be shared: the load average is
printed). The ratio is baseline time / integer time (above 1: the integer kernel is faster).
"""

from __future__ import annotations

import argparse
import math
import os

import numba
import numpy as np
from bench_kernels import best_of

from kernels.intnonlinear import int_gelu, int_layernorm, int_softmax

FL_IN, OUT_FL = 4, 4  # fixed<8,4> activations; softmax writes fixed<8,7>


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def layernorm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = x.var(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + 1e-5) * gamma + beta


def gelu(x: np.ndarray) -> np.ndarray:
    """The tanh form: numpy has no erf (math.erf per element would be a strawman baseline)."""
    return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))


def to_codes(y: np.ndarray, fl: int) -> np.ndarray:
    return np.clip(np.rint(y * 2.0**fl), -128, 127).astype(np.int8)


def compare(name: str, ours, float64, emulation, repeat: int) -> None:
    """Time the integer kernel and both baselines, interleaved (see bench_kernels.best_of)."""
    t = best_of({"ours": ours, "float64": float64, "emulation": emulation}, repeat)
    print(f"{name}: integer {t['ours'] * 1e3:.1f} ms")
    for label in ("float64", "emulation"):
        print(f"  {label}: {t[label] * 1e3:.1f} ms, ratio {t[label] / t['ours']:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print(f"numba threads: {numba.get_num_threads()}, load average: {os.getloadavg()[0]:.1f}")

    scores = np.clip(rng.normal(0, 40, (64, 12, 128, 128)).round(), -128, 127).astype(np.int8)
    x = scores / 2.0**FL_IN
    compare("softmax (64, 12, 128, 128) -> fixed<8,7>",
            lambda: int_softmax(scores, FL_IN, -1, 8, 7), lambda: softmax(x),
            lambda: to_codes(softmax(scores / 2.0**FL_IN), 7), args.repeat)  # fmt: skip
    del x

    acts = np.clip(rng.normal(0, 30, (64, 128, 768)).round(), -128, 127).astype(np.int8)
    gamma, beta = rng.integers(16, 128, 768), rng.integers(-64, 64, 768)  # fl 6
    x = acts / 2.0**FL_IN
    gf, bf = gamma / 64, beta / 64
    compare("layernorm (64, 128, 768) -> fixed<8,4>",
            lambda: int_layernorm(acts, FL_IN, gamma, 6, beta, 6, -1, 8, OUT_FL),
            lambda: layernorm(x, gf, bf),
            lambda: to_codes(layernorm(acts / 2.0**FL_IN, gf, bf), OUT_FL), args.repeat)
    compare("gelu (64, 128, 768) -> fixed<8,4> (float: the tanh form)",
            lambda: int_gelu(acts, FL_IN, 8, OUT_FL), lambda: gelu(x),
            lambda: to_codes(gelu(acts / 2.0**FL_IN), OUT_FL), args.repeat)  # fmt: skip


if __name__ == "__main__":
    main()
