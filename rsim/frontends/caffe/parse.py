"""Reading Caffe files into messages of rsim's schema: network prototxts (text), caffemodels and
binaryproto means (binary), with the V1/input upgrades applied and the TEST-phase selection.

The text parser skips fields the schema does not declare (a fork's extra parameters, solver-only
or engine fields of layer types rsim does not read); `read_net_text` lists them, with their line
and column, so that a writer can say what it did not carry over. A syntax error is an RsimError
naming the file, line and column.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from google.protobuf import text_format
from google.protobuf.message import DecodeError

from formats.errors import RsimError
from rsim.frontends.caffe import schema
from rsim.frontends.caffe.upgrade import upgrade_net

# top-level fields of a SolverParameter that a NetParameter never has
SOLVER_FIELDS = frozenset(
    {"net", "net_param", "train_net", "test_net", "base_lr", "lr_policy", "max_iter",
     "test_iter", "solver_mode", "snapshot_prefix", "solver_type", "type", "momentum"}
)  # fmt: skip


def read_bytes(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise RsimError(f"{what} {path} does not exist") from None
    except OSError as error:
        raise RsimError(f"cannot read {what} {path}: {error.strerror or error}") from error


def parse_net_text(data: bytes, path: Path) -> tuple[object, tuple[str, ...]]:
    """A prototxt's NetParameter, upgraded to the V2 layer format, and the fields it skipped
    ("line:column Message.field")."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise RsimError(
            f"{path} is not a text prototxt (byte {error.start} is not UTF-8); "
            "a binary .caffemodel goes in weights="
        ) from None
    net = schema.NetParameter()
    try:
        text_format.Parse(text, net, allow_unknown_field=True)
    except text_format.ParseError as error:
        detail = re.sub(r"^\d+:\d+ : ", "", str(error)).strip()
        raise RsimError(
            f"{path}:{error.GetLine()}:{error.GetColumn()}: not a valid network prototxt: "
            f"{detail}"
        ) from None
    skipped = tuple(_skipped_fields(text, net.DESCRIPTOR))
    if not net.layer and not net.layers:
        top_level = {s.split(" ")[1].split(".")[1] for s in skipped if " NetParameter." in s}
        if top_level & SOLVER_FIELDS:
            named = re.search(r'^\s*net\s*:\s*"([^"]*)"', text, re.M)
            names = f" (its net is {named.group(1)!r})" if named else ""
            raise RsimError(
                f"{path} is a Caffe solver description{names}, not a network; "
                "pass the network prototxt"
            )
        raise RsimError(f"{path} defines no layers; is it a Caffe network prototxt?")
    upgrade_net(net, str(path))
    return net, skipped


def parse_net_binary(data: bytes, path: Path) -> object:
    """A caffemodel's NetParameter (with its blobs), upgraded to the V2 layer format."""
    net = schema.NetParameter()
    try:
        net.ParseFromString(data)
    except DecodeError as error:
        raise RsimError(
            f"{path} is not a readable caffemodel (truncated or corrupt file): {error}"
        ) from None
    if not net.layer and not net.layers:
        raise RsimError(f"{path} is not a caffemodel: it holds no layers")
    upgrade_net(net, str(path))
    return net


def blob_shape(blob) -> tuple[int, ...]:
    """A BlobProto's shape: `shape`, or the legacy 4-D (num, channels, height, width)."""
    if has_legacy_shape(blob):
        return (blob.num, blob.channels, blob.height, blob.width)
    return tuple(int(d) for d in blob.shape.dim)


def has_legacy_shape(blob) -> bool:
    return any(blob.HasField(f) for f in ("num", "channels", "height", "width"))


def blob_array(blob, where: str) -> np.ndarray:
    """A BlobProto's values as float32 in its own shape (see `blob_shape`)."""
    shape = blob_shape(blob)
    values = blob.double_data if len(blob.double_data) else blob.data
    if len(values) != int(np.prod(shape)):
        raise RsimError(
            f"{where}: a blob of shape {list(shape)} holds {len(values)} values "
            f"instead of {int(np.prod(shape))}"
        )
    return np.asarray(values, dtype=np.float32).reshape(shape)


def read_mean_file(path: Path) -> np.ndarray:
    """A binaryproto mean (one BlobProto) as a float32 (channels, height, width) array."""
    blob = schema.BlobProto()
    try:
        blob.ParseFromString(read_bytes(path, "mean file"))
    except DecodeError as error:
        raise RsimError(f"{path} is not a readable binaryproto mean: {error}") from None
    mean = blob_array(blob, str(path))
    if mean.ndim == 4 and mean.shape[0] == 1:
        mean = mean[0]
    if mean.ndim != 3:
        raise RsimError(
            f"{path}: a mean must have shape (1, channels, height, width), got {list(mean.shape)}"
        )
    return mean


def state_meets_rule(rule, phase: int, level: int, stages: set[str]) -> bool:
    """Caffe's NetStateRule test: phase, level bounds, required and forbidden stages."""
    if rule.HasField("phase") and rule.phase != phase:
        return False
    if rule.HasField("min_level") and level < rule.min_level:
        return False
    if rule.HasField("max_level") and level > rule.max_level:
        return False
    return all(s in stages for s in rule.stage) and not any(s in stages for s in rule.not_stage)


def select_phase(net, path: Path, phase: str = "TEST") -> list:
    """The layers Caffe builds for `phase` (level 0, the stages the file's `state` names):
    a layer with include rules needs one of them met; one with exclude rules none of them."""
    phase_number = schema.ENUMS["Phase"][phase]
    stages = set(net.state.stage)
    kept = []
    for layer in net.layer:
        if layer.include and layer.exclude:
            raise RsimError(
                f"{path}: layer {layer.name!r} has both include and exclude rules; "
                "Caffe allows one kind only"
            )
        if layer.include:
            keep = any(state_meets_rule(r, phase_number, 0, stages) for r in layer.include)
        else:
            keep = not any(state_meets_rule(r, phase_number, 0, stages) for r in layer.exclude)
        if keep:
            kept.append(layer)
    return kept


# ----- the list of skipped fields -------------------------------------------------------------
def _skipped_fields(text: str, descriptor) -> list[str]:
    """Every field of `text` (already parsed, so well formed) that `descriptor` does not
    declare, as "line:column Message.field" (the text parser skipped them)."""
    tokenizer = text_format.Tokenizer(text.split("\n"))
    found: list[str] = []
    _walk_fields(tokenizer, descriptor, None, found)
    return found


def _walk_fields(tokenizer, descriptor, end: str | None, found: list[str]) -> None:
    while not tokenizer.AtEnd() and not (end and tokenizer.LookingAt(end)):
        where = tokenizer.ParseError("")
        if tokenizer.TryConsume("["):  # an extension or Any type name: never declared
            name = "["
            while not tokenizer.TryConsume("]"):
                name += tokenizer.token
                tokenizer.NextToken()
            name += "]"
        else:
            name = tokenizer.ConsumeIdentifierOrNumber()
        field = descriptor.fields_by_name.get(name)
        if field is not None and field.message_type is not None:
            tokenizer.TryConsume(":")
            if tokenizer.TryConsume("["):
                while not tokenizer.TryConsume("]"):
                    _walk_message(tokenizer, field.message_type, found)
                    tokenizer.TryConsume(",")
            else:
                _walk_message(tokenizer, field.message_type, found)
        else:
            if field is None:
                found.append(f"{where.GetLine()}:{where.GetColumn()} {descriptor.name}.{name}")
            _skip_value(tokenizer)
        if not tokenizer.TryConsume(","):
            tokenizer.TryConsume(";")


def _walk_message(tokenizer, descriptor, found: list[str]) -> None:
    close = "}" if tokenizer.TryConsume("{") else ">"
    if close == ">":
        tokenizer.Consume("<")
    _walk_fields(tokenizer, descriptor, close, found)
    tokenizer.Consume(close)


def _skip_value(tokenizer) -> None:
    tokenizer.TryConsume(":")
    if tokenizer.token in ("{", "<", "["):
        depth = 0
        while True:
            depth += tokenizer.token in ("{", "<", "[")
            depth -= tokenizer.token in ("}", ">", "]")
            tokenizer.NextToken()
            if depth == 0:
                return
    tokenizer.TryConsume("-")
    tokenizer.NextToken()
    while tokenizer.token[:1] in ("'", '"'):  # adjacent strings are one value
        tokenizer.NextToken()
