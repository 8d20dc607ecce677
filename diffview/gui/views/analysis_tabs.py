"""The analysis tabs (Bound, Loss from the bound, Samplers, Guidance, Memorisation, Noise & denoise, Inversion),
made and wired to the main window in one place so the window itself needs only a call here and a cancel on close."""

from __future__ import annotations

from diffview.gui.views.bound import BoundView
from diffview.gui.views.derivation import DerivationView
from diffview.gui.views.guidance import GuidanceView
from diffview.gui.views.inversion import InversionView
from diffview.gui.views.memorise import MemoriseView
from diffview.gui.views.samplers import CompareView
from diffview.gui.views.sdedit import SDEditView


def add_analysis_tabs(window) -> list:
    """Make the views, give them the session's model, dataset and schedule, and add their tabs
    right after the Sampling tab; returns the views (the window cancels their work on close)."""
    session = window.session
    window.bound_view, window.compare_view, window.guidance_view = BoundView(), CompareView(), GuidanceView()
    window.memorise_view, window.sdedit_view = MemoriseView(), SDEditView()
    window.derivation_view = DerivationView()  # "Loss from the bound", right after the Bound tab
    window.inversion_view = InversionView()  # right after Noise & denoise
    views = [window.bound_view, window.derivation_view, window.compare_view, window.guidance_view,
             window.memorise_view, window.sdedit_view, window.inversion_view]
    names = ["Bound", "Loss from the bound", "Samplers", "Guidance", "Memorisation", "Noise && denoise", "Inversion"]
    at = window.tabs.indexOf(window.sampling_view) + 1
    for i, (view, name) in enumerate(zip(views, names)):
        view.model_source = session.model_source
        view.data_source = lambda: (session.dataset, session.report)
        view.message.connect(window.show_message)
        window.tabs.insertTab(at + i, view, name)  # "&&" is a literal & in a tab
    for view in (window.compare_view, window.memorise_view, window.sdedit_view, window.inversion_view):  # classes
        view.classes_source = session.model_class_names
        for changed in (session.model_changed, session.training_started, session.training_finished):
            changed.connect(lambda _, view=view: view.refresh_guidance())
        view.refresh_guidance()
    for view in (window.sdedit_view, window.inversion_view):  # a tab shown at start fills once the data is there
        session.data_changed.connect(lambda _, view=view: view.data_loaded())
    window.bound_view.loss_source = window.training_view.loss_by_t
    session.controller.steps.connect(window.bound_view.on_training_steps)
    window.sdedit_view.schedule_source = lambda: session.schedule

    def points_data():  # an opened 2D run's data, by name, for the Samplers tab's distance to the data
        run = session.loaded_run
        return run.config.dataset if run is not None and run.config is not None else None

    window.compare_view.points_source = points_data
    session.model_changed.connect(lambda run: window.guidance_view.show_classes(run.handle.class_names if run else ()))

    def last_samples():
        trajectory = window.sampling_view.trajectory
        return trajectory[-1][2] if trajectory and trajectory[-1][1] < 0 else None

    window.memorise_view.samples_source = last_samples
    return views
