"""`rsim.simulate`: run a network on an accelerator, bit-accurate beside the float reference,
batch by batch, and measure per layer how far the two drift.

Per layer two errors are measured against the float reference output of that layer:
*isolated* (the layer fed the float reference inputs, quantized to its input formats: the error
the layer itself adds) and *propagated* (the layer fed the simulated outputs of the layers
before it: the error the network has accumulated up to there). Memory stays bounded by one
batch: metrics are streaming sums, and tensors go to the trace as they are produced.

Schedule figures are those of one inference (batch 1) on the accelerator.
"""

from __future__ import annotations

import math
import sys
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numba
import numpy as np
import yaml

import hwconfigs
import traces
from formats import FixedPoint
from formats.errors import RsimError
from hwconfigs.schema import Accelerator
from kernels.threads import (
    kernels_run_concurrently,
    one_kernel_thread,
    single_threaded_kernels,
)
from rsim.datasets import Dataset, MappedDataset, open_dataset
from rsim.loader import load
from rsim.metrics import (
    AccuracyAccumulator,
    AgreementAccumulator,
    BatchErrors,
    ErrorAccumulator,
    measure_batch,
)
from rsim.network import Layer, Network
from rsim.options import RunOptions
from rsim.quant.assignment import assign, tensors_to_calibrate
from rsim.quant.calibrate import collect_ranges
from rsim.quant.layer import LayerQuant
from rsim.quant.qspec import QSpec, load_qspec, with_model_quantization
from rsim.quant.tensor import Outcome, QTensor, quantize
from rsim.reference import FloatReference
from rsim.results import LayerResult, SimResult
from rsim.schedule import Schedule, schedule
from rsim.schedule.from_network import network_work

DEFAULT_MAX_THREADS = 8  # batches in memory at once unless asked for more: large models are big
Progress = Callable[[int, int], None]
"""Called after every batch with (samples done, samples in all)."""


@dataclass
class _LayerBatch:
    """One layer's measurements on one batch: made where the batch runs, folded in batch order."""

    propagated: BatchErrors
    isolated: BatchErrors | None  # None: fed the graph inputs, the two runs are one
    acc: np.ndarray | None  # saturations per output channel, propagated run
    partial_sum: np.ndarray | None
    isolated_acc: int
    isolated_partial_sum: int
    tensors: dict[str, np.ndarray] | None  # for a tensor trace


@dataclass
class _BatchResult:
    """One batch through the float path and both simulated paths."""

    reference: np.ndarray  # the float network output
    simulated: np.ndarray  # the simulated network output (values)
    layers: dict[str, _LayerBatch]


@dataclass
class _LayerMeters:
    """Streaming measurements of one layer."""

    isolated: ErrorAccumulator
    propagated: ErrorAccumulator
    acc: np.ndarray | None = None
    partial_sum: np.ndarray | None = None
    isolated_acc: int = 0
    isolated_partial_sum: int = 0

    def fold(self, batch: _LayerBatch) -> None:
        self.propagated.add(batch.propagated)
        if batch.isolated is not None:
            self.isolated.add(batch.isolated)
        if batch.acc is not None:
            self.acc = batch.acc if self.acc is None else self.acc + batch.acc
            self.partial_sum = (batch.partial_sum if self.partial_sum is None
                                else self.partial_sum + batch.partial_sum)
        self.isolated_acc += batch.isolated_acc
        self.isolated_partial_sum += batch.isolated_partial_sum


@dataclass
class Prepared:
    """A network made ready for the bit-accurate path: its schedule (one inference), every
    tensor's format and every layer's quantization, fixed before the first batch."""

    network: Network
    hw: Accelerator
    schedule: Schedule
    fmts: dict[str, Any]
    quants: list[LayerQuant]

    @property
    def rounding(self) -> str:
        return self.hw.datapath.requant_rounding.value

    def quantized(self, tensor: str, values: np.ndarray, rng: np.random.Generator) -> QTensor:
        """Float values of `tensor` in that tensor's simulated format."""
        return quantize(values, self.fmts[tensor], self.rounding, rng)[0]

    def check_batch(self, x: np.ndarray, first: int, source: str) -> None:
        """One error naming the data and the first sample (numbered from 0; `first` is the
        batch's first) holding NaN, when the input format has no code for it."""
        fmt = self.fmts[self.network.inputs[0]]
        if fmt.has_nan:
            return
        bad = np.isnan(x).reshape(len(x), -1).any(axis=1)
        if bad.any():
            raise RsimError(f"data '{source}': sample {first + int(np.argmax(bad))} holds NaN, "
                            f"but the input format {fmt} has no NaN code; clean the data (e.g. "
                            "np.nan_to_num) or give the input a format with NaN")

    def propagate(self, x: np.ndarray, rng: np.random.Generator
                  ) -> Iterator[tuple[LayerQuant, list[QTensor], Outcome]]:
        """Run the bit-accurate path on one batch, yielding each layer's simulated inputs and
        outcome in network order."""
        name = self.network.inputs[0]
        simulated = {name: self.quantized(name, x, rng)}
        for quant in self.quants:
            inputs = [simulated[t] for t in quant.layer.inputs]
            outcome = quant.run(inputs, rng)
            simulated[quant.layer.outputs[0]] = outcome.out
            yield quant, inputs, outcome


def model_data(network: Network, dataset: Dataset) -> Dataset:
    """The data as the model's first layer sees it: through the model's own input transform
    (a Caffe data layer's transform_param), checked to fit the input (one error otherwise), and
    binding the input's open dimensions from the samples when the model left them open."""
    if len(network.inputs) != 1:
        raise RsimError(f"the model has {len(network.inputs)} inputs "
                        f"({', '.join(network.inputs)}); only single-input models are supported")
    name = network.inputs[0]
    transform = network.input_transforms.get(name)
    if transform is not None:
        dataset = MappedDataset(dataset, transform.apply,
                                transform.sample_shape(dataset.sample_shape),
                                f"the model's input transform of {name!r}")
    if not network.is_bound:
        spec = network.input_specs[name]
        dataset.check_input_shape(spec[1:])
        network.bind({name: (1,) + tuple(dataset.sample_shape)})
    dataset.check_input_shape(network.input_shapes[name][1:])
    return dataset


def resolve_accelerator(hw: str | Path | Accelerator | None,
                        network: Network | None = None) -> Accelerator:
    """A shipped config name, a YAML path, an Accelerator, or None: the config the model's own
    quantization assumes (a Ristretto prototxt: `ristretto-caffe`), else the default config."""
    if isinstance(hw, Accelerator):
        return hw
    if hw is None and network is not None and network.quantization is not None:
        hw = network.quantization.hw
    return hwconfigs.load(hwconfigs.DEFAULT if hw is None else hw)


def as_dataset(inputs: Any, labels: Any = None) -> Dataset:
    """A Dataset from an array, a data file path or a Dataset; `labels` (an array, or a file of
    class indices) replace the labels stored with an array or a file."""
    if inputs is None:
        raise RsimError("simulate: no input data given (inputs=array, data file or Dataset)")
    if isinstance(inputs, Dataset):
        if labels is not None:
            raise RsimError("simulate: labels= goes with an array or a data file; a Dataset "
                            "carries its own (rsim.datasets.open_dataset(..., labels=...))")
        return inputs
    if not isinstance(inputs, (str, Path)):
        inputs = np.asarray(inputs)
    return open_dataset(inputs, labels=labels)


def simulate(network: Network | str | Path, hw: str | Path | Accelerator | None = None,
             inputs: Any = None, labels: Any = None, qspec: Any = None, *,
             options: RunOptions | None = None, progress: Progress | None = None,
             reference: FloatReference | None = None, **option_values: Any) -> SimResult:
    """Simulate `network` on accelerator `hw` over `inputs` (an array, a data file or a
    Dataset), beside the float reference, and return per-layer and end-to-end results.

    `qspec` (YAML path, mapping or QSpec) overrides formats per layer and sets the calibration.
    How the run goes is a `RunOptions` (`options`, and/or its fields as keywords: `batch_size`,
    `limit`, `seed`, `threads`, `trace`, `trace_tensors`, `command`): a trace is checked
    writable before any compute and written atomically; `seed` seeds stochastic rounding (a
    stream per batch, seeded by (seed, batch number)) and calibration sampling; `threads`
    batches run at once (default: Numba's thread count, i.e. NUMBA_NUM_THREADS or the CPU
    count, at most `DEFAULT_MAX_THREADS`), with bitwise the same results for any number.
    `progress(done, total)` is called after every batch. `reference` shares one float
    reference of (network, data, batch size) between runs (e.g. a sweep's points); by default
    the run computes its own, once, and calibration reuses its first batches.
    """
    run_options = RunOptions.of(options, "simulate", **option_values)
    threads = _thread_count(run_options.threads)
    if not isinstance(network, Network):
        network = load(network)
    accelerator = resolve_accelerator(hw, network)
    spec, spec_text = load_qspec(qspec)
    spec = with_model_quantization(spec, network)
    dataset = model_data(network, as_dataset(inputs, labels))
    limit = run_options.limit
    total = len(dataset) if limit is None else min(limit, len(dataset))
    if total == 0:
        raise RsimError(f"simulate: data '{dataset.source}' holds no samples to simulate")
    writer = None
    if run_options.trace is not None:
        writer = traces.TraceWriter(run_options.trace, traces.RunMetadata(
            model=str(network.source), model_sha256=network.sha256,
            hwconfig=_hw_text(accelerator), qspec=spec_text, seed=run_options.seed,
            command=run_options.command or " ".join(sys.argv)))
    try:
        if reference is None:
            reference = FloatReference(network, dataset.source, run_options.batch_size,
                                       shared=False)
        reference.check(network, run_options.batch_size)
        result = _simulate(network, accelerator, spec, dataset, total, run_options, writer,
                           progress, threads, reference)
        if writer is not None:
            writer.set_results(result.results())
            writer.close()
            result.trace = run_options.trace
        return result
    except BaseException:
        if writer is not None:
            writer.abort()
        raise


def _thread_count(threads: int | None) -> int:
    """How many batches run at once: `threads`, else Numba's configured thread count up to
    `DEFAULT_MAX_THREADS`; one when Numba's threading layer cannot take parallel kernels from
    several threads."""
    if threads is None:
        threads = min(numba.config.NUMBA_NUM_THREADS, DEFAULT_MAX_THREADS)
    return threads if threads == 1 or kernels_run_concurrently() else 1


def _hw_text(accelerator: Accelerator) -> str:
    return yaml.safe_dump(accelerator.model_dump(mode="json"), sort_keys=False)


def prepare(network: Network, accelerator: Accelerator, spec: QSpec, dataset: Dataset,
            batch_size: int = 256, seed: int = 0,
            reference: FloatReference | None = None) -> Prepared:
    """Schedule the network (one inference) with each layer's datapath, calibrate dynamic
    formats on the first `spec.calibration.samples` samples (their float tensors from
    `reference`, which keeps them for the run), then assign every tensor's format and every
    layer's quantization, the MAC layers taking their schedule's reduction plans."""
    spec.check_layers([layer.name for layer in network.layers])
    datapaths = {layer.name: spec.datapath_for(layer.name, accelerator.datapath)
                 for layer in network.layers}
    plan = schedule(network_work(network, batch=1), accelerator, batch=1, datapaths=datapaths)
    input_format = accelerator.datapath.activations
    wanted = tensors_to_calibrate(network, input_format, datapaths)
    ranges = {}
    if wanted:
        if reference is None:
            reference = FloatReference(network, dataset.source, batch_size, shared=False)

        def float_batches():
            for index, (x, _) in enumerate(dataset.iter_batches(batch_size,
                                                                spec.calibration.samples)):
                yield reference.batch(index, x, keep=True)

        ranges = collect_ranges(float_batches(), wanted, spec.calibration, seed)
    # stochastic rounding of weights and biases draws from its own stream, seeded like the run
    constants = np.random.default_rng([seed, 1])
    return Prepared(network, accelerator, plan,
                    *assign(network, input_format, datapaths, plan, ranges, spec.calibration,
                            constants))


def _simulate(network: Network, accelerator: Accelerator, spec: QSpec, dataset: Dataset,
              total: int, options: RunOptions, writer, progress: Progress | None,
              threads: int, reference: FloatReference) -> SimResult:
    batch_size, seed = options.batch_size, options.seed
    run = prepare(network, accelerator, spec, dataset, batch_size, seed, reference)
    meters = {}
    for quant in run.quants:
        out_max = quant.out_fmt.max
        fmt_max = out_max if math.isfinite(out_max) and out_max > 0 else None
        propagated = ErrorAccumulator(fmt_max)
        meters[quant.layer.name] = _LayerMeters(
            propagated if _fed_by_inputs(quant.layer, network) else ErrorAccumulator(fmt_max),
            propagated)
    agreement, acc_float, acc_sim = AgreementAccumulator(), AccuracyAccumulator(), AccuracyAccumulator()
    keep_tensors = writer is not None and options.trace_tensors
    parallel = threads > 1

    def simulate_batch(index: int, x: np.ndarray) -> _BatchResult:
        if parallel:
            one_kernel_thread()
        run.check_batch(x, index * batch_size, dataset.source)
        # stochastic rounding draws from a stream per batch (no dependence on the thread
        # count), apart from the stream of the constants ([seed, 1])
        return _run_batch(run, reference.batch(index, x), np.random.default_rng([seed, 0, index]),
                          keep_tensors)

    batches = ((index, x, y) for index, (x, y) in
               enumerate(dataset.iter_batches(batch_size, total)))
    done = 0
    with single_threaded_kernels() if parallel else nullcontext():
        for (_, x, y), batch in _in_order(simulate_batch, batches, threads):
            for name, layer in batch.layers.items():
                meters[name].fold(layer)
                if layer.tensors is not None:
                    writer.append_tensors(name, **layer.tensors)
            agreement.update(batch.reference, batch.simulated)
            if y is not None:
                acc_float.update(batch.reference, y)
                acc_sim.update(batch.simulated, y)
            done += len(x)
            if progress is not None:
                progress(done, total)
    plan = run.schedule
    by_name = {layer.name: layer for layer in plan.layers}
    layers = {}
    for quant in run.quants:
        meter = meters[quant.layer.name]
        layers[quant.layer.name] = LayerResult(
            name=quant.layer.name, op=quant.layer.op, formats=quant.formats(),
            isolated=meter.isolated.result(), propagated=meter.propagated.result(),
            acc_saturations=int(meter.acc.sum()) if meter.acc is not None else 0,
            partial_sum_saturations=int(meter.partial_sum.sum()) if meter.partial_sum is not None else 0,
            acc_saturations_per_channel=meter.acc, partial_sum_saturations_per_channel=meter.partial_sum,
            isolated_acc_saturations=meter.isolated_acc,
            isolated_partial_sum_saturations=meter.isolated_partial_sum,
            bias_saturations=quant.bias_saturations,
            float_emulated=quant.float_emulated, schedule=by_name.get(quant.layer.name))
        if writer is not None:
            writer.add_layer(layers[quant.layer.name].record())
    labelled = acc_float.accuracy(1) is not None
    return SimResult(
        samples=done, agreement=agreement.agreement,
        accuracy_float=acc_float.accuracy(1), accuracy_sim=acc_sim.accuracy(1),
        top5_float=acc_float.accuracy(5) if labelled else None,
        top5_sim=acc_sim.accuracy(5) if labelled else None,
        layers=layers, schedule=plan)


def _fed_by_inputs(layer: Layer, network: Network) -> bool:
    """Whether the layer reads only graph inputs: then it sees the same quantized inputs in the
    isolated and the propagated run, and the two runs are one."""
    return set(layer.inputs) <= set(network.inputs)


def _in_order(work: Callable, items: Iterator[tuple], threads: int) -> Iterator[tuple]:
    """(item, work(item[0], item[1])) for each item, in order, with up to `threads` items in
    work at once (so memory holds that many batches, not all of them)."""
    if threads == 1:
        for item in items:
            yield item, work(item[0], item[1])
        return
    with ThreadPoolExecutor(threads, thread_name_prefix="rsim-batch") as pool:
        pending: deque = deque()
        try:
            for item in items:
                pending.append((item, pool.submit(work, item[0], item[1])))
                if len(pending) == threads:
                    item, future = pending.popleft()
                    yield item, future.result()
            while pending:
                item, future = pending.popleft()
                yield item, future.result()
        finally:
            for _, future in pending:  # an error or Ctrl-C: drop what has not started
                future.cancel()


def _run_batch(run: Prepared, reference: dict[str, np.ndarray], rng: np.random.Generator,
               keep_tensors: bool) -> _BatchResult:
    """One batch (its float `reference` tensors, the input included) through both simulated
    paths, measured layer by layer against the reference."""
    network = run.network
    x = reference[network.inputs[0]]
    output = network.resolve(network.outputs[0])
    quantized = {}  # tensor -> its float reference in its simulated format (this batch)

    def quantized_reference(tensor: str) -> QTensor:
        if tensor not in quantized:
            quantized[tensor] = run.quantized(tensor, reference[tensor], rng)
        return quantized[tensor]

    layers, final = {}, None
    for quant, inputs, propagated in run.propagate(x, rng):
        layer = quant.layer
        expected = reference[layer.outputs[0]]
        errors = measure_batch(expected, propagated.out.data, propagated.clipped,
                               scale=propagated.out.scale)
        if _fed_by_inputs(layer, network):
            isolated, isolated_errors = propagated, None
        else:
            if quant.commutes_with(run.rounding):  # nothing to run: the reference, quantized
                isolated = Outcome(quantized_reference(layer.outputs[0]))
            else:  # the reference inputs, quantized, differ from the simulated ones in few codes
                isolated = quant.run_changed([quantized_reference(t) for t in layer.inputs],
                                             inputs, propagated, rng)
            isolated_errors = measure_batch(expected, isolated.out.data, isolated.clipped,
                                            scale=isolated.out.scale)
        stats, isolated_stats = propagated.stats, isolated.stats
        layers[layer.name] = _LayerBatch(
            errors, isolated_errors,
            acc=None if stats is None else stats.acc_saturations_per_channel,
            partial_sum=None if stats is None else stats.partial_sum_saturations_per_channel,
            isolated_acc=0 if isolated_stats is None else isolated_stats.acc_saturations,
            isolated_partial_sum=0 if isolated_stats is None else isolated_stats.partial_sum_saturations,
            tensors=_stored_tensors(expected, propagated.out) if keep_tensors else None)
        if layer.outputs[0] == output:
            final = propagated.out.values()
    return _BatchResult(reference[output], final, layers)


def _stored_tensors(reference: np.ndarray, simulated: QTensor) -> dict[str, np.ndarray]:
    """A batch of one layer's tensors for the trace, each in the narrowest dtype that holds it
    exactly: codes in the format's integer width, decoded values in float32 when they fit."""
    values = simulated.values()
    narrow = values.astype(np.float32)
    codes = simulated.data
    fmt = simulated.fmt
    if isinstance(fmt, FixedPoint):
        codes = codes.astype(np.min_scalar_type(-(1 << (fmt.bits - fmt.signed))))
    return {"reference": reference, "codes": codes,
            "decoded": narrow if np.array_equal(narrow, values, equal_nan=True) else values}
