"""JSON the node writes: stored bodies, status resources, responses.

msgspec writes compact UTF-8 JSON with integers exact, in a tenth of the json module's time; a node writes
every stored object once and every status (one entry per object) twice, so this is much of its time.
Values given here are JSON already (parsed from JSON or built by the node): no NaN, no lone surrogate.
"""

import msgspec


def _plain(value: object) -> object:
    """msgspec writes exact builtin types only: subclasses (bson's Int64 in records read from MongoDB)
    are written as the builtin they extend."""
    for builtin in (bool, int, float, str):
        if isinstance(value, builtin):
            return builtin(value)
    raise TypeError(f"{type(value).__name__} is not a JSON value")


_ENCODER = msgspec.json.Encoder(enc_hook=_plain)
# What encoding a value that JSON cannot hold raises (a lone surrogate in a string raises ValueError).
ENCODE_ERRORS = (TypeError, ValueError, msgspec.EncodeError)


def json_bytes(value: object) -> bytes:
    return _ENCODER.encode(value)


def json_text(value: object) -> str:
    return _ENCODER.encode(value).decode()
