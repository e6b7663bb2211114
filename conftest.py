"""Keep every test's temporary files under pytest's own temporary tree.

Doctests call ``tempfile.mkdtemp()`` to show real file round trips; pointing
:mod:`tempfile` at the test's ``tmp_path`` lets pytest clean them up (it keeps
the last few sessions only) instead of leaving folders in the system
temporary directory.
"""

import tempfile

import pytest


@pytest.fixture(autouse=True)
def _temporary_files_under_tmp_path(tmp_path, monkeypatch):
    """Point ``tempfile``'s default directory at this test's ``tmp_path``."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    yield
