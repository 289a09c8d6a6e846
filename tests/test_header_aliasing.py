"""csrc/fastmlp.h tells a C program which arrays may overlap.

The C kernels cannot check overlap, and an overlapping output gives a wrong answer (a
cross-entropy gradient written over its logits returned the loss of the gradient).  The
header states the rule, and every in-place use the Python backends accept (their shared
contract, fastmlp/backends/_contract.py) is marked "may alias" on the C declaration, so
a C program and a Python caller are allowed the same calls.
"""

import os
import re

import numpy as np
import pytest

from fastmlp.backends import _contract

HEADER = os.path.join(os.path.dirname(__file__), os.pardir, "csrc", "fastmlp.h")


def _header():
    with open(HEADER) as f:
        return f.read()


def _comment_before(text, function):
    """The comment block right above the first declaration of ``function``."""
    at = text.index(function + "(")
    start = text.rindex("/*", 0, at)
    return " ".join(text[start:text.index("*/", start)].split())


def test_the_conventions_forbid_overlap_unless_noted():
    block = _header().split("#ifndef FASTMLP_H")[0]
    conventions = " ".join(re.sub(r"\n\s*\*", " ", block).split())
    assert re.search(r"must not overlap any other array of the call, except where its "
                     r"comment says \"may alias\"", conventions), \
        "the header's conventions do not state the overlap rule"


# (C function, Python check, its arguments with the output exactly one input)
IN_PLACE = [
    ("fastmlp_activation_forward_f32", "out", "z",
     lambda a: _contract.activation(a, a, 1)),
    ("fastmlp_activation_backward_f32", "dz", "da",
     lambda a: _contract.activation_backward(a, a, np.zeros_like(a), 1)),
    ("fastmlp_activation_backward_f32", "dz", "z",
     lambda a: _contract.activation_backward(a, np.zeros_like(a), a, 1)),
    ("fastmlp_dense_forward_f32", "out", "z",
     lambda a: _contract.dense_forward(a, a, np.zeros((4, 3)), np.zeros((3, 4)),
                                       np.zeros(4), 1)),
]


@pytest.mark.parametrize("function, out, inp, check", IN_PLACE,
                         ids=[f"{f}:{o}={i}" for f, o, i, _ in IN_PLACE])
def test_in_place_calls_python_accepts_are_marked_may_alias_in_c(function, out, inp, check):
    check(np.zeros((4, 4)))    # Python's contract accepts the call in place
    comment = _comment_before(_header(), function)
    assert "may alias" in comment and re.search(rf"\b{out}\b", comment) and \
        re.search(rf"\b{inp}\b", comment), f"{function}: {comment!r}"
    if function == "fastmlp_activation_backward_f32":
        assert re.search(rf"{out} may alias [^)]*\b{inp}\b", comment), comment
