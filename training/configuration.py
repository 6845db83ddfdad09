"""Building and checking the training configs in one place.

Both wings describe a run as a frozen dataclass, possibly with nested sections (dataclasses again). Presets
with overrides, `--set KEY=VALUE` strings and saved dicts (`from_dict` of a checkpoint) all go through `build`,
so an unknown key, a value of the wrong type, a non-finite number or a value out of range is one clear
BackendError wherever it comes from. Each config class names itself for messages (`WHAT`, a ClassVar) and
may define `check(self) -> list[str]`: the problems of a built instance (empty when it is usable).
"""

import dataclasses
import math
import typing

from backend.errors import BackendError

TRUE_WORDS, FALSE_WORDS = ("true", "1", "yes"), ("false", "0", "no")


def _fields(cls) -> dict:
    hints = typing.get_type_hints(cls)
    return {field.name: (field, hints[field.name]) for field in dataclasses.fields(cls)}


def _section_type(kind):
    """The dataclass of a section field (`Section` or `Section | None`), else None."""
    if dataclasses.is_dataclass(kind):
        return kind
    options = [option for option in typing.get_args(kind) if option is not type(None)]
    return options[0] if len(options) == 1 and dataclasses.is_dataclass(options[0]) else None


def _checked(key: str, value, kind):
    if kind is bool:
        if not isinstance(value, bool):
            raise BackendError(f"{key}={value!r}: expected true or false")
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise BackendError(f"{key}={value!r}: expected a whole number")
        return value
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise BackendError(f"{key}={value!r}: expected a number")
        if not math.isfinite(value):
            raise BackendError(f"{key}={value!r}: expected a finite number")
        return float(value)
    if kind is str:
        if not isinstance(value, str):
            raise BackendError(f"{key}={value!r}: expected text")
        return value
    raise TypeError(f"{key}: unsupported config field type {kind!r}")


def build(cls, values: dict, prefix: str = ""):
    """An instance of config class `cls` from a plain dict (nested dicts for sections); BackendError on any
    unknown key, wrong type, missing required field or a problem reported by `check`."""
    what = getattr(cls, "WHAT", cls.__name__)
    if not isinstance(values, dict):
        raise BackendError(f"{prefix.rstrip('.') or what}: expected a mapping of {what} settings; got {values!r}")
    fields = _fields(cls)
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise BackendError(f"unknown {what} setting(s) {', '.join(prefix + name for name in unknown)}; "
                           f"known: {', '.join(prefix + name for name in fields)}")
    arguments = {}
    for name, value in values.items():
        field, kind = fields[name]
        section = _section_type(kind)
        if section is not None:
            if value is None and field.default is None:
                arguments[name] = None
            else:
                arguments[name] = build(section, dataclasses.asdict(value) if dataclasses.is_dataclass(value)
                                        else value, f"{prefix}{name}.")
        else:
            arguments[name] = _checked(prefix + name, value, kind)
    missing = [name for name, (field, _) in fields.items() if name not in arguments
               and field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING]
    if missing:
        raise BackendError(f"{what} settings lack {', '.join(prefix + name for name in missing)}")
    config = cls(**arguments)
    problems = config.check() if hasattr(config, "check") else []
    if getattr(config, "seed", 0) < 0:  # numpy and torch generators take non-negative seeds only
        problems.append(f"seed must be at least 0; got {config.seed}")
    if problems:
        raise BackendError("; ".join(problems))
    return config


def merged(base: dict, overrides: dict) -> dict:
    """`base` with `overrides` laid over it, section dicts merged key by key."""
    result = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merged(result[key], value)
        else:
            result[key] = value
    return result


def with_overrides(config, overrides: dict):
    """`config` (an instance) with `overrides` (plain values, nested dicts for sections) applied and checked."""
    return build(type(config), merged(dataclasses.asdict(config), overrides))


def parse_setting(cls, item: str) -> dict:
    """One `--set KEY=VALUE` (KEY may be `section.field`) -> a nested override dict, VALUE typed like the
    field it names (an unknown key stays text; `build` then reports it with the known names)."""
    key, mark, text = item.partition("=")
    if not mark or not key:
        raise BackendError(f"--set {item}: expected KEY=VALUE")
    names = key.split(".")
    kind, current = None, cls
    for name in names:
        entry = _fields(current).get(name) if current is not None else None
        if entry is None:
            kind, current = None, None
            break
        kind = entry[1]
        current = _section_type(kind)
    value = text if current is not None or kind is None else _typed(f"--set {item}", text, kind)
    for name in reversed(names):
        value = {name: value}
    return value


def _typed(label: str, text: str, kind):
    if kind is str:
        return text
    if kind is bool:
        if text.lower() not in TRUE_WORDS + FALSE_WORDS:
            raise BackendError(f"{label}: expected true or false")
        return text.lower() in TRUE_WORDS
    try:
        number = float(text)
    except ValueError:
        raise BackendError(f"{label}: expected a number") from None
    if kind is float:
        return number
    if not number.is_integer():
        raise BackendError(f"{label}: expected a whole number")
    return int(number)


def parse_settings(cls, items) -> dict:
    """Every `--set` of a command line, merged into one nested override dict."""
    overrides = {}
    for item in items:
        overrides = merged(overrides, parse_setting(cls, item))
    return overrides


def at_least(values: dict, minimum) -> list:
    """Problems of the named values below `minimum` (for `check` methods)."""
    return [f"{name} must be at least {minimum}; got {value}" for name, value in values.items() if value < minimum]
