"""The main window's memory: what :class:`~diffview.gui.persistence.AppMemory` stores, taken from the window
on close and given back at start; the recent list fed by what the session opens; Restore defaults."""

from __future__ import annotations

from pathlib import Path

import torch
from PySide6.QtCore import QSignalBlocker
from PySide6.QtWidgets import QSplitter

from diffview.core.data.builtin import BUILTIN_DATASETS
from diffview.gui.persistence import CONTROLS, AppMemory, control_values, find_controls, set_control

__all__ = ["NOT_REMEMBERED", "WindowMemory", "controls_of", "device_present"]

NOT_REMEMBERED = ("Settings/dataset",)  # the data is given back as the source loaded at start


def device_present(name: str) -> bool:
    if name.startswith("cuda"):
        return torch.cuda.is_available()
    if name == "mps":
        return bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()
    return True


def controls_of(window, types: tuple = CONTROLS) -> dict:
    """The settings panel's controls and every tab's, keyed "Settings/…" and "<tab>/…" (with the default
    ``types``, the ones remembered: the dataset is not)."""
    found = find_controls(window.settings, "Settings/", types=types)
    for i in range(window.tabs.count()):
        found.update(find_controls(window.tabs.widget(i), window.tabs.tabText(i).replace("&&", "&") + "/",
                                   types=types))
    if types is CONTROLS:
        for key in NOT_REMEMBERED:
            found.pop(key, None)
    return found


class WindowMemory:
    """``window``'s controls as they were built (the defaults), and the store that remembers them."""

    def __init__(self, window, store: AppMemory | None = None):
        self.window, self.store = window, store or AppMemory()
        self.controls = controls_of(window)
        self.defaults = control_values(self.controls)
        self.default_size = window.size()
        self.default_state = window.saveState()
        self.default_tab = window.tabs.currentIndex()
        self.pending: dict[str, object] = {}  # stored values that did not fit before the data loaded
        session = window.session
        session.data_changed.connect(self._data_opened)
        session.model_changed.connect(lambda run: run is not None and self.store.add_recent(
            str(run.root), "run" if run.config is not None else "diffusers"))
        session.training_started.connect(lambda _: session.run_dir and self.store.add_recent(
            str(session.run_dir.root), "run"))

    def _data_opened(self, source: str) -> None:
        if Path(source).is_dir():
            self.store.add_recent(source, "folder")
        if self.pending:  # values that waited for the data's range (a training image's number)
            pending, self.pending = self.pending, {}
            for key, value in pending.items():
                set_control(self.controls[key], value)

    def _splitters(self) -> list:
        return self.window.findChildren(QSplitter)

    # ------------------------------------------------------------------ start and close
    def restore(self) -> tuple[str | None, list[str]]:
        """Give the window what was stored; returns the data source to load (None: the default) and the log
        lines that say what could not be given back."""
        w, m = self.window, self.store
        notes = [m.problem] if m.problem else []
        geometry, state = m.stored_bytes("geometry"), m.stored_bytes("state")
        if geometry is not None:
            w.restoreGeometry(geometry)
        if state is not None:
            w.restoreState(state)
        for i, splitter in enumerate(self._splitters()):
            data = m.stored_bytes(f"splitter{i}")
            if data is not None:
                splitter.restoreState(data)
        stored = m.stored_controls()
        device = stored.get("Settings/device")
        if isinstance(device, str) and not device_present(device):
            notes.append(f"The device last used, {device}, is not present; using auto.")
            stored.pop("Settings/device")
        self._quietly_set_settings(stored)
        w.session.update_schedule()  # the tabs' ranges (t up to T − 1) follow the restored T
        for key, control in self.controls.items():  # the tabs' with their signals: each view updates itself
            if not key.startswith("Settings/") and key in stored and not set_control(control, stored[key]):
                self.pending[key] = stored[key]
        tab = m.value("tab")
        names = [w.tabs.tabText(i) for i in range(w.tabs.count())]
        if isinstance(tab, str) and tab in names:
            w.tabs.setCurrentIndex(names.index(tab))
        source = m.value("source")
        if not isinstance(source, str):
            return None, notes
        if source in BUILTIN_DATASETS or Path(source).exists():
            return source, notes
        notes.append(f"The data last used, {source}, is no longer there; loading the built-in digits.")
        return None, notes

    def _quietly_set_settings(self, values: dict) -> None:
        """The Settings panel's controls without a signal each: the caller applies the schedule and data once."""
        blockers = [QSignalBlocker(c) for k, c in self.controls.items() if k.startswith("Settings/")]
        for key, control in self.controls.items():
            if key.startswith("Settings/") and key in values:
                set_control(control, values[key])
        del blockers
        self.window.settings.set_state(self.window.settings.state)

    def save(self) -> None:
        w, m = self.window, self.store
        m.save_bytes("geometry", w.saveGeometry())
        m.save_bytes("state", w.saveState())
        for i, splitter in enumerate(self._splitters()):
            m.save_bytes(f"splitter{i}", splitter.saveState())
        m.save_controls(control_values(self.controls))
        m.set_value("tab", w.tabs.tabText(w.tabs.currentIndex()))
        if w.session.dataset is not None:
            m.set_value("source", w.settings.dataset_source())
        m.sync()

    def restore_defaults(self) -> bool:
        """Every control, the window's size, docks and tab as on a first launch; the store forgets them too
        (the recent list stays). Not while training (False); an open run keeps showing its own settings."""
        w, session = self.window, self.window.session
        if session.training:
            return False
        self._quietly_set_settings(self.defaults)
        run = session.loaded_run
        if run is None:
            session.update_schedule()
            session.load_source(w.settings.dataset_source())
        elif run.config is not None:  # a run of ours: its own settings
            w.settings.set_config(run.config)
            session.update_schedule()
        else:  # a diffusers model: its scheduler's schedule stays
            w.settings.show_model_schedule(run.handle.schedule, run.handle.objective)
        for key, control in self.controls.items():
            if not key.startswith("Settings/"):
                set_control(control, self.defaults[key])
        w.restoreState(self.default_state)
        w.resize(self.default_size)
        w.tabs.setCurrentIndex(self.default_tab)
        self.store.clear()
        self.store.sync()
        return True
