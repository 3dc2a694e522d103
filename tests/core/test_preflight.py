"""Checks before any work (alad_kit.core.preflight): writable folders, devices that exist, sequence limits."""

import pytest

from alad_kit.core.preflight import check_seq_len, check_writable, max_sequence_length


def test_check_writable_creates_the_folder_and_leaves_nothing(tmp_path):
    assert check_writable(tmp_path / "a" / "b") == tmp_path / "a" / "b"
    assert list((tmp_path / "a" / "b").iterdir()) == []


def test_check_writable_names_the_folder(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("x")
    with pytest.raises(OSError, match=r"output folder .*file/out is not writable \(Not a directory\)"):
        check_writable(tmp_path / "file" / "out")
    real_open = open

    def read_only(path, mode="r", *args, **kwargs):
        if "alad-write-test" in str(path):
            raise PermissionError(13, "Permission denied")
        return real_open(path, mode, *args, **kwargs)

    monkeypatch.setattr("builtins.open", read_only)  # root ignores chmod: simulate a read-only mount
    with pytest.raises(OSError, match=r"cache folder .* is not writable \(Permission denied\)"):
        check_writable(tmp_path / "ro", "cache folder")


def test_sequence_limits_of_bert_and_mpnet():
    from types import SimpleNamespace

    bert = SimpleNamespace(config=SimpleNamespace(max_position_embeddings=512, model_type="bert", pad_token_id=0))
    mpnet = SimpleNamespace(config=SimpleNamespace(max_position_embeddings=514, model_type="mpnet", pad_token_id=1))
    assert max_sequence_length(bert) == 512 and max_sequence_length(mpnet) == 512
    assert max_sequence_length(bert, SimpleNamespace(model_max_length=128)) == 128
    check_seq_len(512, {"m": (mpnet, None)})
    with pytest.raises(ValueError, match=r"--seq-len 513 is longer than model 'm' accepts \(512 tokens\)"):
        check_seq_len(513, {"m": (mpnet, None)})
