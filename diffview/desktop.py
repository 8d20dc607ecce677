"""The app's icon and, on Linux, its desktop entry (``diffview --install-desktop-entry``): a ``.desktop`` file
and the icon under ``$XDG_DATA_HOME`` (``~/.local/share``), so launchers list diffview and open folders with it."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

__all__ = ["ICON", "desktop_entry", "install_desktop_entry"]

ICON = Path(__file__).parent / "resources" / "diffview.svg"  # noise x_T on the left, a clean x_0 on the right


def _launcher() -> str:
    """The command a launcher runs: the installed ``diffview`` script, else this interpreter with ``-m``."""
    script = shutil.which("diffview")
    return f'"{script}"' if script else f'"{sys.executable}" -m diffview'


def desktop_entry(icon: str = "diffview") -> str:
    return "\n".join([
        "[Desktop Entry]",
        "Type=Application",
        "Name=diffview",
        "GenericName=Diffusion model trainer and viewer",
        "Comment=Train a denoising diffusion model on your images and watch the mathematics at work",
        f"Exec={_launcher()} %f",
        f"Icon={icon}",
        "Terminal=false",
        "Categories=Education;Science;Graphics;",
        "MimeType=inode/directory;",
        "Keywords=diffusion;DDPM;DDIM;machine learning;",
        "",
    ])


def install_desktop_entry(data_home: str | os.PathLike | None = None) -> list[Path]:
    """Write the icon and the ``.desktop`` file; returns their paths. Raises OSError where they cannot be written."""
    root = Path(data_home or os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    icon = root / "icons" / "hicolor" / "scalable" / "apps" / "diffview.svg"
    entry = root / "applications" / "diffview.desktop"
    icon.parent.mkdir(parents=True, exist_ok=True)
    entry.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(ICON, icon)
    entry.write_text(desktop_entry(str(icon)), encoding="utf-8")
    return [entry, icon]
