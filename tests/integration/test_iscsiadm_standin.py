# -*- coding: utf-8 -*-
"""The iscsiadm stand-in (tests/fakes/iscsiadm) itself, against the lab's real tgtd.

Each test gets its own root (pytest tmp_path) and cleans it with `--standin-cleanup`, which
must leave no loop device behind. Texts and exit codes are open-iscsi 2.1.8's (see
tests/fakes/README.md for how they were checked against the real binary). Tests that need a
LUN to change (a new LUN, a bigger LUN) make a private tgtd target bound to the test's own
initiator name, which no other initiator can see or log in to.
"""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import os
import random
import re
import stat
import subprocess
import time
import uuid

import pytest

from _lab import ISCSID_CONF, LAB, attached_loops
from _support import REPO

from ansible_collections.virtops.storage.plugins.module_utils import _libiscsi, _scsi

# with pytest -n: on one worker with the other tests that attach loop devices over tgtd LUNs
pytestmark = pytest.mark.xdist_group('lab-iscsi-luns')

STANDIN = os.path.join(REPO, 'tests', 'fakes', 'iscsiadm')
PORTAL = LAB['LAB_ISCSI_PORTAL']
HOST, PORT = PORTAL.split(':')
CLOSED = LAB['LAB_ISCSI_CLOSED_PORTAL']
OPEN, CHAP = LAB['LAB_OPEN_IQN'], LAB['LAB_CHAP_IQN']
USER, SECRET = LAB['LAB_CHAP_USER'], LAB['LAB_CHAP_PASSWORD']
INITIATOR = LAB['LAB_INITIATOR_IQN']
MIB = 1024 * 1024
# iscsid.conf as Debian 12 ships it (its live settings)


class Root(object):
    """A stand-in root and the way to run the stand-in on it."""

    def __init__(self, path, initiator=INITIATOR):
        self.path = str(path)
        os.makedirs(self.p('etc/iscsi'))
        with open(self.p('etc/iscsi/iscsid.conf'), 'w') as handle:
            handle.write(ISCSID_CONF % 'manual')
        with open(self.p('etc/iscsi/initiatorname.iscsi'), 'w') as handle:
            handle.write('InitiatorName=%s\n' % initiator)

    def p(self, *parts):
        return os.path.join(self.path, *parts)

    def __call__(self, *args, **env):
        environ = dict(os.environ, VIRTOPS_STORAGE_SYSROOT=self.path)
        for name in ('VIRTOPS_FAKE_UDEV_DELAY', 'VIRTOPS_FAKE_MULTIPATH'):
            environ.pop(name, None)
        environ.update(env)
        return subprocess.run([STANDIN] + list(args), capture_output=True, text=True, env=environ, timeout=120,
                              check=False)

    def record(self, target, portal=PORTAL, tpgt=1):
        host, port = portal.split(':')
        with open(self.p('etc/iscsi/nodes', target, '%s,%s,%d' % (host, port, tpgt), 'default')) as handle:
            text = handle.read()
        return dict(line.split(' = ', 1) for line in text.splitlines() if ' = ' in line)

    def update(self, target, name, value):
        done = self('-m', 'node', '-T', target, '-p', PORTAL, '-o', 'update', '-n', name, '-v', value)
        assert done.returncode == 0, done.stderr
        return done

    def login(self, target, **env):
        return self('-m', 'node', '-T', target, '-p', PORTAL, '--login', **env)

    def state(self):
        with open(self.p('run/iscsiadm-standin/state.json')) as handle:
            return json.load(handle)

    def loops(self):
        state = self.state()
        return sorted(set([dev['loop'] for dev in state['devices'].values() if dev.get('loop')]
                          + [item['loop'] for item in state['maps'].values() if item.get('loop')]))

    def calls(self):
        with open(self.p('var/log/iscsiadm-standin.jsonl')) as handle:
            return [json.loads(line) for line in handle]


@pytest.fixture
def root(tmp_path):
    made = Root(tmp_path / 'root')
    yield made
    loops = made.loops() if os.path.exists(made.p('run/iscsiadm-standin/state.json')) else []
    done = made('--standin-cleanup')
    assert done.returncode == 0, done.stderr
    assert not set(loops) & attached_loops(), 'loop devices left attached: %s' % loops
    assert made.state() == {'sessions': {}, 'devices': {}, 'maps': {}}


def tgtadm(*args):
    return subprocess.run(['tgtadm', '--lld', 'iscsi'] + list(args), capture_output=True, text=True, check=True)


@pytest.fixture
def private_target(tmp_path):
    """A tgtd target of this test only: bound to its own initiator name (so SendTargets shows it
    to no one else), LUN 1 an 8 MiB file that starts with random bytes. Yields (root, iqn, tid, lun1)."""
    tag = uuid.uuid4().hex[:8]
    iqn, initiator = 'iqn.2026-11.lab.virtops:vtest-standin-%s' % tag, 'iqn.2026-11.lab.virtops:vtest-ini-%s' % tag
    lun1 = str(tmp_path / 'lun1.img')
    with open(lun1, 'wb') as handle:
        handle.write(os.urandom(64 * 1024))
        handle.truncate(8 * MIB)
    made = Root(tmp_path / 'root', initiator=initiator)
    for attempt in range(5):  # another worker may take the same free tid first
        shows = tgtadm('--mode', 'target', '--op', 'show').stdout
        used = set(int(tid) for tid in re.findall(r'^Target (\d+):', shows, re.M))
        tid = random.choice([tid for tid in range(700, 1000) if tid not in used])
        made_target = subprocess.run(['tgtadm', '--lld', 'iscsi', '--mode', 'target', '--op', 'new', '--tid', str(tid),
                                      '-T', iqn], capture_output=True, text=True, check=False)
        if made_target.returncode == 0:
            break
        assert attempt < 4, made_target.stderr
    try:
        tgtadm('--mode', 'logicalunit', '--op', 'new', '--tid', str(tid), '--lun', '1', '-b', lun1)
        tgtadm('--mode', 'target', '--op', 'bind', '--tid', str(tid), '--initiator-name', initiator)
        yield made, iqn, tid, lun1
    finally:
        made('--standin-cleanup')
        subprocess.run(['tgtadm', '--lld', 'iscsi', '--mode', 'target', '--op', 'delete', '--force', '--tid',
                        str(tid)], capture_output=True, check=False)


def lines(text):
    return text.splitlines()


def logging_in(target, portal=PORTAL):
    host, port = portal.split(':')
    return 'Logging in to [iface: default, target: %s, portal: %s,%s]' % (target, host, port)


def login_ok(target):
    return 'Login to [iface: default, target: %s, portal: %s,%s] successful.' % (target, HOST, PORT)


def wait_for(check, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, 'timed out'
        time.sleep(0.05)


# --- the contract's guard ----------------------------------------------------------------------
def test_refuses_without_sysroot(tmp_path):
    environ = dict(os.environ)
    environ.pop('VIRTOPS_STORAGE_SYSROOT', None)
    done = subprocess.run([STANDIN, '-m', 'node'], capture_output=True, text=True, env=environ, check=False)
    assert done.returncode == 1
    assert done.stderr == 'iscsiadm stand-in: VIRTOPS_STORAGE_SYSROOT is not set\n'
    assert done.stdout == ''


def test_usage_errors_and_version(root):
    assert root('-V').stdout == 'iscsiadm version 2.1.8\n'
    done = root()
    assert (done.returncode, done.stderr) == (7, "Try `iscsiadm --help' for more information.\n")
    done = root('-m', 'node', '-o', 'bogus')
    assert (done.returncode, done.stderr) == (7, "iscsiadm: can not recognize operation: 'bogus'\n")
    done = root('-m', 'session', '-T', OPEN)
    assert (done.returncode, done.stderr) == (7, "iscsiadm: session mode: option '-T' is not allowed/supported\n")


# --- records and discovery -------------------------------------------------------------------------
def test_empty_root_has_no_records_and_no_sessions(root):
    done = root('-m', 'node')
    assert (done.returncode, done.stdout, done.stderr) == (21, '', 'iscsiadm: No records found\n')
    done = root('-m', 'session')
    assert (done.returncode, done.stdout, done.stderr) == (21, '', 'iscsiadm: No active sessions.\n')
    done = root('-m', 'node', '-U', 'all')
    assert (done.returncode, done.stderr) == (21, 'iscsiadm: No matching sessions found\n')
    done = root('-m', 'discoverydb')
    assert (done.returncode, done.stdout, done.stderr) == (21, '', '')


def test_discovery_lists_the_targets_and_writes_records(root):
    done = root('-m', 'discovery', '-t', 'sendtargets', '-p', PORTAL)
    assert done.returncode == 0, done.stderr
    assert lines(done.stdout) == ['%s,1 %s' % (PORTAL, OPEN), '%s,1 %s' % (PORTAL, CHAP)]
    record = root.record(OPEN)
    assert record['node.discovery_type'] == 'send_targets'
    assert (record['node.discovery_address'], record['node.discovery_port']) == (HOST, PORT)
    assert record['node.startup'] == 'manual'
    assert record['node.session.initial_login_retry_max'] == '8'  # iscsid.conf, not the built-in 4
    with open(root.p('etc/iscsi/nodes', OPEN, '%s,%s,1' % (HOST, PORT), 'default')) as handle:
        text = handle.read()
    assert text.startswith('# BEGIN RECORD 2.1.8\nnode.name = %s\nnode.tpgt = 1\n' % OPEN)
    assert text.endswith('# END RECORD\n')
    link = root.p('etc/iscsi/send_targets', '%s,%s' % (HOST, PORT), '%s,%s,%s,1,default' % (OPEN, HOST, PORT))
    assert os.path.realpath(link) == root.p('etc/iscsi/nodes', OPEN, '%s,%s,1' % (HOST, PORT))
    listed = root('-m', 'node')
    assert lines(listed.stdout) == ['%s,1 %s' % (PORTAL, CHAP), '%s,1 %s' % (PORTAL, OPEN)]
    assert root('-m', 'discovery').stdout == '%s via sendtargets\n' % PORTAL


def test_discovery_new_keeps_records_plain_discovery_rebuilds_them(root):
    assert root('-m', 'discovery', '-t', 'st', '-p', PORTAL).returncode == 0
    root.update(CHAP, 'node.startup', 'automatic')
    root.update(CHAP, 'node.session.auth.authmethod', 'CHAP')
    root.update(CHAP, 'node.session.auth.username', USER)
    root.update(CHAP, 'node.session.auth.password', SECRET)
    done = root('-m', 'discovery', '-t', 'st', '-p', PORTAL, '-o', 'new')
    assert done.returncode == 0 and len(lines(done.stdout)) == 2
    record = root.record(CHAP)
    assert (record['node.startup'], record['node.session.auth.authmethod']) == ('automatic', 'CHAP')
    assert record['node.session.auth.password'] == SECRET
    done = root('-m', 'discovery', '-t', 'st', '-p', PORTAL)
    assert done.returncode == 0
    record = root.record(CHAP)
    assert record['node.startup'] == 'manual'
    assert record['node.session.auth.authmethod'] == 'None'
    assert 'node.session.auth.username' not in record and 'node.session.auth.password' not in record


def test_nonpersistent_discovery_writes_nothing(root):
    done = root('-m', 'discovery', '-t', 'st', '-p', PORTAL, '-o', 'nonpersistent')
    assert done.returncode == 0
    assert lines(done.stdout) == ['%s,1 %s' % (PORTAL, OPEN), '%s,1 %s' % (PORTAL, CHAP)]
    assert not os.path.exists(root.p('etc/iscsi/nodes'))
    assert not os.path.exists(root.p('etc/iscsi/send_targets'))


def test_discovery_mode_refuses_record_updates(root):
    args = ('-m', 'discovery', '-p', PORTAL, '-o', 'update', '-n', 'discovery.sendtargets.auth.username', '-v', USER)
    done = root(*args)
    assert (done.returncode, done.stderr) == (7, 'iscsiadm: Discovery record [%s,%s] not found!\n' % (HOST, PORT))
    assert root('-m', 'discovery', '-t', 'st', '-p', PORTAL).returncode == 0
    done = root(*args)
    assert done.returncode == 7
    assert done.stderr == ('iscsiadm: Operations new and update for discovery mode is not supported. '
                           'Use discoverydb mode.\n')


def test_discoverydb_keeps_discovery_chap(root):
    done = root('-m', 'discoverydb', '-t', 'st', '-p', PORTAL, '-o', 'show')
    assert (done.returncode, done.stderr) == (6, 'iscsiadm: Discovery record [%s,%s] not found.\n' % (HOST, PORT))
    done = root('-m', 'discoverydb', '-t', 'st', '-p', PORTAL, '-o', 'new')
    assert (done.returncode, done.stdout) == (0, 'New discovery record for [%s,%s] added.\n' % (HOST, PORT))
    for name, value in (('authmethod', 'CHAP'), ('username', USER), ('password', SECRET)):
        done = root('-m', 'discoverydb', '-t', 'st', '-p', PORTAL, '-o', 'update',
                    '-n', 'discovery.sendtargets.auth.' + name, '-v', value)
        assert (done.returncode, done.stdout, done.stderr) == (0, '', '')
    shown = root('-m', 'discoverydb', '-t', 'st', '-p', PORTAL, '-o', 'show').stdout
    assert 'discovery.sendtargets.auth.username = %s\n' % USER in shown
    assert 'discovery.sendtargets.auth.password = ********\n' in shown and SECRET not in shown
    assert 'discovery.sendtargets.auth.password = %s\n' % SECRET in root(
        '-m', 'discoverydb', '-t', 'st', '-p', PORTAL, '-o', 'show', '-S').stdout
    with open(root.p('etc/iscsi/send_targets/%s,%s/st_config' % (HOST, PORT))) as handle:
        assert 'discovery.sendtargets.auth.password = %s\n' % SECRET in handle.read()
    done = root('-m', 'discoverydb', '-t', 'st', '-p', PORTAL, '-D', '-o', 'new')
    assert done.returncode == 0, done.stderr
    assert lines(done.stdout) == ['%s,1 %s' % (PORTAL, OPEN), '%s,1 %s' % (PORTAL, CHAP)]
    # a plain `-m discovery` starts from iscsid.conf's discovery settings: the CHAP is gone
    assert root('-m', 'discovery', '-t', 'st', '-p', PORTAL).returncode == 0
    with open(root.p('etc/iscsi/send_targets/%s,%s/st_config' % (HOST, PORT))) as handle:
        assert 'auth.username' not in handle.read()
    done = root('-m', 'discoverydb', '-t', 'st', '-p', PORTAL, '-o', 'delete')
    assert (done.returncode, done.stderr) == (0, '')
    assert not os.path.exists(root.p('etc/iscsi/nodes', OPEN)), 'the records it found go with it'


def test_node_records_new_update_show_delete(root):
    done = root('-m', 'node', '-T', OPEN, '-p', PORTAL + ',1', '-o', 'new')
    assert done.stdout == 'New iSCSI node [tcp:[hw=,ip=,net_if=,iscsi_if=default] %s,%s,1 %s] added\n' % (
        HOST, PORT, OPEN)
    assert root.record(OPEN)['node.discovery_type'] == 'static'
    done = root('-m', 'node', '-T', OPEN, '-p', PORTAL, '-o', 'update', '-n', 'node.startup', '-v', 'bogus')
    assert done.returncode == 7
    assert lines(done.stderr) == ["iscsiadm: unknown value format 'bogus' for parameter name 'node.startup'",
                                  'iscsiadm: Unknown parameter node.startup.',
                                  'iscsiadm: Could not execute operation on all records: invalid parameter']
    done = root('-m', 'node', '-T', OPEN, '-p', PORTAL, '-o', 'update', '-n', 'node.conn[0].port', '-v', '1')
    assert done.returncode == 7 and 'It is used to look up the record and cannot be changed.' in done.stderr
    done = root('-m', 'node', '-T', 'iqn.2026-11.lab.virtops:none', '-o', 'show')
    assert (done.returncode, done.stderr) == (21, 'iscsiadm: No records found\n')
    root.update(OPEN, 'node.session.auth.password', SECRET)
    shown = root('-m', 'node', '-T', OPEN, '-p', PORTAL, '-o', 'show').stdout
    assert 'node.session.auth.password = ********\n' in shown and 'node.session.auth.username = <empty>\n' in shown
    assert shown.startswith('# BEGIN RECORD 2.1.8\n') and shown.endswith('# END RECORD\n')
    done = root('-m', 'node', '-T', OPEN, '-p', PORTAL, '-o', 'delete')
    assert (done.returncode, done.stdout, done.stderr) == (0, '', '')
    assert root('-m', 'node').returncode == 21


# --- sessions ------------------------------------------------------------------------------------
def test_login_logout_texts_and_exit_codes(root):
    assert root('-m', 'discovery', '-t', 'st', '-p', PORTAL, '-o', 'new').returncode == 0
    done = root.login(OPEN)
    assert (done.returncode, done.stderr) == (0, '')
    assert lines(done.stdout) == [logging_in(OPEN), login_ok(OPEN)]
    done = root.login(OPEN)
    assert (done.returncode, done.stdout) == (15, '')
    assert lines(done.stderr) == ['iscsiadm: default: 1 session requested, but 1 already present.',
                                  'iscsiadm: Could not log into all portals']
    done = root('-m', 'session')
    assert done.stdout == 'tcp: [1] %s,1 %s (non-flash)\n' % (PORTAL, OPEN)
    done = root('-m', 'node', '-T', OPEN, '-p', PORTAL, '-o', 'delete')
    assert done.returncode == 15
    assert lines(done.stderr) == [
        'iscsiadm: This command will remove the record [iface: default, target: %s, portal: %s,%s], but a session '
        'is using it. Logout session then rerun command to remove record.' % (OPEN, HOST, PORT),
        'iscsiadm: Could not execute operation on all records: session exists']
    done = root('-m', 'node', '-T', OPEN, '-p', PORTAL, '--logout')
    assert (done.returncode, done.stderr) == (0, '')
    assert lines(done.stdout) == [
        'Logging out of session [sid: 1, target: %s, portal: %s,%s]' % (OPEN, HOST, PORT),
        'Logout of [sid: 1, target: %s, portal: %s,%s] successful.' % (OPEN, HOST, PORT)]
    assert root.calls()[-1]['devices_present_at_logout'] == ['sda', 'sdb']
    done = root('-m', 'node', '-T', OPEN, '-p', PORTAL, '--logout')
    assert (done.returncode, done.stderr) == (21, 'iscsiadm: No matching sessions found\n')
    done = root('-m', 'session')
    assert (done.returncode, done.stderr) == (21, 'iscsiadm: No active sessions.\n')
    assert not os.listdir(root.p('sys/class/iscsi_session'))
    assert not os.path.lexists(root.p('dev/sda'))
    done = root('-m', 'node', '-T', 'iqn.2026-11.lab.virtops:none', '-p', PORTAL, '--login')
    assert (done.returncode, done.stderr) == (21, 'iscsiadm: No records found\n')


def test_chap_login_is_checked_by_the_target(root):
    assert root('-m', 'discovery', '-t', 'st', '-p', PORTAL).returncode == 0
    root.update(CHAP, 'node.session.auth.authmethod', 'CHAP')
    root.update(CHAP, 'node.session.auth.username', USER)
    root.update(CHAP, 'node.session.auth.password', 'not-the-secret')
    done = root.login(CHAP)
    assert (done.returncode, lines(done.stdout)) == (24, [logging_in(CHAP)])
    assert lines(done.stderr) == [
        'iscsiadm: Could not login to [iface: default, target: %s, portal: %s,%s].' % (CHAP, HOST, PORT),
        'iscsiadm: initiator reported error (24 - iSCSI login failed due to authorization failure)',
        'iscsiadm: Could not log into all portals']
    assert root('-m', 'session').returncode == 21
    root.update(CHAP, 'node.session.auth.password', SECRET)
    done = root.login(CHAP)
    assert (done.returncode, lines(done.stdout)) == (0, [logging_in(CHAP), login_ok(CHAP)])
    with open(root.p('sys/class/iscsi_session/session1/username')) as handle:
        assert handle.read() == USER + '\n'


def test_unreachable_portal(root):
    host, port = CLOSED.split(':')
    assert root('-m', 'node', '-T', OPEN, '-p', CLOSED + ',1', '-o', 'new').returncode == 0
    done = root('-m', 'node', '-T', OPEN, '-p', CLOSED, '--login')
    assert (done.returncode, lines(done.stdout)) == (8, [logging_in(OPEN, CLOSED)])
    assert lines(done.stderr) == [
        'iscsiadm: Could not login to [iface: default, target: %s, portal: %s,%s].' % (OPEN, host, port),
        'iscsiadm: initiator reported error (8 - connection timed out)',
        'iscsiadm: Could not log into all portals']
    done = root('-m', 'discovery', '-t', 'st', '-p', CLOSED)
    assert (done.returncode, done.stdout) == (11, '')
    assert lines(done.stderr) == ['iscsiadm: cannot make connection to %s: Connection refused' % host] * 6 + [
        'iscsiadm: connection login retries (reopen_max) 5 exceeded',
        'iscsiadm: Could not perform SendTargets discovery: iSCSI PDU timed out']


def test_sysfs_tree_is_what_the_target_answers(root):
    assert root('-m', 'discovery', '-t', 'st', '-p', PORTAL, '-o', 'new').returncode == 0
    assert root.login(OPEN).returncode == 0
    session = root.p('sys/class/iscsi_session/session1')
    for name, value in (('targetname', OPEN), ('tpgt', '1'), ('state', 'LOGGED_IN')):
        with open(os.path.join(session, name)) as handle:
            assert handle.read() == value + '\n'
    assert os.path.realpath(os.path.join(session, 'device')) == root.p('sys/devices/platform/host2/session1')
    connection = root.p('sys/class/iscsi_connection/connection1:0')
    for name, value in (('persistent_address', HOST), ('persistent_port', PORT), ('address', HOST), ('port', PORT)):
        with open(os.path.join(connection, name)) as handle:
            assert handle.read() == value + '\n'
    target = root.p('sys/devices/platform/host2/session1/target2:0:0')
    assert sorted(os.listdir(target)) == ['2:0:0:0', '2:0:0:1', '2:0:0:2']
    lun1 = os.path.join(target, '2:0:0:1')
    expected = {'vendor': 'VIRTOPS \n', 'model': 'LABDISK         \n', 'rev': '0001\n', 'type': '0\n',
                'state': 'running\n', 'delete': ''}
    for name, value in expected.items():
        with open(os.path.join(lun1, name)) as handle:
            assert handle.read() == value, name
    with open(os.path.join(target, '2:0:0:0', 'type')) as handle:
        assert handle.read() == '12\n'  # tgtd's controller LUN: a SCSI device, no block device
    assert not os.path.exists(os.path.join(target, '2:0:0:0', 'block'))
    with _libiscsi.Connection(PORTAL, INITIATOR, target=OPEN) as conn:
        page83, page80 = conn.inquiry(1, 0x83), conn.inquiry(1, 0x80)
    with open(os.path.join(lun1, 'vpd_pg83'), 'rb') as handle:
        assert handle.read() == page83[:4 + int.from_bytes(page83[2:4], 'big')]
    with open(os.path.join(lun1, 'vpd_pg80'), 'rb') as handle:
        assert handle.read() == page80[:4 + int.from_bytes(page80[2:4], 'big')]
    wwid = _scsi.wwid_from_page83(page83)
    assert wwid == '36000000000000000000000000e000001'
    block = os.path.join(lun1, 'block', 'sda')
    with open(os.path.join(block, 'size')) as handle:
        assert int(handle.read()) * 512 == int(LAB['LAB_OPEN_LUN1_SIZE_MIB']) * MIB
    assert os.listdir(os.path.join(block, 'holders')) == []
    assert os.path.realpath(root.p('sys/block/sda')) == block
    node = os.stat(root.p('dev/sda'))
    assert stat.S_ISBLK(node.st_mode)
    with open(os.path.join(block, 'dev')) as handle:
        assert handle.read() == '%d:%d\n' % (os.major(node.st_rdev), os.minor(node.st_rdev))
    loop = [dev for dev in root.state()['devices'].values() if dev.get('sd') == 'sda'][0]['loop']
    assert os.stat(loop).st_rdev == node.st_rdev
    with open('/sys/block/%s/loop/backing_file' % os.path.basename(loop)) as handle:
        backing = handle.read().strip()
    assert backing == os.path.join(LAB['LAB_STATE_DIR'], 'tgt', 'open-lun1.img')
    with open(root.p('dev/sda'), 'rb') as disk, open(backing, 'rb') as image:
        assert disk.read(64 * 1024) == image.read(64 * 1024)
    for link in ('dev/disk/by-id/wwn-0x' + wwid[1:], 'dev/disk/by-id/scsi-' + wwid,
                 'dev/disk/by-path/ip-%s-iscsi-%s-lun-1' % (PORTAL, OPEN)):
        assert os.readlink(root.p(link)) == '../../sda'
    # the real iscsiadm's view of the same tree
    tree = root('-m', 'session', '-P', '3').stdout
    assert '\t\tscsi2 Channel 00 Id 0 Lun: 1\n\t\t\tAttached scsi disk sda\t\tState: running\n' in tree


def test_block_device_reads_the_luns_bytes(private_target):
    root, iqn, _tid, lun1 = private_target
    assert '%s,1 %s' % (PORTAL, iqn) in lines(root('-m', 'discovery', '-t', 'st', '-p', PORTAL, '-o', 'new').stdout)
    assert root.login(iqn).returncode == 0
    with open(root.p('dev/sda'), 'rb') as disk, open(lun1, 'rb') as image:
        assert disk.read(64 * 1024) == image.read(64 * 1024)
    with open(root.p('sys/block/sda/size')) as handle:
        assert int(handle.read()) == 8 * MIB // 512


def test_udev_delay(root):
    assert root('-m', 'discovery', '-t', 'st', '-p', PORTAL, '-o', 'new').returncode == 0
    started = time.monotonic()
    assert root.login(OPEN, VIRTOPS_FAKE_UDEV_DELAY='1.0').returncode == 0
    lun1 = root.p('sys/class/iscsi_session/session1/device/target2:0:0/2:0:0:1')
    assert os.path.isfile(os.path.join(lun1, 'vpd_pg83')), 'the SCSI device is there at once'
    assert not os.path.exists(os.path.join(lun1, 'block'))
    assert not os.path.lexists(root.p('dev/sda')) and not os.path.exists(root.p('dev/disk'))
    wait_for(lambda: os.path.lexists(root.p('dev/disk/by-id/scsi-36000000000000000000000000e000001')))
    assert time.monotonic() - started >= 0.9
    assert os.listdir(os.path.join(lun1, 'block')) == ['sda']
    assert stat.S_ISBLK(os.stat(root.p('dev/sda')).st_mode)


def test_multipath_map(root):
    assert root('-m', 'discovery', '-t', 'st', '-p', PORTAL, '-o', 'new').returncode == 0
    assert root.login(OPEN, VIRTOPS_FAKE_MULTIPATH='1').returncode == 0
    wwid = '36000000000000000000000000e000001'
    holders = os.listdir(root.p('sys/block/sda/holders'))
    assert len(holders) == 1 and holders[0].startswith('dm-')
    dm = holders[0]
    with open(root.p('sys/block', dm, 'dm/uuid')) as handle:
        assert handle.read() == 'mpath-%s\n' % wwid
    with open(root.p('sys/block', dm, 'dm/name')) as handle:
        assert handle.read() == wwid + '\n'
    assert os.listdir(root.p('sys/block', dm, 'slaves')) == ['sda']
    assert os.path.realpath(root.p('sys/block', dm, 'slaves', 'sda')) == os.path.realpath(root.p('sys/block/sda'))
    assert os.readlink(root.p('dev/mapper', wwid)) == '../' + dm
    assert os.stat(root.p('dev', dm)).st_rdev == os.stat(root.p('dev/sda')).st_rdev
    with open(root.p('sys/block', dm, 'size')) as handle:
        assert int(handle.read()) * 512 == 64 * MIB
    # a flushed map goes at the next call; the paths stay
    open(root.p('sys/block', dm, 'dm/flushed'), 'w').close()
    assert root('-m', 'session').returncode == 0
    assert not os.path.lexists(root.p('sys/block', dm)) and not os.path.lexists(root.p('dev/mapper', wwid))
    assert os.listdir(root.p('sys/block/sda/holders')) == []
    assert stat.S_ISBLK(os.stat(root.p('dev/sda')).st_mode)


def test_delete_then_rescan_brings_the_lun_back(root):
    assert root('-m', 'discovery', '-t', 'st', '-p', PORTAL, '-o', 'new').returncode == 0
    assert root.login(OPEN).returncode == 0
    loop = root.state()['devices']['2:0:0:1']['loop']
    with open(root.p('sys/block/sda/device/delete'), 'w') as handle:
        handle.write('1')
    done = root('-m', 'session')  # the kernel removed it before anything else looks
    assert done.returncode == 0
    assert not os.path.lexists(root.p('sys/block/sda')) and not os.path.lexists(root.p('dev/sda'))
    assert not os.path.exists(root.p('sys/class/iscsi_session/session1/device/target2:0:0/2:0:0:1'))
    assert not os.path.lexists(root.p('dev/disk/by-id/scsi-36000000000000000000000000e000001'))
    assert loop not in attached_loops()
    done = root('-m', 'session', '-r', '1', '--rescan')
    assert (done.returncode, done.stdout) == (
        0, 'Rescanning session [sid: 1, target: %s, portal: %s,%s]\n' % (OPEN, HOST, PORT))
    assert os.path.isdir(root.p('sys/class/iscsi_session/session1/device/target2:0:0/2:0:0:1'))
    assert os.listdir(root.p('sys/class/iscsi_session/session1/device/target2:0:0/2:0:0:1/block')) == ['sda']
    done = root('-m', 'node', '-T', OPEN, '-p', PORTAL, '-u')
    assert done.returncode == 0
    assert root.calls()[-1]['devices_present_at_logout'] == ['sda', 'sdb']
    done = root('-m', 'session', '-r', '1', '--rescan')
    assert (done.returncode, lines(done.stderr)) == (22, ['iscsiadm: could not read session targetname: 5',
                                                          'iscsiadm: Could not get session info for sid 1'])


def test_rescan_finds_new_luns_and_new_sizes(private_target, tmp_path):
    root, iqn, tid, lun1 = private_target
    assert root('-m', 'discovery', '-t', 'st', '-p', PORTAL, '-o', 'new').returncode == 0
    assert root.login(iqn).returncode == 0
    luns = os.path.join(root.p('sys/class/iscsi_session/session1/device'), 'target2:0:0')
    assert sorted(os.listdir(luns)) == ['2:0:0:0', '2:0:0:1']
    lun2 = str(tmp_path / 'lun2.img')
    with open(lun2, 'wb') as handle:
        handle.truncate(4 * MIB)
    tgtadm('--mode', 'logicalunit', '--op', 'new', '--tid', str(tid), '--lun', '2', '-b', lun2)
    with open(lun1, 'r+b') as handle:  # LUN 1 grows: tgtd reads the size when the LUN is made
        handle.truncate(16 * MIB)
    tgtadm('--mode', 'logicalunit', '--op', 'delete', '--tid', str(tid), '--lun', '1')
    tgtadm('--mode', 'logicalunit', '--op', 'new', '--tid', str(tid), '--lun', '1', '-b', lun1)
    done = root('-m', 'node', '-T', iqn, '-p', PORTAL, '--rescan')
    assert (done.returncode, done.stdout) == (
        0, 'Rescanning session [sid: 1, target: %s, portal: %s,%s]\n' % (iqn, HOST, PORT))
    assert sorted(os.listdir(luns)) == ['2:0:0:0', '2:0:0:1', '2:0:0:2']
    with open(root.p('sys/block/sda/size')) as handle:
        assert int(handle.read()) == 16 * MIB // 512
    with open(root.p('sys/block/sdb/size')) as handle:
        assert int(handle.read()) == 4 * MIB // 512
    with open(root.p('dev/sda'), 'rb') as disk:
        disk.seek(0, os.SEEK_END)
        assert disk.tell() == 16 * MIB, 'the block device follows the new capacity'


# --- the call log and the secrets ---------------------------------------------------------------------
def test_call_log_masks_passwords_and_secrets_stay_in_the_records(root):
    assert root('-m', 'discovery', '-t', 'st', '-p', PORTAL).returncode == 0
    root.update(CHAP, 'node.session.auth.authmethod', 'CHAP')
    root.update(CHAP, 'node.session.auth.username', USER)
    root('-m', 'node', '-T', CHAP, '-p', PORTAL, '-o', 'update', '--name=node.session.auth.password',
         '--value=' + SECRET)
    root.update(CHAP, 'node.session.auth.password', SECRET)
    root('-m', 'discoverydb', '-t', 'st', '-p', PORTAL, '-o', 'update', '-n',
         'discovery.sendtargets.auth.password', '-v' + SECRET)
    assert root.login(CHAP).returncode == 0
    calls = root.calls()
    assert [call['argv'][-1] for call in calls[-5:-1]] == [
        USER, '--value=********', '********', '-v********']
    assert calls[-1]['exit'] == 0 and calls[0]['argv'][1:] == ['-m', 'discovery', '-t', 'st', '-p', PORTAL]
    holders = []
    for directory, _dirs, files in os.walk(root.path):
        for name in files:
            path = os.path.join(directory, name)
            if os.path.islink(path) or not os.path.isfile(path):
                continue
            with open(path, 'rb') as handle:
                if SECRET.encode() in handle.read():
                    holders.append(os.path.relpath(path, root.path))
    assert sorted(holders) == [os.path.join('etc/iscsi/nodes', CHAP, '%s,%s,1' % (HOST, PORT), 'default'),
                               'etc/iscsi/send_targets/%s,%s/st_config' % (HOST, PORT)]


def test_cleanup_logs_out_and_detaches_every_loop(root):
    assert root('-m', 'discovery', '-t', 'st', '-p', PORTAL, '-o', 'new').returncode == 0
    assert root.login(OPEN, VIRTOPS_FAKE_MULTIPATH='1').returncode == 0
    loops = root.loops()
    assert len(loops) == 2 and set(loops) <= attached_loops()
    done = root('--standin-cleanup')
    assert done.returncode == 0
    assert not set(loops) & attached_loops()
    assert root('-m', 'session').returncode == 21
    assert not os.listdir(root.p('sys/block')) and not os.listdir(root.p('dev/mapper'))
    cleanup = root.calls()[-2]
    assert cleanup['argv'][1:] == ['--standin-cleanup'] and cleanup['devices_present_at_logout'] == ['sda', 'sdb']
