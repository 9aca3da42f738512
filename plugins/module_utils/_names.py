# -*- coding: utf-8 -*-
# Copyright (c) 2026 virtops.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Validation of pool, volume and domain names."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import unicodedata

from ansible_collections.virtops.storage.plugins.module_utils._errors import StorageError

NAME_MAX_BYTES = 255
# libvirt keeps persistent pools and domains as "<name>.xml", written first as
# "<name>.xml.new" and renamed: measured on libvirt 9.0, a 247-byte pool name defines and
# a 248-byte one fails with "File name too long".
DEFINITION_NAME_MAX_BYTES = NAME_MAX_BYTES - len('.xml.new')


def _xml_char(char):
    """XML 1.0's Char production (controls are refused before this is asked)."""
    point = ord(char)
    return point < 0xD800 or 0xE000 <= point <= 0xFFFD or 0x10000 <= point <= 0x10FFFF


def validate_name(name, kind='name', max_bytes=NAME_MAX_BYTES):
    """Return `name` unchanged or raise StorageError(INVALID_NAME) saying why."""
    if not isinstance(name, str) or name == '':
        raise StorageError('INVALID_NAME', '%s must be a non-empty string' % kind)
    if name in ('.', '..'):
        raise StorageError('INVALID_NAME', '%s %r is reserved' % (kind, name))
    if '/' in name:
        raise StorageError('INVALID_NAME', '%s %r must not contain "/"' % (kind, name))
    for char in name:
        if unicodedata.category(char) == 'Cc':
            raise StorageError('INVALID_NAME',
                               '%s %r must not contain control characters (found %r)' % (kind, name, char))
        if not _xml_char(char):
            raise StorageError('INVALID_NAME', '%s %r contains %r, which libvirt\'s XML cannot hold' % (kind, name, char))
    size = len(name.encode('utf-8', 'surrogatepass'))
    if size > max_bytes:
        why = ''
        if max_bytes < NAME_MAX_BYTES:
            why = ' (libvirt stores the definition in a file named "<name>.xml.new", then "<name>.xml")'
        raise StorageError('INVALID_NAME', '%s is %d bytes long; at most %d bytes are allowed%s'
                           % (kind, size, max_bytes, why))
    return name
