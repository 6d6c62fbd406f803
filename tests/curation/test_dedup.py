"""Structural dedup: equal up to names, docstrings, comments and layout; different otherwise."""

from __future__ import annotations

import pytest

from compound.curation.dedup import structural_key

SOFTMAX = '''
import numpy as np

def softmax(logits, axis=-1):
    """Numerically stable softmax."""
    shifted = logits - np.max(logits, axis=axis, keepdims=True)  # stability
    exps = np.exp(shifted)
    return exps / np.sum(exps, axis=axis, keepdims=True)
'''

SOFTMAX_RENAMED = """
import numpy as np
def my_softmax(x, axis=-1):
    z = x - np.max(x, axis=axis, keepdims=True)


    e = np.exp(z)
    return e / np.sum(e, axis=axis, keepdims=True)
"""


@pytest.mark.parametrize(
    "a, b",
    [
        (SOFTMAX, SOFTMAX_RENAMED),
        ("import numpy as np\nnp.sum(v)", "import numpy as xp\nxp.sum(v)"),
        ("try:\n    f()\nexcept E as err:\n    raise err", "try:\n    f()\nexcept E as e2:\n    raise e2"),
        ("class A:\n    '''doc'''\n    def m(self):\n        return self.v", "class B:\n    def m(me):\n        return me.v"),
        ("total = [i * i for i in range(3)]", "out = [k * k for k in range(3)]"),
    ],
)
def test_structurally_equal_code_shares_a_key(a, b) -> None:
    assert structural_key(a) == structural_key(b)


@pytest.mark.parametrize(
    "a, b",
    [
        (SOFTMAX, SOFTMAX.replace("np.max", "np.min")),  # a different function called
        ("import numpy\nnumpy.sum(v)", "import torch\ntorch.sum(v)"),  # unbound module names are kept
        ("y = len(x)", "y = sum(x)"),  # builtins are kept
        ("def f(a, b): return a - b", "def f(a, b): return b - a"),  # order of use matters
        ("obj.alpha = 1", "obj.beta = 1"),  # attribute names are kept
        ("f(x, axis=1)", "f(x, dim=1)"),  # keyword names are kept
        ("x = 1", "x = 2"),
    ],
)
def test_different_code_gets_different_keys(a, b) -> None:
    assert structural_key(a) != structural_key(b)


def test_unparsable_code_is_keyed_by_its_raw_text() -> None:
    assert structural_key("def broken(:") == structural_key("def broken(:")
    assert structural_key("def broken(:").startswith("raw:")
    assert structural_key("def broken(:") != structural_key("def broken( :")
