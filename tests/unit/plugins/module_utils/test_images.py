# -*- coding: utf-8 -*-
"""Image headers read the way QEMU writes them, and the sparse reader over real holes."""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import shutil
import subprocess

import pytest

from ansible_collections.virtops.storage.plugins.module_utils._errors import StorageError
from ansible_collections.virtops.storage.plugins.module_utils import _images
from ansible_collections.virtops.storage.plugins.module_utils._images import SparseReader, inspect_image

QEMU_IMG = shutil.which('qemu-img')
needs_qemu_img = pytest.mark.skipif(QEMU_IMG is None, reason='qemu-img is part of the lab packages')


@needs_qemu_img
@pytest.mark.parametrize('image_format, virtual_size', [
    ('qcow2', 10 * 1024 ** 2), ('qed', 10 * 1024 ** 2), ('vmdk', 10 * 1024 ** 2), ('vdi', 10 * 1024 ** 2)])
def test_formats_written_by_qemu_img(tmp_path, image_format, virtual_size):
    path = tmp_path / ('disk.' + image_format)
    subprocess.run([QEMU_IMG, 'create', '-q', '-f', image_format, str(path), str(virtual_size)], check=True)
    info = inspect_image(str(path))
    assert info.format == image_format
    assert info.virtual_size == virtual_size
    assert info.backing_file is False
    assert info.file_size == path.stat().st_size


@needs_qemu_img
def test_an_overlay_is_recognised_as_one(tmp_path):
    base = tmp_path / 'base.qcow2'
    top = tmp_path / 'top.qcow2'
    subprocess.run([QEMU_IMG, 'create', '-q', '-f', 'qcow2', str(base), '1M'], check=True)
    subprocess.run([QEMU_IMG, 'create', '-q', '-f', 'qcow2', '-b', str(base), '-F', 'qcow2', str(top)], check=True)
    assert inspect_image(str(top)).backing_file is True


def test_raw_iso_and_unknown_headers(tmp_path):
    raw = tmp_path / 'plain.img'
    raw.write_bytes(b'\0' * 4096)
    info = inspect_image(str(raw))
    assert (info.format, info.virtual_size) == ('raw', 4096)
    iso = tmp_path / 'cd.iso'
    iso.write_bytes(b'\0' * 0x8001 + b'CD001' + b'\0' * 100)
    assert inspect_image(str(iso)).format == 'iso'
    luks = tmp_path / 'secret.luks'
    luks.write_bytes(b'LUKS\xba\xbe' + b'\0' * 100)
    info = inspect_image(str(luks))
    assert info.format == 'luks' and info.virtual_size is None
    short = tmp_path / 'short.qcow2'
    short.write_bytes(b'QFI\xfb')  # a header cut short is no image
    assert inspect_image(str(short)).format == 'raw'


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(StorageError) as caught:
        inspect_image(str(tmp_path / 'nope.img'))
    assert caught.value.code == 'INVALID_ARGUMENT' and 'nope.img' in caught.value.msg
    with pytest.raises(StorageError):
        inspect_image(str(tmp_path))


def test_sparse_reader_reads_only_the_data(tmp_path):
    path = tmp_path / 'sparse.img'
    mib = 1024 ** 2
    with open(str(path), 'wb') as handle:
        handle.truncate(16 * mib)
        handle.seek(4 * mib)
        handle.write(b'x' * mib)
        handle.seek(12 * mib)
        handle.write(b'y' * mib)
    if path.stat().st_blocks * 512 >= 16 * mib:
        pytest.skip('this filesystem does not keep holes')
    sections, data = [], bytearray()
    with SparseReader(str(path)) as reader:
        while True:
            in_data, length = reader.section(None, None)
            if length == 0:
                break
            sections.append((in_data, length))
            if in_data:
                data += reader.read(None, length, None)
            else:
                reader.skip(None, length, None)
        assert reader.bytes_read == 2 * mib and reader.hole_bytes == 14 * mib
    assert sections == [(0, 4 * mib), (1, mib), (0, 7 * mib), (1, mib), (0, 3 * mib)]
    assert bytes(data) == b'x' * mib + b'y' * mib


@needs_qemu_img
def test_backing_file_of_an_overlay_with_a_relative_name(tmp_path):
    from ansible_collections.virtops.storage.plugins.module_utils._images import backing_file
    (tmp_path / 'sub').mkdir()
    base = tmp_path / 'base.qcow2'
    top = tmp_path / 'sub' / 'top.qcow2'
    subprocess.run([QEMU_IMG, 'create', '-q', '-f', 'qcow2', str(base), '1M'], check=True)
    subprocess.run([QEMU_IMG, 'create', '-q', '-f', 'qcow2', '-b', '../base.qcow2', '-F', 'qcow2', str(top)],
                   check=True)
    assert backing_file(str(top)) == str(base)
    assert backing_file(str(base)) is None
    assert backing_file(str(tmp_path / 'missing.qcow2')) is None


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path):
    fifo = str(tmp_path / 'pipe')
    os.mkfifo(fifo)
    with pytest.raises(StorageError) as caught:
        inspect_image(fifo)
    assert caught.value.code == 'INVALID_ARGUMENT' and 'regular file' in caught.value.msg


@needs_qemu_img
def test_images_that_open_other_files_say_so(tmp_path):
    """A qcow2 with an external data file and a VMDK with a parent make QEMU open other
    files: they count as depending on one, like a backing file."""
    raw = tmp_path / 'data.raw'
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'raw', str(raw), '1M'], check=True)
    with_data = tmp_path / 'df.qcow2'
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', '-o', 'data_file=%s' % raw, str(with_data), '1M'],
                   check=True)
    base, top = tmp_path / 'base.vmdk', tmp_path / 'top.vmdk'
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'vmdk', str(base), '1M'], check=True)
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'vmdk', '-b', str(base), '-F', 'vmdk', str(top)], check=True)
    assert _images.inspect_image(str(with_data)).backing_file is True
    assert _images.data_file(str(with_data)) == str(raw)
    assert _images.inspect_image(str(top)).backing_file is True
    assert _images.inspect_image(str(base)).backing_file is False
    assert _images.data_file(str(base)) is None
