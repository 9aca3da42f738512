# -*- coding: utf-8 -*-
# Copyright (c) 2026 virtops.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The collection's one libvirt client: connection, lookups and error mapping."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import contextlib
import re
import threading
import time
import traceback

from urllib.parse import urlparse

from ansible_collections.virtops.storage.plugins.module_utils._errors import StorageError

try:
    import libvirt
    LIBVIRT_IMPORT_ERROR = None
except ImportError:
    libvirt = None
    LIBVIRT_IMPORT_ERROR = traceback.format_exc()

DEFAULT_URI = 'qemu:///system'
_UUID_RE = re.compile(r'^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$')


# Failures libvirt reports only in words (errno text, libiscsi's status), as libvirt 9.0
# words them; the first fragment found decides.
_MESSAGE_CODES = (
    ('No space left on device', 'NO_SPACE'),
    ('Authentication failure', 'ISCSI_AUTH_FAILED'),
    ('Failed to login', 'ISCSI_LOGIN_FAILED'),
    ('Failed to connect: iscsi', 'ISCSI_UNREACHABLE'),
)


def _code_for(err):
    """The SPEC error code for a libvirtError raised on an open connection."""
    message = err.get_error_message() or str(err)
    for fragment, code in _MESSAGE_CODES:
        if fragment in message:
            return code
    number = err.get_error_code()
    for name, code in (('VIR_ERR_NO_STORAGE_POOL', 'POOL_NOT_FOUND'), ('VIR_ERR_NO_STORAGE_VOL', 'VOLUME_NOT_FOUND'),
                       ('VIR_ERR_NO_DOMAIN', 'DOMAIN_NOT_FOUND'), ('VIR_ERR_NO_CONNECT', 'LIBVIRT_UNREACHABLE')):
        if number == getattr(libvirt, name, None):
            return code
    if number == libvirt.VIR_ERR_SYSTEM_ERROR and err.get_error_domain() in (
            libvirt.VIR_FROM_RPC, libvirt.VIR_FROM_REMOTE):
        return 'LIBVIRT_UNREACHABLE'
    return 'LIBVIRT_ERROR'


def is_missing(err):
    """True for libvirt's "no such pool/volume/domain/secret" errors, and only those."""
    return err.get_error_code() in (
        libvirt.VIR_ERR_NO_STORAGE_POOL, libvirt.VIR_ERR_NO_STORAGE_VOL,
        libvirt.VIR_ERR_NO_DOMAIN, libvirt.VIR_ERR_NO_SECRET)


def _ignore_libvirt_errors(_context, _error):
    """libvirt prints every error to stderr by default; ours are raised, not printed."""


_EVENT_LOOP = []


def _run_event_loop():
    while True:
        libvirt.virEventRunDefaultImpl()


def start_event_loop():
    """libvirt delivers domain events only to connections opened after an event loop was
    registered; one daemon thread per process runs it."""
    if not _EVENT_LOOP:
        libvirt.virEventRegisterDefaultImpl()
        thread = threading.Thread(target=_run_event_loop, name='libvirt-events')
        thread.daemon = True
        thread.start()
        _EVENT_LOOP.append(thread)


class DeviceRemovalWatch(object):
    """Collects the device-removed (and removal-failed) events of one domain, so a hot-unplug
    can wait for the guest to actually let go of a device."""

    def __init__(self, conn, domain):
        self._conn = conn
        self._changed = threading.Condition()
        self.removed = set()
        self.failed = set()
        self._ids = []
        for event, into in ((libvirt.VIR_DOMAIN_EVENT_ID_DEVICE_REMOVED, self.removed),
                            (libvirt.VIR_DOMAIN_EVENT_ID_DEVICE_REMOVAL_FAILED, self.failed)):
            self._ids.append(conn.domainEventRegisterAny(domain, event, self._record, into))

    def _record(self, _conn, _domain, alias, into):
        with self._changed:
            into.add(alias)
            self._changed.notify_all()

    def wait(self, alias, deadline):
        """'removed', 'failed', or None when `deadline` (time.monotonic()) passed first."""
        with self._changed:
            while True:
                if alias in self.removed:
                    return 'removed'
                if alias in self.failed:
                    return 'failed'
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._changed.wait(min(left, 0.5))

    def close(self):
        for callback_id in self._ids:
            try:
                self._conn.domainEventDeregisterAny(callback_id)
            except libvirt.libvirtError:
                pass
        self._ids = []


class LibvirtClient(object):
    """A lazily opened libvirt connection with lookups that return None only for
    "no such object" and raise StorageError for everything else."""

    def __init__(self, uri=None, events=False):
        self.uri = uri or DEFAULT_URI
        self.events = events  # domain events wanted (hot-unplug waits for them)
        self._conn = None
        self._scratch = None

    @property
    def conn(self):
        if self._conn is None:
            libvirt.registerErrorHandler(_ignore_libvirt_errors, None)
            if self.events:
                start_event_loop()
            try:
                self._conn = libvirt.open(self.uri)
            except libvirt.libvirtError as err:
                raise StorageError(
                    'LIBVIRT_UNREACHABLE',
                    'cannot connect to libvirt at %s: %s; check that libvirtd runs there and '
                    'that this user may connect' % (self.uri, err.get_error_message() or err))
        return self._conn

    def close(self):
        for conn in (self._conn, self._scratch):
            if conn is not None:
                try:
                    conn.close()
                except libvirt.libvirtError:
                    pass
        self._conn = self._scratch = None

    def canonical_pool_xml(self, xml):
        """The pool definition as libvirt itself parses and writes it back (case of UUIDs,
        trailing slashes, defaults), without touching any daemon: libvirt's in-process
        test driver holds the definition for a moment. A definition libvirt rejects is
        an INVALID_ARGUMENT, found before anything changes."""
        if self._scratch is None:
            libvirt.registerErrorHandler(_ignore_libvirt_errors, None)
            self._scratch = libvirt.open('test:///default')
            for pool in self._scratch.listAllStoragePools(0):  # its demo pool could clash
                if pool.isActive():
                    pool.destroy()
                pool.undefine()
        try:
            pool = self._scratch.storagePoolDefineXML(xml, 0)
            try:
                return pool.XMLDesc(0)
            finally:
                pool.undefine()
        except libvirt.libvirtError as err:
            raise StorageError('INVALID_ARGUMENT', 'xml is not a pool definition libvirt accepts: %s'
                               % (err.get_error_message() or err))

    @contextlib.contextmanager
    def errors(self, doing):
        """Turn a libvirtError raised while `doing` something into a StorageError."""
        try:
            yield
        except libvirt.libvirtError as err:
            raise StorageError(_code_for(err), '%s failed: %s' % (doing, err.get_error_message() or err),
                               libvirt_code=err.get_error_code())

    def _lookup(self, doing, lookup, *args):
        try:
            return lookup(*args)
        except libvirt.libvirtError as err:
            if is_missing(err):
                return None
            raise StorageError(_code_for(err), '%s failed: %s' % (doing, err.get_error_message() or err),
                               libvirt_code=err.get_error_code())

    # pools -----------------------------------------------------------------------------
    def lookup_pool(self, name):
        return self._lookup('look up pool %s' % name, self.conn.storagePoolLookupByName, name)

    def get_pool(self, name):
        pool = self.lookup_pool(name)
        if pool is None:
            raise StorageError('POOL_NOT_FOUND', 'storage pool %r does not exist' % name)
        return pool

    def pool_xml(self, pool, inactive=False, missing_ok=False):
        """A pool's XML; `inactive` asks for the stored definition, which drivers that do
        not keep one apart (libvirt's test and ESX drivers) refuse: there the live XML is it.
        With `missing_ok`, None when the pool has gone away since it was looked up."""
        if missing_ok:
            try:
                return self.pool_xml(pool, inactive)
            except StorageError as err:
                if err.code == 'POOL_NOT_FOUND':
                    return None
                raise
        with self.errors('read the definition of pool %s' % pool.name()):
            if inactive:
                try:
                    return pool.XMLDesc(libvirt.VIR_STORAGE_XML_INACTIVE)
                except libvirt.libvirtError as err:
                    if err.get_error_code() != libvirt.VIR_ERR_INVALID_ARG or 'unsupported flags' not in str(err):
                        raise
            return pool.XMLDesc(0)

    def pool_is_active(self, pool):
        """Whether a pool runs; None when it has gone away since it was looked up."""
        active = self._lookup('read pool %s' % pool.name(), pool.isActive)
        return None if active is None else bool(active)

    @property
    def canonical_uri(self):
        """The URI libvirt says it is connected to: one name for one daemon, whatever the
        spelling of `uri` (locks are keyed on it)."""
        with self.errors('read the connection URI'):
            return self.conn.getURI()

    @property
    def is_local(self):
        """Whether libvirt runs on this host (no host part in the URI): then paths libvirt
        reports can be looked at here."""
        return not urlparse(self.uri).netloc

    def list_pools(self, flags=0):
        with self.errors('list storage pools'):
            return self.conn.listAllStoragePools(flags)

    def define_pool(self, xml):
        with self.errors('define storage pool'):
            return self.conn.storagePoolDefineXML(xml, 0)

    # volumes ---------------------------------------------------------------------------
    def lookup_volume(self, pool, name):
        return self._lookup('look up volume %s in pool %s' % (name, pool.name()), pool.storageVolLookupByName, name)

    def lookup_volume_by_path(self, path):
        return self._lookup('look up volume at %s' % path, self.conn.storageVolLookupByPath, path)

    def lookup_volume_by_key(self, key):
        return self._lookup('look up volume with key %s' % key, self.conn.storageVolLookupByKey, key)

    def get_volume(self, pool_name, name):
        volume = self.lookup_volume(self.get_pool(pool_name), name)
        if volume is None:
            raise StorageError('VOLUME_NOT_FOUND', 'volume %r does not exist in pool %r' % (name, pool_name))
        return volume

    def delete_volume(self, pool_name, name):
        """Delete a volume; one that is already gone is left so."""
        volume = self.lookup_volume(self.get_pool(pool_name), name)
        if volume is not None:
            with self.errors('delete volume %s of pool %s' % (name, pool_name)):
                volume.delete(0)

    def volume_xml(self, volume, missing_ok=False):
        """A volume's XML; with `missing_ok`, None when the volume (or its pool) has gone
        away since it was listed."""
        if missing_ok:
            try:
                return volume.XMLDesc(0)
            except libvirt.libvirtError as err:
                # gone, or its pool stopped by another run after the listing ("is not active")
                if is_missing(err) or err.get_error_code() == libvirt.VIR_ERR_OPERATION_INVALID:
                    return None
                raise StorageError(_code_for(err), 'read volume %s failed: %s'
                                   % (volume.name(), err.get_error_message() or err), libvirt_code=err.get_error_code())
        with self.errors('read volume %s' % volume.name()):
            return volume.XMLDesc(0)

    def active_pools(self):
        return self.list_pools(libvirt.VIR_CONNECT_LIST_STORAGE_POOLS_ACTIVE)

    def pool_volumes(self, pool):
        """The volumes of a pool, or [] when the pool has gone away or stopped meanwhile."""
        try:
            return pool.listAllVolumes(0)
        except libvirt.libvirtError as err:
            if is_missing(err) or err.get_error_code() == libvirt.VIR_ERR_OPERATION_INVALID:
                return []
            raise StorageError(_code_for(err), 'list the volumes of pool %s failed: %s'
                               % (pool.name(), err.get_error_message() or err), libvirt_code=err.get_error_code())

    def upload(self, volume, reader):
        """Stream a file into a volume as libvirt's sparse stream: only the data sections
        of `reader` (an _images.SparseReader) cross the connection; holes are sent as
        their length."""
        stream = self.conn.newStream(0)
        try:
            with self.errors('upload %s into volume %s' % (reader.path, volume.name())):
                volume.upload(stream, 0, reader.size, libvirt.VIR_STORAGE_VOL_UPLOAD_SPARSE_STREAM)
                stream.sparseSendAll(reader.read, reader.section, reader.skip, None)
                stream.finish()
        except BaseException:
            try:
                stream.abort()
            except libvirt.libvirtError:
                pass
            raise

    # domains ---------------------------------------------------------------------------
    def lookup_domain(self, name_or_uuid):
        if _UUID_RE.match(name_or_uuid):
            found = self._lookup('look up domain %s' % name_or_uuid, self.conn.lookupByUUIDString, name_or_uuid)
            if found is not None:
                return found
        return self._lookup('look up domain %s' % name_or_uuid, self.conn.lookupByName, name_or_uuid)

    def get_domain(self, name_or_uuid):
        domain = self.lookup_domain(name_or_uuid)
        if domain is None:
            raise StorageError('DOMAIN_NOT_FOUND', 'domain %r does not exist' % name_or_uuid)
        return domain

    def list_domains(self, flags=0):
        with self.errors('list domains'):
            return self.conn.listAllDomains(flags)

    def domain_xml(self, domain, flags=0):
        """A domain's XML, or None when the domain has gone away since it was listed."""
        return self._lookup('read the definition of domain %s' % domain.name(), domain.XMLDesc, flags)

    def domain_state(self, domain):
        """(running, persistent, uuid) of a domain; running covers paused guests too."""
        with self.errors('read the state of domain %s' % domain.name()):
            return bool(domain.isActive()), bool(domain.isPersistent()), domain.UUIDString()

    @staticmethod
    def _view_flags(live):
        return libvirt.VIR_DOMAIN_AFFECT_LIVE if live else libvirt.VIR_DOMAIN_AFFECT_CONFIG

    def attach_device(self, domain, xml, live):
        view = 'running domain' if live else 'definition of domain'
        with self.errors('attach a device to the %s %s' % (view, domain.name())):
            domain.attachDeviceFlags(xml, self._view_flags(live))

    def detach_device(self, domain, xml, live):
        view = 'running domain' if live else 'definition of domain'
        with self.errors('detach a device from the %s %s' % (view, domain.name())):
            domain.detachDeviceFlags(xml, self._view_flags(live))

    def update_device(self, domain, xml, live):
        view = 'running domain' if live else 'definition of domain'
        with self.errors('update a device of the %s %s' % (view, domain.name())):
            domain.updateDeviceFlags(xml, self._view_flags(live))

    def define_domain(self, xml):
        with self.errors('define domain'):
            return self.conn.defineXML(xml)

    def watch_device_removal(self, domain):
        """A DeviceRemovalWatch for `domain`; the client must have been made with events=True."""
        if not self.events:
            raise ValueError('the client was opened without domain events')
        with self.errors('watch the devices of domain %s' % domain.name()):
            return DeviceRemovalWatch(self.conn, domain)

    # secrets ---------------------------------------------------------------------------
    def lookup_secret(self, usage_type, usage_id):
        return self._lookup('look up secret %s' % usage_id, self.conn.secretLookupByUsage, usage_type, usage_id)

    def define_secret(self, xml):
        with self.errors('define secret'):
            return self.conn.secretDefineXML(xml, 0)
