# -*- coding: utf-8 -*-
"""Make the collection importable as ansible_collections.virtops.storage for pytest.

The repository is the collection root; a symlink in a private collections tree gives it
the path Ansible's loader expects, without copying anything.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLLECTIONS_ROOT = os.environ.get('VIRTOPS_COLLECTIONS_ROOT') or os.path.join(
    tempfile.gettempdir(), 'virtops-storage-collections-%d' % os.getuid())


def _link_collection():
    parent = os.path.join(COLLECTIONS_ROOT, 'ansible_collections', 'virtops')
    link = os.path.join(parent, 'storage')
    os.makedirs(parent, exist_ok=True)
    if os.path.islink(link) and os.readlink(link) == REPO:
        return
    if os.path.lexists(link):
        os.unlink(link)
    os.symlink(REPO, link)


_link_collection()
if COLLECTIONS_ROOT not in sys.path:
    sys.path.insert(0, COLLECTIONS_ROOT)
os.environ['ANSIBLE_COLLECTIONS_PATH'] = COLLECTIONS_ROOT


def lab_env():
    """The lab's constants from tests/lab/lab.env."""
    values = {}
    with open(os.path.join(REPO, 'tests', 'lab', 'lab.env')) as handle:
        for line in handle:
            line = line.strip()
            if line and not line.startswith('#') and '=' in line:
                key, value = line.split('=', 1)
                values[key] = value.strip('"')
    return values
