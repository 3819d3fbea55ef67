"""Stochastic rounding: floor(x + u) is unbiased (mean error within a statistical bound), draws
u = rng.random(x.size) in C order (so a seed reproduces a run), and needs an rng."""

from __future__ import annotations

import math

import numpy as np
import pytest

from formats import RsimError, parse
from formats.float_nb import round_float
from formats.modes import Rounding

SAMPLES = 200_000
SIGMAS = 6.0  # a false alarm has probability ~1e-9 per check


def _assert_unbiased(fmt, x: float, lower: float, upper: float) -> None:
    """Mean of SAMPLES roundings of x lies within SIGMAS standard errors of x."""
    q = fmt.quantize(np.full(SAMPLES, x), "stochastic", rng=np.random.default_rng(5))
    assert set(np.unique(q)) <= {lower, upper}
    p = (x - lower) / (upper - lower)
    bound = SIGMAS * (upper - lower) * math.sqrt(p * (1 - p) / SAMPLES)
    assert abs(q.mean() - x) <= bound, (str(fmt), x, q.mean(), bound)


@pytest.mark.parametrize("spec,x,lower,upper", [
    ("fixed<8,4>", 1.3, 1.25, 1.3125),
    ("fixed<8,4>", -1.3, -1.3125, -1.25),
    ("ufixed<6,-2>", 9.0, 8.0, 12.0),
    ("fp8_e4m3fn", 1.3, 1.25, 1.375),
    ("bf16", -3.01, -3.015625, -3.0),
    ("fp16", 1e-7, 5.960464477539063e-08, 1.1920928955078125e-07),
    ("affine<int8,scale=0.1,zp=3>", 0.37, 0.30000000000000004, 0.4),
])
def test_stochastic_rounding_is_unbiased(spec: str, x: float, lower: float, upper: float) -> None:
    _assert_unbiased(parse(spec), x, lower, upper)


def test_ristretto_stochastic_rounds_the_mantissa_magnitude_unbiasedly() -> None:
    _assert_unbiased(parse("ristretto_minifloat<4,3>"), 300.0, 288.0, 320.0)


def test_power_of_two_stochastic_rounds_up_with_the_log_domain_fraction() -> None:
    """Ristretto: P(2^(k+1)) = frac(log2|x|), not linear-unbiased."""
    fmt = parse("pow2<-8,8>")
    x = 0.3
    q = fmt.quantize(np.full(SAMPLES, x), "stochastic", rng=np.random.default_rng(6))
    p = math.log2(x) - math.floor(math.log2(x))
    share_up = np.mean(q == 0.5)
    assert set(np.unique(q)) == {0.25, 0.5}
    assert abs(share_up - p) <= SIGMAS * math.sqrt(p * (1 - p) / SAMPLES)


@pytest.mark.parametrize("spec", ["fixed<8,4>", "fp8_e5m2", "pow2<-4,4>", "mxfp4",
                                  "affine<uint8,scale=0.02,zp=100>", "ristretto_minifloat<5,2>"])
def test_same_seed_same_result_other_seed_other_result(spec: str) -> None:
    fmt = parse(spec)
    x = np.random.default_rng(0).standard_normal(4096)
    first = fmt.quantize(x, "stochastic", rng=np.random.default_rng(42))
    np.testing.assert_array_equal(first, fmt.quantize(x, "stochastic", rng=42))
    assert not np.array_equal(first, fmt.quantize(x, "stochastic", rng=43))


def test_draws_are_rng_random_in_c_order() -> None:
    """The documented draw order lets a kernel reproduce a quantize call element by element."""
    fmt = parse("fp8_e4m3fn")
    x = np.random.default_rng(1).standard_normal((8, 16))
    q = fmt.quantize(x, "stochastic", rng=np.random.default_rng(9))
    u = np.random.default_rng(9).random(x.size)
    params = fmt.nb_params()
    expected = [round_float(v, *params, Rounding.STOCHASTIC.code, w) for v, w in zip(x.ravel(), u)]
    np.testing.assert_array_equal(q.ravel(), expected)


def test_stochastic_rounding_needs_a_generator_or_seed() -> None:
    with pytest.raises(RsimError, match="rng"):
        parse("fixed<8,4>").quantize([1.3], "stochastic")


def test_mx_stochastic_draws_follow_the_elements_in_c_order() -> None:
    """Element (i, j) of a column-blocked MX tensor uses draw i * cols + j, as every format."""
    fmt = parse("mx<fp8_e4m3fn,block=4,axis=0>")
    x = np.random.default_rng(2).standard_normal((8, 3))
    q = fmt.quantize(x, "stochastic", rng=np.random.default_rng(4))
    u = np.random.default_rng(4).random(x.size).reshape(x.shape)
    element = fmt.element
    for j in range(3):
        for start in range(0, 8, 4):
            block = x[start:start + 4, j]
            exponent = int(np.floor(np.log2(np.max(np.abs(block))))) - fmt.emax_elem
            for i in range(start, start + 4):
                scaled = round_float(x[i, j] / 2.0**exponent, *element.nb_params("saturate"),
                                     Rounding.STOCHASTIC.code, u[i, j])
                assert q[i, j] == scaled * 2.0**exponent
