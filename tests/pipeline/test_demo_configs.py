"""The demo's two runs: fine-tuned student vs frozen student + ALAd W3, with the demo's own budget at cpu scale."""

from alad_kit.pipeline.demo import DEMO_EPOCHS, demo_configs


def test_demo_compares_the_fine_tuned_student_with_frozen_alad_on_wnut16(tmp_path):
    finetune, frozen = demo_configs(str(tmp_path), "cpu", None)
    assert (finetune.mode, frozen.mode, frozen.window) == ("finetune", "frozen", 3)
    assert finetune.data_dir == frozen.data_dir == "wnut16" and frozen.student_layers == (0, 1)
    assert (frozen.phase2_epochs, frozen.phase3_epochs) == (DEMO_EPOCHS["phase2_epochs"], DEMO_EPOCHS["phase3_epochs"])
    assert finetune.cache_dir == frozen.cache_dir == str(tmp_path / ".alad_cache")  # one teacher pass for both


def test_other_scales_keep_their_own_budgets(tmp_path):
    for cfg in demo_configs(str(tmp_path), "smoke", None):
        assert cfg.phase2_epochs is None and cfg.phase3_epochs is None
