"""Command-line flags and config files generated from a configuration dataclass (``alad run``).

Every field becomes a flag ``--field-name`` (``flags`` renames the few with historic names, e.g.
``use_cache`` -> ``--cache/--no-cache``); its one-line comment in the class source is the help, its type
annotation the parser (``tuple[int, ...]`` reads ``0,1``, ``dict`` reads JSON, ``bool`` gets
``--x/--no-x``), ``choices`` the allowed values. Flags default to ``argparse.SUPPRESS``, so only flags that
were really given reach the namespace; ``merge_config`` layers field defaults < command defaults < config
file < given flags. A config file (JSON, or YAML when pyyaml is importable) holds field names as keys, like
the ``config`` entry of a run's metrics.json; a bad one is a one-line :class:`ConfigFileError` naming the
file and the key.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import difflib
import inspect
import io
import json
import textwrap
import tokenize
import types
import typing
from collections.abc import Mapping
from pathlib import Path


class ConfigFileError(ValueError):
    """A config file that cannot be used: unreadable, not a mapping, an unknown key or a value of a wrong type."""


def field_comments(cls) -> dict[str, str]:
    """{field name: its trailing ``# comment``} from the source of dataclass ``cls``."""
    source = textwrap.dedent(inspect.getsource(cls))
    comments = {tok.start[0]: tok.string.lstrip("#").strip()
                for tok in tokenize.generate_tokens(io.StringIO(source).readline) if tok.type == tokenize.COMMENT}
    body = ast.parse(source).body[0].body
    return {node.target.id: comments.get(node.end_lineno, "") for node in body
            if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)}


def _unwrap_optional(hint) -> tuple[object, bool]:
    """(the type inside ``X | None``, whether None is allowed)."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return (args[0] if len(args) == 1 else hint), len(args) < len(typing.get_args(hint))
    return hint, False


def _type_name(hint) -> str:
    base, optional = _unwrap_optional(hint)
    name = "list of int" if typing.get_origin(base) is tuple else getattr(base, "__name__", str(base))
    return f"{name} or null" if optional else name


def _int_tuple(flag: str, kind: type = int):
    def parse(text: str) -> tuple:
        try:
            return tuple(kind(x) for x in text.split(","))
        except ValueError:
            what = "integers" if kind is int else "numbers"
            raise argparse.ArgumentTypeError(f"{flag} wants comma-separated {what}, got {text!r}") from None
    return parse


def _json_object(flag: str):
    def parse(text: str) -> dict:
        try:
            value = json.loads(text)
        except json.JSONDecodeError as err:
            raise argparse.ArgumentTypeError(f"{flag} wants a JSON object ({err.msg})") from None
        if not isinstance(value, dict):
            raise argparse.ArgumentTypeError(f"{flag} wants a JSON object, got {text!r}")
        return value
    return parse


def flag_name(name: str, flags: Mapping[str, str] | None = None) -> str:
    """The command-line flag of field ``name`` (without the leading dashes)."""
    return (flags or {}).get(name, name.replace("_", "-"))


def add_dataclass_arguments(parser: argparse.ArgumentParser, cls, *, flags: Mapping[str, str] | None = None,
                            choices: Mapping[str, tuple] | None = None, defaults: Mapping | None = None,
                            skip: tuple[str, ...] = ()) -> None:
    """One flag per field of ``cls`` (but those in ``skip``); ``defaults`` (command defaults over the field's) are
    shown, not applied."""
    hints, comments = typing.get_type_hints(cls), field_comments(cls)
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        flag = "--" + flag_name(f.name, flags)
        default = (defaults or {}).get(f.name, _field_default(f))
        kwargs = dict(dest=f.name, default=argparse.SUPPRESS, help=_help(comments.get(f.name) or f.name, default))
        base, _ = _unwrap_optional(hints[f.name])
        if base is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif typing.get_origin(base) is tuple:
            kind = float if typing.get_args(base)[:1] == (float,) else int
            kwargs |= dict(type=_int_tuple(flag, kind), metavar="I,J,..." if kind is int else "X,Y,...")
        elif base is dict:
            kwargs |= dict(type=_json_object(flag), metavar="JSON")
        else:
            kwargs["type"] = base
        if f.name in (choices or {}):
            kwargs["choices"] = list(choices[f.name])
        parser.add_argument(flag, **kwargs)


def command_args(config, *, flags: Mapping[str, str] | None = None, defaults: Mapping | None = None,
                 always: tuple[str, ...] = ()) -> list[str]:
    """The flags that give ``config`` back through :func:`add_dataclass_arguments` and :func:`merge_config`:
    every field whose value differs from its default (``defaults`` over the field's), and the fields in
    ``always``, in field order. Fields with ``compare=False`` (free-form notes) are left out."""
    out = []
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        default = (defaults or {}).get(f.name, _field_default(f))
        if not f.compare or (value == default and f.name not in always):
            continue
        flag = "--" + flag_name(f.name, flags)
        if isinstance(value, bool):
            out.append(flag if value else "--no-" + flag[2:])
        elif value is None:
            raise ValueError(f"{type(config).__name__}.{f.name}: None cannot be given as a flag "
                             f"(its default is {default!r})")
        else:
            out += [flag, _show(value)]
    return out


def _help(comment: str, default) -> str:
    if default is dataclasses.MISSING:
        text = f"{comment} (required)"
    elif default is None and "default" in comment:  # the comment already says what None stands for
        text = comment
    else:
        text = f"{comment} (default: {_show(default)})"
    return text.replace("%", "%%")  # argparse %-formats help texts


def _field_default(f: dataclasses.Field):
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return f.default


def _show(value) -> str:
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    return json.dumps(value) if isinstance(value, dict) else str(value)


def load_config_file(path: str | Path, cls) -> dict:
    """The fields a JSON/YAML config file sets, checked against ``cls``'s field names and types."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigFileError(f"{path}: cannot read the config file ({getattr(err, 'strerror', None) or err})") from None
    data = _parse(path, text)
    if not isinstance(data, dict):
        raise ConfigFileError(f"{path}: a config file holds a mapping of {cls.__name__} fields, got {type(data).__name__}")
    names, hints = [f.name for f in dataclasses.fields(cls)], typing.get_type_hints(cls)
    for key, value in data.items():
        if key not in names:
            close = difflib.get_close_matches(str(key), names, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigFileError(f"{path}: unknown key {key!r} ({cls.__name__} has no such field{hint})")
        if not _fits(value, hints[key]):
            raise ConfigFileError(f"{path}: key {key!r} wants {_type_name(hints[key])}, got {value!r}")
    return {key: tuple(value) if isinstance(value, list) else value for key, value in data.items()}


def _parse(path: Path, text: str):
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise ConfigFileError(f"{path}: YAML config files need pyyaml; install it or write JSON") from None
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise ConfigFileError(f"{path}: invalid YAML ({' '.join(str(err).split())})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise ConfigFileError(f"{path}: invalid JSON ({err.msg} at line {err.lineno})") from None


def _fits(value, hint) -> bool:
    base, optional = _unwrap_optional(hint)
    if value is None:
        return optional
    if base is bool:
        return isinstance(value, bool)
    if isinstance(value, bool):  # bool is an int subclass: true is no window size
        return False
    if base is float:
        return isinstance(value, (int, float))
    if typing.get_origin(base) is tuple:
        return isinstance(value, (list, tuple)) and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    return isinstance(value, base) if isinstance(base, type) else True


def merge_config(cls, args: argparse.Namespace, file_values: Mapping | None = None,
                 defaults: Mapping | None = None) -> tuple[dict, list[str]]:
    """(keyword arguments for ``cls``, names of required fields still missing): command ``defaults``, then
    the config file's ``file_values``, then the flags given in ``args`` (absent when not given)."""
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)}
    values = {**(defaults or {}), **(file_values or {}), **given}
    missing = [f.name for f in dataclasses.fields(cls) if f.name not in values
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    return values, missing
