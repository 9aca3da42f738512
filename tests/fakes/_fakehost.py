# -*- coding: utf-8 -*-
"""The library behind tests/fakes/iscsiadm: a stand-in for open-iscsi 2.1.8's iscsiadm
(Debian 12) plus the kernel side a login has on a real host (sysfs, /dev, udev links,
multipath maps), all under the directory $VIRTOPS_STORAGE_SYSROOT.

What is real: the node/discovery records (open-iscsi's own on-disk layout and format),
every output text and exit code (checked against the 2.1.8 binary and its sources, see
README.md), reachability, CHAP and the SCSI answers (a real iSCSI login to the lab's tgtd
through the collection's own libiscsi client), and the block devices (/dev/sdX is a real
block node on a loop device over the LUN's tgtd backing file).

Never writes a CHAP password anywhere but the record files, where open-iscsi keeps it.
"""

from __future__ import absolute_import, division, print_function

import fcntl
import json
import os
import re
import shutil
import socket
import stat
import subprocess
import sys
import time
import types
import uuid

VERSION = '2.1.8'
PROG = 'iscsiadm'
LAB_INITIATOR_IQN = 'iqn.2026-11.lab.virtops:initiator'
DEFAULT_PORT = 3260
TPGT_UNKNOWN = -1
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
SCRIPT = os.path.abspath(__file__)  # run directly by the udev child (the iscsiadm wrapper is a shell script)

# --- open-iscsi error codes (usr/iscsi_err.h) and texts (usr/iscsi_err.c, 2.1.8) -------------
ERR_GENERIC, ERR_SESS_NOT_FOUND, ERR_TRANS, ERR_LOGIN, ERR_IDBM, ERR_INVAL = 1, 2, 4, 5, 6, 7
ERR_TRANS_TIMEOUT, ERR_INTERNAL, ERR_LOGOUT, ERR_PDU_TIMEOUT = 8, 9, 10, 11
ERR_SESS_EXISTS, ERR_FATAL_LOGIN, ERR_NO_OBJS_FOUND, ERR_SYSFS_LOOKUP = 15, 19, 21, 22
ERR_LOGIN_AUTH_FAILED = 24
ERR_MSGS = [
    '', 'unknown error', 'session not found', 'no available memory', 'encountered connection failure',
    'encountered iSCSI login failure', 'encountered iSCSI database failure', 'invalid parameter',
    'connection timed out', 'internal error', 'encountered iSCSI logout failure', 'iSCSI PDU timed out',
    'iSCSI driver not found. Please make sure it is loaded, and retry the operation', 'daemon access denied',
    'iSCSI driver does not support requested capability.', 'session exists', 'Unknown request',
    'iSNS service not supported', 'could not communicate to iscsid',
    'encountered non-retryable iSCSI login failure', 'could not connect to iscsid', 'no objects found',
    'sysfs lookup failure', 'host not found', 'iSCSI login failed due to authorization failure',
    'iSNS query failed', 'iSNS registration failed', 'operation not supported', 'device or resource in use',
]

# --- the record schema: key order and built-in defaults of iscsiadm 2.1.8 `-o show` ------------
# (captured from the real binary with no iscsid.conf; iscsid.conf values are laid over it)
NODE_KEYS = [
    ('node.name', ''),
    ('node.tpgt', '-1'),
    ('node.startup', 'manual'),
    ('node.leading_login', 'No'),
    ('iface.iscsi_ifacename', 'default'),
    ('iface.net_ifacename', ''),
    ('iface.ipaddress', ''),
    ('iface.prefix_len', '0'),
    ('iface.hwaddress', ''),
    ('iface.transport_name', 'tcp'),
    ('iface.initiatorname', ''),
    ('iface.state', ''),
    ('iface.vlan_id', '0'),
    ('iface.vlan_priority', '0'),
    ('iface.vlan_state', ''),
    ('iface.iface_num', '0'),
    ('iface.mtu', '0'),
    ('iface.port', '0'),
    ('iface.bootproto', ''),
    ('iface.subnet_mask', ''),
    ('iface.gateway', ''),
    ('iface.dhcp_alt_client_id_state', ''),
    ('iface.dhcp_alt_client_id', ''),
    ('iface.dhcp_dns', ''),
    ('iface.dhcp_learn_iqn', ''),
    ('iface.dhcp_req_vendor_id_state', ''),
    ('iface.dhcp_vendor_id_state', ''),
    ('iface.dhcp_vendor_id', ''),
    ('iface.dhcp_slp_da', ''),
    ('iface.fragmentation', ''),
    ('iface.gratuitous_arp', ''),
    ('iface.incoming_forwarding', ''),
    ('iface.tos_state', ''),
    ('iface.tos', '0'),
    ('iface.ttl', '0'),
    ('iface.delayed_ack', ''),
    ('iface.tcp_nagle', ''),
    ('iface.tcp_wsf_state', ''),
    ('iface.tcp_wsf', '0'),
    ('iface.tcp_timer_scale', '0'),
    ('iface.tcp_timestamp', ''),
    ('iface.redirect', ''),
    ('iface.def_task_mgmt_timeout', '0'),
    ('iface.header_digest', ''),
    ('iface.data_digest', ''),
    ('iface.immediate_data', ''),
    ('iface.initial_r2t', ''),
    ('iface.data_seq_inorder', ''),
    ('iface.data_pdu_inorder', ''),
    ('iface.erl', '0'),
    ('iface.max_receive_data_len', '0'),
    ('iface.first_burst_len', '0'),
    ('iface.max_outstanding_r2t', '0'),
    ('iface.max_burst_len', '0'),
    ('iface.chap_auth', ''),
    ('iface.bidi_chap', ''),
    ('iface.strict_login_compliance', ''),
    ('iface.discovery_auth', ''),
    ('iface.discovery_logout', ''),
    ('node.discovery_address', ''),
    ('node.discovery_port', '0'),
    ('node.discovery_type', 'static'),
    ('node.session.initial_cmdsn', '0'),
    ('node.session.initial_login_retry_max', '4'),
    ('node.session.xmit_thread_priority', '-20'),
    ('node.session.cmds_max', '128'),
    ('node.session.queue_depth', '32'),
    ('node.session.nr_sessions', '1'),
    ('node.session.auth.authmethod', 'None'),
    ('node.session.auth.username', ''),
    ('node.session.auth.password', ''),
    ('node.session.auth.username_in', ''),
    ('node.session.auth.password_in', ''),
    ('node.session.auth.chap_algs', 'MD5'),
    ('node.session.timeo.replacement_timeout', '120'),
    ('node.session.err_timeo.abort_timeout', '15'),
    ('node.session.err_timeo.lu_reset_timeout', '30'),
    ('node.session.err_timeo.tgt_reset_timeout', '30'),
    ('node.session.err_timeo.host_reset_timeout', '60'),
    ('node.session.iscsi.FastAbort', 'Yes'),
    ('node.session.iscsi.InitialR2T', 'No'),
    ('node.session.iscsi.ImmediateData', 'Yes'),
    ('node.session.iscsi.FirstBurstLength', '262144'),
    ('node.session.iscsi.MaxBurstLength', '16776192'),
    ('node.session.iscsi.DefaultTime2Retain', '0'),
    ('node.session.iscsi.DefaultTime2Wait', '2'),
    ('node.session.iscsi.MaxConnections', '1'),
    ('node.session.iscsi.MaxOutstandingR2T', '1'),
    ('node.session.iscsi.ERL', '0'),
    ('node.session.scan', 'auto'),
    ('node.session.reopen_max', '0'),
    ('node.conn[0].address', ''),
    ('node.conn[0].port', '3260'),
    ('node.conn[0].startup', 'manual'),
    ('node.conn[0].tcp.window_size', '524288'),
    ('node.conn[0].tcp.type_of_service', '0'),
    ('node.conn[0].timeo.logout_timeout', '15'),
    ('node.conn[0].timeo.login_timeout', '30'),
    ('node.conn[0].timeo.auth_timeout', '45'),
    ('node.conn[0].timeo.noop_out_interval', '5'),
    ('node.conn[0].timeo.noop_out_timeout', '5'),
    ('node.conn[0].iscsi.MaxXmitDataSegmentLength', '0'),
    ('node.conn[0].iscsi.MaxRecvDataSegmentLength', '262144'),
    ('node.conn[0].iscsi.HeaderDigest', 'None'),
    ('node.conn[0].iscsi.DataDigest', 'None'),
    ('node.conn[0].iscsi.IFMarker', 'No'),
    ('node.conn[0].iscsi.OFMarker', 'No'),
]
DISC_KEYS = [
    ('discovery.startup', 'manual'),
    ('discovery.type', 'sendtargets'),
    ('discovery.sendtargets.address', ''),
    ('discovery.sendtargets.port', '3260'),
    ('discovery.sendtargets.auth.authmethod', 'None'),
    ('discovery.sendtargets.auth.username', ''),
    ('discovery.sendtargets.auth.password', ''),
    ('discovery.sendtargets.auth.username_in', ''),
    ('discovery.sendtargets.auth.password_in', ''),
    ('node.session.auth.chap_algs', 'MD5'),
    ('discovery.sendtargets.timeo.login_timeout', '15'),
    ('discovery.sendtargets.use_discoveryd', 'No'),
    ('discovery.sendtargets.discoveryd_poll_inval', '30'),
    ('discovery.sendtargets.reopen_max', '5'),
    ('discovery.sendtargets.timeo.auth_timeout', '45'),
    ('discovery.sendtargets.timeo.active_timeout', '30'),
    ('discovery.sendtargets.iscsi.MaxRecvDataSegmentLength', '32768'),
]
NODE_DEFAULTS = dict(NODE_KEYS)
DISC_DEFAULTS = dict(DISC_KEYS)
# values idbm accepts for its enumerated fields (anything else: "unknown value format")
STARTUP = ('manual', 'automatic', 'onboot')
YES_NO = ('No', 'Yes')
ENUMS = {
    'node.startup': STARTUP, 'node.conn[0].startup': STARTUP, 'node.leading_login': YES_NO,
    'node.session.auth.authmethod': ('None', 'CHAP'), 'node.session.scan': ('manual', 'auto'),
    'node.session.iscsi.FastAbort': YES_NO, 'node.session.iscsi.InitialR2T': YES_NO,
    'node.session.iscsi.ImmediateData': YES_NO, 'node.conn[0].iscsi.IFMarker': YES_NO,
    'node.conn[0].iscsi.OFMarker': YES_NO,
    'node.conn[0].iscsi.HeaderDigest': ('None', 'CRC32C', 'CRC32C,None', 'None,CRC32C'),
    'node.conn[0].iscsi.DataDigest': ('None', 'CRC32C', 'CRC32C,None', 'None,CRC32C'),
    'discovery.startup': ('manual', 'automatic'), 'discovery.sendtargets.use_discoveryd': YES_NO,
    'discovery.sendtargets.auth.authmethod': ('None', 'CHAP'),
}
NODE_LOOKUP_KEYS = ('node.name', 'node.tpgt', 'node.conn[0].address', 'node.conn[0].port')
SECRET_KEYS = ('node.session.auth.password', 'node.session.auth.password_in',
               'discovery.sendtargets.auth.password', 'discovery.sendtargets.auth.password_in')
INT_KEYS = frozenset(k for k, v in NODE_KEYS + DISC_KEYS if re.match(r'^-?\d+$', v) and k not in (
    'iface.iscsi_ifacename',))


class StandinError(Exception):
    """The stand-in itself cannot do what the kernel would (no loop device left, ...)."""


class Exit(Exception):
    """Ends the command with an open-iscsi exit code (its messages are already printed)."""

    def __init__(self, code):
        super(Exit, self).__init__(code)
        self.code = code


def out(text):
    sys.stdout.write(text + '\n')
    sys.stdout.flush()


def err(text):
    """log_error/log_warning of iscsiadm: stderr, prefixed with the program name."""
    sys.stdout.flush()
    sys.stderr.write('%s: %s\n' % (PROG, text))
    sys.stderr.flush()


def err_msg(code):
    err('initiator reported error (%d - %s)' % (code, ERR_MSGS[code]))


# --- the collection's user-space iSCSI client ----------------------------------------------------
_CLIENT = None


def client():
    """(_libiscsi, _scsi, StorageError) of the collection in this repository, imported by
    file location: no PYTHONPATH, no installed collection and no symlink needed."""
    global _CLIENT
    if _CLIENT is None:
        import importlib
        base = 'ansible_collections.virtops.storage.plugins.module_utils'
        parts = base.split('.')
        paths = [None, None, REPO, os.path.join(REPO, 'plugins'), os.path.join(REPO, 'plugins', 'module_utils')]
        for depth in range(1, len(parts) + 1):
            name = '.'.join(parts[:depth])
            module = sys.modules.get(name)
            path = paths[depth - 1]
            if module is None:
                module = types.ModuleType(name)
                module.__path__ = []
                sys.modules[name] = module
            if path and path not in list(module.__path__):
                module.__path__ = [path] + list(module.__path__)
        libiscsi = importlib.import_module(base + '._libiscsi')
        scsi = importlib.import_module(base + '._scsi')
        errors = importlib.import_module(base + '._errors')
        _CLIENT = (libiscsi, scsi, errors.StorageError)
    return _CLIENT


# --- the root -----------------------------------------------------------------------------------
class Root(object):
    def __init__(self, path):
        self.path = path
        self.etc = self.p('etc/iscsi')
        self.nodes = self.p('etc/iscsi/nodes')
        self.send_targets = self.p('etc/iscsi/send_targets')
        self.static = self.p('etc/iscsi/static')
        self.run = self.p('run/iscsiadm-standin')
        self.state_file = os.path.join(self.run, 'state.json')
        self.call_log = self.p('var/log/iscsiadm-standin.jsonl')
        self._lock = None

    def p(self, *parts):
        return os.path.join(self.path, *[part.lstrip('/') for part in parts])

    def lock(self):
        os.makedirs(self.run, exist_ok=True)
        self._lock = open(os.path.join(self.run, 'lock'), 'a')
        fcntl.flock(self._lock, fcntl.LOCK_EX)

    def unlock(self):
        if self._lock is not None:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None

    def initiator_name(self):
        try:
            with open(self.p('etc/iscsi/initiatorname.iscsi')) as handle:
                for line in handle:
                    line = line.strip()
                    if line.startswith('InitiatorName='):
                        return line.split('=', 1)[1].strip()
        except OSError:
            pass
        return LAB_INITIATOR_IQN

    def conf(self):
        """key -> value of R/etc/iscsi/iscsid.conf (none when absent)."""
        values = {}
        try:
            with open(self.p('etc/iscsi/iscsid.conf')) as handle:
                for line in handle:
                    line = line.strip()
                    if not line or line.startswith('#') or '=' not in line:
                        continue
                    key, value = line.split('=', 1)
                    values[key.strip()] = value.strip()
        except OSError:
            pass
        return values


# --- records (usr/idbm.c layout) -------------------------------------------------------------------
def format_record(keys, values, show=False, show_secrets=False):
    lines = ['# BEGIN RECORD %s' % VERSION]
    for key, _default in keys:
        value = values.get(key, '')
        if not show:
            if value != '':
                lines.append('%s = %s' % (key, value))
            continue
        if value == '':
            value = '<empty>'
        elif key in SECRET_KEYS and not show_secrets:
            value = '********'
        lines.append('%s = %s' % (key, value))
    lines.append('# END RECORD')
    return '\n'.join(lines) + '\n'


def parse_record(text):
    values = {}
    for line in text.splitlines():
        if line.startswith('#') or ' = ' not in line:
            continue
        key, value = line.split(' = ', 1)
        values[key.strip()] = value.strip()
    return values


def write_file(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = '%s.standin-%d' % (path, os.getpid())
    with open(tmp, 'w') as handle:
        handle.write(text)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def fmt_portal(address, port):
    return '[%s]:%d' % (address, port) if ':' in address else '%s:%d' % (address, port)


class Node(object):
    """One node record: values plus where it lives."""

    def __init__(self, values, path=None):
        self.values = values
        self.path = path

    name = property(lambda self: self.values['node.name'])
    address = property(lambda self: self.values['node.conn[0].address'])
    port = property(lambda self: _int(self.values.get('node.conn[0].port'), DEFAULT_PORT))
    tpgt = property(lambda self: _int(self.values.get('node.tpgt'), TPGT_UNKNOWN))
    iface = property(lambda self: self.values.get('iface.iscsi_ifacename') or 'default')

    def portal(self):
        return fmt_portal(self.address, self.port)

    def flat(self):
        return '%s,%d %s' % (self.portal(), self.tpgt & 0xffffffff, self.name)


def _int(value, default):
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _atoi(value):
    match = re.match(r'^\s*([-+]?\d+)', value or '')
    return int(match.group(1)) if match else 0


class Db(object):
    """The node and discovery databases under R/etc/iscsi."""

    def __init__(self, root):
        self.root = root

    # node records
    def node_defaults(self):
        values = dict(NODE_DEFAULTS)
        for key, value in self.root.conf().items():
            if key in values and key not in NODE_LOOKUP_KEYS and not key.startswith('iface.') and key not in (
                    'node.discovery_address', 'node.discovery_port', 'node.discovery_type'):
                if key in ENUMS and value not in ENUMS[key]:
                    continue
                values[key] = str(_atoi(value)) if key in INT_KEYS else value
        return values

    def new_node(self, name, tpgt, address, port, disc=None):
        values = self.node_defaults()
        values.update({'node.name': name, 'node.tpgt': str(tpgt), 'node.conn[0].address': address,
                       'node.conn[0].port': str(port)})
        if disc:
            values.update({'node.discovery_address': disc[0], 'node.discovery_port': str(disc[1]),
                           'node.discovery_type': 'send_targets'})
        return Node(values)

    def node_path(self, node):
        base = os.path.join(self.root.nodes, node.name)
        if node.tpgt == TPGT_UNKNOWN:
            return os.path.join(base, '%s,%d' % (node.address, node.port))
        return os.path.join(base, '%s,%d,%d' % (node.address, node.port, node.tpgt), node.iface)

    def nodes(self):
        """Every node record, sorted as libopeniscsiusr lists them (target, then portal entry)."""
        found = []
        try:
            targets = sorted(os.listdir(self.root.nodes))
        except OSError:
            return found
        for target in targets:
            tdir = os.path.join(self.root.nodes, target)
            if not os.path.isdir(tdir):
                continue
            for entry in sorted(os.listdir(tdir)):
                epath = os.path.join(tdir, entry)
                if os.path.isdir(epath):
                    files = [os.path.join(epath, f) for f in sorted(os.listdir(epath))
                             if os.path.isfile(os.path.join(epath, f)) and '.standin-' not in f]
                elif '.standin-' not in entry:
                    files = [epath]
                else:
                    files = []
                for path in files:
                    with open(path) as handle:
                        values = parse_record(handle.read())
                    if values.get('node.name'):
                        merged = dict(NODE_DEFAULTS)
                        merged.update(values)
                        found.append(Node(merged, path))
        return found

    def write_node(self, node):
        path = self.node_path(node)
        write_file(path, format_record(NODE_KEYS, node.values))
        node.path = path
        if node.tpgt != TPGT_UNKNOWN:
            link_name = '%s,%s,%d,%d,%s' % (node.name, node.address, node.port, node.tpgt, node.iface)
            disc_type = node.values.get('node.discovery_type')
            if disc_type == 'send_targets':
                link_dir = os.path.join(self.root.send_targets, '%s,%s' % (
                    node.values.get('node.discovery_address'), node.values.get('node.discovery_port')))
            elif disc_type == 'static':
                link_dir = self.root.static
            else:
                link_dir = None
            if link_dir:
                os.makedirs(link_dir, exist_ok=True)
                link = os.path.join(link_dir, link_name)
                if os.path.lexists(link):
                    os.unlink(link)
                os.symlink(os.path.dirname(path), link)

    def delete_node(self, node):
        path = node.path or self.node_path(node)
        if os.path.lexists(path):
            os.unlink(path)
        # the links to it from send_targets/ and static/
        for base in (self.root.send_targets, self.root.static):
            for dirpath, _dirs, files in os.walk(base):
                for entry in files + _dirs:
                    link = os.path.join(dirpath, entry)
                    if os.path.islink(link) and os.readlink(link) == os.path.dirname(path):
                        os.unlink(link)
        parent = os.path.dirname(path)
        for _level in range(2):
            if parent.startswith(self.root.nodes + os.sep):
                try:
                    os.rmdir(parent)
                except OSError:
                    break
                parent = os.path.dirname(parent)

    # discovery records
    def disc_dir(self, address, port):
        return os.path.join(self.root.send_targets, '%s,%d' % (address, port))

    def disc_defaults(self, address, port):
        values = dict(DISC_DEFAULTS)
        for key, value in self.root.conf().items():
            if key.startswith('discovery.sendtargets.') and key in values and key not in (
                    'discovery.sendtargets.address', 'discovery.sendtargets.port'):
                values[key] = str(_atoi(value)) if key in INT_KEYS else value
        values['discovery.sendtargets.address'] = address
        values['discovery.sendtargets.port'] = str(port)
        return values

    def read_disc(self, address, port):
        try:
            with open(os.path.join(self.disc_dir(address, port), 'st_config')) as handle:
                values = parse_record(handle.read())
        except OSError:
            return None
        merged = dict(DISC_DEFAULTS)
        merged.update(values)
        return merged

    def write_disc(self, values):
        path = os.path.join(self.disc_dir(values['discovery.sendtargets.address'],
                                          _int(values['discovery.sendtargets.port'], DEFAULT_PORT)), 'st_config')
        write_file(path, format_record(DISC_KEYS, values))

    def delete_disc(self, address, port):
        """idbm_delete_discovery: the record and every node record found through it."""
        for node in self.nodes():
            if node.values.get('node.discovery_type') == 'send_targets' and \
                    node.values.get('node.discovery_address') == address and \
                    _int(node.values.get('node.discovery_port'), 0) == port:
                self.delete_node(node)
        ddir = self.disc_dir(address, port)
        for entry in os.listdir(ddir):
            path = os.path.join(ddir, entry)
            if os.path.islink(path) or os.path.isfile(path):
                os.unlink(path)
        os.rmdir(ddir)

    def discs(self):
        found = []
        try:
            entries = sorted(os.listdir(self.root.send_targets))
        except OSError:
            return found
        for entry in entries:
            if os.path.isfile(os.path.join(self.root.send_targets, entry, 'st_config')):
                address, _comma, port = entry.rpartition(',')
                found.append((address, _int(port, DEFAULT_PORT)))
        return found


def set_param(values, name, value, keys, mode):
    """idbm_rec_update_param: ISCSI error code (0 on success), with the real messages."""
    known = dict(keys)
    if name not in known:
        err('Cannot modify %s. Invalid param name.' % name)
        return ERR_INVAL
    if mode == 'node' and name in NODE_LOOKUP_KEYS:
        err('Cannot modify %s. It is used to look up the record and cannot be changed.' % name)
        return ERR_INVAL
    if name in ENUMS and value not in ENUMS[name]:
        err("unknown value format '%s' for parameter name '%s'" % (value, name))
        if mode == 'node':
            err('Unknown parameter %s.' % name)
        return ERR_INVAL
    values[name] = str(_atoi(value)) if name in INT_KEYS else value
    return 0


# --- the target side: tgtd through libiscsi, backing files through tgtadm ---------------------------
def split_portal_arg(text):
    """str_to_ipport: (address, port or -1, tpgt or -1) of "host[:port][,tpgt]" / "[v6][:port][,tpgt]"."""
    tpgt = TPGT_UNKNOWN
    if ',' in text:
        text, _comma, tag = text.rpartition(',')
        tpgt = _atoi(tag)
    port = -1
    match = re.match(r'^\[([^\]]*)\](?::(\d*))?$', text)
    if match:
        address = match.group(1)
        if match.group(2):
            port = int(match.group(2))
    elif text.count(':') == 1:
        address, _colon, port_text = text.partition(':')
        if port_text:
            port = _atoi(port_text)
    else:
        address = text
    return address, port, tpgt


def parse_target_portal(text):
    """(address, port, tpgt) of a SendTargets TargetAddress "127.0.0.1:3260,1"."""
    address, port, tpgt = split_portal_arg(text)
    return address, (port if port > 0 else DEFAULT_PORT), (tpgt if tpgt != TPGT_UNKNOWN else 1)


def tcp_probe(address, port, timeout):
    """None when a TCP connection opens, 'timeout' when it hangs (iscsiadm then says nothing
    per attempt), else the errno's text as strerror() gives it."""
    try:
        sock = socket.create_connection((address, port), timeout=timeout)
    except socket.timeout:
        return 'timeout'
    except OSError as exc:
        return os.strerror(exc.errno) if exc.errno else str(exc)
    sock.close()
    return None


def backing_files():
    """{(target iqn, lun): backing file} from `tgtadm --op show` ("Backing store path:")."""
    try:
        text = subprocess.run(['tgtadm', '--lld', 'iscsi', '--mode', 'target', '--op', 'show'],
                              capture_output=True, text=True, check=False, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    found, target, lun = {}, None, None
    for line in text.splitlines():
        match = re.match(r'^Target \d+: (\S+)', line)
        if match:
            target, lun = match.group(1), None
            continue
        match = re.match(r'^\s+LUN: (\d+)', line)
        if match:
            lun = int(match.group(1))
            continue
        match = re.match(r'^\s+Backing store path: (.+)$', line)
        if match and target is not None and lun is not None and match.group(1).startswith('/'):
            found[(target, lun)] = match.group(1).strip()
    return found


def page(data):
    """A VPD page trimmed to its page length, as the kernel's vpd_pg8x attributes show it."""
    if not data or len(data) < 4:
        return None
    return bytes(data[:4 + ((data[2] << 8) | data[3])])


def scan_target(conn, scsi):
    """[lun dict] of what the target answers: REPORT LUNS, INQUIRY, VPD 0x83/0x80, READ CAPACITY(16)."""
    answer = conn.report_luns()
    luns = []
    for lun in (scsi.report_luns(answer) if answer else [0]):
        inquiry = conn.inquiry(lun)
        if not inquiry or len(inquiry) < 36 or (inquiry[0] >> 5) == 3:  # peripheral qualifier 3: no LU
            continue
        pg83 = page(conn.inquiry(lun, 0x83))
        pg80 = page(conn.inquiry(lun, 0x80))
        kind = inquiry[0] & 0x1f
        size, block = None, 512
        if kind in scsi.DISK_TYPES:
            capacity = conn.read_capacity16(lun)
            if capacity:
                size = scsi.capacity16(capacity)
                block = int.from_bytes(capacity[8:12], 'big') or 512
        luns.append({'lun': lun, 'type': kind, 'inquiry': inquiry.hex(),
                     'vpd_pg83': pg83.hex() if pg83 else None, 'vpd_pg80': pg80.hex() if pg80 else None,
                     'wwid': scsi.wwid_from_page83(pg83) if pg83 else None, 'size': size, 'block': block})
    return luns


def login_error_code(storage_error):
    """The iscsid error a libiscsi failure stands for."""
    return {'ISCSI_AUTH_FAILED': ERR_LOGIN_AUTH_FAILED, 'ISCSI_UNREACHABLE': ERR_TRANS_TIMEOUT,
            'LUN_NOT_FOUND': ERR_FATAL_LOGIN, 'ISCSI_LOGIN_FAILED': ERR_FATAL_LOGIN}.get(
                storage_error.code, ERR_INTERNAL)


def chap_of(values, prefix):
    if values.get(prefix + 'authmethod') == 'CHAP' and values.get(prefix + 'username'):
        return values.get(prefix + 'username'), values.get(prefix + 'password') or ''
    return None, None


# --- the simulated kernel ---------------------------------------------------------------------------
def rel_symlink(target, link):
    os.makedirs(os.path.dirname(link), exist_ok=True)
    if os.path.lexists(link):
        os.unlink(link)
    os.symlink(os.path.relpath(target, os.path.dirname(link)), link)


def put(path, text, mode=0o644):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'wb' if isinstance(text, bytes) else 'w') as handle:
        handle.write(text)
    os.chmod(path, mode)


def unlink(path):
    try:
        if os.path.islink(path) or os.path.isfile(path) or (os.path.exists(path) and not os.path.isdir(path)):
            os.unlink(path)
        elif os.path.isdir(path):
            shutil.rmtree(path)
    except FileNotFoundError:
        pass


def sd_name(index):
    name = ''
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        name = chr(ord('a') + rest) + name
    return 'sd' + name


def sd_index(name):
    index = 0
    for char in name[2:]:
        index = index * 26 + (ord(char) - ord('a') + 1)
    return index - 1


class Kernel(object):
    """Sessions, SCSI devices, block devices and multipath maps of one root, with their sysfs,
    /dev and udev links. State in R/run/iscsiadm-standin/state.json (no secrets in it)."""

    def __init__(self, root):
        self.root = root
        self.state = {'sessions': {}, 'devices': {}, 'maps': {}}
        try:
            with open(root.state_file) as handle:
                self.state = json.load(handle)
        except (OSError, ValueError):
            pass
        self.devices_removed = []
        self.warnings = []

    def save(self):
        write_file(self.root.state_file, json.dumps(self.state, indent=1, sort_keys=True))

    # paths
    def sys(self, *parts):
        return self.root.p('sys', *parts)

    def host_dir(self, host):
        return self.sys('devices/platform/host%d' % host)

    def session_dir(self, sess):
        return os.path.join(self.host_dir(sess['host']), 'session%d' % sess['sid'])

    def device_dir(self, dev):
        host = dev['host']
        sess = self.state['sessions'].get(str(dev['sid']))
        base = self.session_dir(sess) if sess else os.path.join(self.host_dir(host), 'session%d' % dev['sid'])
        return os.path.join(base, 'target%d:0:0' % host, dev['hctl'])

    def block_dir(self, dev):
        return os.path.join(self.device_dir(dev), 'block', dev['sd'])

    def map_dir(self, name):
        return self.sys('devices/virtual/block', name)

    # sessions
    def sessions(self):
        return [self.state['sessions'][key] for key in sorted(self.state['sessions'], key=int)]

    def find_sessions(self, name=None, address=None, port=None, iface=None, sid=None):
        found = []
        for sess in self.sessions():
            if name and sess['target'] != name:
                continue
            if address and sess['address'] != address:
                continue
            if port not in (None, -1) and sess['port'] != port:
                continue
            if iface and sess['iface'] != iface:
                continue
            if sid and sess['sid'] != sid:
                continue
            found.append(sess)
        return found

    def add_session(self, node, username, luns, backing, udev_delay, multipath):
        used = set(int(key) for key in self.state['sessions'])
        sid = 1
        while sid in used:
            sid += 1
        sess = {'sid': sid, 'host': sid + 1, 'target': node.name, 'tpgt': node.tpgt if node.tpgt != -1 else 1,
                'address': node.address, 'port': node.port, 'iface': node.iface, 'username': username or '',
                'initiator': self.root.initiator_name(), 'multipath': bool(multipath), 'creator': os.getpid()}
        self.state['sessions'][str(sid)] = sess
        self._render_session(sess)
        token = self._add_luns(sess, luns, backing, udev_delay)
        return sess, token

    def _render_session(self, sess):
        host, sid = sess['host'], sess['sid']
        hdir = self.host_dir(host)
        sdir = self.session_dir(sess)
        cls = os.path.join(sdir, 'iscsi_session', 'session%d' % sid)
        files = {'targetname': sess['target'], 'tpgt': str(sess['tpgt']), 'state': 'LOGGED_IN',
                 'initiatorname': sess['initiator'], 'ifacename': sess['iface'], 'username': sess['username'],
                 'password': '', 'username_in': '', 'password_in': '', 'recovery_tmo': '120',
                 'abort_tmo': '15', 'lu_reset_tmo': '30', 'tgt_reset_tmo': '30',
                 # the pid of the iscsid that created it (-1 would make it a firmware "flash" session)
                 'creator': str(sess.get('creator', os.getpid())), 'target_id': '0', 'fast_abort': '1',
                 'targetalias': '', 'state_': None,
                 # what a login to tgtd negotiates with open-iscsi's defaults
                 'first_burst_len': '65536', 'max_burst_len': '262144', 'immediate_data': '1',
                 'initial_r2t': '1', 'max_outstanding_r2t': '1', 'erl': '0'}
        for name, value in files.items():
            if value is not None:
                put(os.path.join(cls, name), value + '\n')
        rel_symlink(sdir, os.path.join(cls, 'device'))
        rel_symlink(cls, self.sys('class/iscsi_session', 'session%d' % sid))
        conn_name = 'connection%d:0' % sid
        ccls = os.path.join(sdir, conn_name, 'iscsi_connection', conn_name)
        for name, value in (('persistent_address', sess['address']), ('persistent_port', str(sess['port'])),
                            ('address', sess['address']), ('port', str(sess['port'])), ('state', 'up'),
                            ('header_digest', 'None'), ('data_digest', 'None'), ('max_recv_dlength', '262144'),
                            ('max_xmit_dlength', '8192'), ('ifmarker', 'No'), ('ofmarker', 'No')):
            put(os.path.join(ccls, name), value + '\n')
        rel_symlink(os.path.join(sdir, conn_name), os.path.join(ccls, 'device'))
        rel_symlink(ccls, self.sys('class/iscsi_connection', conn_name))
        shost = os.path.join(hdir, 'scsi_host', 'host%d' % host)
        put(os.path.join(shost, 'proc_name'), 'iscsi_tcp\n')
        put(os.path.join(shost, 'state'), 'running\n')
        put(os.path.join(shost, 'scan'), '')
        rel_symlink(hdir, os.path.join(shost, 'device'))
        rel_symlink(shost, self.sys('class/scsi_host', 'host%d' % host))
        ihost = os.path.join(hdir, 'iscsi_host', 'host%d' % host)
        for name, value in (('hwaddress', '(null)'), ('ipaddress', sess['address']), ('netdev', '(null)'),
                            ('initiatorname', '(null)'), ('port_state', 'Unknown'), ('port_speed', 'Unknown')):
            put(os.path.join(ihost, name), value + '\n')
        rel_symlink(hdir, os.path.join(ihost, 'device'))
        rel_symlink(ihost, self.sys('class/iscsi_host', 'host%d' % host))
        put(self.sys('module/scsi_transport_iscsi/version'), '2.0-870\n')
        transport = self.sys('class/iscsi_transport/tcp')
        if not os.path.isdir(transport):
            for name, value in (('handle', '18446744072640277056'), ('caps', '0x39')):
                put(os.path.join(transport, name), value + '\n')

    def _next_sd(self):
        used = set(sd_index(dev['sd']) for dev in self.state['devices'].values() if dev.get('sd'))
        index = 0
        while index in used:
            index += 1
        return sd_name(index)

    def _add_luns(self, sess, luns, backing, udev_delay):
        token = None
        known = set(dev['lun'] for dev in self.state['devices'].values() if dev['sid'] == sess['sid'])
        for lun in luns:
            if lun['lun'] in known:
                continue
            hctl = '%d:0:0:%d' % (sess['host'], lun['lun'])
            dev = {'hctl': hctl, 'sid': sess['sid'], 'host': sess['host'], 'lun': lun['lun'], 'type': lun['type'],
                   'inquiry': lun['inquiry'], 'vpd_pg83': lun['vpd_pg83'], 'vpd_pg80': lun['vpd_pg80'],
                   'wwid': lun['wwid'], 'size': lun['size'], 'block': lun['block'], 'sd': None, 'loop': None,
                   'backing': None, 'udev_done': True, 'token': None, 'dm': None}
            self.state['devices'][hctl] = dev
            self._render_scsi_device(dev)
            if lun['type'] == 0:
                dev['sd'] = self._next_sd()
                path = backing.get((sess['target'], lun['lun']))
                if not path:
                    self.warnings.append('no tgtd backing file for %s LUN %d: %s has no /dev node' % (
                        sess['target'], lun['lun'], dev['sd']))
                else:
                    dev['backing'] = path
                    attach = subprocess.run(['losetup', '--find', '--show', path], capture_output=True, text=True,
                                            check=False)
                    if attach.returncode != 0:
                        raise StandinError('losetup --find --show %s failed: %s' % (path, attach.stderr.strip()))
                    dev['loop'] = attach.stdout.strip()
                if udev_delay > 0:
                    token = token or uuid.uuid4().hex
                    dev['udev_done'], dev['token'] = False, token
                else:
                    self.udev_add(dev)
        return token

    def _render_scsi_device(self, dev):
        ddir = self.device_dir(dev)
        inquiry = bytes.fromhex(dev['inquiry'])
        text = inquiry.decode('latin-1')
        put(os.path.join(ddir, 'vendor'), '%-8.8s\n' % text[8:16])
        put(os.path.join(ddir, 'model'), '%-16.16s\n' % text[16:32])
        put(os.path.join(ddir, 'rev'), '%-4.4s\n' % text[32:36])
        put(os.path.join(ddir, 'type'), '%d\n' % dev['type'])
        put(os.path.join(ddir, 'state'), 'running\n')
        put(os.path.join(ddir, 'inquiry'), inquiry)
        for name in ('vpd_pg83', 'vpd_pg80'):
            if dev[name]:
                put(os.path.join(ddir, name), bytes.fromhex(dev[name]))
        put(os.path.join(ddir, 'delete'), '')
        put(os.path.join(ddir, 'rescan'), '')
        rel_symlink(ddir, self.sys('bus/scsi/devices', dev['hctl']))

    def _devno(self, dev):
        if not dev.get('loop'):
            return None
        rdev = os.stat(dev['loop']).st_rdev
        return os.major(rdev), os.minor(rdev)

    def udev_add(self, dev):
        """What the sd driver, devtmpfs, udev and multipathd add for a disk LUN."""
        sd = dev['sd']
        bdir = self.block_dir(dev)
        devno = self._devno(dev)
        sectors = (dev['size'] or 0) // 512
        put(os.path.join(bdir, 'size'), '%d\n' % sectors)
        put(os.path.join(bdir, 'dev'), ('%d:%d\n' % devno) if devno else '0:0\n')
        put(os.path.join(bdir, 'ro'), '0\n')
        put(os.path.join(bdir, 'removable'), '0\n')
        put(os.path.join(bdir, 'queue', 'logical_block_size'), '%d\n' % dev['block'])
        put(os.path.join(bdir, 'queue', 'physical_block_size'), '%d\n' % dev['block'])
        os.makedirs(os.path.join(bdir, 'holders'), exist_ok=True)
        os.makedirs(os.path.join(bdir, 'slaves'), exist_ok=True)
        rel_symlink(self.device_dir(dev), os.path.join(bdir, 'device'))
        rel_symlink(bdir, self.sys('block', sd))
        rel_symlink(bdir, self.sys('class/block', sd))
        node = self.root.p('dev', sd)
        if devno:
            unlink(node)
            os.makedirs(os.path.dirname(node), exist_ok=True)
            os.mknod(node, stat.S_IFBLK | 0o660, os.makedev(*devno))
            os.chmod(node, 0o660)
            for link in self.disk_links(dev):
                rel_symlink(node, link)
        dev['udev_done'], dev['token'] = True, None
        sess = self.state['sessions'].get(str(dev['sid']))
        if sess and sess.get('multipath') and dev.get('wwid') and devno:
            self.add_map(dev)

    def disk_links(self, dev):
        sess = self.state['sessions'].get(str(dev['sid'])) or {}
        links = []
        _libiscsi, scsi, _e = client()
        if dev.get('wwid'):
            naa = scsi.naa_of(dev['wwid'])
            if naa:
                links.append(self.root.p('dev/disk/by-id', 'wwn-0x' + naa))
            links.append(self.root.p('dev/disk/by-id', 'scsi-' + dev['wwid']))
        if sess:
            links.append(self.root.p('dev/disk/by-path', 'ip-%s-iscsi-%s-lun-%d' % (
                fmt_portal(sess['address'], sess['port']), sess['target'], dev['lun'])))
        return links

    # multipath
    def add_map(self, dev):
        for name, mpath in self.state['maps'].items():
            if mpath['wwid'] == dev['wwid']:
                break
        else:
            used = set(int(name[3:]) for name in self.state['maps'])
            index = 0
            while index in used:
                index += 1
            name = 'dm-%d' % index
            mpath = {'name': name, 'wwid': dev['wwid'], 'slaves': [], 'loop': dev['loop'], 'size': dev['size']}
            self.state['maps'][name] = mpath
            mdir = self.map_dir(name)
            devno = self._devno(dev)
            put(os.path.join(mdir, 'dev'), '%d:%d\n' % devno)
            put(os.path.join(mdir, 'size'), '%d\n' % ((dev['size'] or 0) // 512))
            put(os.path.join(mdir, 'ro'), '0\n')
            put(os.path.join(mdir, 'dm', 'name'), dev['wwid'] + '\n')
            put(os.path.join(mdir, 'dm', 'uuid'), 'mpath-%s\n' % dev['wwid'])
            put(os.path.join(mdir, 'dm', 'suspended'), '0\n')
            os.makedirs(os.path.join(mdir, 'holders'), exist_ok=True)
            os.makedirs(os.path.join(mdir, 'slaves'), exist_ok=True)
            rel_symlink(mdir, self.sys('block', name))
            rel_symlink(mdir, self.sys('class/block', name))
            node = self.root.p('dev', name)
            unlink(node)
            os.mknod(node, stat.S_IFBLK | 0o660, os.makedev(*devno))
            os.chmod(node, 0o660)
            rel_symlink(node, self.root.p('dev/mapper', dev['wwid']))
            rel_symlink(node, self.root.p('dev/disk/by-id', 'dm-name-' + dev['wwid']))
            rel_symlink(node, self.root.p('dev/disk/by-id', 'dm-uuid-mpath-' + dev['wwid']))
        if dev['sd'] not in mpath['slaves']:
            mpath['slaves'].append(dev['sd'])
        dev['dm'] = name
        rel_symlink(self.block_dir(dev), os.path.join(self.map_dir(name), 'slaves', dev['sd']))
        rel_symlink(self.map_dir(name), os.path.join(self.block_dir(dev), 'holders', name))

    def remove_map(self, name):
        mpath = self.state['maps'].pop(name)
        for dev in self.state['devices'].values():
            if dev.get('dm') == name:
                dev['dm'] = None
                unlink(os.path.join(self.block_dir(dev), 'holders', name))
        for path in (self.root.p('dev/mapper', mpath['wwid']), self.root.p('dev/disk/by-id', 'dm-name-' + mpath['wwid']),
                     self.root.p('dev/disk/by-id', 'dm-uuid-mpath-' + mpath['wwid']), self.root.p('dev', name),
                     self.sys('block', name), self.sys('class/block', name), self.map_dir(name)):
            unlink(path)
        self._release_loop(mpath['loop'])

    def _release_loop(self, loop):
        if not loop:
            return
        if any(dev.get('loop') == loop for dev in self.state['devices'].values()):
            return
        if any(mpath.get('loop') == loop for mpath in self.state['maps'].values()):
            return
        subprocess.run(['losetup', '-d', loop], capture_output=True, check=False)

    # removal
    def remove_device(self, hctl):
        dev = self.state['devices'].pop(hctl)
        if dev.get('sd'):
            self.devices_removed.append(dev['sd'])
            if dev.get('udev_done'):
                for link in self.disk_links(dev):
                    unlink(link)
                unlink(self.root.p('dev', dev['sd']))
                unlink(self.sys('block', dev['sd']))
                unlink(self.sys('class/block', dev['sd']))
            mpath = self.state['maps'].get(dev.get('dm') or '')
            if mpath and dev['sd'] in mpath['slaves']:
                mpath['slaves'].remove(dev['sd'])
                unlink(os.path.join(self.map_dir(mpath['name']), 'slaves', dev['sd']))
        unlink(self.sys('bus/scsi/devices', hctl))
        unlink(self.device_dir(dev))
        self._release_loop(dev.get('loop'))
        return dev

    def remove_session(self, sess):
        """Logout: the session and whatever devices it still has go. ([sdX still present], [maps left])."""
        present = []
        for hctl, dev in sorted(self.state['devices'].items()):
            if dev['sid'] == sess['sid']:
                if dev.get('sd'):
                    present.append(dev['sd'])
                self.remove_device(hctl)
        sid, host = sess['sid'], sess['host']
        del self.state['sessions'][str(sid)]
        for path in (self.sys('class/iscsi_session', 'session%d' % sid),
                     self.sys('class/iscsi_connection', 'connection%d:0' % sid),
                     self.sys('class/scsi_host', 'host%d' % host), self.sys('class/iscsi_host', 'host%d' % host),
                     self.host_dir(host)):
            unlink(path)
        maps_left = sorted(name for name, mpath in self.state['maps'].items() if not mpath['slaves'])
        return present, maps_left

    def kernel_events(self, rescanner):
        """What the kernel did since the last call: writes to `delete`, `rescan`, a host's `scan`,
        and multipath maps flushed (dm/flushed)."""
        for hctl, dev in sorted(self.state['devices'].items()):
            path = os.path.join(self.device_dir(dev), 'delete')
            if _read(path).strip() == '1':
                self.remove_device(hctl)
        for name in sorted(self.state['maps']):
            if os.path.exists(os.path.join(self.map_dir(name), 'dm', 'flushed')):
                self.remove_map(name)
        for hctl, dev in sorted(self.state['devices'].items()):
            path = os.path.join(self.device_dir(dev), 'rescan')
            if _read(path).strip():
                put(path, '')
                sess = self.state['sessions'].get(str(dev['sid']))
                if sess:
                    rescanner(sess, only_lun=dev['lun'])
        for sess in self.sessions():
            path = os.path.join(self.host_dir(sess['host']), 'scsi_host', 'host%d' % sess['host'], 'scan')
            if _read(path).strip():
                put(path, '')
                rescanner(sess)

    def update_luns(self, sess, luns, backing, udev_delay, only_lun=None):
        """A rescan: sizes of known LUNs are re-read, new LUNs appear (a device rescan updates one LUN)."""
        for lun in luns:
            hctl = '%d:0:0:%d' % (sess['host'], lun['lun'])
            dev = self.state['devices'].get(hctl)
            if dev is None or lun['size'] is None or lun['size'] == dev['size']:
                continue
            dev['size'] = lun['size']
            if dev.get('loop'):  # the block device follows the LUN's new capacity
                subprocess.run(['losetup', '--set-capacity', dev['loop']], capture_output=True, check=False)
            if dev.get('udev_done') and dev.get('sd'):
                put(os.path.join(self.block_dir(dev), 'size'), '%d\n' % (lun['size'] // 512))
            mpath = self.state['maps'].get(dev.get('dm') or '')
            if mpath:
                mpath['size'] = lun['size']
                put(os.path.join(self.map_dir(mpath['name']), 'size'), '%d\n' % (lun['size'] // 512))
        if only_lun is None:
            return self._add_luns(sess, luns, backing, udev_delay)
        return None


def _read(path):
    try:
        with open(path, 'rb') as handle:
            return handle.read().decode('latin-1')
    except OSError:
        return ''


# --- command line (getopt_long of iscsiadm 2.1.8) ----------------------------------------------------
SHORT = 'RlDVhm:a:b:c:C:p:P:T:H:i:I:U:k:L:d:r:n:v:o:sSt:ux:A:W'
LONG = {'mode': 'm', 'portal': 'p', 'targetname': 'T', 'interface': 'I', 'op': 'o', 'type': 't', 'name': 'n',
        'value': 'v', 'host': 'H', 'sid': 'r', 'rescan': 'R', 'print': 'P', 'discover': 'D', 'login': 'l',
        'loginall': 'L', 'logout': 'u', 'logoutall': 'U', 'stats': 's', 'killiscsid': 'k', 'debug': 'd',
        'show': 'S', 'version': 'V', 'help': 'h', 'submode': 'C', 'ip': 'a', 'packetsize': 'b', 'count': 'c',
        'interval': 'i', 'index': 'x', 'portal_type': 'A', 'no_wait': 'W'}
OPS = {'new': 0x1, 'delete': 0x2, 'update': 0x4, 'show': 0x8, 'nonpersistent': 0x10, 'apply': 0x20,
       'applyall': 0x40, 'login': 0x80, 'logout': 0x100}
OP_NEW, OP_DELETE, OP_UPDATE, OP_SHOW, OP_NONPERSISTENT = 0x1, 0x2, 0x4, 0x8, 0x10
MODE_OPTIONS = {'discovery': 'DSIPdmntplov', 'discoverydb': 'DSIPdmntplov', 'node': 'RsPIdmlSonvupTULW',
                'session': 'PiRdrmusonuSv', 'host': 'CHdmPotnvxA', 'iface': 'HIdnvmPoCabci', 'fw': 'dmlWnv'}
USAGE = '\n'.join((  # `iscsiadm --help` of 2.1.8, byte for byte
    'iscsiadm -m discoverydb [-hV] [-d debug_level] [-P printlevel] [-t type -p ip:port -I'
    ' ifaceN ... [-Dl]] | [[-p ip:port -t type] [-o operation] [-n name] [-v value] [-lD]] ',
    'iscsiadm -m discovery [-hV] [-d debug_level] [-P printlevel] [-t type -p ip:port -I'
    ' ifaceN ... [-l]] | [[-p ip:port] [-l | -D]] [-W]',
    'iscsiadm -m node [-hV] [-d debug_level] [-P printlevel] [-L all,manual,automatic,onboot]'
    ' [-W] [-U all,manual,automatic,onboot] [-S] [[-T targetname -p ip:port -I ifaceN] [-l |'
    ' -u | -R | -s]] [[-o operation ] [-n name] [-v value]]',
    'iscsiadm -m session [-hV] [-d debug_level] [-P printlevel] [-r sessionid | sysfsdir [-R |'
    ' -u | -s] [-o operation] [-n name] [-v value]]',
    'iscsiadm -m iface [-hV] [-d debug_level] [-P printlevel] [-I ifacename | -H hostno|MAC]'
    ' [[-o operation ] [-n name] [-v value]] [-C ping [-a ip] [-b packetsize] [-c count] [-i'
    ' interval]]',
    'iscsiadm -m fw [-d debug_level] [-l] [-W] [[-n name] [-v value]]',
    'iscsiadm -m host [-P printlevel] [-H hostno|MAC] [[-C chap [-x chap_tbl_idx]] | [-C'
    ' flashnode [-A portal_type] [-x flashnode_idx]] | [-C stats]] [[-o operation] [-n name]'
    ' [-v value]] ',
    'iscsiadm -k priority',
))


def getopt(argv, quiet=False):
    """[(option letter, value, argv index of the value, text before the value in that argv item)]
    like GNU getopt_long with iscsiadm's tables; letter '?' for a bad option (value: the short
    letter, as optopt), with getopt's own message on stderr unless quiet."""
    prog = argv[0] if argv else PROG
    found = []

    def complain(text):
        if not quiet:
            sys.stderr.write('%s: %s\n' % (prog, text))
    index = 1
    while index < len(argv):
        arg = argv[index]
        index += 1
        if arg == '--':
            break
        if arg.startswith('--'):
            name, has_value, value = arg[2:].partition('=')
            matches = [long for long in LONG if long == name] or [long for long in LONG if long.startswith(name)]
            if len(matches) != 1:
                complain("%s option '--%s'" % ('unrecognized' if not matches else 'ambiguous', name))
                found.append(('?', None, None, None))
                continue
            letter = LONG[matches[0]]
            needs = (letter + ':') in SHORT and letter != 'A'
            if needs and not has_value:
                if index >= len(argv):
                    complain("option '--%s' requires an argument" % matches[0])
                    found.append(('?', None, None, None))
                    continue
                found.append((letter, argv[index], index, ''))
                index += 1
            elif has_value:
                found.append((letter, value, index - 1, arg[:len(arg) - len(value)]))
            else:
                found.append((letter, None, None, None))
            continue
        if arg.startswith('-') and len(arg) > 1:
            pos = 1
            while pos < len(arg):
                letter = arg[pos]
                pos += 1
                spot = SHORT.find(letter)
                if spot < 0 or letter == ':':
                    complain("invalid option -- '%s'" % letter)
                    found.append(('?', letter, None, None))
                    continue
                if SHORT[spot + 1:spot + 2] != ':':
                    found.append((letter, None, None, None))
                    continue
                if pos < len(arg):
                    found.append((letter, arg[pos:], index - 1, arg[:pos]))
                elif index < len(argv):
                    found.append((letter, argv[index], index, ''))
                    index += 1
                else:
                    complain("option requires an argument -- '%s'" % letter)
                    found.append(('?', letter, None, None))
                break
    return found


def mask_argv(argv):
    """The argv with the value of every -v whose -n names a password replaced by ********."""
    masked = list(argv)
    name = ''
    for letter, value, where, prefix in getopt(argv, quiet=True):
        if letter == 'n':
            name = value or ''
        elif letter == 'v' and where is not None and 'password' in name.lower():
            masked[where] = prefix + '********'
    return masked


class Options(object):
    def __init__(self):
        self.mode = None
        self.mode_name = None
        self.portal = None
        self.target = None
        self.ifaces = []
        self.op = 0
        self.type = None
        self.params = []
        self.sid = None
        self.rescan = self.login = self.logout = self.stats = self.show = self.discover = False
        self.login_all = self.logout_all = None
        self.info_level = -1
        self.letters = []


def parse(argv):
    opts = Options()
    name = value = None
    for letter, arg, _where, _prefix in getopt(argv):
        opts.letters.append(letter)
        if letter == 'm':
            opts.mode_name = arg
            opts.mode = arg if arg in ('discovery', 'discoverydb', 'node', 'session', 'iface', 'fw', 'host') else -1
        elif letter == 'p':
            opts.portal = split_portal_arg(arg)
        elif letter == 'T':
            opts.target = arg
        elif letter == 'I':
            opts.ifaces.append(arg)
        elif letter == 'o':
            opts.op |= OPS.get(arg, 0)
            if not opts.op:
                err("can not recognize operation: '%s'" % arg)
                raise Exit(ERR_INVAL)
        elif letter == 't':
            opts.type = {'st': 'sendtargets', 'sendtargets': 'sendtargets', 'slp': 'slp', 'isns': 'isns',
                         'fw': 'fw'}.get(arg, -1)
        elif letter == 'n':
            name = arg
        elif letter == 'v':
            value = arg
        elif letter == 'r':
            match = re.match(r'^(?:.*session)?(\d+)$', arg.rstrip('/'))
            if not match:
                err("invalid sid '%s'" % arg)
                raise Exit(ERR_INVAL)
            opts.sid = int(match.group(1))
        elif letter == 'R':
            opts.rescan = True
        elif letter == 'P':
            opts.info_level = _atoi(arg)
        elif letter == 'D':
            opts.discover = True
        elif letter == 'l':
            opts.login = True
        elif letter == 'u':
            opts.logout = True
        elif letter == 'L':
            opts.login_all = arg
        elif letter == 'U':
            opts.logout_all = arg
        elif letter == 's':
            opts.stats = True
        elif letter == 'S':
            opts.show = True
        elif letter == 'V':
            out('%s version %s' % (PROG, VERSION))
            raise Exit(0)
        elif letter == 'h':
            out(USAGE)
            raise Exit(0)
        if name is not None and value is not None:
            opts.params.append((name, value))
            name = value = None
    if opts.mode is None:
        sys.stderr.write("Try `%s --help' for more information.\n" % PROG)
        raise Exit(ERR_INVAL)
    if opts.mode == -1:
        err('mode -1 is not yet supported')
        raise Exit(ERR_INVAL)
    allowed = MODE_OPTIONS[opts.mode]
    for letter in opts.letters:
        if letter not in allowed and letter != 'm':
            err("%s mode: option '-%s' is not allowed/supported" % (opts.mode, letter))
            raise Exit(ERR_INVAL)
    return opts


# --- the commands -------------------------------------------------------------------------------------
class Host(object):
    """One invocation: the records, the kernel, the target."""

    def __init__(self, root):
        self.root = root
        self.db = Db(root)
        self.kernel = Kernel(root)
        self.extra_log = {}
        self.udev_token = None

    # environment knobs
    @staticmethod
    def udev_delay():
        try:
            return max(0.0, float(os.environ.get('VIRTOPS_FAKE_UDEV_DELAY') or 0))
        except ValueError:
            return 0.0

    @staticmethod
    def multipath():
        return os.environ.get('VIRTOPS_FAKE_MULTIPATH', '') not in ('', '0', 'false', 'no')

    # the target through libiscsi
    def open_target(self, address, port, target, username, password, timeout):
        libiscsi, _scsi, _e = client()
        return libiscsi.Connection(fmt_portal(address, port), self.root.initiator_name(), target=target,
                                   username=username, password=password, timeout=timeout)

    def rescan_session(self, sess, only_lun=None):
        """Re-read the target for a live session (credentials from the node record, where the
        real host would not need them: a failure leaves sysfs as it was)."""
        _libiscsi, scsi, storage_error = client()
        node = next((n for n in self.db.nodes() if n.name == sess['target'] and n.address == sess['address']
                     and n.port == sess['port']), None)
        username, password = chap_of(node.values, 'node.session.auth.') if node else (None, None)
        try:
            with self.open_target(sess['address'], sess['port'], sess['target'], username, password, 10) as conn:
                luns = scan_target(conn, scsi)
        except storage_error:
            return
        token = self.kernel.update_luns(sess, luns, backing_files(), self.udev_delay(), only_lun)
        self._spawn_udev(token)

    def _spawn_udev(self, token):
        if not token:
            return
        env = dict(os.environ, VIRTOPS_STORAGE_SYSROOT=self.root.path)
        subprocess.Popen([sys.executable, SCRIPT, '--standin-udev', token, str(self.udev_delay())], env=env,
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         close_fds=True, start_new_session=True, cwd='/')

    # node matching (__iscsi_match_session)
    @staticmethod
    def pattern(opts, default_port):
        address, port, tpgt = opts.portal if opts.portal else ('', -1, TPGT_UNKNOWN)
        if address and port == -1:
            port = default_port
        return {'name': opts.target or '', 'address': address, 'port': port, 'tpgt': tpgt,
                'iface': opts.ifaces[0] if opts.ifaces else ''}

    @staticmethod
    def node_matches(pattern, node):
        if pattern['name'] and pattern['name'] != node.name:
            return False
        if pattern['address'] and pattern['address'] != node.address:
            return False
        if pattern['port'] != -1 and pattern['port'] != node.port:
            return False
        if pattern['iface'] and pattern['iface'] != node.iface:
            return False
        return True

    def session_of(self, node):
        return self.kernel.find_sessions(node.name, node.address, node.port, node.iface)

    # login / logout
    def login_nodes(self, nodes):
        """iscsi_login_portals: every login request is sent first ("Logging in to ..."), then each
        answer is waited for in turn ("Login to ... successful." or the error); the first error
        is the result. A portal with its sessions already present is refused up front (15)."""
        rc = 0
        sent = []
        for node in nodes:
            count = len(self.session_of(node))
            wanted = max(1, _atoi(node.values.get('node.session.nr_sessions')))
            if count >= wanted:
                err('%s: %d session%s requested, but %d already present.' % (
                    node.iface, wanted, '' if wanted == 1 else 's', count))
                rc = rc or ERR_SESS_EXISTS
                continue
            out('Logging in to [iface: %s, target: %s, portal: %s,%d]' % (
                node.iface, node.name, node.address, node.port))
            sent.append(node)
        for node in sent:
            code = self.login_node(node)
            rc = rc or code
        return rc

    def login_node(self, node):
        """What iscsid and the kernel do for one login request: 0 or the iscsid error."""
        what = '[iface: %s, target: %s, portal: %s,%d]' % (node.iface, node.name, node.address, node.port)
        _libiscsi, scsi, storage_error = client()
        username, password = chap_of(node.values, 'node.session.auth.')
        timeout = max(1, _atoi(node.values.get('node.conn[0].timeo.login_timeout')) or 15)
        try:
            with self.open_target(node.address, node.port, node.name, username, password, timeout) as conn:
                luns = scan_target(conn, scsi)
        except storage_error as exc:
            code = login_error_code(exc)
            err('Could not login to %s.' % what)
            err_msg(code)
            return code
        try:
            _sess, token = self.kernel.add_session(node, username, luns, backing_files(), self.udev_delay(),
                                                   self.multipath())
        except StandinError as exc:
            for sess in self.session_of(node):
                self.kernel.remove_session(sess)
            sys.stderr.write('iscsiadm stand-in: %s\n' % exc)
            err('Could not login to %s.' % what)
            err_msg(ERR_INTERNAL)
            return ERR_INTERNAL
        self.udev_token = token or self.udev_token
        out('Login to %s successful.' % what)
        return 0

    def logout_sessions(self, sessions):
        rc = 0
        present, maps = [], []
        for sess in sessions:
            out('Logging out of session [sid: %d, target: %s, portal: %s,%d]' % (
                sess['sid'], sess['target'], sess['address'], sess['port']))
            devices, maps_left = self.kernel.remove_session(sess)
            present.extend(devices)
            maps = maps_left
            out('Logout of [sid: %d, target: %s, portal: %s,%d] successful.' % (
                sess['sid'], sess['target'], sess['address'], sess['port']))
        self.extra_log['devices_present_at_logout'] = present
        self.extra_log['maps_present_at_logout'] = maps
        return rc

    # discovery
    def sendtargets(self, drec, opts, op, do_login, sync_drec):
        """do_software_sendtargets + exec_disc_op_on_recs."""
        address = drec['discovery.sendtargets.address']
        port = _int(drec['discovery.sendtargets.port'], DEFAULT_PORT)
        if not op:
            op = OP_NEW | OP_DELETE | OP_UPDATE
        if not (op & OP_NONPERSISTENT) and sync_drec:
            self.db.write_disc(drec)
        for name in opts.ifaces:
            if name != 'default':
                err('Could not read iface info for %s. Make sure an iface config with the file name and '
                    'iface.iscsi_ifacename %s is in /etc/iscsi/ifaces.' % (name, name))
                return ERR_NO_OBJS_FOUND
        _libiscsi, _scsi, storage_error = client()
        username, password = chap_of(drec, 'discovery.sendtargets.auth.')
        reopen_max = _atoi(drec.get('discovery.sendtargets.reopen_max'))
        timeout = max(1, _atoi(drec.get('discovery.sendtargets.timeo.login_timeout')) or 15)
        problem = tcp_probe(address, port, min(timeout, 5))
        if problem:
            for _attempt in range(reopen_max + 1):
                if problem != 'timeout':
                    err('cannot make connection to %s: %s' % (address, problem))
            err('connection login retries (reopen_max) %d exceeded' % reopen_max)
            err('Could not perform SendTargets discovery: %s' % ERR_MSGS[ERR_PDU_TIMEOUT])
            return ERR_PDU_TIMEOUT
        try:
            with self.open_target(address, port, None, username, password, timeout) as conn:
                found = conn.discover()
        except storage_error as exc:
            if exc.code == 'ISCSI_AUTH_FAILED':
                err('discovery login to %s rejected: initiator failed authorization' % address)
                code = ERR_LOGIN_AUTH_FAILED
            elif exc.code == 'ISCSI_UNREACHABLE':
                err('connection login retries (reopen_max) %d exceeded' % reopen_max)
                code = ERR_PDU_TIMEOUT
            else:
                err('discovery login to %s failed, giving up 2' % address)
                code = ERR_FATAL_LOGIN
            err('Could not perform SendTargets discovery: %s' % ERR_MSGS[code])
            return code
        recs = []
        for target, portals in found:
            for text in portals:
                t_address, t_port, t_tpgt = parse_target_portal(text)
                recs.append(self.db.new_node(target, t_tpgt, t_address, t_port, disc=(address, port)))
        if not recs:
            err('No portals found')
            return ERR_NO_OBJS_FOUND
        rc = 0
        # as exec_disc_op_on_recs: `-o nonpersistent` alone has none of these bits
        if op & OP_DELETE:
            wanted = set((r.name, r.address, r.port, r.iface) for r in recs)
            for node in self.db.nodes():
                if node.values.get('node.discovery_type') != 'send_targets' or \
                        node.values.get('node.discovery_address') != address or \
                        _int(node.values.get('node.discovery_port'), 0) != port:
                    continue
                if (node.name, node.address, node.port, node.iface) in wanted:
                    continue
                self.delete_node(node)
        if op & OP_NEW or op & OP_UPDATE:
            existing = dict(((n.name, n.address, n.port, n.tpgt, n.iface), n) for n in self.db.nodes())
            for rec in recs:
                old = existing.get((rec.name, rec.address, rec.port, rec.tpgt, rec.iface))
                if old is not None:
                    if not op & OP_UPDATE:
                        continue
                    self.db.delete_node(old)
                self.db.write_node(rec)
        for rec in recs:
            if opts.info_level == 1:
                out('Target: %s' % rec.name)
                out('\tPortal: %s,%d' % (rec.portal(), rec.tpgt))
                out('\t\tIface Name: %s' % rec.iface)
            else:
                out(rec.flat())
        if do_login:
            code = self.login_nodes(recs)
            rc = rc or code
        return rc

    def delete_node(self, node):
        if self.session_of(node):
            err('This command will remove the record [iface: %s, target: %s, portal: %s,%d], but a session is '
                'using it. Logout session then rerun command to remove record.' % (
                    node.iface, node.name, node.address, node.port))
            return ERR_SESS_EXISTS
        self.db.delete_node(node)
        return 0

    # mode handlers
    def cmd_discovery(self, opts):
        address, port, _tpgt = opts.portal if opts.portal else (None, -1, -1)
        if opts.type == 'sendtargets':
            if port < 0:
                port = DEFAULT_PORT
            if not address:
                err('Please specify portal as <ipaddr>[:<ipport>]')
                return ERR_INVAL
            return self.sendtargets(self.db.disc_defaults(address, port), opts, opts.op, opts.login, True)
        if opts.type not in (None, -1):
            err('SLP discovery is not fully implemented yet.' if opts.type == 'slp' else
                'Invalid command. Possibly missing discovery --type.')
            return ERR_INVAL
        if address:
            if port < 0:
                port = DEFAULT_PORT
            drec = self.db.read_disc(address, port)
            if drec is None:
                err('Discovery record [%s,%d] not found!' % (address, port))
                return ERR_INVAL
            if opts.discover or opts.login:
                return self.sendtargets(drec, opts, opts.op, opts.login, False)
            if opts.op in (0, OP_SHOW):
                out(format_record(DISC_KEYS, drec, show=True, show_secrets=opts.show).rstrip('\n'))
                return 0
            if opts.op == OP_DELETE:
                self.db.delete_disc(address, port)
                return 0
            if opts.op in (OP_UPDATE, OP_NEW):
                err('Operations new and update for discovery mode is not supported. Use discoverydb mode.')
                return ERR_INVAL
            err('Invalid operation.')
            return ERR_INVAL
        if opts.op in (0, OP_SHOW):
            return self.print_all_discovery(opts.info_level)
        err('Invalid operation.')
        return ERR_INVAL

    def print_all_discovery(self, info_level):
        discs = self.db.discs()
        if info_level == 1:
            out('SENDTARGETS:')
            if not discs:
                out('No targets found.')
            for address, port in discs:
                out('DiscoveryAddress: %s,%d' % (address, port))
                for node in self.db.nodes():
                    if node.values.get('node.discovery_type') == 'send_targets' and \
                            node.values.get('node.discovery_address') == address and \
                            _int(node.values.get('node.discovery_port'), 0) == port:
                        out('Target: %s' % node.name)
                        out('\tPortal: %s,%d' % (node.portal(), node.tpgt))
                        out('\t\tIface Name: %s' % node.iface)
            for kind in ('iSNS', 'STATIC', 'FIRMWARE'):
                out('%s:' % kind)
                statics = [n for n in self.db.nodes() if n.values.get('node.discovery_type') == 'static'] \
                    if kind == 'STATIC' else []
                if not statics:
                    out('No targets found.')
                for node in statics:
                    out('Target: %s' % node.name)
                    out('\tPortal: %s,%d' % (node.portal(), node.tpgt))
                    out('\t\tIface Name: %s' % node.iface)
            return 0
        if not discs:
            return ERR_NO_OBJS_FOUND
        for address, port in discs:
            out('%s via sendtargets' % fmt_portal(address, port))
        return 0

    def cmd_discoverydb(self, opts):
        address, port, _tpgt = opts.portal if opts.portal else (None, -1, -1)
        if opts.type == 'sendtargets':
            if port < 0:
                port = DEFAULT_PORT
            if not address:
                err('Please specify portal as <ipaddr>[:<ipport>]')
                return ERR_INVAL
            if opts.op & OP_NEW and not opts.discover:
                self.db.write_disc(self.db.disc_defaults(address, port))
                out('New discovery record for [%s,%d] added.' % (address, port))
                return 0
            drec = self.db.read_disc(address, port)
            if drec is None:
                if not opts.discover:
                    err('Discovery record [%s,%d] not found.' % (address, port))
                    return ERR_IDBM
                drec = self.db.disc_defaults(address, port)
                if not opts.op & OP_NONPERSISTENT:
                    self.db.write_disc(drec)
            elif not opts.discover:
                return self.discoverydb_op(opts, drec, address, port)
            return self.sendtargets(drec, opts, opts.op, opts.login, False)
        if opts.type == 'slp':
            err('SLP discovery is not fully implemented yet.')
            return ERR_INVAL
        if opts.type == 'isns' and address and not opts.op & OP_NEW and not opts.discover:
            err('Discovery record [%s,%d] not found.' % (address, port if port > 0 else 3205))
            return ERR_IDBM
        if opts.type not in (None, -1):
            err('Invalid command. Possibly missing --discover argument.')
            return ERR_INVAL
        if not address:
            if opts.op in (0, OP_SHOW):
                return self.print_all_discovery(opts.info_level)
            err('Invalid operation. Operation not supported.')
            return ERR_INVAL
        if opts.op:
            err('Invalid command. Possibly missing discovery --type.')
        else:
            err('Invalid command. Portal not needed or Possibly missing discovery --type.')
        return ERR_INVAL

    def discoverydb_op(self, opts, drec, address, port):
        if opts.op in (0, OP_SHOW):
            out(format_record(DISC_KEYS, drec, show=True, show_secrets=opts.show).rstrip('\n'))
            return 0
        if opts.op == OP_DELETE:
            self.db.delete_disc(address, port)
            return 0
        if opts.op == OP_UPDATE:
            if not opts.params:
                err('Update requires name and value.')
                return ERR_INVAL
            for name, value in opts.params:
                code = set_param(drec, name, value, DISC_KEYS, 'discovery')
                if code:
                    return code
            self.db.write_disc(drec)
            return 0
        err('Operation is not supported.')
        return ERR_INVAL

    def cmd_node(self, opts):
        if opts.login_all is not None:
            return self.login_by_startup(opts.login_all)
        if opts.logout_all is not None:
            return self.logout_by_startup(opts.logout_all)
        pattern = self.pattern(opts, DEFAULT_PORT)
        op = opts.op
        if op == OP_NEW:
            return self.node_new(pattern)
        if opts.rescan:
            sessions = [s for s in self.kernel.sessions() if self.session_matches(pattern, s)]
            if not sessions:
                err('No session found.')
                return ERR_NO_OBJS_FOUND
            for sess in sessions:
                self.print_rescan(sess)
                self.rescan_session(sess)
            return 0
        if opts.login and opts.logout:
            err('Invalid parameters. Both login and logout passed in')
            return ERR_INVAL
        if (opts.login or opts.logout) and op:
            err('Invalid parameters. Login/logout and op passed in')
            return ERR_INVAL
        if not opts.login and not opts.logout and not op and not pattern['name'] and not pattern['address'] \
                and not pattern['iface']:
            return self.print_nodes(opts.info_level)
        if opts.login:
            nodes = [n for n in self.db.nodes() if self.node_matches(pattern, n)]
            if not nodes:
                err('No records found')
                return ERR_NO_OBJS_FOUND
            rc = self.login_nodes(nodes)
            if rc:
                err('Could not log into all portals')
            return rc
        if opts.logout:
            sessions = [s for s in self.kernel.sessions() if self.session_matches(pattern, s)]
            if not sessions:
                err('No matching sessions found')
                return ERR_NO_OBJS_FOUND
            return self.logout_sessions(sessions)
        nodes = [n for n in self.db.nodes() if self.node_matches(pattern, n)]
        if op in (0, OP_SHOW):
            if not nodes:
                err('No records found')
                return ERR_NO_OBJS_FOUND
            sys.stdout.write(''.join(format_record(NODE_KEYS, n.values, show=True, show_secrets=opts.show)
                                     for n in nodes))
            sys.stdout.flush()
            return 0
        if op == OP_UPDATE:
            if not opts.params:
                err('update requires name and value')
                return ERR_INVAL
            for name, _value in opts.params:
                if name.startswith('iface.') and name != 'iface.transport_name':
                    err('Cannot modify %s. Use iface mode to update this value.' % name)
                    return ERR_INVAL
            if not nodes:
                err('No records found')
                return ERR_NO_OBJS_FOUND
            for node in nodes:
                for name, value in opts.params:
                    name = 'iface.transport_name' if name == 'node.transport_name' else name
                    code = set_param(node.values, name, value, NODE_KEYS, 'node')
                    if code:
                        err('Could not execute operation on all records: %s' % ERR_MSGS[code])
                        return code
                write_file(node.path, format_record(NODE_KEYS, node.values))
            return 0
        if op == OP_DELETE:
            if not nodes:
                err('No records found')
                return ERR_NO_OBJS_FOUND
            rc = 0
            for node in nodes:
                code = self.delete_node(node)
                rc = rc or code
            if rc:
                err('Could not execute operation on all records: %s' % ERR_MSGS[rc])
            return rc
        err('operation is not supported.')
        return ERR_INVAL

    def node_new(self, pattern):
        """add_static_recs: a node record from iscsid.conf defaults, not linked to a discovery."""
        if not pattern['name'] or not pattern['address']:
            err('Error while adding record: %s' % ERR_MSGS[ERR_NO_OBJS_FOUND])
            return ERR_NO_OBJS_FOUND
        node = self.db.new_node(pattern['name'], pattern['tpgt'], pattern['address'], pattern['port'])
        old = [n for n in self.db.nodes() if (n.name, n.address, n.port, n.tpgt) == (
            node.name, node.address, node.port, node.tpgt)]
        for existing in old:
            self.db.delete_node(existing)
        self.db.write_node(node)
        out('New iSCSI node [tcp:[hw=,ip=,net_if=,iscsi_if=%s] %s,%d,%d %s] added' % (
            node.iface, node.address, node.port, node.tpgt, node.name))
        return 0

    def print_nodes(self, info_level):
        if info_level not in (-1, 0, 1):
            err('Invalid info level %d. Try 0 or 1.' % info_level)
            return ERR_INVAL
        nodes = self.db.nodes()
        if not nodes:
            err('No records found')
            return ERR_NO_OBJS_FOUND
        previous = None
        for node in nodes:
            if info_level == 1:
                if node.name != previous:
                    out('Target: %s' % node.name)
                out('\tPortal: %s,%d' % (node.portal(), node.tpgt))
                out('\t\tIface Name: %s' % node.iface)
                previous = node.name
            else:
                out(node.flat())
        return 0

    def session_matches(self, pattern, sess):
        if pattern is None:
            return True
        if pattern.get('sid') and pattern['sid'] != sess['sid']:
            return False
        if pattern['name'] and pattern['name'] != sess['target']:
            return False
        if pattern['address'] and pattern['address'] != sess['address']:
            return False
        if pattern['port'] != -1 and pattern['port'] != sess['port']:
            return False
        if pattern['iface'] and pattern['iface'] != sess['iface']:
            return False
        return True

    @staticmethod
    def print_rescan(sess):
        out('Rescanning session [sid: %d, target: %s, portal: %s,%d]' % (
            sess['sid'], sess['target'], sess['address'], sess['port']))

    def login_by_startup(self, mode):
        if mode not in ('automatic', 'all', 'manual', 'onboot'):
            err('Invalid loginall option %s.' % mode)
            sys.stderr.write("Try `%s --help' for more information.\n" % PROG)
            return ERR_INVAL

        def matches(node):
            return mode == 'all' or node.values.get('node.startup') == mode or \
                node.values.get('node.conn[0].startup') == mode
        nodes = [n for n in self.db.nodes() if matches(n)]
        if not nodes:
            err('No records found')
            return ERR_NO_OBJS_FOUND
        rc = self.login_nodes(nodes)
        if rc:
            err('Could not log into all portals')
        return rc

    def logout_by_startup(self, mode):
        if mode not in ('automatic', 'all', 'manual'):
            err('Invalid logoutall option %s.' % mode)
            sys.stderr.write("Try `%s --help' for more information.\n" % PROG)
            return ERR_INVAL
        sessions = []
        for sess in self.kernel.sessions():
            node = next((n for n in self.db.nodes() if (n.name, n.address, n.port, n.iface) == (
                sess['target'], sess['address'], sess['port'], sess['iface'])), None)
            if node is None or node.values.get('node.startup') == 'onboot':
                continue
            if mode == 'all' or node.values.get('node.startup') == mode or \
                    node.values.get('node.conn[0].startup') == mode:
                sessions.append(sess)
        if not sessions:
            err('No matching sessions found')
            return ERR_NO_OBJS_FOUND
        return self.logout_sessions(sessions)

    def cmd_session(self, opts):
        if opts.sid is not None:
            sess = self.state_session(opts.sid)
            if sess is None:
                err('could not read session targetname: 5')
                err('Could not get session info for sid %d' % opts.sid)
                return ERR_SYSFS_LOOKUP
            if opts.rescan:
                self.print_rescan(sess)
                self.rescan_session(sess)
                return 0
            if opts.logout:
                return self.logout_sessions([sess])
            if opts.op == 0 and not opts.stats and opts.info_level > 0:
                return self.print_sessions([sess], opts.info_level)
            if opts.op in (0, OP_SHOW) and not opts.stats:
                # exec_node_op on the session's record: its node record(s), as `-m node -o show`
                nodes = [n for n in self.db.nodes() if (n.name, n.address, n.port, n.iface) == (
                    sess['target'], sess['address'], sess['port'], sess['iface'])]
                if not nodes:
                    err('No records found')
                    return ERR_NO_OBJS_FOUND
                sys.stdout.write(''.join(format_record(NODE_KEYS, n.values, show=True, show_secrets=opts.show)
                                         for n in nodes))
                sys.stdout.flush()
                return 0
            err('operation is not supported.')
            return ERR_INVAL
        if opts.op == OP_NEW:
            err("session mode: Operation 'new' only allowed with specific session IDs")
            return ERR_INVAL
        sessions = self.kernel.sessions()
        if opts.logout or opts.rescan:
            if not sessions:
                err('No matching sessions found' if opts.logout else 'No session found.')
                return ERR_NO_OBJS_FOUND
            if opts.logout:
                return self.logout_sessions(sessions)
            for sess in sessions:
                self.print_rescan(sess)
                self.rescan_session(sess)
            return 0
        if not sessions:
            err('No active sessions.')
            return ERR_NO_OBJS_FOUND
        return self.print_sessions(sessions, opts.info_level)

    def state_session(self, sid):
        return self.kernel.state['sessions'].get(str(sid))

    def print_sessions(self, sessions, info_level):
        """session_info_print: flat (-P 0), tree (-P 1..3), as the 2.1.8 binary prints this tree
        (the connection and iscsid states are what a real iscsid reports for a live session)."""
        if info_level in (-1, 0):
            for sess in sessions:
                portal = fmt_portal(sess['address'], sess['port'])
                out('tcp: [%d] %s,%d %s (non-flash)' % (sess['sid'], portal, sess['tpgt'], sess['target']))
            return 0
        if info_level > 3:
            err('Invalid info level %d. Try 0 - 3.' % info_level)
            return ERR_INVAL
        if info_level == 3:
            out('iSCSI Transport Class version 2.0-870')
            out('version %s' % VERSION)
        for sess in sessions:
            portal = '%s,%d' % (fmt_portal(sess['address'], sess['port']), sess['tpgt'])
            lines = ['Target: %s (non-flash)' % sess['target'], '\tCurrent Portal: %s' % portal,
                     '\tPersistent Portal: %s' % portal, '\t\t**********', '\t\tInterface:', '\t\t**********',
                     '\t\tIface Name: %s' % sess['iface'], '\t\tIface Transport: tcp',
                     '\t\tIface Initiatorname: %s' % sess['initiator'], '\t\tIface IPaddress: %s' % sess['address'],
                     '\t\tIface HWaddress: default', '\t\tIface Netdev: default', '\t\tSID: %d' % sess['sid'],
                     '\t\tiSCSI Connection State: LOGGED IN', '\t\tiSCSI Session State: LOGGED_IN',
                     '\t\tInternal iscsid Session State: NO CHANGE']
            if info_level >= 2:
                lines += ['\t\t*********', '\t\tTimeouts:', '\t\t*********', '\t\tRecovery Timeout: 120',
                          '\t\tTarget Reset Timeout: 30', '\t\tLUN Reset Timeout: 30', '\t\tAbort Timeout: 15',
                          '\t\t*****', '\t\tCHAP:', '\t\t*****',
                          '\t\tusername: %s' % (sess['username'] or '<empty>'), '\t\tpassword: ********',
                          '\t\tusername_in: <empty>', '\t\tpassword_in: ********',
                          '\t\t************************', '\t\tNegotiated iSCSI params:',
                          '\t\t************************', '\t\tHeaderDigest: None', '\t\tDataDigest: None',
                          '\t\tMaxRecvDataSegmentLength: 262144', '\t\tMaxXmitDataSegmentLength: 8192',
                          '\t\tFirstBurstLength: 65536', '\t\tMaxBurstLength: 262144', '\t\tImmediateData: Yes',
                          '\t\tInitialR2T: Yes', '\t\tMaxOutstandingR2T: 1']
            if info_level >= 3:
                lines += ['\t\t************************', '\t\tAttached SCSI devices:',
                          '\t\t************************', '\t\tHost Number: %d\tState: running' % sess['host']]
                devices = sorted((d for d in self.kernel.state['devices'].values() if d['sid'] == sess['sid']),
                                 key=lambda d: d['lun'])
                for dev in devices:
                    lines.append('\t\tscsi%d Channel 00 Id 0 Lun: %d' % (sess['host'], dev['lun']))
                    if dev.get('sd') and dev.get('udev_done'):
                        lines.append('\t\t\tAttached scsi disk %s\t\tState: running' % dev['sd'])
            for line in lines:
                out(line)
        return 0

    def run(self, opts):
        if opts.mode == 'discovery':
            return self.cmd_discovery(opts)
        if opts.mode == 'discoverydb':
            return self.cmd_discoverydb(opts)
        if opts.mode == 'node':
            return self.cmd_node(opts)
        if opts.mode == 'session':
            return self.cmd_session(opts)
        if opts.mode == 'iface':
            if opts.op in (0, OP_SHOW) and not opts.ifaces:
                out('default tcp,<empty>,<empty>,<empty>,<empty>')
                out('iser iser,<empty>,<empty>,<empty>,<empty>')
                return 0
        err('mode %s is not supported by the stand-in' % opts.mode)
        return ERR_INVAL


# --- entry points -----------------------------------------------------------------------------------
def root_from_env():
    path = os.environ.get('VIRTOPS_STORAGE_SYSROOT')
    if not path:
        sys.stderr.write('iscsiadm stand-in: VIRTOPS_STORAGE_SYSROOT is not set\n')
        return None
    if not os.path.isabs(path) or not os.path.isdir(path):
        sys.stderr.write('iscsiadm stand-in: VIRTOPS_STORAGE_SYSROOT must be an existing absolute directory, '
                         'not %r\n' % path)
        return None
    return Root(os.path.realpath(path))


def append_call_log(root, argv, code, extra):
    entry = {'time': time.strftime('%Y-%m-%dT%H:%M:%S'), 'pid': os.getpid(), 'argv': mask_argv(argv),
             'exit': code}
    entry.update(extra)
    os.makedirs(os.path.dirname(root.call_log), exist_ok=True)
    with open(root.call_log, 'a') as handle:
        handle.write(json.dumps(entry, sort_keys=True) + '\n')


def cleanup(root):
    """--standin-cleanup: log out every session of the root, drop its maps, detach its loops."""
    host = Host(root)
    host.kernel.kernel_events(lambda *a, **k: None)
    for name in sorted(host.kernel.state['maps']):
        host.kernel.remove_map(name)
    present, sessions = [], []
    for sess in host.kernel.sessions():
        sessions.append(sess['sid'])
        devices, _maps = host.kernel.remove_session(sess)
        present.extend(devices)
    for hctl in sorted(host.kernel.state['devices']):
        host.kernel.remove_device(hctl)
    host.kernel.save()
    return {'devices_present_at_logout': present, 'sessions_logged_out': sessions}


def udev_child(root, token, delay):
    """The detached child that plays udev: after `delay`, the block devices of `token` appear."""
    time.sleep(delay)
    if not os.path.isdir(root.run):
        return 0
    root.lock()
    try:
        kernel = Kernel(root)
        changed = False
        for dev in kernel.state['devices'].values():
            if dev.get('token') == token and not dev.get('udev_done'):
                kernel.udev_add(dev)
                changed = True
        if changed:
            kernel.save()
    finally:
        root.unlock()
    return 0


def main(argv):
    root = root_from_env()
    if root is None:
        return 1
    if len(argv) >= 2 and argv[1] == '--standin-udev':
        return udev_child(root, argv[2], float(argv[3]))
    root.lock()
    code, extra = 0, {}
    try:
        if len(argv) >= 2 and argv[1] == '--standin-cleanup':
            extra = cleanup(root)
            return 0
        host = Host(root)
        host.kernel.kernel_events(host.rescan_session)
        try:
            opts = parse(argv)
            code = host.run(opts)
        except Exit as exc:
            code = exc.code
        finally:
            host.kernel.save()
            extra = host.extra_log
            if host.kernel.warnings:
                extra['standin_warnings'] = host.kernel.warnings
            token = host.udev_token
        if token:
            host._spawn_udev(token)
        return code
    finally:
        try:
            append_call_log(root, argv, code, extra)
        finally:
            root.unlock()


if __name__ == "__main__":
    sys.exit(main(["iscsiadm"] + sys.argv[1:]))
