# -*- coding: utf-8 -*-
# Copyright (c) 2026 virtops.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Image files on the managed host: what format they hold, and reading them sparse.

The format is read from the file's header, the way libvirt and QEMU recognise it, so an
import can be refused (FORMAT_MISMATCH) before anything is created; libvirt's own view
of the uploaded volume is checked again afterwards.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import errno
import os
import stat
import struct

from ansible_collections.virtops.storage.plugins.module_utils._errors import StorageError

_HEADER_BYTES = 64 * 1024


class ImageInfo(object):
    """`format` as libvirt names it; `virtual_size` in bytes (None when the header does
    not say); `backing_file` is True when the image depends on another file."""

    __slots__ = ('path', 'format', 'file_size', 'virtual_size', 'backing_file')

    def __init__(self, path, image_format, file_size, virtual_size, backing_file=False):
        self.path = path
        self.format = image_format
        self.file_size = file_size
        self.virtual_size = virtual_size
        self.backing_file = backing_file


def _u32be(buf, offset):
    return struct.unpack_from('>I', buf, offset)[0]


def _u64be(buf, offset):
    return struct.unpack_from('>Q', buf, offset)[0]


def _u64le(buf, offset):
    return struct.unpack_from('<Q', buf, offset)[0]


QCOW2_EXTERNAL_DATA_FILE = 1 << 2  # incompatible feature bit: the guest data lives in another file


def _qcow(buf):
    version = _u32be(buf, 4)
    # both versions keep the backing file offset at 8 and the virtual size at 24
    depends = _u64be(buf, 8) != 0 or (version >= 3 and bool(_u64be(buf, 72) & QCOW2_EXTERNAL_DATA_FILE))
    return ('qcow' if version == 1 else 'qcow2'), _u64be(buf, 24), depends


def _qed(buf):
    features = _u64le(buf, 16)
    return 'qed', _u64le(buf, 48), bool(features & 1)


def _vmdk(buf):
    # a sparse VMDK's embedded descriptor (usually in its first sectors) names any parent
    return 'vmdk', _u64le(buf, 12) * 512, b'parentFileNameHint' in buf


def _vmdk_descriptor(buf):
    return 'vmdk', None, True  # a text descriptor: its data is in the extent files it names


def _vdi(buf):
    return 'vdi', _u64le(buf, 0x170), False


def _vpc(buf):
    return 'vpc', _u64be(buf, 48), False


# (offset, magic, reader or None): the header signatures libvirt probes for
_SIGNATURES = (
    (0, b'QFI\xfb', _qcow),
    (0, b'QED\x00', _qed),
    (0, b'KDMV', _vmdk),
    (0, b'# Disk DescriptorFile', _vmdk_descriptor),
    (0x40, b'\x7f\x10\xda\xbe', _vdi),
    (0, b'conectix', _vpc),
    (0, b'vhdxfile', None),
    (0, b'LUKS\xba\xbe', None),
    (0, b'OOOM', None),  # the old "cow" format
    (0, b'Bochs Virtual HD Image', None),
    (0, b'WithoutFreeSpace', None),  # ploop
    (0, b'WithouFreSpacExt', None),  # ploop
)
_NAMES = {b'vhdxfile': 'vhdx', b'LUKS\xba\xbe': 'luks', b'OOOM': 'cow', b'Bochs Virtual HD Image': 'bochs',
          b'WithoutFreeSpace': 'ploop', b'WithouFreSpacExt': 'ploop'}
_ISO_OFFSET = 0x8001


def _open_regular(path):
    """A read-only descriptor of a regular file; a FIFO, device or directory is refused
    without blocking on it."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(errno.EINVAL, 'not a regular file')
    os.set_blocking(fd, True)
    return fd


def inspect_image(path, option='import_from'):
    """An ImageInfo for the file at `path`; raw when no known header is found."""
    try:
        fd = _open_regular(path)
        with os.fdopen(fd, 'rb') as handle:
            size = os.fstat(handle.fileno()).st_size
            header = handle.read(_HEADER_BYTES)
    except (IOError, OSError) as exc:
        raise StorageError('INVALID_ARGUMENT', '%s: cannot read %s: %s' % (option, path, exc.strerror or exc))
    for offset, magic, reader in _SIGNATURES:
        if header[offset:offset + len(magic)] != magic:
            continue
        if reader is None:
            return ImageInfo(path, _NAMES[magic], size, None)
        try:
            image_format, virtual_size, backing = reader(header)
        except struct.error:
            return ImageInfo(path, 'raw', size, size)
        return ImageInfo(path, image_format, size, virtual_size, backing)
    if header[_ISO_OFFSET:_ISO_OFFSET + 5] == b'CD001':
        return ImageInfo(path, 'iso', size, size)
    return ImageInfo(path, 'raw', size, size)


def data_file(path):
    """The external data file a qcow2 v3 image keeps its guest data in (header extension
    0x44415441), or None."""
    try:
        with os.fdopen(_open_regular(path), 'rb') as handle:
            header = handle.read(_HEADER_BYTES)
        if header[:4] != b'QFI\xfb' or _u32be(header, 4) < 3 or not _u64be(header, 72) & QCOW2_EXTERNAL_DATA_FILE:
            return None
        offset = _u32be(header, 100)  # header length: the extensions follow it
        while offset + 8 <= len(header):
            kind, length = _u32be(header, offset), _u32be(header, offset + 4)
            if kind == 0:
                return None
            if kind == 0x44415441:
                name = header[offset + 8:offset + 8 + length].decode('utf-8', 'replace')
                return os.path.normpath(os.path.join(os.path.dirname(path), name))
            offset += 8 + (length + 7) // 8 * 8
    except (IOError, OSError, struct.error):
        return None
    return None


def image_dependencies(path, headers=None, max_depth=1024):
    """Every other file QEMU opens for the image at `path`, in order: each layer's external
    data file, then the file it is an overlay on, down the chain (a loop ends it). `headers`
    memoizes (data file, backing file) per image across calls."""
    headers = {} if headers is None else headers
    found, seen, current = [], set([path]), path
    while current is not None and len(found) <= max_depth:
        if current not in headers:
            headers[current] = (data_file(current), backing_file(current))
        extra, below = headers[current]
        if extra is not None and extra not in seen:
            found.append(extra)
            seen.add(extra)
        if below is None or below in seen:
            break
        found.append(below)
        seen.add(below)
        current = below
    return found


def backing_file(path):
    """The file a qcow2/qed image is an overlay on (relative names resolved against the
    image's directory), or None: for images no domain XML describes the chain of."""
    try:
        # regular files only: reading a device could hang on a lost LUN, a FIFO forever
        with os.fdopen(_open_regular(path), 'rb') as handle:
            header = handle.read(64)
            if header[:4] == b'QFI\xfb':
                offset, size = _u64be(header, 8), _u32be(header, 16)
            elif header[:4] == b'QED\x00' and _u64le(header, 16) & 1:
                offset, size = struct.unpack_from('<II', header, 56)
            else:
                return None
            if not offset or not size or size > 4096:
                return None
            handle.seek(offset)
            name = handle.read(size).decode('utf-8', 'replace')
    except (IOError, OSError, struct.error):
        return None
    if ':' in name.split('/')[0]:  # a protocol (nbd:, rbd:, json:), not a file
        return None
    return os.path.normpath(os.path.join(os.path.dirname(path), name))


class SparseReader(object):
    """Feeds a file to libvirt's sparse stream: data sections are read, holes are only
    reported and skipped, so they are neither read nor written as zeros."""

    def __init__(self, path):
        self.path = path
        self.fd = _open_regular(path)
        self.size = os.fstat(self.fd).st_size
        self.bytes_read = 0
        self.hole_bytes = 0

    def close(self):
        os.close(self.fd)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def section(self, _stream, _opaque):
        """[in_data, length] of the section starting at the current offset."""
        here = os.lseek(self.fd, 0, os.SEEK_CUR)
        if here >= self.size:
            return [0, 0]
        try:
            data = os.lseek(self.fd, here, os.SEEK_DATA)
        except OSError as exc:
            if exc.errno != errno.ENXIO:  # ENXIO: nothing but a hole up to the end
                raise
            data = self.size
        if data > here:
            os.lseek(self.fd, here, os.SEEK_SET)
            return [0, data - here]
        hole = os.lseek(self.fd, here, os.SEEK_HOLE)
        os.lseek(self.fd, here, os.SEEK_SET)
        return [1, hole - here]

    def read(self, _stream, nbytes, _opaque):
        chunk = os.read(self.fd, nbytes)
        self.bytes_read += len(chunk)
        return chunk

    def skip(self, _stream, length, _opaque):
        os.lseek(self.fd, length, os.SEEK_CUR)
        self.hole_bytes += length
        return 0
