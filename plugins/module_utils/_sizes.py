# -*- coding: utf-8 -*-
# Copyright (c) 2026 virtops.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Sizes as libvirt reads them: an integer of bytes or a number with a unit."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import decimal
import re

from ansible_collections.virtops.storage.plugins.module_utils._errors import StorageError

# libvirt's rules (virScaleInteger): the letter picks the power, a bare letter or
# "iB" means powers of 1024, "B" after the letter means powers of 1000, case-insensitive.
_POWERS = {'k': 1, 'm': 2, 'g': 3, 't': 4, 'p': 5}
_SIZE_RE = re.compile(r'^\s*(?P<number>\d+(?:\.\d+)?|\.\d+)\s*(?P<unit>[A-Za-z]*)\s*$')
MAX_BYTES = 2 ** 63 - 1  # libvirt's and QEMU's sizes are signed 64-bit offsets


def unit_multiplier(unit):
    """Bytes per `unit`, or None when libvirt would not accept the unit."""
    lowered = unit.lower()
    if lowered in ('', 'b', 'bytes'):
        return 1
    power = _POWERS.get(lowered[0])
    if power is None:
        return None
    rest = lowered[1:]
    if rest in ('', 'ib'):
        return 1024 ** power
    if rest == 'b':
        return 1000 ** power
    return None


def parse_size(value, option='size'):
    """Return `value` in whole bytes or raise StorageError(INVALID_SIZE).

    A fraction of a byte (``1.3K``) is rounded up, so a request is never served smaller.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise StorageError('INVALID_SIZE', '%s: %r is not a size' % (option, value))
    if isinstance(value, int):
        number, multiplier = decimal.Decimal(value), 1
    elif isinstance(value, float):
        number, multiplier = decimal.Decimal(repr(value)), 1
    elif isinstance(value, str):
        match = _SIZE_RE.match(value)
        multiplier = unit_multiplier(match.group('unit')) if match else None
        if multiplier is None:
            raise StorageError(
                'INVALID_SIZE',
                '%s: %r is not a size; use bytes or a number with one of the units '
                'B, K/KiB, KB, M/MiB, MB, G/GiB, GB, T/TiB, TB, P/PiB, PB' % (option, value))
        number = decimal.Decimal(match.group('number'))
    else:
        raise StorageError('INVALID_SIZE', '%s: %r is not a size' % (option, value))
    if not number.is_finite() or number < 0:
        raise StorageError('INVALID_SIZE', '%s: %r must be a finite size of 0 or more' % (option, value))
    result = int((number * multiplier).to_integral_value(rounding=decimal.ROUND_CEILING))
    if result > MAX_BYTES:
        raise StorageError('INVALID_SIZE', '%s: %r is larger than libvirt can address' % (option, value))
    return result
