"""One run per model_dir: an exclusive `fcntl.flock` on `<model_dir>/run.lock`, held for the whole run.

The operating system releases a flock when its process ends, however it ends (`kill -9` included), so a lock left
by a dead run never blocks the rerun that resumes it; no pid-liveness guess is needed. The file also holds the
holder's pid, host, start time and command, only to tell a refused second run who holds the directory. On a
network file system flock is as reliable as that file system's locking (Linux NFS maps it to POSIX locks).
"""

import datetime
import fcntl
import json
import os
import socket
import sys

LOCK_NAME = "run.lock"


class ModelDirInUseError(RuntimeError):
    """Another live process holds the lock of the directory; the message names it."""


def describe_holder(text):
    """One phrase naming the process recorded in a lock file's `text` (JSON written by `RunLock.acquire`)."""
    try:
        holder = json.loads(text)
        return (f"pid {holder['pid']} on host {holder['host']}, started {holder['started']}, "
                f"command: {holder['command']}")
    except (ValueError, KeyError, TypeError):
        return "a process that has not yet written its pid (it started a moment ago)"


class RunLock:
    """An exclusive, non-blocking lock of `directory` for the life of this process (or until `release`)."""

    def __init__(self, directory, command=""):
        self.directory = directory
        self.path = os.path.join(directory, LOCK_NAME)
        self.command = command or " ".join([os.path.basename(sys.executable), *sys.argv])
        self._file = None

    def _in_use(self, holder):
        return f"{self.directory!r} is in use by another run ({holder})"

    @property
    def held(self):
        return self._file is not None

    def acquire(self):
        """Takes the lock or raises ModelDirInUseError naming the holder (OSError if the file cannot be opened)."""
        if self._file is not None:
            return
        f = open(self.path, "a+")
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = describe_holder(f.read())
            f.close()
            raise ModelDirInUseError(self._in_use(holder)) from None
        except BaseException:
            f.close()
            raise
        started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
        f.seek(0)
        f.truncate()
        f.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": started,
                            "command": self.command}) + "\n")
        f.flush()
        self._file = f

    def check_free(self):
        """Raises ModelDirInUseError if a live process holds the lock; creates and changes nothing (a cheap check
        before the slow start of a run; `acquire` still decides)."""
        try:
            f = open(self.path)
        except OSError:
            return  # no lock file (or no directory): nobody holds it
        with f:
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise ModelDirInUseError(self._in_use(describe_holder(f.read()))) from None
            except OSError:
                return
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)

    def release(self):
        """Empties the file (the directory is free) and unlocks it. The file stays: deleting a lock file lets a
        process that opened the old one and a process that creates a new one both believe they hold it."""
        if self._file is None:
            return
        try:
            self._file.seek(0)
            self._file.truncate()
        except OSError:
            pass
        finally:
            self._file.close()  # closing the descriptor releases the flock
            self._file = None
