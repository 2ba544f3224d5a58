"""User-facing errors.

A :class:`DeepRLError` is a problem with what the user asked for (a wrong env id, a mistyped
config key, a corrupt checkpoint).  The CLI prints its message as one line on stderr and exits
with status 2; no traceback.  Everything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class DeepRLError(Exception):
    """A problem with the user's input. The message names the problem and the fix."""


class ConfigError(DeepRLError):
    """An unknown, ill-typed or out-of-range configuration value."""


class EnvError(DeepRLError):
    """An environment that cannot be made, or one an algorithm cannot handle."""


class CheckpointError(DeepRLError):
    """A missing, corrupt, foreign or incompatible checkpoint or saved model."""


class TrainingError(DeepRLError):
    """Training produced non-finite numbers (loss, parameters, returns): stopped before they spread
    into a checkpoint or a saved model."""


class Interrupted(KeyboardInterrupt):
    """Training stopped by SIGINT or SIGTERM after writing a checkpoint; the message says how to
    resume.  A KeyboardInterrupt, so code that catches Ctrl-C still does."""

    def __init__(self, message: str, signum: int = 2):
        super().__init__(message)
        self.signum = signum  # the CLI exits with 128 + signum, as the shell expects


def one_line(error: BaseException) -> str:
    """An exception's message on one line, cut to a readable length (state-dict mismatches and
    ffmpeg run to several lines); its type's name where it has no message."""
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def closest(word: str, candidates: Iterable[str], n: int = 3) -> list[str]:
    """The candidates that look most like ``word`` (for "did you mean ...?")."""
    candidates = list(candidates)
    hits = difflib.get_close_matches(word, candidates, n=n, cutoff=0.5)
    if not hits:
        lowered = {c.lower(): c for c in candidates}
        hits = [lowered[h] for h in difflib.get_close_matches(word.lower(), lowered, n=n, cutoff=0.5)]
    return hits


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    hits = closest(word, candidates)
    if not hits:
        return ""
    return " Did you mean " + " or ".join(repr(h) for h in hits) + "?"
