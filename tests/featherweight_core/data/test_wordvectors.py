"""Word-vector files are parsed as data, never unpickled: a pickle (gensim ``.kv``, ``torch.save``) is refused on its
first bytes and none of its code runs; what ``featherweight wordvectors`` writes is what ``augment --vectors`` reads."""

from __future__ import annotations

import builtins
import pickle
import zipfile

import pytest

from featherweight_core.data.wordvectors import VectorsError, load_word_vectors, save_word_vectors, train_word_vectors
from featherweight_core.errors import ConfigError
from sweep.cli import main


class _Payload:
    """Unpickling this creates the file ``marker`` (as ``open(marker, "w")``): proof that a loader unpickled it."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (builtins.open, (self.marker, "w"))


@pytest.fixture(scope="module")
def kv():
    return train_word_vectors([["good", "bad", "film", "plot", "great", "dull"]] * 20, dim=8, epochs=2, seed=0)


def test_a_pickled_kv_file_is_refused_and_never_run(tmp_path):
    marker = tmp_path / "PWNED"
    evil = tmp_path / "vectors.kv"
    evil.write_bytes(pickle.dumps({"vectors": _Payload(str(marker))}, protocol=4))
    with pytest.raises(VectorsError, match=r"vectors\.kv: a Python pickle .* never loaded .* word2vec binary"):
        load_word_vectors(evil)
    assert not marker.exists()
    # the same bytes under a name the loader reads as word2vec, or gzipped: still refused, still not run
    for name in ("vectors.bin", "vectors.txt", "vectors"):
        (tmp_path / name).write_bytes(evil.read_bytes())
        with pytest.raises(VectorsError, match="a Python pickle"):
            load_word_vectors(tmp_path / name)
    assert not marker.exists()


def test_a_real_gensim_save_and_a_torch_zip_are_refused(tmp_path, kv):
    import torch

    kv.save(str(tmp_path / "real.kv"))  # gensim's own pickle format
    with pytest.raises(VectorsError, match=r"real\.kv: a Python pickle"):
        load_word_vectors(tmp_path / "real.kv")
    marker = tmp_path / "PWNED"
    torch.save({"x": _Payload(str(marker))}, tmp_path / "v.bin")
    assert zipfile.is_zipfile(tmp_path / "v.bin")
    with pytest.raises(VectorsError, match=r"v\.bin: a zip archive holding a Python pickle \(.*data\.pkl"):
        load_word_vectors(tmp_path / "v.bin")
    assert not marker.exists()


@pytest.mark.parametrize("name", ["v.bin", "v.txt", "v.vec", "v.bin.gz", "v.txt.gz"])
def test_saved_formats_load_back(tmp_path, kv, name):
    path = save_word_vectors(kv, tmp_path / name)
    back = load_word_vectors(path)
    assert back.index_to_key == kv.index_to_key and back.vector_size == 8
    assert [p.name for p in tmp_path.iterdir()] == [name]


def test_word2vec_content_under_another_name_is_sniffed(tmp_path, kv):
    kv.save_word2vec_format(str(tmp_path / "w2v.kv"), binary=True)  # word2vec binary, not a pickle, despite .kv
    kv.save_word2vec_format(str(tmp_path / "w2v"), binary=False)
    assert load_word_vectors(tmp_path / "w2v.kv").index_to_key == kv.index_to_key
    assert load_word_vectors(tmp_path / "w2v").index_to_key == kv.index_to_key


def test_save_refuses_a_name_the_loader_would_not_read(tmp_path, kv):
    with pytest.raises(ConfigError, match=r"x\.kv: .* word2vec binary \(\.bin\) or text"):
        save_word_vectors(kv, tmp_path / "x.kv")
    assert list(tmp_path.iterdir()) == []


def test_cli_wordvectors_output_is_accepted_by_augment(tmp_path, capsys):
    for name in ("v.bin", "v.txt.gz"):
        rc = main(
            ["wordvectors", "--task", "synthetic", "--output", str(tmp_path / name), "--dim", "8", "--epochs", "1"]
        )
        assert rc == 0
        out = tmp_path / f"aug-{name}.parquet"
        rc = main(
            [
                "augment",
                "--task",
                "synthetic",
                "--output",
                str(out),
                "--vectors",
                str(tmp_path / name),
                "-n",
                "2",
                "--max-examples",
                "50",
                "--no-progress",
            ]
        )
        assert rc == 0 and out.is_file()
    capsys.readouterr()
    rc = main(["wordvectors", "--task", "synthetic", "--output", str(tmp_path / "v.kv")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith("error: ") and "v.kv" in err and "\n" not in err
    assert not (tmp_path / "v.kv").exists()


def test_cli_augment_with_a_malicious_kv_is_one_error_line(tmp_path, capsys):
    marker = tmp_path / "PWNED"
    evil = tmp_path / "evil.kv"
    evil.write_bytes(pickle.dumps(_Payload(str(marker))))
    rc = main(
        ["augment", "--task", "synthetic", "--output", str(tmp_path / "a.parquet"), "--vectors", str(evil)]
        + ["--no-progress"]
    )
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith("error: ") and "\n" not in err
    assert "evil.kv: a Python pickle" in err and "word2vec" in err
    assert not marker.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["evil.kv"]
