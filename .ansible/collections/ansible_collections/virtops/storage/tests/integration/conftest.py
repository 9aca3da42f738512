# -*- coding: utf-8 -*-
"""Fixtures of the integration tests (helpers live in _lab.py)."""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os

import libvirt
import pytest

from _lab import LAB, URI, ModuleRun, Names


@pytest.fixture(scope='session')
def conn():
    """An independent libvirt connection: how the tests see the truth."""
    try:
        connection = libvirt.open(URI)
    except libvirt.libvirtError as err:
        pytest.fail('the lab is not up (%s); run scripts/lab.sh up' % err)
    yield connection
    connection.close()


@pytest.fixture
def run():
    def _run(module, args, **kwargs):
        return ModuleRun(module, args, **kwargs)
    return _run


@pytest.fixture
def names(conn):
    root = os.path.join(LAB['LAB_STATE_DIR'], 'tests')
    os.makedirs(root, exist_ok=True)
    made = Names(conn, root)
    yield made
    made.cleanup()
