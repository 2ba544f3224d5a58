"""Safe, atomic persistence: tensors in safetensors files, everything else in JSON.

Nothing here unpickles: a checkpoint or model file handed to us by a user can at worst be
rejected with a :class:`CheckpointError`, never run code.

Writing is atomic at two levels.  A single file is written to a temporary name, flushed,
fsynced and renamed into place.  A checkpoint (several files) is written into a temporary
folder that is renamed to ``step_<N>`` only when complete; the ``latest`` pointer is then
replaced atomically.  A run killed at any instant leaves the previous checkpoint intact.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.numpy import load_file as np_load_file
from safetensors.numpy import save_file as np_save_file
from safetensors.torch import load_file, save_file

from deeprl.errors import CheckpointError

FORMAT = "deeprl-1"
_STEP_NAME = re.compile(r"step_\d{12}")


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def atomic_write_with(path: str | Path, write: Any) -> Path:
    """Have ``write(tmp_path)`` write a file (a figure, a video) beside ``path``, then rename it into
    place: ``path`` is only ever a regular file this replaces, never a device node, FIFO or folder
    written through, and the temporary file is removed on every error."""
    path = Path(path)
    if path.exists() and not path.is_file():
        raise CheckpointError(f"{str(path)!r} exists and is not a regular file; choose another output path")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix or ".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path


def json_safe(obj: Any) -> Any:
    """``obj`` with every NaN or infinite float replaced by ``None``: JSON has no such numbers."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def atomic_write_json(path: str | Path, obj: Any) -> None:
    """Valid JSON only: non-finite floats are written as ``null``."""
    atomic_write_bytes(path, (json.dumps(json_safe(obj), indent=2, sort_keys=True, allow_nan=False) + "\n").encode())


def read_json(path: str | Path, what: str = "file") -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{what} {str(path)!r} is missing") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{what} {str(path)!r} is corrupt (not valid JSON: {e})") from None


# ---------------------------------------------------------------------------------------------
# nested state (optimizer state dicts) <-> flat tensors + JSON skeleton


def flatten_state(obj: Any, prefix: str = "") -> tuple[dict[str, torch.Tensor], Any]:
    """Split a nested structure into ``{key: tensor}`` and a JSON-able skeleton referring to keys."""
    tensors: dict[str, torch.Tensor] = {}

    def walk(x: Any, path: str) -> Any:
        if isinstance(x, torch.Tensor):
            tensors[path] = x.detach().cpu().contiguous()
            return {"__tensor__": path}
        if isinstance(x, dict):
            return {"__items__": [[k, walk(v, f"{path}.{k}")] for k, v in x.items()]}
        if isinstance(x, (list, tuple)):
            return [walk(v, f"{path}.{i}") for i, v in enumerate(x)]
        if x is None or isinstance(x, (bool, int, float, str)):
            return x
        raise TypeError(f"cannot store {type(x).__name__} at {path}")

    return tensors, walk(obj, prefix or "s")


def module_tensors(modules: dict[str, torch.nn.Module]) -> dict[str, torch.Tensor]:
    """Every module's state dict under its name: ``{"name.key": tensor}``."""
    return {f"{name}.{k}": v for name, m in modules.items() for k, v in m.state_dict().items()}


def check_tensor(name: str, saved: Any, like: torch.Tensor, *, finite: bool = True) -> None:
    """Raise ValueError unless ``saved`` is a tensor of ``like``'s shape and dtype and, for floating
    point with ``finite``, holds no NaN or infinity: a damaged file is refused, never used (a short
    optimizer moment crashes a fused kernel; an int32 weight is silently truncated)."""
    if not isinstance(saved, torch.Tensor):
        raise ValueError(f"{name} is not a tensor")
    if saved.shape != like.shape or saved.dtype != like.dtype:
        raise ValueError(f"{name} is {saved.dtype} of shape {tuple(saved.shape)}, expected {like.dtype} of shape "
                         f"{tuple(like.shape)}")
    if finite and saved.is_floating_point() and not bool(torch.isfinite(saved).all()):
        raise ValueError(f"{name} holds NaN or infinite values")


def load_module_tensors(modules: dict[str, torch.nn.Module], tensors: dict[str, torch.Tensor]) -> None:
    """The inverse of :func:`module_tensors`; keys of no module, missing keys, or tensors of another
    shape or dtype than the module's, or non-finite floats, raise before any module changes."""
    stray = [k for k in tensors if k.split(".", 1)[0] not in modules]
    if stray:
        raise KeyError(f"tensors of no module: {', '.join(stray[:3])}")
    for name, module in modules.items():
        current = module.state_dict()
        for key, like in current.items():
            if f"{name}.{key}" not in tensors:
                raise KeyError(f"tensor {name}.{key} is missing")
            check_tensor(f"tensor {name}.{key}", tensors[f"{name}.{key}"], like)
        extra = [k for k in tensors if k.startswith(f"{name}.") and k[len(name) + 1:] not in current]
        if extra:
            raise KeyError(f"unexpected tensors {', '.join(extra[:3])}")
    for name, module in modules.items():
        prefix = f"{name}."
        module.load_state_dict({k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)})


def unflatten_state(skeleton: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """The inverse of :func:`flatten_state`; a tensor the skeleton names but the file lacks, or
    one the file holds but the skeleton never names, raises KeyError."""
    used: set[str] = set()

    def walk(x: Any) -> Any:
        if isinstance(x, dict) and "__tensor__" in x:
            if x["__tensor__"] not in tensors:
                raise KeyError(f"tensor {x['__tensor__']!r} is missing")
            used.add(x["__tensor__"])
            return tensors[x["__tensor__"]]
        if isinstance(x, dict) and "__items__" in x:
            return {k: walk(v) for k, v in x["__items__"]}
        if isinstance(x, list):
            return [walk(v) for v in x]
        return x

    state = walk(skeleton)
    stray = sorted(set(tensors) - used)
    if stray:
        raise KeyError(f"unexpected tensors {', '.join(stray[:3])}")
    return state


# ---------------------------------------------------------------------------------------------
# single-file models (``.save()`` / ``load()``)


def save_model_file(path: str | Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """One safetensors file: the weights, with ``meta`` (config, spaces) as JSON in its header."""
    path = Path(path)
    if path.exists() and not path.is_file():
        raise CheckpointError(f"cannot save the model to {str(path)!r}: it exists and is not a regular file")
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, tmp,
                  metadata={"format": FORMAT, "meta": json.dumps(json_safe(meta), allow_nan=False)})
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except (OSError, SafetensorError) as e:  # safetensors raises its own type on a full disk
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise CheckpointError(f"could not save the model to {str(path)!r} ({getattr(e, 'strerror', None) or e}); "
                              "check the folder, its permissions and free disk space") from None
    except BaseException:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise


def load_model_file(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    if not isinstance(path, (str, os.PathLike)):
        raise CheckpointError(f"a model path is a str or a pathlib.Path, not {type(path).__name__}")
    path = Path(path)
    if path.is_dir():
        for candidate in (path / "model.safetensors",):
            if candidate.exists():
                path = candidate
                break
        else:
            raise CheckpointError(f"{str(path)!r} is a folder without model.safetensors; pass a saved model file "
                                  "or a finished run directory")
    if not path.exists() and path.with_name(path.name + ".safetensors").is_file():
        path = path.with_name(path.name + ".safetensors")  # save("x") wrote x.safetensors
    if not path.exists():
        raise CheckpointError(f"model file {str(path)!r} does not exist")
    try:
        from safetensors import safe_open
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{str(path)!r} is not a readable safetensors file ({e}); "
                              "it may be corrupt or not a deeprl model") from None
    if header.get("format") != FORMAT or "meta" not in header:
        raise CheckpointError(f"{str(path)!r} is a safetensors file but not a deeprl model "
                              f"(format {header.get('format')!r}, expected {FORMAT!r})")
    try:
        meta = json.loads(header["meta"])
    except json.JSONDecodeError:
        raise CheckpointError(f"{str(path)!r} has a corrupt header; re-save the model") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{str(path)!r} has a corrupt header (its metadata is not an object)")
    return tensors, meta


# ---------------------------------------------------------------------------------------------
# multi-file checkpoints inside a run directory


class CheckpointDir:
    """``<run>/checkpoints/step_<N>/`` folders plus a ``latest`` pointer; keeps the newest ``keep``."""

    def __init__(self, root: str | Path, keep: int = 2):
        self.root = Path(root)
        self.keep = keep

    def write(self, step: int, *, tensors: dict[str, dict[str, torch.Tensor]],
              arrays: dict[str, dict[str, np.ndarray]], state: dict[str, Any]) -> Path:
        """``tensors`` and ``arrays``: ``{file stem: {name: tensor/array}}``; ``state``: JSON."""
        self._check_root()
        self.root.mkdir(parents=True, exist_ok=True)
        name = f"step_{step:012d}"
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=self.root))
        try:
            for stem, group in tensors.items():
                save_file({k: v.detach().cpu().contiguous() for k, v in group.items()}, str(tmp / f"{stem}.safetensors"))
            for stem, group in arrays.items():
                np_save_file({k: np.ascontiguousarray(v) for k, v in group.items()}, str(tmp / f"{stem}.safetensors"))
            (tmp / "state.json").write_text(json.dumps(json_safe({"format": FORMAT, **state}), allow_nan=False))
            for f in tmp.iterdir():
                with open(f, "rb") as fh:
                    os.fsync(fh.fileno())
            final = self.root / name
            if final.exists():
                shutil.rmtree(final)
            os.rename(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        _fsync_dir(self.root)
        atomic_write_bytes(self.root / "latest", (name + "\n").encode())
        self._prune(keep_name=name)
        return final

    def mark_finished(self, path: Path | None, **fields: Any) -> None:
        """Mark the checkpoint at ``path`` as the end of a finished run (its final evaluation done),
        by replacing its ``state.json`` atomically: the tensors written before stay as they are."""
        if path is None:
            return
        state = read_json(path / "state.json", "checkpoint state")
        atomic_write_bytes(path / "state.json", json.dumps(json_safe({**state, **fields, "finished": True}),
                                                           allow_nan=False).encode())

    def _own(self, path: Path) -> bool:
        """A real folder of ours: not a symlink, and inside the checkpoints folder."""
        return path.is_dir() and not path.is_symlink() and path.resolve().parent == self.root.resolve()

    def _check_root(self) -> None:
        if self.root.is_symlink():
            raise CheckpointError(f"{str(self.root)!r} is a symlink; checkpoints are only written and pruned "
                                  "inside the run directory itself")

    def _prune(self, keep_name: str) -> None:
        complete = sorted(p for p in self.root.glob("step_*") if self._own(p))
        for old in complete[:-self.keep]:
            if old.name != keep_name:
                shutil.rmtree(old, ignore_errors=True)
        for stale in self.root.glob(".step_*"):  # temp folders of a killed write
            if self._own(stale):
                shutil.rmtree(stale, ignore_errors=True)

    def latest(self) -> Path | None:
        """The newest complete checkpoint; the ``latest`` pointer is only followed to a
        ``step_<N>`` folder of this run."""
        if not self.root.exists():
            return None
        self._check_root()
        pointer = self.root / "latest"
        if pointer.is_file() and not pointer.is_symlink():
            try:
                name = pointer.read_text().strip()
            except (OSError, UnicodeDecodeError):
                name = ""
            path = self.root / name
            if _STEP_NAME.fullmatch(name) and self._own(path) and (path / "state.json").exists():
                return path
        complete = sorted(p for p in self.root.glob("step_*") if self._own(p) and (p / "state.json").exists())
        return complete[-1] if complete else None

    @staticmethod
    def read(path: Path) -> tuple[dict[str, Any], Any]:
        """``(state, loader)`` where ``loader(stem, numpy=False)`` reads one safetensors file."""
        state = read_json(path / "state.json", "checkpoint state")
        if not isinstance(state, dict) or state.get("format") != FORMAT:
            raise CheckpointError(f"{str(path)!r} is not a deeprl checkpoint (format {state.get('format')!r} "
                                  f"where {FORMAT!r} was expected)" if isinstance(state, dict) else
                                  f"{str(path)!r} is not a deeprl checkpoint")

        def loader(stem: str, numpy: bool = False) -> dict[str, Any]:
            file = path / f"{stem}.safetensors"
            if not file.exists():
                raise CheckpointError(f"checkpoint {str(path)!r} lacks {file.name}; it is incomplete")
            try:
                return np_load_file(str(file)) if numpy else load_file(str(file))
            except (SafetensorError, OSError, ValueError) as e:
                raise CheckpointError(f"checkpoint file {str(file)!r} is corrupt ({e}); delete this checkpoint "
                                      "folder to resume from the previous one") from None

        return state, loader
