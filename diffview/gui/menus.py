"""The main window's menus and shortcuts: File (with Open Recent), Train, View (the tabs, the panels,
Restore defaults) and Help (What am I looking at?, Keyboard shortcuts, About)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QMenu

from diffview.gui.help import help_html, shortcuts_html, show_html
from diffview.gui.persistence import KINDS, remember_folder

__all__ = ["make_menus", "open_recent", "show_shortcuts", "show_tab_help"]


def _action(window, menu: QMenu, text: str, slot, shortcut=None, tip: str | None = None) -> QAction:
    a = QAction(text, window)
    if shortcut:
        a.setShortcut(QKeySequence(shortcut))
    if tip:
        a.setStatusTip(tip)
        a.setToolTip(tip)
    a.triggered.connect(slot)
    menu.addAction(a)
    return a


def make_menus(window) -> None:
    bar, session = window.menuBar(), window.session
    file = bar.addMenu("&File")
    _action(window, file, "Open &Folder…", window.open_folder_dialog, "Ctrl+O", "Train on a folder of images")
    _action(window, file, "Open &Run…", window.open_run_dialog, "Ctrl+Shift+O",
            "Open a run folder written by diffview, or a diffusers model folder")
    window.recent_menu = file.addMenu("Open Re&cent")
    window.recent_menu.aboutToShow.connect(lambda: fill_recent(window))
    fill_recent(window)
    file.addSeparator()
    _action(window, file, "&Quit", window.close, QKeySequence.Quit)
    train = bar.addMenu("&Train")
    _action(window, train, "&Train", session.start_training, "Ctrl+T", "Train, or resume the open run")
    _action(window, train, "&Pause / Resume", session.toggle_pause, "Ctrl+P")
    _action(window, train, "&Stop", session.controller.stop, "Ctrl+.", "Stop after this step and save a checkpoint")
    _action(window, train, "Sa&mple", window.sample_now, "Ctrl+R", "Draw samples in the Sampling tab")
    view = bar.addMenu("&View")
    for i in range(window.tabs.count()):  # Ctrl+1 … Ctrl+9, then Ctrl+0 for the tenth
        key = f"Ctrl+{(i + 1) % 10}" if i < 10 else None
        _action(window, view, window.tabs.tabText(i), lambda _=False, i=i: window.tabs.setCurrentIndex(i), key)
    view.addSeparator()
    for dock, key in ((window.settings_dock, "Ctrl+Shift+S"), (window.log_dock, "Ctrl+Shift+L")):
        toggle = dock.toggleViewAction()
        toggle.setShortcut(QKeySequence(key))
        view.addAction(toggle)
    view.addSeparator()
    _action(window, view, "Restore &Defaults", window.restore_defaults, None,
            "Every setting and control, the window's size and panels as on a first launch")
    help_ = bar.addMenu("&Help")
    _action(window, help_, "&What Am I Looking At?", lambda: show_tab_help(window), "F1",
            "What the current tab plots, its equation, what to try and the paper it comes from")
    _action(window, help_, "&Keyboard Shortcuts", lambda: show_shortcuts(window), "Ctrl+/")
    _action(window, help_, "&About diffview", window.about)


def show_tab_help(window):
    name = window.tabs.tabText(window.tabs.currentIndex())
    window.help_dialog = show_html(window, f"What am I looking at? {name.replace('&&', '&')}", help_html(name))
    return window.help_dialog


def show_shortcuts(window):
    window.help_dialog = show_html(window, "Keyboard shortcuts", shortcuts_html(window.findChildren(QAction)))
    return window.help_dialog


def fill_recent(window) -> None:
    """The recent list as it is now: each entry with its kind, missing ones marked (choosing one removes it)."""
    menu, memory = window.recent_menu, window.memory.store
    menu.clear()
    recent = memory.recent()
    for r in recent:
        a = menu.addAction(r.label if r.exists else f"{r.label}  — missing")
        a.setToolTip(r.path)
        a.setStatusTip(r.path if r.exists else f"{r.path} is no longer there: choose it to remove it from the list")
        a.triggered.connect(lambda _=False, r=r: open_recent(window, r))
    if not recent:
        menu.addAction("No recent folders or runs").setEnabled(False)
    menu.addSeparator()
    missing = [r.path for r in recent if not r.exists]
    remove = menu.addAction("Remove Missing Entries")
    remove.setEnabled(bool(missing))
    remove.triggered.connect(lambda: (memory.remove_recent(missing), fill_recent(window)))
    clear = menu.addAction("Clear List")
    clear.setEnabled(bool(recent))
    clear.triggered.connect(lambda: (memory.remove_recent([r.path for r in recent]), fill_recent(window)))


def open_recent(window, r) -> None:
    memory = window.memory.store
    if not r.exists:
        memory.remove_recent([r.path])
        window.show_message("warning", f"{r.path} is no longer there; removed it from the recent list.")
        fill_recent(window)
        return
    remember_folder(str(Path(r.path).parent))
    if r.kind in ("run", "diffusers"):
        window.session.open_run_folder(r.path)
    else:
        window.session.load_source(r.path)
    window.show_message("info", f"Opening the recent {KINDS.get(r.kind, r.kind)} {r.path}")
