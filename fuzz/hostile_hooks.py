"""Hostile strings for scripts/spec-fuzz (loaded with SCHEMATHESIS_HOOKS=hostile_hooks).

Schemathesis generates requests that follow the spec (and, in its negative phase, ones
that break it), but the strings it draws rarely hold what breaks a service behind its
validation: a NUL (which Postgres cannot store in text or jsonb), other control
characters, lone surrogates, very long strings, values nested far too deep. These hooks
splice such a value into a third of the generated requests of every operation: into one string
of the JSON body (a value or an object key, at any depth), or into one query or path
parameter. Every answer must still be documented and never a 5xx (the checks
spec-fuzz runs). The Rust tests pin the same classes deterministically
(crates/api/tests/hostile_input.rs).
"""

import schemathesis
from hypothesis import strategies as st

# Text for any string: NUL anywhere, other C0 controls, DEL, BOM and non-characters, and
# long runs; short enough for a URL (the URL limit is 8 KiB, percent-encoding included).
_TEXT = st.one_of(
    st.just("\x00"),
    st.builds(lambda a, b: f"{a}\x00{b}", st.text(max_size=12), st.text(max_size=12)),
    st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x1F), min_size=1, max_size=8),
    st.sampled_from(["\x7f", "\ufeff", "\uffff", "\U0010ffff", "a\u200bb", "%00", "\\u0000"]),
    st.integers(min_value=200, max_value=1000).map(lambda n: "x" * n),
)

# In a JSON body also: lone surrogates (serialized as \\ud800 escapes), strings far past
# every field's bound, and values nested deeper than any parser allows.
def _nested(depth):
    value = "x"
    for _ in range(depth):
        value = {"d": value}
    return value


_BODY = st.one_of(
    _TEXT,
    st.sampled_from(["\ud800", "a\udfffb", "\udbff\udc00\ud800"]),
    st.integers(min_value=5_000, max_value=70_000).map(lambda n: "é" * n),
    st.integers(min_value=130, max_value=300).map(_nested),
)


def _slots(value, path=()):
    """Every place a hostile string can go: ("value", path) for each string,
    ("key", path, key) for each object key."""
    if isinstance(value, str):
        yield ("value", path)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _slots(item, path + (i,))
    elif isinstance(value, dict):
        for key, item in value.items():
            yield ("key", path, key)
            yield from _slots(item, path + (key,))


def _replace(value, slot, new):
    kind, path = slot[0], slot[1]
    if not path and kind == "value":
        return new
    # Copy along the path, so the drawn value itself is never changed in place.
    root = _copy(value)
    parent = root
    for step in path[:-1] if kind == "value" else path:
        parent[step] = _copy(parent[step])
        parent = parent[step]
    if kind == "value":
        parent[path[-1]] = new
    else:
        key = slot[2]
        parent[new if isinstance(new, str) else str(new)] = parent.pop(key)
    return root


def _copy(value):
    if isinstance(value, dict):
        return dict(value)
    if isinstance(value, list):
        return list(value)
    return value


@st.composite
def _variant(draw, value, hostile, keys=True):
    # One request in three: the rest keep what the spec generated, so every
    # operation's success path is still reached and checked.
    if value is None or draw(st.integers(min_value=0, max_value=2)) != 0:
        return value
    slots = [s for s in _slots(value) if keys or s[0] == "value"]
    if not slots:
        return value
    slot = draw(st.sampled_from(slots))
    new = draw(_TEXT if slot[0] == "key" else hostile)
    return _replace(value, slot, new)


@schemathesis.hook
def flatmap_body(ctx, body):
    return _variant(body, _BODY)


@schemathesis.hook
def flatmap_query(ctx, query):
    return _variant(query, _TEXT)


@schemathesis.hook
def flatmap_path_parameters(ctx, path_parameters):
    # Values only: a path parameter under another name is no request at all.
    return _variant(path_parameters, _TEXT, keys=False)
