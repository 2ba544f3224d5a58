"""Run a same-work benchmark's deeprl worker with learn() timed in CPU seconds of this process
(time.process_time) instead of wall seconds: on a shared machine, time-slicing by other work then
does not count.  Usage: cpu_worker.py <checkout> <script.py> <worker args...>"""
import sys
import time
import types
from pathlib import Path

tree, script, *args = sys.argv[1:]
sys.path.insert(0, str(Path(tree) / "benchmarks"))
mod = __import__(Path(script).stem)
shim = types.SimpleNamespace(**{k: getattr(time, k) for k in dir(time) if not k.startswith("__")})
shim.perf_counter = time.process_time
mod.time = shim
mod.main(args)
