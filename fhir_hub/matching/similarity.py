"""Cheap string and set similarity for ``compare`` (no regex, no allocation beyond slices)."""

from __future__ import annotations

# Below this length a one-letter change makes another name ("An"/"Anh", "Nam"/"Lam"), not a typo.
_MIN_TYPO_LENGTH = 4


def one_edit(a: str, b: str, *, short: bool = False) -> bool:
    """Whether ``a`` and ``b`` differ by one inserted, deleted or replaced letter, or two swapped neighbours
    (Damerau distance 1). A lone replacement or insertion counts in names under 4 letters only with
    ``short`` (the caller knows one of them is no real name, so "Hy" is "Huy" mistyped, while "An"/"Anh"
    are two names)."""
    la, lb = len(a), len(b)
    if a == b or not a or not b or abs(la - lb) > 1:
        return False
    if la == lb:
        first = next(i for i in range(la) if a[i] != b[i])
        if a[first + 1:] == b[first + 1:]:
            return short or la >= _MIN_TYPO_LENGTH
        return (first + 1 < la and a[first] == b[first + 1] and a[first + 1] == b[first]
                and a[first + 2:] == b[first + 2:])
    if not short and min(la, lb) < _MIN_TYPO_LENGTH:
        return False
    if la > lb:
        a, b, la = b, a, lb
    first = next((i for i in range(la) if a[i] != b[i]), la)
    return a[first:] == b[first + 1:]


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    """Share of common words; 0 when either is empty."""
    if not a or not b:
        return 0.0
    common = len(a & b)
    return common / (len(a) + len(b) - common)
