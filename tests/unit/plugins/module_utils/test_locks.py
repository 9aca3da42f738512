# -*- coding: utf-8 -*-
"""Runs that change the same object take turns through a host-wide lock."""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import pytest

from ansible_collections.virtops.storage.plugins.module_utils import _locks
from ansible_collections.virtops.storage.plugins.module_utils._errors import StorageError


@pytest.fixture(autouse=True)
def lock_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(_locks, 'LOCK_DIRS', (str(tmp_path / 'locks'),))


def test_the_same_object_waits_and_gives_up_with_a_clear_error():
    parts = ('qemu:///system', 'volume', 'images', 'data.img')
    with _locks.host_lock('volume data.img', parts):
        with pytest.raises(StorageError) as caught:
            with _locks.host_lock('volume data.img', parts, timeout=0.3):
                pass  # pragma: no cover - the lock is held
        assert 'another run' in caught.value.msg and 'volume data.img' in caught.value.msg
    with _locks.host_lock('volume data.img', parts, timeout=0.3):
        pass  # released when the first run ended


def test_other_objects_do_not_wait():
    with _locks.host_lock('a', ('uri', 'volume', 'p', 'a')):
        with _locks.host_lock('b', ('uri', 'volume', 'p', 'b'), timeout=0.1):
            pass
    assert _locks.lock_path('x', 'y') != _locks.lock_path('x', 'z')
