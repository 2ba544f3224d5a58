"""DeepMind Control Suite ids (``dm_control/<domain>-<task>-v0``), registered on demand through shimmy.

shimmy registers its ids with Gymnasium when it is imported; nothing imports it before an id asks
for it, so the suite's packages stay optional (``pip install "deeprl[dmc]"``).  The proprio tasks
observe a Dict of vectors, which make_env packs into one Box; their actions are a Box in [-1, 1].
"""

from __future__ import annotations

import os

from deeprl.errors import EnvError

PREFIX = "dm_control/"


def is_dmc_id(env_id: str) -> bool:
    return env_id.startswith(PREFIX)


def register_dmc() -> None:
    """Import shimmy (which registers every ``dm_control/...`` id), or one EnvError naming the extra.

    Without a display MuJoCo draws frames (videos, pixels) off-screen with EGL, unless the user
    chose a backend (``MUJOCO_GL``); the default, GLFW, needs a display."""
    if not os.environ.get("DISPLAY"):
        os.environ.setdefault("MUJOCO_GL", "egl")
    try:
        import shimmy  # noqa: F401  (registers the dm_control/... ids)
        import dm_control.suite  # noqa: F401
    except ImportError as e:
        raise EnvError(f"dm_control ids need dm-control and shimmy ({e}); install them with "
                       "'pip install \"deeprl[dmc]\"'") from None
    except RuntimeError as e:  # the MUJOCO_GL backend cannot be loaded
        raise EnvError(f"dm_control cannot load its OpenGL backend ({e}); set MUJOCO_GL to egl, osmesa or glfw") from None
