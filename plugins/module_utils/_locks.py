# -*- coding: utf-8 -*-
# Copyright (c) 2026 virtops.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Host-wide locks: runs that change the same libvirt object take turns.

Two plays managing the same volume at once would otherwise each observe the other's
half-done work (a volume still being uploaded looks like a small raw file). The lock is
an flock on a file of the managed host, named after what it guards; it is released when
the run ends, however it ends.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import contextlib
import errno
import fcntl
import hashlib
import os
import tempfile
import time

from ansible_collections.virtops.storage.plugins.module_utils._errors import StorageError

LOCK_DIRS = ('/run/lock/virtops-storage', os.path.join(tempfile.gettempdir(), 'virtops-storage-locks'))


def _lock_dir():
    for directory in LOCK_DIRS:
        try:
            os.makedirs(directory, mode=0o700, exist_ok=True)
        except OSError:
            continue
        if os.access(directory, os.W_OK):
            return directory
    raise StorageError('LIBVIRT_ERROR', 'no writable directory for locks among %s' % ', '.join(LOCK_DIRS))


def lock_path(*parts):
    digest = hashlib.sha256('\0'.join(parts).encode('utf-8', 'surrogatepass')).hexdigest()[:32]
    return os.path.join(_lock_dir(), digest + '.lock')


@contextlib.contextmanager
def host_lock(what, parts, timeout=600, poll=0.1):
    """Hold the lock named by `parts` (e.g. uri, pool, volume) while the block runs;
    wait up to `timeout` seconds for another run to finish with it."""
    path = lock_path(*parts)
    handle = open(path, 'a')
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except (IOError, OSError) as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
            if time.monotonic() >= deadline:
                raise StorageError('LIBVIRT_ERROR', 'another run has been changing %s for over %d seconds; try again '
                                                    'when it has finished (lock %s)' % (what, timeout, path))
            time.sleep(poll)
        yield
    finally:
        handle.close()  # closing releases the flock
