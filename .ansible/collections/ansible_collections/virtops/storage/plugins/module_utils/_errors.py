# -*- coding: utf-8 -*-
# Copyright (c) 2026 virtops.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Typed errors raised inside the collection and turned into fail_json at the edge."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

# The SPEC's error codes: playbooks branch on these strings, so they never change.
ERROR_CODES = frozenset((
    'LIBVIRT_UNREACHABLE', 'INVALID_ARGUMENT', 'INVALID_NAME', 'INVALID_SIZE',
    'POOL_NOT_FOUND', 'POOL_INACTIVE', 'POOL_IN_USE', 'VOLUME_NOT_FOUND', 'VOLUME_IN_USE',
    'SHRINK_REFUSED', 'FORMAT_MISMATCH', 'NO_SPACE', 'DOMAIN_NOT_FOUND', 'DOMAIN_RUNNING',
    'ROOT_DISK_PRESENT', 'TARGET_IN_USE', 'TARGET_MISMATCH', 'HOTPLUG_UNSUPPORTED',
    'HOTUNPLUG_TIMEOUT', 'LUN_NOT_FOUND', 'LUN_IN_USE', 'LUN_IN_POOL', 'ISCSI_AUTH_FAILED',
    'ISCSI_UNREACHABLE', 'ISCSI_LOGIN_FAILED', 'LIBVIRT_ERROR',
))


class StorageError(Exception):
    """A failure with a SPEC error code; `details` are extra result keys (never secrets)."""

    def __init__(self, code, msg, **details):
        if code not in ERROR_CODES:
            raise ValueError('unknown error code %r' % (code,))
        super(StorageError, self).__init__(msg)
        self.code = code
        self.msg = msg
        self.details = details

    def __str__(self):
        return '%s: %s' % (self.code, self.msg)
