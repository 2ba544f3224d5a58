"""The run directory: resolved config, metrics (CSV + TensorBoard), checkpoints, final evaluation.

::

    runs/dqn-CartPole-v1-20261125-101500/
      config.json        algorithm, deeprl version and every resolved setting
      metrics.csv        one row per log interval; columns named like the TensorBoard tags
      tb/                TensorBoard event files (``tensorboard --logdir runs``)
      checkpoints/       step_<N>/ folders and a ``latest`` pointer (see checkpoint.py)
      model.safetensors  the final model, loadable with ``deeprl.load``
      best_model.safetensors  the best periodically evaluated model (``deeprl eval RUN --best``)
      eval.json          the final evaluation
      videos/            ``deeprl eval --video`` output
"""

from __future__ import annotations

import csv
import io
import math
import sys
import time
from pathlib import Path
from typing import Any

from deeprl.checkpoint import CheckpointDir, atomic_write_bytes, atomic_write_json, read_json
from deeprl.errors import CheckpointError, ConfigError
from deeprl.version import __version__


def exclusive_lock(path: Path, busy: str) -> Any:
    """An exclusive lock on ``path`` (created if missing), held until the returned file is closed,
    or a ConfigError saying ``busy`` when another process holds it; None where there is no flock."""
    try:
        import fcntl
    except ImportError:  # not on POSIX: no lock
        return None
    fh = open(path, "a+")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        fh.close()
        raise ConfigError(busy) from None
    return fh


def default_run_dir(algo: str, env_id: str) -> Path:
    safe_env = env_id.replace("/", "_").replace(":", "_")
    return Path("runs") / f"{algo}-{safe_env}-{time.strftime('%Y%m%d-%H%M%S')}"


class RunDir:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.checkpoints = CheckpointDir(self.path / "checkpoints")
        self._lock: Any = None

    @property
    def config_file(self) -> Path:
        return self.path / "config.json"

    @property
    def metrics_file(self) -> Path:
        return self.path / "metrics.csv"

    @property
    def model_file(self) -> Path:
        return self.path / "model.safetensors"

    @property
    def best_model_file(self) -> Path:
        return self.path / "best_model.safetensors"

    def exists(self) -> bool:
        return self.config_file.exists()

    def check_target(self) -> None:
        try:
            str(self.path).encode("utf-8")
        except UnicodeEncodeError:
            raise ConfigError(f"--out {str(self.path)!r} is not valid UTF-8 (TensorBoard and the logs could not "
                              "name it); choose another --out") from None
        if self.path.exists() and not self.path.is_dir():
            raise ConfigError(f"--out {str(self.path)!r} is a file, not a folder; choose another --out")

    def create(self) -> None:
        """Make the folder, or say in one line why it cannot be made."""
        self.check_target()
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            probe = self.path / ".write-test"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as e:
            raise ConfigError(f"cannot write the run directory {str(self.path)!r} ({e.strerror or e}); "
                              "choose another --out") from None

    def lock(self) -> None:
        """Hold an exclusive lock on the run while training it: a second process that tries to
        train or resume the same run is refused instead of interleaving its rows with ours."""
        if self._lock is None:
            self._lock = exclusive_lock(self.path / ".lock", f"run {str(self.path)!r} is being trained by another "
                                        "process; wait for it to finish or stop it first")

    def unlock(self) -> None:
        if self._lock is not None:
            self._lock.close()  # closing the file releases the lock
            self._lock = None

    def write_config(self, algo: str, config: dict[str, Any]) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.config_file, {"algo": algo, "deeprl_version": __version__, "config": config})

    def read_config(self) -> tuple[str, dict[str, Any]]:
        if not self.path.exists():
            raise CheckpointError(f"run directory {str(self.path)!r} does not exist")
        data = read_json(self.config_file, "run config")
        if not isinstance(data, dict) or not isinstance(data.get("algo"), str) or not isinstance(data.get("config"), dict):
            raise CheckpointError(f"{str(self.config_file)!r} is not a deeprl run config (it needs a string 'algo' "
                                  "and an object 'config')")
        return data["algo"], data["config"]


class MetricsLogger:
    """Writes scalar metrics to ``metrics.csv`` and TensorBoard under the same names.

    The columns are fixed when the logger is made (``keys``), so every row has the same shape;
    a metric missing from a row is left empty.  On resume, rows logged after the checkpoint are
    dropped from the CSV and TensorBoard is told to purge them, so the resumed run's curves
    continue exactly where the checkpoint left off.
    """

    def __init__(self, run: RunDir, keys: list[str], resume_step: int | None = None, tensorboard: bool = True):
        self.keys = ["step", "wall_time", *keys]
        self._columns = set(keys)
        self.file = run.metrics_file
        run.path.mkdir(parents=True, exist_ok=True)
        if resume_step is not None and self.file.exists():
            self._truncate_after(resume_step)
        new = not self.file.exists() or self.file.stat().st_size == 0
        self._fh = open(self.file, "a", newline="")
        self._csv = csv.writer(self._fh)
        if new:
            self._csv.writerow(self.keys)
            self._fh.flush()
        self._tb = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter
            self._tb = SummaryWriter(log_dir=str(run.path / "tb"), purge_step=resume_step)

    def _truncate_after(self, step: int) -> None:
        """Keep the rows up to ``step``, under this run's header.  Rows are matched to columns by
        name; a damaged header (a write cut short), damaged rows or bytes that are not UTF-8 lose
        only what they damaged, and the file is rewritten whole and valid."""
        rows = _csv_rows(self.file)
        if not rows:
            return
        header, body = rows[0], rows[1:]
        kept = []
        for r in body:
            if len(r) != len(header) or not r or _step_of(r, header) > step:  # damaged rows go with the rest
                continue
            named = dict(zip(header, r))
            kept.append([named.get(k, "") for k in self.keys])
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(self.keys)
        writer.writerows(kept)
        atomic_write_bytes(self.file, buf.getvalue().encode())

    def log(self, step: int, metrics: dict[str, float], wall_time: float) -> None:
        unknown = [k for k in metrics if k not in self._columns]
        if unknown:  # a metric without a column would be silently lost from metrics.csv
            raise ValueError(f"metrics {unknown} are not among this run's columns; declare them in the "
                             "algorithm's metrics (or loss_scales)")
        row = {"step": step, "wall_time": round(wall_time, 3), **metrics}
        self._csv.writerow(["" if row.get(k) is None else _fmt(row[k]) for k in self.keys])
        self._fh.flush()
        if self._tb is not None:
            for k, v in metrics.items():
                if v is not None and not (isinstance(v, float) and math.isnan(v)):
                    self._tb.add_scalar(k, v, step)

    def close(self) -> None:
        self._fh.close()
        if self._tb is not None:
            self._tb.close()


def _step_of(row: list[str], header: list[str]) -> float:
    try:
        return float(row[header.index("step")])
    except ValueError:
        return math.inf


def _csv_rows(path: Path) -> list[list[str]]:
    """The rows of a CSV file; bytes that are not UTF-8 become U+FFFD, NUL bytes are dropped."""
    text = Path(path).read_bytes().decode("utf-8", errors="replace").replace("\0", "")
    try:
        return list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error:  # a field cut open by damage: keep the lines before it
        rows = []
        for line in text.splitlines():
            try:
                rows.extend(csv.reader([line]))
            except csv.Error:
                continue
        return rows


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def read_metrics(path: str | Path) -> dict[str, list[float]]:
    """``metrics.csv`` as columns of floats (NaN where a row has no value); a file whose header
    lacks the ``step`` and ``wall_time`` columns is refused in one line."""
    rows = _csv_rows(Path(path))
    if not rows:
        return {}
    header = rows[0]
    if not {"step", "wall_time"} <= set(header) or len(set(header)) != len(header):
        raise CheckpointError(f"{str(path)!r} is damaged: its header {','.join(header)[:80]!r} lacks the step and "
                              "wall_time columns (delete it, or restore it from a copy)")
    cols: dict[str, list[float]] = {k: [] for k in header}
    for r in rows[1:]:
        if len(r) != len(header):  # a damaged row (a write cut short) is skipped
            continue
        for k, v in zip(header, r):
            cols[k].append(_float(v))
    return cols


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return float("nan")


class Progress:
    """A progress bar with steps/s, recent return and ETA, on an interactive terminal only."""

    def __init__(self, total: int, initial: int, desc: str, enabled: bool | None = None):
        import shutil

        from tqdm import tqdm
        if enabled is None:
            enabled = sys.stderr.isatty()
        # a terminal that reports zero columns (some ptys) would get an empty bar
        width = shutil.get_terminal_size(fallback=(100, 24)).columns or 100
        self.bar = tqdm(total=total, initial=initial, desc=desc, unit="step", unit_scale=True,
                        ncols=min(width, 140), disable=not enabled, smoothing=0.05, file=sys.stderr)

    def update(self, n: int, **postfix: Any) -> None:
        if postfix:
            self.bar.set_postfix({k: v for k, v in postfix.items() if v is not None}, refresh=False)
        self.bar.update(n)

    def close(self) -> None:
        self.bar.close()
