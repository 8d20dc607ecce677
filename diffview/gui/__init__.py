"""The desktop app (PySide6 + pyqtgraph). It imports diffview.core; core never imports it."""
