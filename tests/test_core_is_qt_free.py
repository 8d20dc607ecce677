import subprocess
import sys


def test_core_imports_no_qt_in_a_fresh_interpreter():
    code = (
        "import sys, diffview.core, diffview.core.diffusion, diffview.core.losses, diffview.core.schedule\n"
        "import pkgutil, importlib, diffview.core as c\n"
        "for m in pkgutil.walk_packages(c.__path__, 'diffview.core.'): importlib.import_module(m.name)\n"
        "assert 'diffview.core.analysis.lab2d' in sys.modules and 'diffview.core.train.trainer' in sys.modules\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('PySide6', 'pyqtgraph', 'shiboken6')"
        " or m.startswith('diffview.gui'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"diffview.core pulled in: {out.stdout}"
