"""The error types that cross layers: raised deep in the library, turned into exit statuses by the
commands (embeddinggemma/cli/). This module imports nothing, so every layer can import it.

Exit statuses the commands give them: ConfigError, InputError, MalformedRecordError,
NotOurDirectoryError, WorkdirInUseError and CheckpointError are 2 (a message naming the field, file
or directory, no traceback); NonFiniteLossError is 3; RunStopped is 128 + the signal (143 for
SIGTERM, 130 for Ctrl-C). Any other exception is a bug and keeps its traceback (1).
"""


class ConfigError(ValueError):
    """A config value that cannot work, alone or with the run's inputs; the message names the field."""


class InputError(ValueError):
    """A run's input (corpus, teacher embeddings, checkpoint, tokenizer) that cannot be used."""


class MalformedRecordError(ValueError):
    """A record that breaks the schema; the message starts with where it is (`file:line`)."""

    def __init__(self, where: str, reason: str):
        super().__init__(f"{where}: {reason}")
        self.where, self.reason = where, reason


class NotOurDirectoryError(FileExistsError):
    """A directory that holds files of somebody else's, which a builder refuses to touch."""


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite; the message names the step and the terms."""


class WorkdirInUseError(RuntimeError):
    """Another process is running in a run's work directory; the message names it (training/run_lock.py)."""


class CheckpointError(RuntimeError):
    """No checkpoint of a run can be read, or one cannot be written (disk, permissions)."""


class RunStopped(Exception):
    """SIGTERM or Ctrl-C stopped a run after saving a checkpoint of `step`; the same command resumes.

    `exit_status` is 128 + the signal (see training/preemption.py)."""

    def __init__(self, message: str, step: int, exit_status: int):
        super().__init__(message)
        self.step = step
        self.exit_status = exit_status
