"""`RunOptions`: how a run over data goes (batches, samples, seed, threads, trace), shared by the
Python API and the CLI of every command that runs a network on data (simulate, vectors, score,
quantize, sweep)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, PositiveInt, ValidationError

from formats.errors import RsimError


class RunOptions(BaseModel):
    """Options of a run over data; `RunOptions.of(...)` validates them into one error."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    batch_size: PositiveInt = Field(256, description="samples per batch")
    limit: PositiveInt | None = Field(None, description="use only the first N samples")
    seed: NonNegativeInt = Field(0, description="seed of stochastic rounding and calibration "
                                                "sampling")
    threads: PositiveInt | None = Field(None, description="batches run at once (default: "
                                                          "NUMBA_NUM_THREADS, at most 8)")
    trace: Path | None = Field(None, description="HDF5 trace to write")
    trace_tensors: bool = Field(False, description="also store every layer's tensors")
    command: str = Field("", description="the command line, recorded in traces")

    @classmethod
    def of(cls, base: RunOptions | None = None, what: str = "options", **values: Any
           ) -> RunOptions:
        """`base` (or the defaults) with `values` replaced, validated; a bad value is one
        RsimError naming the option and what is valid."""
        merged = (base.model_dump() if base is not None else {}) | values
        try:
            return cls.model_validate(merged)
        except ValidationError as error:
            first = error.errors()[0]
            key = ".".join(str(part) for part in first["loc"]) or "options"
            got = first.get("input")
            raise RsimError(f"{what}: {key} {_valid(first)}, got {got!r}") from None


def _valid(detail: dict) -> str:
    """What a pydantic error says is valid, in words."""
    kind = detail["type"]
    if kind == "greater_than":
        return f"must be an integer > {detail['ctx']['gt']}"
    if kind == "greater_than_equal":
        return f"must be an integer >= {detail['ctx']['ge']}"
    if kind == "extra_forbidden":
        return f"is not an option; options are {', '.join(RunOptions.model_fields)}"
    return f"is not valid ({detail['msg']})"
