"""MLP's positive class given by name among its class_names (fastmlp train's --positive takes
names too), kept as the class index every path reads."""
import pytest

import fastmlp


def test_positive_by_name_is_kept_as_its_index():
    m = fastmlp.MLP([4, 8, 1], class_names=["QSO", "STAR"], positive="QSO")
    assert m.positive == 0
    m.set_contract(positive="STAR")
    assert m.positive == 1
    m3 = fastmlp.MLP([4, 8, 3], class_names=["GALAXY", "QSO", "STAR"]).set_contract(
        positive="QSO", threshold=0.7)
    assert (m3.positive, m3.threshold) == (1, 0.7)


def test_positive_name_not_among_the_classes_is_refused_and_changes_nothing():
    m = fastmlp.MLP([4, 8, 1], class_names=["QSO", "STAR"], positive=0)
    with pytest.raises(ValueError, match=r"positive='quasar' names a class, but the model's "
                                         r"class_names are \('QSO', 'STAR'\)"):
        m.set_contract(positive="quasar")
    assert m.positive == 0
    assert m.set_contract(positive="star").positive == 1      # case ignored when unambiguous
    two = fastmlp.MLP([4, 8, 1], class_names=["qso", "QSO"], positive="QSO")
    assert two.positive == 1
    with pytest.raises(ValueError, match="positive='Qso' names a class"):
        two.set_contract(positive="Qso")                      # two names fold to it
    with pytest.raises(ValueError, match=r"class_names are None: pass one of them or a class "
                                         r"index in 0\.\.1"):
        fastmlp.MLP([4, 8, 1], positive="QSO")
