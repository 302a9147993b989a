"""`python -m core`: the command line (`core/cli.py`), and the app's background worker (`python -m core worker RUN`).

TensorFlow's start-up notices are silenced here, before anything imports TensorFlow:

- `TF_CPP_MIN_LOG_LEVEL=2` (unless already set) hides TensorFlow's C++ INFO and WARNING logs, e.g.
  `cpu_feature_guard.cc] This TensorFlow binary is optimized to use available CPU instructions...`.
- Some lines are written as TensorFlow's libraries load, before that setting applies: absl's `WARNING: All
  log messages before absl::InitializeLog() is called are written to STDERR` and `port.cc:153] oneDNN
  custom operations are on...` (once from libtensorflow_framework, once from the profiler plugin). While
  `tensorflow` is first imported, stderr goes through a small filter process that drops absl's INFO lines
  and that notice, and passes everything else on (warnings, errors, and a crash's last words: the filter
  outlives a process that aborts). oneDNN itself stays on (`TF_ENABLE_ONEDNN_OPTS` is left alone).

`TF_CPP_MIN_LOG_LEVEL=0` shows everything, unfiltered.
"""

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from importlib.abc import MetaPathFinder
from importlib.util import find_spec

if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is first imported

from core.cli import main  # noqa: E402  (imports no TensorFlow itself)

# The filter process: stdin to stdout, without absl's INFO lines (`I0000 00:00:...  123 file.cc:45] ...`), its
# pre-initialisation notice and LiteRT's delegate notice; a line is cut where such a record starts (it may follow a `\r` progress bar).
_FILTER = r"""
import re, signal, sys
signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's; this ends when its stdin closes
noise = re.compile(
    rb"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    rb"|I\d{4} \d\d:\d\d:\d+\.\d+ +\d+ [\w./-]+:\d+\] "
    rb"|INFO: Created TensorFlow Lite XNNPACK delegate for CPU\."  # the LiteRT interpreter, on every export
)
out = sys.stdout.buffer
for line in sys.stdin.buffer:
    found = noise.search(line)
    out.write(line[: found.start()] if found else line)
    out.flush()
"""


@contextlib.contextmanager
def _filtered_stderr() -> Iterator[None]:
    """Route file descriptor 2 (C++ logs and Python's stderr alike) through `_FILTER` for the duration."""
    sys.stderr.flush()
    try:
        noise_filter = subprocess.Popen([sys.executable, "-I", "-S", "-c", _FILTER], stdin=subprocess.PIPE, stdout=2)
    except OSError:
        yield  # no filter: the notices are shown
        return
    saved = os.dup(2)
    os.dup2(noise_filter.stdin.fileno(), 2)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        noise_filter.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            noise_filter.wait(timeout=10)  # everything passed on before this process writes again


class _QuietTensorFlowImport(MetaPathFinder):
    """Finds `tensorflow` the usual way, once, and runs its first import inside `_filtered_stderr`."""

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)
        spec = find_spec(name)
        if spec is not None and spec.loader is not None and hasattr(spec.loader, "exec_module"):
            exec_module = spec.loader.exec_module

            def quiet_exec_module(module):
                with _filtered_stderr():
                    exec_module(module)

            spec.loader.exec_module = quiet_exec_module
        return spec


if __name__ == "__main__":  # `python -m core`; imported as `core.__main__` (tests), it only defines
    if os.environ["TF_CPP_MIN_LOG_LEVEL"] != "0" and "tensorflow" not in sys.modules:
        sys.meta_path.insert(0, _QuietTensorFlowImport())
    sys.exit(main())
