"""JSON the way Toxiproxy's Go code reads and writes it.

Clients compare bodies byte for byte, so this module reproduces what Go's
``encoding/json`` (1.19) does that Python's ``json`` does not:

* decoding reads one value and ignores whatever follows it;
* object keys match struct fields case-insensitively, the last one wins;
* a value of the wrong JSON kind gives ``json: cannot unmarshal <kind> into Go
  struct field <Struct>.<path> of type <type>``; the first such error is kept
  and decoding carries on, as Go's decoder does;
* syntax errors read ``invalid character 'x' looking for beginning of value``,
  a truncated document ``unexpected EOF`` and an empty one ``EOF``;
* encoding escapes ``<``, ``>``, ``&``, U+2028 and U+2029 and formats float32
  values with the shortest representation that round-trips as a float32.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence


class GoJSONError(ValueError):
    """A decoding error whose ``str`` is the message Go would give."""


@dataclass(frozen=True)
class Number:
    """A JSON number kept as its literal text, so that int/float checks match Go."""

    literal: str


# --------------------------------------------------------------------------
# decoding: syntax
# --------------------------------------------------------------------------


def _reject_constant(name: str) -> Any:
    raise json.JSONDecodeError("Expecting value", name, 0)


_DECODER = json.JSONDecoder(
    parse_float=Number,
    parse_int=Number,
    parse_constant=_reject_constant,
    strict=True,
)

_WHITESPACE = " \t\r\n"


def _quote_char(ch: str) -> str:
    if ch == "'":
        return "'\\''"
    if ch == '"':
        return "'\"'"
    if ch.isprintable():
        return f"'{ch}'"
    return "'" + json.dumps(ch)[1:-1] + "'"


def _container_at(doc: str, pos: int) -> str:
    """'object' or 'array': the innermost container open at ``pos``."""
    stack: list[str] = []
    in_string = escaped = False
    for ch in doc[:pos]:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "{[":
            stack.append(ch)
        elif ch in "}]" and stack:
            stack.pop()
    return "array" if stack and stack[-1] == "[" else "object"


def _syntax_message(doc: str, err: json.JSONDecodeError) -> str:
    pos = err.pos
    rest = doc[pos:]
    if not rest.strip(_WHITESPACE) or err.msg.startswith("Unterminated string"):
        return "unexpected EOF"
    ch = doc[pos] if pos < len(doc) else ""
    msg = err.msg
    if msg.startswith("Invalid control character"):
        return f"invalid character {_quote_char(ch)} in string literal"
    if msg.startswith("Invalid \\escape") or msg.startswith("Invalid \\u"):
        bad = doc[pos + 1] if pos + 1 < len(doc) else ""
        return f"invalid character {_quote_char(bad)} in string escape code"
    if msg.startswith("Expecting ':'"):
        return f"invalid character {_quote_char(ch)} after object key"
    if msg.startswith("Expecting ',' delimiter"):
        where = "array element" if _container_at(doc, pos) == "array" else "object key:value pair"
        return f"invalid character {_quote_char(ch)} after {where}"
    if msg.startswith("Expecting property name"):
        return f"invalid character {_quote_char(ch)} looking for beginning of object key string"
    return f"invalid character {_quote_char(ch)} looking for beginning of value"


def _scrub(value: Any) -> Any:
    """Replace lone surrogates (from ``\\ud800`` escapes) with U+FFFD, as Go does."""
    if isinstance(value, str):
        if any("\ud800" <= c <= "\udfff" for c in value):
            return "".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in value)
        return value
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    if isinstance(value, dict):
        return {_scrub(k): _scrub(v) for k, v in value.items()}
    return value


def parse(body: bytes) -> Any:
    """Decode the first JSON value in ``body`` as Go's ``json.Decoder.Decode`` would."""
    doc = body.decode("utf-8", errors="replace")
    start = len(doc) - len(doc.lstrip(_WHITESPACE))
    if start >= len(doc):
        raise GoJSONError("EOF")
    try:
        value, _end = _DECODER.raw_decode(doc, start)
    except json.JSONDecodeError as err:
        raise GoJSONError(_syntax_message(doc, err)) from None
    except RecursionError:
        raise GoJSONError("exceeded max depth") from None
    return _scrub(value)


# --------------------------------------------------------------------------
# decoding: types
# --------------------------------------------------------------------------


def kind_of(value: Any) -> str:
    """The JSON kind as Go names it in an UnmarshalTypeError."""
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, Number):
        return "number"
    if isinstance(value, list):
        return "array"
    return "object"


_INT_RANGES = {"int64": (-(2**63), 2**63 - 1), "int": (-(2**63), 2**63 - 1)}


def _float32(value: float) -> float:
    rounded: float = struct.unpack("f", struct.pack("f", value))[0]
    return rounded


class TypeErrors:
    """Collects the first type error, as Go's decoder does, and keeps decoding."""

    def __init__(self) -> None:
        self.first: str | None = None

    def add(self, kind: str, struct_name: str, path: str, go_type: str) -> None:
        if self.first is None:
            if struct_name or path:
                self.first = (
                    f"json: cannot unmarshal {kind} into Go struct field "
                    f"{struct_name}.{path} of type {go_type}"
                )
            else:
                self.first = f"json: cannot unmarshal {kind} into Go value of type {go_type}"

    def raise_first(self) -> None:
        if self.first is not None:
            raise GoJSONError(self.first)


def convert(value: Any, go_type: str, errors: TypeErrors, struct_name: str, path: str) -> Any:
    """Convert one decoded value to ``go_type``; returns ``None`` to keep the old value."""
    if value is None:
        return None
    if go_type == "string":
        if isinstance(value, str):
            return value
    elif go_type == "bool":
        if isinstance(value, bool):
            return value
    elif go_type in _INT_RANGES:
        if isinstance(value, Number):
            lo, hi = _INT_RANGES[go_type]
            try:
                number = int(value.literal)
            except ValueError:
                number = None
            if number is not None and lo <= number <= hi:
                return number
            errors.add(f"number {value.literal}", struct_name, path, go_type)
            return None
    elif go_type == "float32":
        if isinstance(value, Number):
            parsed = float(value.literal)
            if math.isinf(parsed) or abs(parsed) > 3.4028234663852886e38:
                errors.add(f"number {value.literal}", struct_name, path, go_type)
                return None
            return _float32(parsed)
    elif go_type == "any":
        return value
    errors.add(kind_of(value), struct_name, path, go_type)
    return None


@dataclass(frozen=True)
class Field:
    key: str
    go_type: str  # "string" | "bool" | "int64" | "int" | "float32" | "any" | "struct:<Name>"


def decode_struct(
    obj: Any,
    fields: Sequence[Field],
    struct_name: str,
    type_name: str,
    errors: TypeErrors,
    prefix: str = "",
) -> dict[str, Any] | None:
    """Decode ``obj`` into a dict of the given fields; absent fields are left out.

    Returns ``None`` when ``obj`` is JSON null (Go leaves the target untouched).
    ``type_name`` is the Go type named when ``obj`` is not an object at all.
    """
    if obj is None:
        return None
    if not isinstance(obj, dict):
        errors.add(kind_of(obj), "" if not prefix else struct_name, prefix.rstrip("."), type_name)
        return {}
    by_key = {f.key: f for f in fields}
    by_fold = {f.key.casefold(): f for f in fields}
    out: dict[str, Any] = {}
    for key, value in obj.items():
        field = by_key.get(key) or by_fold.get(key.casefold())
        if field is None:
            continue
        path = prefix + field.key
        converted = convert(value, field.go_type, errors, struct_name, path)
        if converted is not None:
            out[field.key] = converted
    return out


# --------------------------------------------------------------------------
# encoding
# --------------------------------------------------------------------------

_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}


def _encode_string(text: str) -> str:
    parts = ['"']
    for ch in text:
        escaped = _ESCAPES.get(ch)
        if escaped is not None:
            parts.append(escaped)
        elif ch < " ":
            parts.append(f"\\u{ord(ch):04x}")
        elif "\ud800" <= ch <= "\udfff":
            parts.append("\ufffd")
        else:
            parts.append(ch)
    parts.append('"')
    return "".join(parts)


def format_float32(value: float) -> str:
    """Go's ``json.Marshal`` of a float32: shortest round-trip digits, 'e' outside [1e-6, 1e21)."""
    target = _float32(value)
    if target == 0:
        return "0"
    for precision in range(0, 9):
        candidate = f"{target:.{precision}e}"
        if _float32(float(candidate)) == target:
            break
    mantissa, _, exponent = candidate.partition("e")
    sign = "-" if mantissa.startswith("-") else ""
    digits = mantissa.lstrip("-").replace(".", "").rstrip("0") or "0"
    exp = int(exponent)
    if _float32(1e-6) <= abs(target) < _float32(1e21):
        point = exp + 1  # digits before the decimal point
        if point <= 0:
            return f"{sign}0.{'0' * -point}{digits}"
        if point >= len(digits):
            return f"{sign}{digits}{'0' * (point - len(digits))}"
        return f"{sign}{digits[:point]}.{digits[point:]}"
    body = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    if exp < 0:
        return f"{sign}{body}e-{abs(exp)}" if abs(exp) < 10 else f"{sign}{body}e-{abs(exp):02d}"
    return f"{sign}{body}e+{exp:02d}"


class Float32(float):
    """Marks a float to be written as Go writes a float32."""


def encode(value: Any) -> str:
    """Compact JSON, Go style. Dicts keep their insertion order (struct field order)."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return _encode_string(value)
    if isinstance(value, Float32):
        return format_float32(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if not value.is_integer() else str(int(value))
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{_encode_string(k)}:{encode(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(encode(v) for v in value) + "]"
    raise TypeError(f"cannot encode {type(value).__name__}")


def encode_sorted(mapping: Mapping[str, Any], item: Callable[[Any], Any] = lambda v: v) -> str:
    """A Go map marshalled: keys sorted by their UTF-8 bytes."""
    keys = sorted(mapping, key=lambda k: k.encode("utf-8", "surrogatepass"))
    return "{" + ",".join(f"{_encode_string(k)}:{encode(item(mapping[k]))}" for k in keys) + "}"
