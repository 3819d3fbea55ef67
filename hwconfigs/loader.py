"""Load accelerator descriptions from YAML, turning every problem into one readable RsimError.

A validation error names the file, the key path as written in YAML (`datapath.accumulator.bits`,
`layers[2]`) and what is allowed there, e.g. the valid keys of the enclosing section for a typo.
"""

from __future__ import annotations

import json
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from formats.errors import RsimError
from hwconfigs.schema import Accelerator

M = TypeVar("M", bound=BaseModel)

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
DEFAULT = "mid-ws-int8"
"""Name of the shipped config used when none is given."""


def list_configs() -> list[str]:
    """Names of the shipped configs (file names without .yaml), sorted."""
    return sorted(path.stem for path in CONFIG_DIR.glob("*.yaml"))


def config_path(name_or_path: str | Path) -> Path:
    """The YAML file of a shipped config name, or the given path when it is a file."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.is_file():
        if not path.is_file():
            raise RsimError(f"{path}: no such hwconfig file")
        return path
    shipped = CONFIG_DIR / f"{name_or_path}.yaml"
    if not shipped.is_file():
        raise RsimError(f"unknown hwconfig {str(name_or_path)!r}: give a YAML path or one of "
                        f"{', '.join(list_configs())}")
    return shipped


def load(name_or_path: str | Path = DEFAULT) -> Accelerator:
    """Load and validate a shipped config (by name) or a YAML file (by path)."""
    path = config_path(name_or_path)
    data, _ = read_yaml(path, "hwconfig")
    return from_dict(data, source=str(path), default_name=path.stem)


def read_yaml(path: Path, what: str) -> tuple[Any, str]:
    """The parsed content and the text of a YAML file; `what` names the file's role in errors."""
    try:
        text = path.read_text()
    except OSError as error:
        raise RsimError(f"{path}: cannot read {what}: {error.strerror or error}") from None
    try:
        return yaml.safe_load(text), text
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise RsimError(f"{where}: not valid YAML: {getattr(error, 'problem', error)}") from None


def from_dict(data: Any, *, source: str = "<dict>", default_name: str = "custom") -> Accelerator:
    """Validate a config given as a mapping; `source` names it in errors."""
    if not isinstance(data, dict):
        raise RsimError(f"{source}: an accelerator config must be a mapping of keys "
                        f"({', '.join(Accelerator.model_fields)}), got {type(data).__name__}")
    return validate(Accelerator, {"name": default_name, **data}, source)


def validate(model: type[M], data: Any, source: str) -> M:
    """`data` validated as `model`, or one RsimError naming `source` and every key path."""
    if not isinstance(data, dict):
        raise RsimError(f"{source}: expected a mapping of keys ({', '.join(model.model_fields)}), "
                        f"got {type(data).__name__}")
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise RsimError(f"{source}: {validation_message(error, model)}") from None


def validation_message(error: ValidationError, root: type[BaseModel] = Accelerator) -> str:
    """All problems of a pydantic ValidationError as `key.path: what is wrong` joined by '; '."""
    problems = []
    for item in error.errors():
        path, model = _render_loc(item["loc"], root)
        message = item["msg"]
        if item["type"] == "extra_forbidden":
            allowed = ", ".join(model.model_fields) if model else "none"
            message = f"unknown key; allowed keys here: {allowed}"
        elif item["type"] == "missing":
            message = "required key is missing"
        else:
            message = message.removeprefix("Value error, ")
            value = item.get("input")
            if isinstance(value, (str, int, float)) and repr(value) not in message:
                message += f" (got {value!r})"
        problems.append(f"{path}: {message}" if path else message)
    return "; ".join(dict.fromkeys(problems))


def _render_loc(loc: tuple, root: type[BaseModel]) -> tuple[str, type[BaseModel] | None]:
    """Render a pydantic loc as a YAML key path without union tags; also return the model
    that holds the last key (to list the keys allowed there)."""
    parts: list[str] = []
    holder: type[BaseModel] | None = None
    current: Any = root
    for part in loc:
        if isinstance(part, int):
            parts.append(f"[{part}]")
            current = _element_type(current)
            continue
        holder = _model_in(current)
        if holder is not None and part in holder.model_fields:
            parts.append(part)
            current = holder.model_fields[part].annotation
        elif part not in _union_tags(current):
            parts.append(str(part))
            current = None
    return ".".join(parts).replace(".[", "["), holder


def _members(annotation: Any) -> tuple[Any, ...]:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _members(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return tuple(m for arg in typing.get_args(annotation) for m in _members(arg))
    return (annotation,)


def _model_in(annotation: Any) -> type[BaseModel] | None:
    for member in _members(annotation):
        if isinstance(member, type) and issubclass(member, BaseModel):
            return member
    return None


def _union_tags(annotation: Any) -> set[str]:
    """Names pydantic may put into a loc for a union member (tags and model names)."""
    tags = set()
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        tags |= {str(meta.tag) for meta in args[1:] if hasattr(meta, "tag")}
        tags |= _union_tags(args[0])
    elif origin in (typing.Union, types.UnionType):
        for arg in args:
            tags |= _union_tags(arg)
    elif isinstance(annotation, type):
        tags.add(annotation.__name__)
    return tags


def _element_type(annotation: Any) -> Any:
    args = typing.get_args(annotation)
    return args[-1] if args else None


def json_schema() -> str:
    """The JSON schema of an accelerator config, pretty-printed."""
    return json.dumps(Accelerator.model_json_schema(), indent=2)
