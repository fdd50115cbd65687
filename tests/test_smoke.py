import importlib.metadata

from packaging.version import Version

import lmfloss


def test_version_is_pep440_and_the_installed_metadata_agrees():
    # pyproject.toml reads the version from lmfloss.__version__: one owner, which runs,
    # model cards and exports record
    version = Version(lmfloss.__version__)
    assert version.release[:2] >= (0, 4)
    assert importlib.metadata.version("lmfloss") == lmfloss.__version__
