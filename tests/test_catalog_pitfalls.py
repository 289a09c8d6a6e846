"""Catalogs that read without error but would not train what their user means; here a
colour beyond the catalog dtype's range, whose missing value must be counted under the
colour's name, in memory (load_catalog) and streamed (CatalogStream.scan) alike."""

import numpy as np
import pytest

from fastmlp.data import CatalogStream, load_catalog


def write_csv(path, header, rows):
    path.write_text(",".join(header) + "\n" + "\n".join(",".join(map(str, r)) for r in rows)
                    + "\n")
    return path


# ---------------------------------------------------------------------------------------
# a colour beyond the dtype's range
def test_a_colour_beyond_float32_is_counted_under_its_name(tmp_path):
    """u = 3e38 and g = -3e38 are float32 values, u - g = 6e38 is not: the in-memory reader
    said 'in columns {}', the stream names the colour; now both do."""
    p = write_csv(tmp_path / "cat.csv", ["u", "g", "r", "class"],
                  [(1, 2, 3, "A"), (3e38, -3e38, 3, "B"), (2, 3, 4, "A"), (4, 5, 6, "B")])
    with pytest.raises(ValueError, match=r"1 of 4 rows has missing .* in columns "
                                         r"\{'u-g': 1\}"):
        load_catalog(p, features="u-g,g-r")
    with pytest.raises(ValueError, match=r"in columns \{'u-g': 1\}"):
        CatalogStream(p, features="u-g,g-r", missing="error").scan()
    cat = load_catalog(p, features="u-g,g-r", missing="drop")
    assert len(cat) == 3 and cat.meta["dropped_by_column"] == {"u-g": 1}
    assert np.isfinite(cat.X).all()
    with pytest.raises(ValueError, match=r"all 4 rows have .* in columns \{'u-g': 4\}"):
        big = write_csv(tmp_path / "big.csv", ["u", "g", "class"],
                        [(3e38, -3e38, "A")] * 4)
        load_catalog(big, features="u-g", missing="drop")
