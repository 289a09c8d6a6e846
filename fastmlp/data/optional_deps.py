"""The optional dependencies of the catalog readers (pyarrow, astropy): imported when a
format needs one, with an error that says what to install.  Its own module because both
:mod:`fastmlp.data.formats` and :mod:`fastmlp.data.fits_table` (which formats uses) need it."""


def import_optional(module, fmt, path, package):
    """Import ``module`` for reading a ``fmt`` catalog at ``path``, or an ImportError that says
    which optional package (``package``) to install."""
    import importlib
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ImportError(f"reading {fmt} catalogs ({path}) needs the optional dependency "
                          f"{package}: pip install 'fastmlp[catalogs]' (or pip install "
                          f"{package})") from None
