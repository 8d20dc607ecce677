"""What the app remembers between launches, in one QSettings store: the window's geometry and docks, its
splitters and current tab, every control of the settings panel and of each tab, the folders and runs opened
lately, and the folder the file dialogs start in.

A control is found by its path of public attributes from its tab (``Sampling/choice.steps``), so a view
needs no registration: a new spin box is remembered as soon as it is an attribute. A value that no longer
fits (an item a combo box does not have, a number out of range, a device not present) is left at its
default, and a store that cannot be read starts the app from the defaults with a line in the log.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QByteArray, QSettings
from PySide6.QtWidgets import QAbstractSlider, QCheckBox, QComboBox, QDoubleSpinBox, QLineEdit, QSpinBox, QWidget

__all__ = ["MAX_RECENT", "SETTINGS_ENV", "AppMemory", "Recent", "control_values", "dialog_start", "find_controls",
           "remember_folder", "set_control"]

SETTINGS_ENV = "DIFFVIEW_SETTINGS"  # an INI file to use instead of the user's (tests, a portable copy)
MAX_RECENT = 10
VERSION = 1  # of the store's layout: another version's store is set aside, not misread
CONTROLS = (QComboBox, QSpinBox, QDoubleSpinBox, QCheckBox, QAbstractSlider, QLineEdit)
KINDS = {"folder": "image folder", "run": "diffview run", "diffusers": "diffusers model"}


@dataclass(frozen=True)
class Recent:
    path: str
    kind: str  # a key of KINDS

    @property
    def exists(self) -> bool:
        return Path(self.path).exists()

    @property
    def label(self) -> str:
        return f"{Path(self.path).name or self.path}  ({KINDS.get(self.kind, self.kind)})"


def find_controls(root: QWidget, prefix: str, depth: int = 3, types: tuple = CONTROLS) -> dict[str, QWidget]:
    """Every input control (a widget of ``types``) reachable from ``root`` through public attributes (at most
    ``depth`` deep), keyed ``prefix`` + their dotted path; one reachable two ways is found by its shorter path."""
    found: dict[str, QWidget] = {}
    seen: set[int] = {id(root)}
    level = [(root, prefix)]
    for _ in range(depth):
        below = []
        for obj, path in level:
            attributes = sorted(vars(obj).items())  # direct attributes first, then dicts of widgets (one per sampler)
            items = [(n, v) for n, v in attributes if not isinstance(v, dict)]
            items += [(f"{n}.{k}", v) for n, d in attributes if isinstance(d, dict) and not n.startswith("_")
                      for k, v in d.items()]
            for name, value in items:
                if name.startswith("_") or not isinstance(value, QWidget) or id(value) in seen:
                    continue
                if isinstance(value, QLineEdit) and value.isReadOnly():  # a readout, not a control
                    continue
                seen.add(id(value))
                if isinstance(value, types):
                    found[path + name] = value
                else:
                    below.append((value, path + name + "."))
        level = below
    return found


def control_value(w: QWidget):
    if isinstance(w, QComboBox):
        return w.currentText()
    if isinstance(w, QCheckBox):
        return w.isChecked()
    if isinstance(w, QLineEdit):
        return w.text()
    return w.value()


def control_values(controls: dict[str, QWidget]) -> dict[str, object]:
    return {key: control_value(w) for key, w in controls.items()}


def set_control(w: QWidget, value) -> bool:
    """Show ``value`` in ``w`` if it fits (an item it has, a number in its range); whether it did."""
    if isinstance(w, QComboBox):
        if not isinstance(value, str) or w.findText(value) < 0:
            return False
        w.setCurrentIndex(w.findText(value))
    elif isinstance(w, QCheckBox):
        if not isinstance(value, bool):
            return False
        w.setChecked(value)
    elif isinstance(w, QLineEdit):
        if not isinstance(value, str) or w.isReadOnly():
            return False
        w.setText(value)
    else:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not w.minimum() <= value <= w.maximum():
            return False
        w.setValue(int(value) if isinstance(w, (QSpinBox, QAbstractSlider)) else float(value))
    return True


class AppMemory:
    """The app's QSettings store. ``problem`` says why a store could not be read (it is then ignored)."""

    def __init__(self, path: str | None = None):
        path = path or os.environ.get(SETTINGS_ENV)
        self.qs = (QSettings(path, QSettings.IniFormat) if path else
                   QSettings(QSettings.IniFormat, QSettings.UserScope, "diffview", "diffview"))
        self.problem: str | None = None
        if self.qs.status() != QSettings.NoError:
            self.problem = f"The settings file {self.qs.fileName()} could not be read; starting from the defaults."
            self.qs.clear()
        elif self.qs.allKeys() and self._get("version") != VERSION:
            self.problem = (f"The settings file {self.qs.fileName()} is of another version of diffview; starting "
                            "from the defaults.")
            self.qs.clear()

    def _get(self, key: str, default=None):
        """A JSON value stored under ``key``, or ``default`` where it is missing or unreadable."""
        raw = self.qs.value(key)
        if raw is None:
            return default
        try:
            return json.loads(raw) if isinstance(raw, str) else default
        except ValueError:
            return default

    def _set(self, key: str, value) -> None:
        self.qs.setValue(key, json.dumps(value))
        self.qs.setValue("version", json.dumps(VERSION))

    def sync(self) -> None:
        self.qs.sync()

    def clear(self) -> None:
        """Forget everything but the recent list (Restore defaults)."""
        recent = self.recent()
        self.qs.clear()
        self._set("recent", [[r.path, r.kind] for r in recent])

    # ------------------------------------------------------------------ controls
    def save_controls(self, values: dict[str, object]) -> None:
        self._set("controls", values)

    def stored_controls(self) -> dict[str, object]:
        stored = self._get("controls", {})
        return stored if isinstance(stored, dict) else {}

    def value(self, key: str, default=None):
        return self._get(f"values/{key}", default)

    def set_value(self, key: str, value) -> None:
        self._set(f"values/{key}", value)

    # ------------------------------------------------------------------ window geometry and splitters
    def save_bytes(self, key: str, data: QByteArray) -> None:
        self._set(f"bytes/{key}", bytes(data.toBase64()).decode("ascii"))

    def stored_bytes(self, key: str) -> QByteArray | None:
        text = self._get(f"bytes/{key}")
        if not isinstance(text, str) or not text.isascii():
            return None
        return QByteArray.fromBase64(text.encode("ascii"))

    # ------------------------------------------------------------------ recent folders, runs and models
    def recent(self) -> list[Recent]:
        rows = self._get("recent", [])
        if not isinstance(rows, list):
            return []
        return [Recent(r[0], r[1]) for r in rows
                if isinstance(r, list) and len(r) == 2 and all(isinstance(x, str) for x in r)][:MAX_RECENT]

    def add_recent(self, path: str, kind: str) -> None:
        path = str(Path(path).expanduser().resolve())
        rows = [r for r in self.recent() if r.path != path]
        self._set("recent", [[path, kind]] + [[r.path, r.kind] for r in rows][: MAX_RECENT - 1])
        self.sync()

    def remove_recent(self, paths) -> None:
        gone = set(paths)
        self._set("recent", [[r.path, r.kind] for r in self.recent() if r.path not in gone])
        self.sync()

    def last_run(self) -> Recent | None:
        """The run or diffusers model opened last, if it is still there."""
        return next((r for r in self.recent() if r.kind in ("run", "diffusers") and r.exists), None)

    def last_dir(self, fallback: str = "") -> str:
        d = self.value("last_dir")
        return d if isinstance(d, str) and Path(d).is_dir() else fallback

    def set_last_dir(self, path: str) -> None:
        p = Path(path)
        self.set_value("last_dir", str(p if p.is_dir() else p.parent))


def dialog_start(name: str = "", fallback: str | None = None) -> str:
    """Where a file dialog starts: the folder the last one ended in (else ``fallback``, else home), with the
    suggested file ``name`` in it."""
    folder = AppMemory().last_dir(fallback or str(Path.home()))
    return str(Path(folder) / name) if name else folder


def remember_folder(path: str) -> None:
    """A file dialog ended at ``path`` (a file or a folder): the next one starts in its folder."""
    if path:
        memory = AppMemory()
        memory.set_last_dir(path)
        memory.sync()
