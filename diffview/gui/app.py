"""Starting the desktop app: ``diffview [FOLDER | RUN_DIR]``."""

from __future__ import annotations

import os
import sys


def run_app(source: str | None = None) -> int:
    """Open the main window on ``source`` (a folder, a run folder, or the built-in digits) and run."""
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
                                                 or os.environ.get("QT_QPA_PLATFORM")):
        print("diffview: error: no display to open the app on (set DISPLAY, or run the headless commands: "
              "diffview train, sample, info)", file=sys.stderr)
        return 2
    from PySide6.QtWidgets import QApplication

    from diffview.gui.main_window import MainWindow

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("diffview")
    app.setOrganizationName("diffview")
    app.setStyle("Fusion")
    app.setDesktopFileName("diffview")  # Wayland and the launchers match the window to diffview.desktop
    window = MainWindow(source)
    window.show()
    quit_after = os.environ.get("DIFFVIEW_QUIT_AFTER_MS")  # for smoke tests: close by itself
    if quit_after:
        from PySide6.QtCore import QTimer

        def report_and_close():
            print(f"diffview: window shown ({window.width()}×{window.height()}), closing", file=sys.stderr)
            window.close()

        QTimer.singleShot(int(quit_after), report_and_close)
    return app.exec()
