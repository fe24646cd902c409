import pytest


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Generated corpora go to a per-session temporary cache, never the user's."""
    monkeypatch.setenv("AUDIOXAI_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
    monkeypatch.delenv("AUDIOMNIST_ROOT", raising=False)
    monkeypatch.delenv("MNIST_ROOT", raising=False)
