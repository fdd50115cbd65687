import lmfloss


def test_version():
    assert lmfloss.__version__.count(".") == 2
