"""The sampler pickers every sampling tab shares."""

import pytest

pytest.importorskip("pytestqt")

from PySide6.QtWidgets import QFormLayout, QWidget  # noqa: E402

from diffview.core.sampling import SAMPLERS, SPACINGS, default_steps, nfe  # noqa: E402
from diffview.core.schedule import make_schedule  # noqa: E402
from diffview.gui.widgets.sampler_choice import SamplerCombo, SamplerControls, SpacingCombo  # noqa: E402


def test_every_sampler_and_spacing_is_offered_with_a_tooltip(qtbot):
    combo, spacing = SamplerCombo(), SpacingCombo()
    qtbot.addWidget(combo)
    qtbot.addWidget(spacing)
    keys = [combo.itemData(i) for i in range(combo.count())]
    assert sorted(keys) == sorted(SAMPLERS) and keys[0] == "ddim"  # DDIM is every tab's default
    assert [spacing.itemText(i) for i in range(spacing.count())] == list(SPACINGS)
    assert all(combo.itemData(i, 3) for i in range(combo.count()))
    assert all(spacing.itemData(i, 3) for i in range(spacing.count()))


def test_controls_enable_what_the_sampler_uses_and_report_its_nfe(qtbot):
    controls = SamplerControls()
    holder = QWidget()
    form = QFormLayout(holder)
    controls.add_rows(form)
    qtbot.addWidget(holder)
    schedule = make_schedule("cosine", 200)
    controls.set_timesteps(200)
    for key in SAMPLERS:
        controls.sampler.set_key(key)
        assert controls.sampler.key() == key
        assert controls.eta.isEnabled() == (key == "ddim") and controls.churn.isEnabled() == (key == "heun")
        assert controls.steps.value() == default_steps(key, 200)
        for spacing in SPACINGS:
            controls.spacing.setCurrentText(spacing)
            s = controls.settings(schedule)
            assert s["sampler"] == key and s["spacing"] == spacing
            assert s["nfe"] == nfe(key, s["steps"], schedule, spacing)
