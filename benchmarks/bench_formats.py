"""Quantization speed: rsim formats vs numpy, ml_dtypes and apytypes on 1e7 float32 values.

Plain script (not a test): `python benchmarks/bench_formats.py`. Every Numba kernel is compiled
and run once before timing; each figure is the best of --repeat runs, baselines timed in the same
run. The ratio is baseline time / rsim time (above 1: rsim is faster).
"""

from __future__ import annotations

import argparse

import numpy as np
from _timing import best_time

from formats import parse


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    import apytypes as apy
    import ml_dtypes

    x = (np.random.default_rng(0).standard_normal(args.size) * 3).astype(np.float32)
    fixed = parse("fixed<8,4>")
    fl, lo, hi = fixed.fl, fixed.min_code, fixed.max_code
    e4m3, bf16, e6m5 = parse("fp8_e4m3fn"), parse("bf16"), parse("float<6,5>")

    def apytypes_fixed():
        wide = apy.APyFixedArray.from_float(x, int_bits=8, frac_bits=40)  # exact for this data
        return wide.cast(int_bits=fixed.bits - fl, frac_bits=fl,
                         quantization=apy.QuantizationMode.RND_CONV,
                         overflow=apy.OverflowMode.SAT).to_numpy()

    rows = [
        ("fixed<8,4> nearest_even saturate", lambda: fixed.quantize(x),
         "numpy clip(rint(x*2^fl))*2^-fl",
         lambda: np.clip(np.rint(x * 2.0**fl), lo, hi) * 2.0**-fl),
        ("fixed<8,4> nearest_even saturate", lambda: fixed.quantize(x),
         "apytypes from_float+cast+to_numpy", apytypes_fixed),
        ("fp8_e4m3fn nearest_even", lambda: e4m3.quantize(x),
         "ml_dtypes astype(float8_e4m3fn)", lambda: x.astype(ml_dtypes.float8_e4m3fn)),
        ("fp8_e4m3fn nearest_even", lambda: e4m3.quantize(x),
         "ml_dtypes astype(e4m3fn).astype(f32)",
         lambda: x.astype(ml_dtypes.float8_e4m3fn).astype(np.float32)),
        ("bf16 nearest_even", lambda: bf16.quantize(x),
         "ml_dtypes astype(bfloat16)", lambda: x.astype(ml_dtypes.bfloat16)),
        ("float<6,5> nearest_even", lambda: e6m5.quantize(x),
         "apytypes APyFloatArray.from_float+to_numpy",
         lambda: apy.APyFloatArray.from_float(x, exp_bits=6, man_bits=5).to_numpy()),
    ]
    print(f"{args.size:.0e} float32 values, best of {args.repeat}")
    print(f"{'rsim':34} {'ms':>7}   {'baseline':44} {'ms':>7}  {'ratio':>6}")
    for name, ours, baseline_name, baseline in rows:
        t_ours, t_base = best_time(ours, args.repeat), best_time(baseline, args.repeat)
        print(f"{name:34} {t_ours * 1e3:7.1f}   {baseline_name:44} {t_base * 1e3:7.1f}  "
              f"{t_base / t_ours:5.1f}x")


if __name__ == "__main__":
    main()
