"""Digests of cached files (alad_kit.core.integrity): recorded at write time, always checked, never switched off."""

import json

import pytest

from alad_kit.core.integrity import digest_problem, file_digests, read_json_record, verified_record


def _folder(tmp_path):
    folder = tmp_path / "phase1-abc"
    folder.mkdir()
    (folder / "a.bin").write_bytes(b"\x00\x01\x02")
    (folder / "b.json").write_text("{}")
    record = {"history": [1], "digests": file_digests(folder, ["a.bin", "b.json"])}
    (folder / "result.json").write_text(json.dumps(record))
    return folder, record


def test_an_intact_folder_gives_its_record(tmp_path):
    folder, record = _folder(tmp_path)
    assert verified_record(folder, "result.json", ["a.bin", "b.json"], "cached adapter") == record
    assert verified_record(tmp_path / "missing", "result.json", ["a.bin"], "cached adapter") is None


@pytest.mark.parametrize("damage, problem", [
    (lambda f: (f / "a.bin").write_bytes(b"\x00\x01\x03"), "a.bin does not match its recorded sha256"),
    (lambda f: (f / "b.json").unlink(), "b.json is missing"),
    (lambda f: (f / "result.json").write_text("{half"), "result.json is missing or not valid JSON"),
    (lambda f: (f / "result.json").write_text('{"history": [1], "verify": false}'), "no recorded digests"),
])
def test_a_damaged_folder_is_reported_and_removed(tmp_path, damage, problem):
    folder, _ = _folder(tmp_path)
    damage(folder)
    with pytest.warns(UserWarning, match=rf"cached adapter .*phase1-abc: {problem}; it is not used but rebuilt"):
        assert verified_record(folder, "result.json", ["a.bin", "b.json"], "cached adapter") is None
    assert not folder.exists()


def test_verify_false_cannot_switch_the_check_off(tmp_path):
    folder, record = _folder(tmp_path)
    (folder / "result.json").write_text(json.dumps(record | {"verify": False}))
    (folder / "a.bin").write_bytes(b"evil")
    assert digest_problem(folder, record["digests"], ["a.bin"]) == "a.bin does not match its recorded sha256"
    with pytest.warns(UserWarning):
        assert verified_record(folder, "result.json", ["a.bin"], "x", remove=False) is None
    assert folder.exists()  # remove=False (a data-parallel rank that is not the writer) only reports


def test_read_json_record_refuses_non_objects(tmp_path):
    (tmp_path / "a.json").write_text("[1, 2]")
    assert read_json_record(tmp_path / "a.json") is None
    assert read_json_record(tmp_path / "none.json") is None
