# -*- coding: utf-8 -*-
# Copyright (c) 2026 virtops.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one runner of open-iscsi's `iscsiadm`: the kernel transport's host initiator.

Exit codes that describe state are answers, not failures: 21 (no records / no sessions)
and 15 (session already present). Every other failure names the command (passwords
masked) and iscsiadm's own words. Discovery always uses `-o new`, so existing node
records keep their `node.startup` and CHAP settings.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import collections
import re
import socket

from ansible_collections.virtops.storage.plugins.module_utils._errors import StorageError

NO_RECORDS = 21  # ISCSI_ERR_NO_OBJS_FOUND
SESSION_EXISTS = 15  # ISCSI_ERR_SESS_EXISTS
LOGIN_AUTH_FAILED = 24  # ISCSI_ERR_LOGIN_AUTH_FAILED
INVALID_REQUEST = 7  # ISCSI_ERR_INVAL
IDBM_NO_RECORD = 6  # ISCSI_ERR_IDBM: what a missing discoverydb record gives
UNREACHABLE_CODES = {
    4: 'connection failure',  # ISCSI_ERR_TRANS (older releases, discovery)
    8: 'connection timed out',  # ISCSI_ERR_TRANS_TIMEOUT
    11: 'iSCSI PDU timed out',  # ISCSI_ERR_PDU_TIMEOUT (2.1.x discovery)
}
PASSWORD_KEYS = re.compile(r'password', re.I)

Session = collections.namedtuple('Session', 'sid portal tpgt target')
Node = collections.namedtuple('Node', 'portal tpgt target')

_SESSION_RE = re.compile(r'^\S+:\s+\[(\d+)\]\s+(\S+),(\d+)\s+(\S+)')
_RECORD_RE = re.compile(r'^(\S+),(-?\d+)\s+(\S+)$')


def normal_portal(portal):
    """"host:port" as iscsiadm prints it (3260 when no port is given)."""
    if portal.startswith('['):
        return portal if ']:' in portal else portal + ':3260'
    return portal if ':' in portal else portal + ':3260'


def portal_addresses(portal):
    """Every "address:port" form iscsiadm may record the portal under: the name as given
    and the addresses it resolves to (records and sessions keep addresses)."""
    portal = normal_portal(portal)
    host, _sep, port = portal.rpartition(':')
    forms = set([portal])
    try:
        found = socket.getaddrinfo(host.strip('[]'), int(port), proto=socket.IPPROTO_TCP)
        for family, _type, _proto, _name, address in found:
            forms.add('[%s]:%s' % (address[0], port) if family == socket.AF_INET6 else '%s:%s' % (address[0], port))
    except (socket.error, ValueError):
        pass
    return forms


def masked(args):
    """The command line as it may be shown: the value after `-n <password key> -v` hidden."""
    shown = list(args)
    for index, word in enumerate(shown):
        if word == '-v' and index >= 2 and shown[index - 2] == '-n' and PASSWORD_KEYS.search(shown[index - 1]):
            if index + 1 < len(shown):
                shown[index + 1] = '********'
    return ' '.join(shown)


class Iscsiadm(object):
    """`run(args)` -> (rc, stdout, stderr) runs a command (AnsibleModule.run_command)."""

    def __init__(self, run, binary='iscsiadm'):
        self._run = run
        self.binary = binary
        self.calls = []  # masked command lines, newest last (for errors and tests)

    def run(self, args, allowed=(0,), what=None):
        command = [self.binary] + list(args)
        self.calls.append(masked(command))
        rc, out, err = self._run(command)
        if rc not in allowed:
            raise self.error(rc, command, out, err, what)
        return rc, out, err

    def error(self, rc, command, out, err, what=None):
        shown = out if '-S' not in command else ''  # `-o show -S` prints the stored passwords
        words = (err or shown or '').strip().replace('\n', ' / ')
        detail = '`%s` exited %d: %s' % (masked(command), rc, words or 'no output')
        if rc == LOGIN_AUTH_FAILED:
            return StorageError('ISCSI_AUTH_FAILED', 'the target refused the CHAP credentials (%s); check auth and '
                                                     'discovery_auth' % detail)
        if rc in UNREACHABLE_CODES:
            return StorageError('ISCSI_UNREACHABLE', 'the iSCSI portal cannot be reached (%s): %s; check the portal '
                                                     'address, the network and the target daemon'
                                % (UNREACHABLE_CODES[rc], detail))
        return StorageError('ISCSI_LOGIN_FAILED', '%s failed: %s' % (what or 'iscsiadm', detail))

    # discovery ------------------------------------------------------------------------
    def discover(self, portal, persistent=True, with_record=False):
        """SendTargets discovery: [Node]. `-o new` adds missing node records and keeps
        existing ones as they are; `persistent=False` writes nothing (planning, info).
        `with_record` discovers through the discoverydb record (its discovery CHAP)."""
        portal = normal_portal(portal)
        mode = ['-m', 'discoverydb', '-t', 'sendtargets', '-p', portal, '-D'] if with_record else [
            '-m', 'discovery', '-t', 'sendtargets', '-p', portal]
        rc, out, _err = self.run(mode + ['-o', 'new' if persistent else 'nonpersistent'], allowed=(0, NO_RECORDS))
        return [] if rc == NO_RECORDS else parse_records(out)  # 21: the portal offers nothing to us

    def discovery_settings(self, portal, secrets=True):
        """{key: value} of the portal's discoverydb record (passwords shown with -S, kept in
        this process), or None when there is none."""
        args = ['-m', 'discoverydb', '-t', 'sendtargets', '-p', normal_portal(portal), '-o', 'show']
        # 2.1.8 says "Discovery record [...] not found" with exit 6 (ISCSI_ERR_IDBM)
        rc, out, _err = self.run(args + (['-S'] if secrets else []), allowed=(0, NO_RECORDS, IDBM_NO_RECORD))
        return None if rc != 0 else parse_settings(out)

    def new_discovery_record(self, portal):
        self.run(['-m', 'discoverydb', '-t', 'sendtargets', '-p', normal_portal(portal), '-o', 'new'])

    def update_discovery_record(self, portal, name, value):
        self.run(['-m', 'discoverydb', '-t', 'sendtargets', '-p', normal_portal(portal), '-o', 'update', '-n', name,
                  '-v', value])

    def delete_discovery_record(self, portal):
        self.run(['-m', 'discoverydb', '-t', 'sendtargets', '-p', normal_portal(portal), '-o', 'delete'],
                 allowed=(0, NO_RECORDS))

    # node records --------------------------------------------------------------------
    def nodes(self):
        rc, out, _err = self.run(['-m', 'node'], allowed=(0, NO_RECORDS))
        return [] if rc == NO_RECORDS else parse_records(out)

    def node_settings(self, target, portal, secrets=False):
        """{key: value} of the node record, or None when there is none. `secrets` shows the
        stored CHAP password (-S) for comparison; it never leaves this process."""
        args = ['-m', 'node', '-T', target, '-p', normal_portal(portal), '-o', 'show'] + (['-S'] if secrets else [])
        rc, out, _err = self.run(args, allowed=(0, NO_RECORDS))
        return None if rc == NO_RECORDS else parse_settings(out)

    def update_node(self, target, portal, name, value):
        self.run(['-m', 'node', '-T', target, '-p', normal_portal(portal), '-o', 'update', '-n', name, '-v', value])

    def delete_node(self, target, portal):
        self.run(['-m', 'node', '-T', target, '-p', normal_portal(portal), '-o', 'delete'], allowed=(0, NO_RECORDS))

    # sessions ------------------------------------------------------------------------
    def sessions(self):
        rc, out, _err = self.run(['-m', 'session'], allowed=(0, NO_RECORDS))
        if rc == NO_RECORDS:
            return []
        found = []
        for line in out.splitlines():
            match = _SESSION_RE.match(line.strip())
            if match:
                found.append(Session(int(match.group(1)), match.group(2), int(match.group(3)), match.group(4)))
        return found

    def login(self, target, portal):
        """Log in; a session that is already there is fine (exit 15)."""
        self.run(['-m', 'node', '-T', target, '-p', normal_portal(portal), '--login'],
                 allowed=(0, SESSION_EXISTS), what='login to %s at %s' % (target, portal))

    def logout(self, target, portal):
        """Log out; no session is fine (exit 21)."""
        self.run(['-m', 'node', '-T', target, '-p', normal_portal(portal), '--logout'], allowed=(0, NO_RECORDS))

    def rescan(self, sid):
        self.run(['-m', 'session', '-r', str(sid), '--rescan'])


def parse_settings(out):
    """{key: value} of a record as `-o show` prints it ("key = value" lines)."""
    settings = {}
    for line in out.splitlines():
        if ' = ' in line and not line.startswith('#'):
            key, value = line.split(' = ', 1)
            settings[key.strip()] = value.strip()
    return settings


def parse_records(out):
    """[Node] from discovery or `-m node` output: "host:port,tpgt iqn" lines."""
    found = []
    for line in out.splitlines():
        match = _RECORD_RE.match(line.strip())
        if match:
            found.append(Node(match.group(1), int(match.group(2)), match.group(3)))
    return found
