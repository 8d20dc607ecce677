"""What the desktop app needs to load, and how to install what is missing; imports no Qt itself."""

from __future__ import annotations

# the Debian/Ubuntu package of each system library Qt's widgets load (apt-get install PACKAGE)
SYSTEM_LIBRARIES = {
    "libEGL.so.1": "libegl1", "libGL.so.1": "libgl1", "libOpenGL.so.0": "libopengl0", "libGLX.so.0": "libglx0",
    "libxkbcommon.so.0": "libxkbcommon0", "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
    "libfontconfig.so.1": "libfontconfig1", "libfreetype.so.6": "libfreetype6", "libdbus-1.so.3": "libdbus-1-3",
    "libglib-2.0.so.0": "libglib2.0-0", "libX11.so.6": "libx11-6", "libX11-xcb.so.1": "libx11-xcb1",
    "libxcb.so.1": "libxcb1", "libxcb-cursor.so.0": "libxcb-cursor0", "libICE.so.6": "libice6",
    "libSM.so.6": "libsm6",
}


def gui_import_problem(e: ImportError) -> str:
    """What failed to load for the app, and how to install it, in one line."""
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    name = (e.name or "").split(".")[0]
    if isinstance(e, ModuleNotFoundError) and name in ("PySide6", "shiboken6", "pyqtgraph"):
        package = {"PySide6": "PySide6-Essentials", "shiboken6": "PySide6-Essentials"}.get(name, name)
        return f"the Python package {name} is not installed (pip install {package})"
    library = next((w.rstrip(":") for w in text.split() if ".so" in w), None)
    if library is not None and "cannot open shared object" in text:
        package = SYSTEM_LIBRARIES.get(library)
        how = (f"on Debian/Ubuntu: apt-get install {package}" if package else
               f"install the system package that provides it (on Debian/Ubuntu: apt-file search {library})")
        return f"Qt needs the system library {library}, which is missing ({how})"
    return f"{text} (reinstall PySide6-Essentials and pyqtgraph: pip install --force-reinstall PySide6-Essentials " \
           "pyqtgraph)"


__all__ = ["SYSTEM_LIBRARIES", "gui_import_problem"]
