import pytest

from audioxai.data.cache import cache_root, cached_corpus


def test_builds_once_per_config_and_atomically(tmp_path, monkeypatch):
    monkeypatch.setenv("AUDIOXAI_CACHE", str(tmp_path))
    assert cache_root() == tmp_path
    calls = []

    def build(folder):
        calls.append(folder)
        (folder / "x.txt").write_text("done")

    first = cached_corpus("demo", {"n": 1}, build)
    assert cached_corpus("demo", {"n": 1}, build) == first and len(calls) == 1
    assert (first / "x.txt").read_text() == "done"
    other = cached_corpus("demo", {"n": 2}, build)
    assert other != first and len(calls) == 2


def test_an_interrupted_build_leaves_nothing_and_is_retried(tmp_path):
    def broken(folder):
        (folder / "half.txt").write_text("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cached_corpus("demo", {"n": 1}, broken, root=tmp_path)
    assert list((tmp_path / "demo").iterdir()) == []
    folder = cached_corpus("demo", {"n": 1}, lambda f: (f / "ok").write_text("1"), root=tmp_path)
    assert (folder / "ok").is_file()
