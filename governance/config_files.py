"""Loading YAML configuration files into typed models, with errors that name file, line, field."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from governance.errors import ConfigError

M = TypeVar("M", bound=BaseModel)


def _line_index(node: yaml.Node, path: tuple = (), out: dict | None = None) -> dict:
    """Map every key path in a composed YAML tree to its 1-based line."""
    out = {} if out is None else out
    out[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = (*path, key_node.value)
            _line_index(value_node, key, out)
            out[key] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _line_index(item, (*path, i), out)
    return out


def _format_loc(loc: tuple) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += ("." if text else "") + str(part)
    return text


def load_yaml_model(path: str | os.PathLike, model: type[M], what: str) -> tuple[M, bytes]:
    """Parse the YAML file ``path`` into ``model``; return it with the file's bytes.

    Raises ConfigError with file, line and dotted field path on any problem.
    """
    p = Path(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise ConfigError(str(p), f"{what} file not found") from None
    except OSError as e:
        raise ConfigError(str(p), f"cannot read {what}: {e.strerror}") from None
    try:
        text = raw.decode("utf-8")
        node = yaml.compose(text)
        data = yaml.safe_load(text)
    except UnicodeDecodeError:
        raise ConfigError(str(p), f"{what} is not UTF-8 text") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(str(p), f"malformed YAML: {problem}",
                          line=mark.line + 1 if mark else None) from None
    if not isinstance(data, dict):
        fields = ", ".join(n for n, f in model.model_fields.items() if f.is_required())
        raise ConfigError(str(p), f"{what} must be a mapping with {fields}", line=1)
    lines = _line_index(node) if node is not None else {}
    try:
        return model.model_validate(data), raw
    except ValidationError as e:
        err = e.errors()[0]
        loc = tuple(x for x in err["loc"] if not (isinstance(x, str) and "[" in x))
        line = next((lines[loc[:n]] for n in range(len(loc), -1, -1) if loc[:n] in lines), None)
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "missing":
            msg = "required field is missing"
        elif err["type"] == "extra_forbidden":
            msg = "unknown field"
        elif err["type"] == "literal_error":
            msg = f"{msg} (got {err.get('input')!r})"
        raise ConfigError(str(p), msg, line=line, field=_format_loc(loc) or None) from None
