"""Hypothesis strategies for hostile input, shared by the worker's and the feed readers' fuzz
tests so both are fed the same kinds of values."""

from __future__ import annotations

from hypothesis import strategies as st

__all__ = ["json_values"]

# Any JSON value: scalars (NaN and infinities included), nested lists and objects.
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda kids: (
        st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4)
    ),
    max_leaves=20,
)
