"""The quantized path's state: what every tensor and layer of a network becomes on an accelerator.

- `qspec`: per-layer datapath overrides and calibration settings (YAML);
- `calibrate`: float ranges of tensors and the fractional lengths the rules pick from them;
- `tensor`: `QTensor`, a simulated tensor (fixed-point codes or minifloat values), and `Outcome`;
- `layer`: `LayerQuant`, one layer's complete, immutable quantized state and its run;
- `assignment`: builds every tensor's format and every layer's `LayerQuant` from the datapath,
  the qspec, the calibration ranges and the schedule's reduction plans.

The modules are imported by name (`from rsim.quant.layer import LayerQuant`); this package
imports none of them, so op declarations can use `rsim.quant.tensor` without a cycle.
"""
