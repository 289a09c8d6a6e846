"""One rule finds a class by name for train's --positive (catalog.positive_class_index) and
predict's --class-names and text labels (predict.class_index_by_name): exact, else ignoring
case (casefold) when one class matches.  They differed: --positive compared lower(), which
leaves 'ß' and 'SS' apart, --class-names casefold(), which matches them."""

import pytest

from fastmlp.cli.predict import class_index_by_name
from fastmlp.data.catalog import positive_class_index, split_class_names

CLASSES = ["STRASSE", "star", "Star2", "qso"]


@pytest.mark.parametrize("name, index", [("straße", 0), ("STAR", 1), ("star2", 2),
                                         ("QSO", 3), ("strasse", 0)])
def test_positive_and_class_names_find_the_same_class(name, index):
    assert positive_class_index(name, CLASSES, "label") == index
    assert class_index_by_name(name, CLASSES) == index


def test_ambiguous_in_case_is_no_class_for_either():
    classes = ["qso", "QSO", "star"]
    assert class_index_by_name("Qso", classes) is None
    with pytest.raises(ValueError, match="not one of the classes"):
        positive_class_index("Qso", classes, "label")


def test_class_name_lists_split_alike():
    assert split_class_names(" QSO , STAR") == ["QSO", "STAR"]


def test_numeric_labels_read_as_classes_by_one_rule():
    """The stream's labels and predict's --class-names coding read a number as a class the
    same way (stream.class_values): a whole number in 0..C-1, else left out."""
    import numpy as np
    from fastmlp.data.stream import class_values
    labels, ok = class_values(np.array([0.0, 1.0, 1.5, -9999.0, np.nan, 2.0, np.inf]), 2)
    np.testing.assert_array_equal(labels, [0, 1, -1, -1, -1, -1, -1])
    np.testing.assert_array_equal(ok, [True, True, False, False, False, False, False])
