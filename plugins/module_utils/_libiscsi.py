# -*- coding: utf-8 -*-
# Copyright (c) 2026 virtops.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""User-space iSCSI through libiscsi (the library QEMU's own initiator uses), via ctypes.

Only a handful of calls are used, none that depends on a libiscsi structure's layout
except the public discovery list: a context, CHAP, connect and login, SendTargets, and
raw SCSI commands whose data lands in buffers of our own. What the LUN answers is
decoded by `_scsi`, as the kernel transport's sysfs bytes are.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import ctypes
import ctypes.util
import re

from ansible_collections.virtops.storage.plugins.module_utils._errors import StorageError

SESSION_DISCOVERY, SESSION_NORMAL = 1, 2
XFER_READ = 1
STATUS_GOOD, STATUS_CHECK_CONDITION = 0, 2
STATUS_TRANSPORT = 0x0f000000  # libiscsi's own TIMEOUT, CANCELLED, ERROR statuses start here
TCP_SYN_RETRIES = 2  # a portal that drops SYNs is given up after seconds, not the kernel's two minutes
UNIT_ATTENTION_RETRIES = 4  # a fresh I_T nexus reports power-on/reset once per LUN
DEFAULT_TIMEOUT = 10

_LIB = None


class _Portal(ctypes.Structure):
    pass


_Portal._fields_ = [('next', ctypes.POINTER(_Portal)), ('portal', ctypes.c_char_p)]


class _Target(ctypes.Structure):
    pass


_Target._fields_ = [('next', ctypes.POINTER(_Target)), ('target_name', ctypes.c_char_p),
                    ('portals', ctypes.POINTER(_Portal))]


def library():
    """The libiscsi shared library with the signatures used here; INVALID_ARGUMENT with the
    package to install when it is missing."""
    global _LIB
    if _LIB is not None:
        return _LIB
    name = ctypes.util.find_library('iscsi') or 'libiscsi.so.7'
    try:
        lib = ctypes.CDLL(name)
    except OSError:
        raise StorageError('INVALID_ARGUMENT', 'transport: qemu needs the libiscsi library on the host (Debian: '
                                               'libiscsi7, RHEL: libiscsi); it was not found')
    ptr, text, num = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int
    signatures = {
        'iscsi_create_context': (ptr, [text]),
        'iscsi_destroy_context': (num, [ptr]),
        'iscsi_get_error': (text, [ptr]),
        'iscsi_set_timeout': (num, [ptr, num]),
        'iscsi_set_noautoreconnect': (None, [ptr, num]),
        'iscsi_set_tcp_syncnt': (num, [ptr, num]),
        'iscsi_set_session_type': (num, [ptr, num]),
        'iscsi_set_targetname': (num, [ptr, text]),
        'iscsi_set_initiator_username_pwd': (num, [ptr, text, text]),
        'iscsi_connect_sync': (num, [ptr, text]),
        'iscsi_login_sync': (num, [ptr]),
        'iscsi_logout_sync': (num, [ptr]),
        'iscsi_full_connect_sync': (num, [ptr, text, num]),
        'iscsi_discovery_sync': (ctypes.POINTER(_Target), [ptr]),
        'iscsi_free_discovery_data': (None, [ptr, ctypes.POINTER(_Target)]),
        'scsi_create_task': (ptr, [num, ctypes.POINTER(ctypes.c_ubyte), num, num]),
        'scsi_task_add_data_in_buffer': (num, [ptr, num, ctypes.POINTER(ctypes.c_ubyte)]),
        'iscsi_scsi_command_sync': (ptr, [ptr, num, ptr, ptr]),
        'scsi_task_get_status': (num, [ptr, ptr]),
        'scsi_free_scsi_task': (None, [ptr]),
    }
    for function, (restype, argtypes) in signatures.items():
        call = getattr(lib, function)
        call.restype, call.argtypes = restype, argtypes
    _LIB = lib
    return lib


def split_portal(portal):
    """(host, port) of "host[:port]" or "[v6]:port"; port 3260 when left out."""
    match = re.match(r'^\[([^\]]+)\](?::(\d+))?$', portal) or re.match(r'^([^:\[\]]+)(?::(\d+))?$', portal)
    if not match or not match.group(1).strip() or (match.group(2) and not 0 < int(match.group(2)) < 65536):
        raise StorageError('INVALID_ARGUMENT', 'portal must be host[:port] (or [ipv6]:port), not %r' % portal)
    return match.group(1), int(match.group(2) or 3260)


def _encode(value):
    return value.encode('utf-8') if value is not None else None


def classify(message):
    """The error code a libiscsi failure message means."""
    lowered = message.lower()
    if 'authentication failure' in lowered or 'authorization failure' in lowered or 'chap' in lowered:
        return 'ISCSI_AUTH_FAILED'
    if ('log in' in lowered or 'login' in lowered) and 'fail' in lowered:  # target not found, and the like
        return 'ISCSI_LOGIN_FAILED'
    return 'ISCSI_UNREACHABLE'


class Connection(object):
    """One libiscsi context: a discovery session (target None) or a normal session to one
    target. Use as a context manager; it logs out and frees itself."""

    def __init__(self, portal, initiator, target=None, username=None, password=None, timeout=DEFAULT_TIMEOUT):
        self.lib = library()
        self.portal = portal
        self.target = target
        host, port = split_portal(portal)
        self._address = ('[%s]:%d' % (host, port) if ':' in host else '%s:%d' % (host, port)).encode('utf-8')
        self._ctx = self.lib.iscsi_create_context(_encode(initiator))
        if not self._ctx:
            raise StorageError('INVALID_ARGUMENT', 'libiscsi refused initiator name %r' % initiator)
        self._logged_in = False
        self.timeout = int(timeout)
        self._broken = False
        self._buffers = []
        self.lib.iscsi_set_timeout(self._ctx, int(timeout))
        # a dropped connection fails the command instead of reconnecting forever
        self.lib.iscsi_set_noautoreconnect(self._ctx, 1)
        self.lib.iscsi_set_tcp_syncnt(self._ctx, TCP_SYN_RETRIES)
        if username:
            self.lib.iscsi_set_initiator_username_pwd(self._ctx, _encode(username), _encode(password or ''))

    def __enter__(self):
        try:
            self._login()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc):
        self.close()

    def _error(self):
        message = self.lib.iscsi_get_error(self._ctx)
        return message.decode('utf-8', 'replace').strip() if message else 'unknown error'

    def _login(self):
        lib = self.lib
        what = 'target %s' % self.target if self.target else 'discovery'
        if self.target is None:
            lib.iscsi_set_session_type(self._ctx, SESSION_DISCOVERY)
            if lib.iscsi_connect_sync(self._ctx, self._address) != 0:
                raise StorageError('ISCSI_UNREACHABLE', 'cannot connect to iSCSI portal %s (connection refused, or no '
                                                        'answer within %d s); check the address and port, the network, '
                                                        'and that the target daemon listens there (libiscsi: %s)'
                                   % (self.portal, self.timeout, self._error()))
            failed = lib.iscsi_login_sync(self._ctx) != 0
        else:
            lib.iscsi_set_session_type(self._ctx, SESSION_NORMAL)
            lib.iscsi_set_targetname(self._ctx, _encode(self.target))
            # LUN -1: no TEST UNIT READY to LUN 0 at login (a target need not map LUN 0 to us)
            failed = lib.iscsi_full_connect_sync(self._ctx, self._address, -1) != 0
        if failed:
            message = self._error()
            code = classify(message)
            if code == 'ISCSI_UNREACHABLE':
                message = 'connection refused, or no answer within %d s (libiscsi: %s); check the address and port, ' \
                          'the network, and that the target daemon listens there' % (self.timeout, message)
            raise StorageError(code, 'iSCSI login (%s) at %s failed: %s%s' % (
                what, self.portal, message, {
                    'ISCSI_AUTH_FAILED': '; check the CHAP username and password%s' % (
                        ' (discovery_auth)' if self.target is None else ' (auth)'),
                    'ISCSI_LOGIN_FAILED': '; check that the portal offers this target to this initiator',
                }.get(code, '')))
        self._logged_in = True

    def close(self):
        if self._ctx:
            if self._broken:
                # a command failed with its PDU still queued: destroying the context would run the
                # PDU's callback on memory that is gone. The context is left to the process's end.
                self._ctx = None
                return
            if self._logged_in:
                self.lib.iscsi_logout_sync(self._ctx)
            self.lib.iscsi_destroy_context(self._ctx)
            self._ctx = None

    def discover(self):
        """[(target IQN, [portal, ...])] the portal reports (SendTargets=All)."""
        found = self.lib.iscsi_discovery_sync(self._ctx)
        if not found:
            message = self._error()
            if 'no targets' in message.lower() or not message or message == 'unknown error':
                return []
            raise StorageError('ISCSI_UNREACHABLE', 'SendTargets discovery at %s failed: %s' % (self.portal, message))
        targets = []
        try:
            item = found
            while item:
                portals = []
                portal = item.contents.portals
                while portal:
                    portals.append(portal.contents.portal.decode('utf-8', 'replace'))
                    portal = portal.contents.next
                targets.append((item.contents.target_name.decode('utf-8', 'replace'), portals))
                item = item.contents.next
        finally:
            self.lib.iscsi_free_discovery_data(self._ctx, found)
        return targets

    def command(self, lun, cdb, size, retry_check_condition=False):
        """Send a data-in CDB to `lun`; returns the answer's bytes, or None when the LUN
        refuses the command (CHECK CONDITION; retried a few times when asked, for the unit
        attention a new session reports once per LUN). A lost connection or a libiscsi
        timeout is ISCSI_UNREACHABLE."""
        lib = self.lib
        for _attempt in range(UNIT_ATTENTION_RETRIES if retry_check_condition else 1):
            cdb_buffer = (ctypes.c_ubyte * len(cdb)).from_buffer_copy(bytes(cdb))
            task = lib.scsi_create_task(len(cdb), cdb_buffer, XFER_READ, size)
            if not task:
                raise StorageError('ISCSI_UNREACHABLE', 'libiscsi could not allocate a SCSI task')
            data = (ctypes.c_ubyte * size)()
            lib.scsi_task_add_data_in_buffer(task, size, data)
            self._buffers.append(data)  # the task may outlive this call on a failure: so does its buffer
            done = lib.iscsi_scsi_command_sync(self._ctx, lun, task, None)
            if not done:
                # the task is still queued in libiscsi: neither it nor the context may be freed
                message = self._error()
                self._broken = True
                raise StorageError('ISCSI_UNREACHABLE', 'SCSI command to %s LUN %d failed: %s'
                                   % (self.target, lun, message))
            status = lib.scsi_task_get_status(task, None)
            lib.scsi_free_scsi_task(task)
            self._buffers.pop()
            if status == STATUS_GOOD:
                return bytes(data)
            if status >= STATUS_TRANSPORT:
                self._broken = True  # the connection is gone: a logout would leave its PDU on a dead stack
                raise StorageError('ISCSI_UNREACHABLE', 'SCSI command to %s LUN %d failed: %s (status 0x%x)'
                                   % (self.target, lun, self._error(), status))
            if status != STATUS_CHECK_CONDITION:
                return None
        return None

    def report_luns(self):
        """REPORT LUNS: first its length, then the whole list."""
        head = self.command(0, [0xa0, 0, 0, 0, 0, 0, 0, 0, 0, 16, 0, 0], 16)
        if head is None:
            raise StorageError('ISCSI_UNREACHABLE', 'target %s refused REPORT LUNS' % self.target)
        length = 8 + int.from_bytes(head[:4], 'big')
        if length <= 16:
            return head
        length = min(length, 1 << 20)
        answer = self.command(0, [0xa0, 0, 0, 0, 0, 0] + list(length.to_bytes(4, 'big')) + [0, 0], length)
        if answer is None:
            raise StorageError('ISCSI_UNREACHABLE', 'target %s refused REPORT LUNS' % self.target)
        return answer

    def inquiry(self, lun, page=None, size=1024):
        """A standard INQUIRY (page None) or the VPD page `page`."""
        if page is None:
            return self.command(lun, [0x12, 0, 0, 0, 96, 0], 96)
        return self.command(lun, [0x12, 1, page, size >> 8, size & 0xff, 0], size)

    def read_capacity16(self, lun):
        """READ CAPACITY(16), retried past unit attentions; READ CAPACITY(10) on targets
        without it (its answer converted to the (16) layout), unless the LUN is over 2 TiB."""
        answer = self.command(lun, [0x9e, 0x10] + [0] * 8 + [0, 0, 0, 32] + [0, 0], 32, retry_check_condition=True)
        if answer is not None:
            return answer
        short = self.command(lun, [0x25] + [0] * 9, 8, retry_check_condition=True)
        if short is None or short[:4] == b'\xff\xff\xff\xff':
            return None
        return bytes(4) + short[:4] + short[4:8]
