# -*- coding: utf-8 -*-
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import pytest

from ansible_collections.virtops.storage.plugins.module_utils._errors import StorageError
from ansible_collections.virtops.storage.plugins.module_utils._names import validate_name, DEFINITION_NAME_MAX_BYTES
from ansible_collections.virtops.storage.plugins.module_utils._sizes import parse_size


@pytest.mark.parametrize('value, expected', [
    (0, 0),
    (512, 512),
    ('512', 512),
    ('1B', 1),
    ('7 bytes', 7),
    ('1K', 1024), ('1k', 1024), ('1KiB', 1024), ('1kib', 1024), ('1KB', 1000), ('1kb', 1000),
    ('1M', 1024 ** 2), ('1MiB', 1024 ** 2), ('1MB', 1000 ** 2),
    ('1G', 1024 ** 3), ('1GiB', 1024 ** 3), ('1GB', 1000 ** 3), ('10 GiB', 10 * 1024 ** 3),
    ('1T', 1024 ** 4), ('1TB', 1000 ** 4), ('1TiB', 1024 ** 4),
    ('1P', 1024 ** 5), ('1PB', 1000 ** 5), ('1PiB', 1024 ** 5),
    ('1.5G', 3 * 1024 ** 3 // 2), ('1.5GB', 1500 * 1000 ** 2), ('.5K', 512), ('0.25MiB', 262144),
    ('1.3K', 1332),  # 1331.2 bytes, rounded up: never smaller than asked
    (2.0, 2),
])
def test_parse_size_accepts_libvirt_units(value, expected):
    assert parse_size(value) == expected


@pytest.mark.parametrize('value', [
    '-1', -1, '1X', '1GiBB', '1Gi', 'G', '', '1.2.3', 'inf', 'nan', float('inf'), float('nan'), True,
    '1E', '1 Kb b', [], {}, '0x10', '1e3', '16EiB', 2 ** 64,
])
def test_parse_size_rejects_everything_else(value):
    with pytest.raises(StorageError) as caught:
        parse_size(value, 'capacity')
    assert caught.value.code == 'INVALID_SIZE'
    assert 'capacity' in caught.value.msg


def test_parse_size_none_means_not_given():
    assert parse_size(None) is None


@pytest.mark.parametrize('name', [
    'images', 'with space', 'amp&lt<gt>\'quote"', u'unicodé-池', 'a' * DEFINITION_NAME_MAX_BYTES, '...', '-x',
])
def test_valid_names(name):
    assert validate_name(name, 'pool name', DEFINITION_NAME_MAX_BYTES) == name


@pytest.mark.parametrize('name, fragment', [
    ('', 'non-empty'),
    ('.', 'reserved'),
    ('..', 'reserved'),
    ('a/b', '"/"'),
    ('a\x00b', 'control'),
    ('tab\there', 'control'),
    ('new\nline', 'control'),
    ('del\x7f', 'control'),
    ('a' * (DEFINITION_NAME_MAX_BYTES + 1), 'bytes'),
    (u'é' * 124, 'bytes'),  # 248 bytes in UTF-8
    (None, 'non-empty'),
    (u'x\ufffe', 'XML'),
    (u'x\ud800', 'XML'),
])
def test_invalid_names(name, fragment):
    with pytest.raises(StorageError) as caught:
        validate_name(name, 'pool name', DEFINITION_NAME_MAX_BYTES)
    assert caught.value.code == 'INVALID_NAME'
    assert fragment in caught.value.msg


def test_volume_names_may_use_the_full_255_bytes():
    assert validate_name('v' * 255, 'volume name')
    with pytest.raises(StorageError):
        validate_name('v' * 256, 'volume name')
