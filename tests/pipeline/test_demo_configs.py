"""The demo's runs (frozen head only, frozen + ALAd W3, the random-adapter control, fine-tuned student) and its
closing summary."""

import pytest

from alad_kit.pipeline.demo import demo_configs, format_demo


def test_demo_compares_head_only_alad_the_control_and_the_fine_tuned_student_on_wnut16(tmp_path):
    head, frozen, random, finetune = demo_configs(str(tmp_path), "tiny", None)
    assert (head.mode, frozen.mode, frozen.window, finetune.mode) == ("head", "frozen", 3, "finetune")
    assert (random.mode, random.window, random.random_adapter, frozen.random_adapter) == ("frozen", 3, True, False)
    assert {c.data_dir for c in (head, frozen, finetune)} == {"wnut16"} and frozen.student_layers == (0, 1)
    assert {c.scale for c in (head, frozen, finetune)} == {"tiny"}
    assert {c.phase2_epochs for c in (head, frozen, finetune)} == {None}  # the scale's budgets, nothing of its own
    assert {c.cache_dir for c in (head, frozen, finetune)} == {str(tmp_path / ".alad_cache")}  # one teacher pass


def _metrics(mode, window, f1, alignment=None, random_adapter=False):
    return {"mode": mode, "window": window, "config": {"random_adapter": random_adapter}, "scores": {"f1_overall": f1, "f1_macro": f1 / 2}, "size_pct": 10.0,
            "timings": {"total": 60.0}, "data": {"train": 1000, "validation": 200, "test": 240},
            "alignment": alignment or {}}


def test_the_summary_reads_the_rows_from_their_numbers(tmp_path):
    align = {"before_phase1": {"mse": 0.9}, "after_phase2": {"mse": 0.2}, "after_phase3": {"mse": 0.4}}
    text = format_demo([_metrics("head", None, 0.10), _metrics("frozen", 3, 0.25, align),
                        _metrics("frozen", 3, 0.21, random_adapter=True), _metrics("finetune", None, 0.30)],
                       str(tmp_path), seconds=150)
    assert "frozen M_C + ALAd W3" in text and "on 240 test tweets, one seed" in text
    assert "scores 10.0 with a task head alone and 25.0 with the adapter (+15.0 points)" in text
    assert "frozen M_C + random W3" in text and "aligned - random = +4.0 points: the alignment accounts" in text
    worse = format_demo([_metrics("head", None, 0.10), _metrics("frozen", 3, 0.25, align),
                         _metrics("frozen", 3, 0.27, random_adapter=True)], str(tmp_path))
    assert "aligned - random = -2.0 points: here the alignment adds nothing" in worse
    assert "Fine-tuned M_C: 30.0 (+5.0 against ALAd)" in text
    assert "before phase1 0.900 -> after phase2 0.200 -> after phase3 0.400" in text and "a rise after phase 3" in text
    assert "the demo took 2.5 min" in text


@pytest.mark.parametrize("scale", ["smoke", "cpu"])
def test_other_scales_run_the_same_four_rows(tmp_path, scale):
    assert [c.mode for c in demo_configs(str(tmp_path), scale, None)] == ["head", "frozen", "frozen", "finetune"]


def test_run_demo_says_what_it_runs_and_keeps_the_announced_corpus_warning_out(tmp_path, monkeypatch, caplog, capsys):
    import logging
    import warnings

    import alad_kit.pipeline.demo as demo

    def fake_run(cfg):
        warnings.warn("no phase-1 corpus (ALAD_DATA_DIR is not set); using the fallback English text", stacklevel=2)
        return _metrics(cfg.mode, cfg.window if cfg.mode == "frozen" else None, 0.2)

    monkeypatch.setattr(demo, "run", fake_run)
    monkeypatch.setattr(demo, "describe_data", lambda scale, corpus: [f"data: WNUT-16 at scale {scale}"])
    with caplog.at_level(logging.INFO, logger="alad_kit"), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        demo.run_demo(out=str(tmp_path), scale="tiny", data_dir=None)
    messages = [r.getMessage() for r in caplog.records]
    assert messages[0] == "demo: data: WNUT-16 at scale tiny"
    assert [m for m in messages if m.startswith("demo: run ")][-1].startswith("demo: run 4 of 4: M_C fine-tuned")
    assert not [w for w in caught if "phase-1 corpus" in str(w.message)]
    assert "frozen M_C + ALAd W3" in capsys.readouterr().out
