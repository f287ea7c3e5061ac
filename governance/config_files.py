"""Loading YAML configuration files into typed models, with errors that name file, line, field.

Every file is read with a safe loader whose alias expansion is capped (a "billion laughs"
document is refused in milliseconds, before anything walks it), and, for files that must
never hold credentials (inventories, policies), every value is checked for secrets first,
so that an error message never echoes one.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from governance.errors import ConfigError

M = TypeVar("M", bound=BaseModel)

# Nodes a document may hold once its aliases are expanded. A large real inventory (10
# sources x 500 tables x 40 columns) stays well under it; a 9-level alias bomb has 9**9.
MAX_EXPANDED_NODES = 1_000_000

Loc = tuple[str | int, ...]


class FieldError(ValueError):
    """A validation error that knows which field below the validated model it is about.

    Raised from a model validator, it moves the reported line to that field, e.g. the
    second of two sources with the same name rather than the list holding them.
    """

    def __init__(self, message: str, loc: Loc):
        super().__init__(message)
        self.loc = tuple(loc)


# Values that are, or carry, credentials. Messages name the kind, never the value.
_SECRET_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^/\s@:]*:[^/\s@]*@"),
     "a URL with user:password@"),
    (re.compile(r"^postgres(?:ql)?://", re.IGNORECASE), "a PostgreSQL DSN"),
    (re.compile(r"(?:^|[\s;])(?:password|passwd|pwd|sslpassword)\s*=", re.IGNORECASE),
     "a connection string with a password"),
    (re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"), "a private key"),
    (re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"), "an AWS access key"),
    (re.compile(r"\b(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{30,}|\bgithub_pat_[A-Za-z0-9_]{30,}"),
     "a GitHub token"),
    (re.compile(r"\bglpat-[A-Za-z0-9_-]{20,}"), "a GitLab token"),
    (re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}"), "a Slack token"),
    (re.compile(r"\b(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,}"), "a Stripe key"),
    (re.compile(r"\bsk-[A-Za-z0-9_-]{20,}"), "an API secret key"),
    (re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b"), "a Google API key"),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]+"),
     "a JSON Web Token"),
    (re.compile(r"\bBearer\s+[A-Za-z0-9._~+/-]{16,}", re.IGNORECASE), "a bearer token"),
]


def secret_kind(value: str) -> str | None:
    """What kind of credential ``value`` looks like, or None when it looks like none."""
    for pattern, kind in _SECRET_PATTERNS:
        if pattern.search(value):
            return kind
    return None


class _CappedLoader(yaml.SafeLoader):
    """PyYAML's safe loader (no Python objects)."""


def _expanded_size(root: yaml.Node, limit: int) -> int:
    """Nodes of the tree ``root`` stands for with every alias expanded; stops past ``limit``.

    Aliases share their node, so sizes are memoised per node: the walk costs the number of
    distinct nodes, however large the expansion.
    """
    sizes: dict[int, int] = {}
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if id(node) in sizes:
            continue
        if isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        else:
            sizes[id(node)] = 1
            continue
        if children_done:
            sizes[id(node)] = min(limit + 1, 1 + sum(sizes.get(id(c), 0) for c in children))
        else:
            stack.append((node, True))
            stack.extend((c, False) for c in children if id(c) not in sizes)
    return sizes[id(root)]


def _line_index(node: yaml.Node, path: Loc = (), out: dict[Loc, int] | None = None
                ) -> dict[Loc, int]:
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


def _scalars(node: yaml.Node, path: Loc = (), seen: set[int] | None = None
             ) -> list[tuple[Loc, yaml.ScalarNode]]:
    """Every scalar (keys and values) of the tree, with its key path; a node reached again
    through an alias is listed once."""
    seen = set() if seen is None else seen
    found: list[tuple[Loc, yaml.ScalarNode]] = []
    if id(node) in seen:
        return found
    seen.add(id(node))
    if isinstance(node, yaml.ScalarNode):
        found.append((path, node))
    elif isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = (*path, key_node.value if isinstance(key_node, yaml.ScalarNode) else "?")
            found.extend(_scalars(key_node, key, seen))
            found.extend(_scalars(value_node, key, seen))
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            found.extend(_scalars(item, (*path, i), seen))
    return found


def format_loc(loc: Loc) -> str:
    """``('sources', 2, 'kind')`` as ``sources[2].kind``."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += ("." if text else "") + str(part)
    return text


@dataclass(frozen=True)
class LoadedFile(Generic[M]):
    """A validated configuration file: the model, the file's bytes and each field's line."""

    model: M
    raw: bytes
    lines: dict[Loc, int]

    def line(self, loc: Loc) -> int | None:
        """The line of field ``loc`` (or of its nearest enclosing field)."""
        return _line_of(self.lines, loc)


def _line_of(lines: dict[Loc, int], loc: Loc) -> int | None:
    return next((lines[loc[:n]] for n in range(len(loc), -1, -1) if loc[:n] in lines), None)


def load_yaml_file(path: str | os.PathLike[str], model: type[M], what: str,
                   refuse_secrets: bool = False) -> LoadedFile[M]:
    """Parse the YAML (or JSON) file ``path`` into ``model``.

    Raises ConfigError with file, line and dotted field path on any problem: unreadable
    or malformed file, aliases expanding past MAX_EXPANDED_NODES nodes, a value that looks
    like a credential (when ``refuse_secrets``), or a validation error.
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
        loader = _CappedLoader(text)
        try:
            node = loader.get_single_node()
            if node is not None:
                if _expanded_size(node, MAX_EXPANDED_NODES) > MAX_EXPANDED_NODES:
                    raise ConfigError(
                        str(p), f"{what} expands to more than {MAX_EXPANDED_NODES:,} YAML "
                        "nodes through aliases; refused (write it out, or use fewer aliases)")
                _check_duplicate_keys(p, node)
                if refuse_secrets:
                    _check_secrets(p, node, what)
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except UnicodeDecodeError:
        raise ConfigError(str(p), f"{what} is not UTF-8 text") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(str(p), f"malformed YAML: {problem}",
                          line=mark.line + 1 if mark else None) from None
    except RecursionError:
        raise ConfigError(str(p), f"{what} is nested too deeply") from None
    if not isinstance(data, dict):
        fields = ", ".join(n for n, f in model.model_fields.items() if f.is_required())
        raise ConfigError(str(p), f"{what} must be a mapping with {fields}", line=1)
    lines = _line_index(node) if node is not None else {}
    try:
        return LoadedFile(model.model_validate(data), raw, lines)
    except ValidationError as e:
        err = e.errors()[0]
        loc: Loc = tuple(x for x in err["loc"] if not (isinstance(x, str) and "[" in x))
        cause = (err.get("ctx") or {}).get("error")
        if isinstance(cause, FieldError):
            loc = (*loc, *cause.loc)
        line = _line_of(lines, loc)
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "missing":
            msg = "required field is missing"
        elif err["type"] == "extra_forbidden":
            msg = "unknown field"
        elif err["type"] == "literal_error":
            msg = f"{msg} (got {err.get('input')!r})"
        raise ConfigError(str(p), msg, line=line, field=format_loc(loc) or None) from None


def _check_duplicate_keys(path: Path, root: yaml.Node) -> None:
    """ConfigError at the second of two equal keys of one mapping (YAML readers keep the
    last one silently: ``kind: sqlite`` then ``kind: csv`` would read the source as CSV)."""
    seen: set[int] = set()
    stack: list[tuple[yaml.Node, Loc]] = [(root, ())]
    while stack:
        node, loc = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            keys: set[Any] = set()
            for key_node, value_node in node.value:
                if isinstance(key_node, yaml.ScalarNode) and key_node.tag != \
                        "tag:yaml.org,2002:merge":
                    if key_node.value in keys:
                        raise ConfigError(str(path), "duplicate key (each may be written once)",
                                          line=key_node.start_mark.line + 1,
                                          field=format_loc((*loc, key_node.value)))
                    keys.add(key_node.value)
                    stack.append((value_node, (*loc, key_node.value)))
                else:
                    stack.append((value_node, loc))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((item, (*loc, i)) for i, item in enumerate(node.value))


def _check_secrets(path: Path, root: yaml.Node, what: str) -> None:
    for loc, node in _scalars(root):
        kind = secret_kind(str(node.value))
        if kind:
            raise ConfigError(
                str(path), f"looks like {kind}, which must not be written in the {what}; "
                "put a DSN in an environment variable and name it with dsn_env",
                line=node.start_mark.line + 1, field=format_loc(loc) or None)


def load_yaml_model(path: str | os.PathLike[str], model: type[M], what: str,
                    refuse_secrets: bool = False) -> tuple[M, bytes]:
    """Parse the YAML file ``path`` into ``model``; return it with the file's bytes.

    Raises ConfigError with file, line and dotted field path on any problem.
    """
    loaded = load_yaml_file(path, model, what, refuse_secrets)
    return loaded.model, loaded.raw
