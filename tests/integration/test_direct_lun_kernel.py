# -*- coding: utf-8 -*-
"""direct_lun and direct_lun_info, transport kernel, against the iscsiadm stand-in
(tests/fakes/iscsiadm: open-iscsi 2.1.8's texts, exit codes and record files, logging in to
the lab's real tgtd, with real block devices over the LUNs' backing files).

Each test has its own stand-in root (VIRTOPS_STORAGE_SYSROOT under tmp_path) and cleans it
with `iscsiadm --standin-cleanup` (logout, loop devices detached) whatever happens. Each
change: check mode (nothing moves: the node/discovery records, the sessions, the SCSI and
block devices and links of the root, both XML views of every watched domain; and check mode
calls iscsiadm only to read) -> apply -> verify through the records, sysfs/dev and libvirt ->
re-run unchanged. Each refusal: in check mode and for real, nothing moves.

The facts checked against come from outside the module: sizes from tgtd's backing files,
serials from tests/lab/lab.env, the WWID from the raw VPD page 0x83 (read through libiscsi,
decoded here) and from the qemu transport, the disks from libvirt, what QEMU opened from its
monitor, who logged out with what still present from the stand-in's call log.

What attaches LUNs or logs out of them works on a private tgtd target (bound to the test root's
own initiator name): the lab's shared LUNs may be in use by other tests and the demo at any
moment, and these tests only log in to them and read them. So the tests are independent of
each other and of other users of the lab (pytest -n works)."""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import os
import random
import re
import subprocess
import time
import types
import uuid

import pytest
from lxml import etree

import _lab
from _disks import DISK_FIELDS, disks_of, views
from _lab import ISCSID_CONF, LAB, ModuleRun, attached_loops, define_domain, monitor
from _support import REPO
from ansible_collections.virtops.storage.plugins.module_utils._libiscsi import Connection

# with pytest -n: on one worker with the other tests that attach loop devices over tgtd LUNs
pytestmark = pytest.mark.xdist_group('lab-iscsi-luns')

FAKES = os.path.join(REPO, 'tests', 'fakes')
STANDIN = os.path.join(FAKES, 'iscsiadm')
PORTAL = LAB['LAB_ISCSI_PORTAL']
CLOSED = LAB['LAB_ISCSI_CLOSED_PORTAL']
OPEN, CHAP = LAB['LAB_OPEN_IQN'], LAB['LAB_CHAP_IQN']
USER, PASSWORD = LAB['LAB_CHAP_USER'], LAB['LAB_CHAP_PASSWORD']
WRONG_PASSWORD = 'not-the-lab-chap-secret-0815'
AUTH = {'username': USER, 'password': PASSWORD}
INITIATOR = LAB['LAB_INITIATOR_IQN']
VENDOR, MODEL = 'VIRTOPS', 'LABDISK'
# (target, LUN) -> (backing file short name, unit serial)
LAB_LUNS = {(OPEN, 1): ('open', LAB['LAB_OPEN_LUN1_SCSI_SN']), (OPEN, 2): ('open', LAB['LAB_OPEN_LUN2_SCSI_SN']),
            (CHAP, 1): ('chap', LAB['LAB_CHAP_LUN1_SCSI_SN'])}
KERNEL = {'portal': PORTAL}
DISCOVER = 'discover the targets of portal %s' % PORTAL  # the step's text (it may name the new targets)
MIB = 1024 * 1024


# ---------------------------------------------------------------------------------------
# the independent truth about the lab's LUNs
def naa_wwid(page):
    """"3" + hex of the LUN's NAA type 6 designator (what the lab's LUNs carry and what
    udev/multipath prefer) from a raw VPD page 0x83."""
    end = 4 + int.from_bytes(page[2:4], 'big')
    offset = 4
    while offset + 4 <= end:
        length = page[offset + 3]
        body = bytes(page[offset + 4:offset + 4 + length])
        if (page[offset + 1] >> 4) & 3 == 0 and page[offset + 1] & 0xf == 3 and body[0] >> 4 == 6:
            return '3' + body.hex()
        offset += 4 + length
    return None


@pytest.fixture(scope='module')
def truth():
    """{(target, lun): {wwid, size, serial}} from the target's raw answers and tgtd's files."""
    found = {}
    for (target, lun), (short, serial) in LAB_LUNS.items():
        username, password = (USER, PASSWORD) if target == CHAP else (None, None)
        with Connection(PORTAL, INITIATOR, target, username, password) as connection:
            page = connection.inquiry(lun, 0x83)
        size = os.stat(os.path.join(LAB['LAB_STATE_DIR'], 'tgt', '%s-lun%d.img' % (short, lun))).st_size
        found[(target, lun)] = {'wwid': naa_wwid(page), 'size': size, 'serial': serial}
    return found


# ---------------------------------------------------------------------------------------
# one stand-in root per test
def option_values(argv, *names):
    return [argv[index + 1] for index, word in enumerate(argv[:-1]) if word in names]


def read_only_call(argv, rescan=False):
    """Whether an iscsiadm command line only reads (what check mode may run); with `rescan`,
    a session rescan counts as reading (a real run may rescan to find a LUN; it is no change)."""
    args = argv[1:]
    if rescan and option_values(args, '-m') == ['session'] and set(args) & {'-R', '--rescan'} and \
            not set(args) & {'-u', '--logout'}:
        return True
    mode = option_values(args, '-m', '--mode')
    ops = set(option_values(args, '-o', '--op'))
    if set(args) & {'-D', '--discover'}:  # a discovery through the discoverydb record
        return mode == ['discoverydb'] and ops == {'nonpersistent'}
    acting = {'-l', '--login', '-u', '--logout', '-L', '--loginall', '-U', '--logoutall', '-R', '--rescan'}
    if acting & set(args) or '-n' in args or '--name' in args:
        return False
    if mode == ['discovery']:
        return ops == {'nonpersistent'}
    if mode in (['node'], ['discoverydb']):
        return ops <= {'show'}
    return mode == ['session']


class Host(object):
    """A stand-in root, the module runs pointed at it, and what they showed."""

    def __init__(self, path, initiator=INITIATOR, startup='manual'):
        self.path = str(path)
        self.initiator = initiator
        os.makedirs(self.p('etc/iscsi'))
        with open(self.p('etc/iscsi/iscsid.conf'), 'w') as handle:
            handle.write(ISCSID_CONF % startup)
        with open(self.p('etc/iscsi/initiatorname.iscsi'), 'w') as handle:
            handle.write('InitiatorName=%s\n' % initiator)
        self.results = []
        self.seen_loops = set()
        self.own_calls = set()  # call log lines of the tests' own iscsiadm calls

    def p(self, *parts):
        return os.path.join(self.path, *parts)

    def env(self, **extra):
        env = {'VIRTOPS_STORAGE_SYSROOT': self.path, 'PATH': FAKES + ':' + os.environ['PATH'],
               'VIRTOPS_FAKE_UDEV_DELAY': '0', 'VIRTOPS_FAKE_MULTIPATH': '0'}
        env.update(extra)
        return env

    def run(self, module, args, check=False, diff=False, verbosity=0, **env):
        result = ModuleRun(module, args, check=check, diff=diff, verbosity=verbosity, env=self.env(**env))
        self.results.append(result)
        self.remember_loops()
        return result

    def bound(self, **env):
        """run(module, args, check, diff) with this environment: for _lab.converge/refused."""
        def _run(module, args, **kwargs):
            return self.run(module, args, **dict(kwargs, **env))
        return _run

    def iscsiadm(self, *args, **env):
        done = subprocess.run([STANDIN] + list(args), capture_output=True, text=True, timeout=120, check=False,
                              env=dict(os.environ, **self.env(**env)))
        self.own_calls.add(len(self.calls()) - 1)
        self.remember_loops()
        return done

    def remember_loops(self):
        if os.path.exists(self.p('run/iscsiadm-standin/state.json')):
            with open(self.p('run/iscsiadm-standin/state.json')) as handle:
                state = json.load(handle)
            for item in list(state['devices'].values()) + list(state['maps'].values()):
                if item.get('loop'):
                    self.seen_loops.add(item['loop'])

    # what the module may change ----------------------------------------------------------
    def record_path(self, target, portal=PORTAL, tpgt=1):
        host, port = portal.rsplit(':', 1)
        return self.p('etc/iscsi/nodes', target, '%s,%s,%d' % (host, port, tpgt), 'default')

    def record(self, target, portal=PORTAL):
        """The node record as a dict, or None."""
        if not os.path.exists(self.record_path(target, portal)):
            return None
        with open(self.record_path(target, portal)) as handle:
            return dict(line.split(' = ', 1) for line in handle.read().splitlines() if ' = ' in line)

    def discovery_record(self, portal=PORTAL):
        path = self.p('etc/iscsi/send_targets', portal.replace(':', ','), 'st_config')
        if not os.path.exists(path):
            return None
        with open(path) as handle:
            return dict(line.split(' = ', 1) for line in handle.read().splitlines() if ' = ' in line)

    def sessions(self):
        """{session directory: targetname} of the root's sysfs."""
        base = self.p('sys/class/iscsi_session')
        found = {}
        for name in sorted(os.listdir(base)) if os.path.isdir(base) else []:
            with open(os.path.join(base, name, 'targetname')) as handle:
                found[name] = handle.read().strip()
        return found

    def blocks(self):
        return sorted(os.listdir(self.p('sys/block'))) if os.path.isdir(self.p('sys/block')) else []

    def state(self):
        """Everything a run may change under the root: records (with their contents), sessions,
        SCSI/block devices, device nodes and udev links."""
        snap = {}
        for top in ('etc/iscsi', 'sys/class/iscsi_session', 'sys/bus/scsi/devices', 'sys/block', 'dev'):
            for directory, dirs, files in os.walk(self.p(top)):
                for name in dirs + files:
                    full = os.path.join(directory, name)
                    rel = os.path.relpath(full, self.path)
                    if os.path.islink(full):
                        snap[rel] = '-> ' + os.readlink(full)
                    elif os.path.isfile(full) and top == 'etc/iscsi':
                        with open(full) as handle:
                            snap[rel] = handle.read()
                    else:
                        snap[rel] = 'dir' if os.path.isdir(full) else 'node'
        return snap

    def calls(self):
        if not os.path.exists(self.p('var/log/iscsiadm-standin.jsonl')):
            return []
        with open(self.p('var/log/iscsiadm-standin.jsonl')) as handle:
            return [json.loads(line) for line in handle]

    def texts(self):
        """Every output the runs of this root showed, and the call log."""
        for result in self.results:
            yield result.stdout
            yield result.stderr
            yield json.dumps(result.result)
        if os.path.exists(self.p('var/log/iscsiadm-standin.jsonl')):
            with open(self.p('var/log/iscsiadm-standin.jsonl')) as handle:
                yield handle.read()

    def cleanup(self):
        done = self.iscsiadm('--standin-cleanup')
        assert done.returncode == 0, done.stderr
        left = self.seen_loops & attached_loops()
        assert not left, 'loop devices left attached: %s' % sorted(left)


def module_calls(host):
    return [call for index, call in enumerate(host.calls()) if index not in host.own_calls]


@pytest.fixture
def hosts(tmp_path):
    """Host(...) factory; every root is cleaned up, then checked: no CHAP password in any
    output or in the call log, and every discovery of the module kept existing records."""
    made = []

    def make(**kwargs):
        made.append(Host(tmp_path / ('root%d' % len(made)), **kwargs))
        return made[-1]
    yield make
    errors = []
    for host in made:  # every root, whatever one of them says: loop devices are a host resource
        try:
            host.cleanup()
        except AssertionError as err:
            errors.append(str(err))
    assert not errors, errors
    for host in made:
        for text in host.texts():
            assert PASSWORD not in text and WRONG_PASSWORD not in text, 'a CHAP password in an output or the call log'
        for call in module_calls(host):
            argv = call['argv']
            if option_values(argv, '-m') == ['discovery'] and ('-t' in argv or '--type' in argv):
                assert option_values(argv, '-o', '--op') in (['new'], ['nonpersistent']), \
                    'a discovery that rebuilds node records: %s' % argv
            if '-D' in argv or '--discover' in argv:
                assert option_values(argv, '-o', '--op') in (['new'], ['nonpersistent']), \
                    'a discovery that rebuilds node records: %s' % argv


@pytest.fixture
def host(hosts):
    return hosts()


def tgtadm(*args):
    return subprocess.run(['tgtadm', '--lld', 'iscsi'] + list(args), capture_output=True, text=True, check=True)


@pytest.fixture
def private(hosts, tmp_path):
    """A tgtd target of this test only, bound to the initiator name of its own root (no one else
    sees it: other users of the lab's LUNs cannot change what is in use, a file system can be made
    on it): LUN 1 of 8 MiB, LUN 2 of 4 MiB. Yields .host, .iqn and .truth {(iqn, lun): {wwid,
    size, serial}} read from the target itself."""
    tag = uuid.uuid4().hex[:8]
    iqn, initiator = 'iqn.2026-11.lab.virtops:vtest-kernel-%s' % tag, 'iqn.2026-11.lab.virtops:vtest-ini-%s' % tag
    sizes = {1: 8 * MIB, 2: 4 * MIB}
    for lun, size in sizes.items():
        with open(str(tmp_path / ('lun%d.img' % lun)), 'wb') as handle:
            handle.truncate(size)
    for attempt in range(5):  # another user may take the same free tid first
        shows = tgtadm('--mode', 'target', '--op', 'show').stdout
        used = set(int(tid) for tid in re.findall(r'^Target (\d+):', shows, re.M))
        tid = random.choice([tid for tid in range(700, 1000) if tid not in used])
        created = subprocess.run(['tgtadm', '--lld', 'iscsi', '--mode', 'target', '--op', 'new', '--tid', str(tid),
                                  '-T', iqn], capture_output=True, text=True, check=False)
        if created.returncode == 0:
            break
        assert attempt < 4, created.stderr
    try:
        for lun in sizes:
            tgtadm('--mode', 'logicalunit', '--op', 'new', '--tid', str(tid), '--lun', str(lun), '-b',
                   str(tmp_path / ('lun%d.img' % lun)))
        tgtadm('--mode', 'target', '--op', 'bind', '--tid', str(tid), '--initiator-name', initiator)
        truth = {}
        with Connection(PORTAL, initiator, iqn) as connection:
            for lun, size in sizes.items():
                page80 = connection.inquiry(lun, 0x80)
                truth[(iqn, lun)] = {'wwid': naa_wwid(connection.inquiry(lun, 0x83)), 'size': size,
                                     'serial': page80[4:4 + page80[3]].decode('ascii').strip()}
        made = types.SimpleNamespace(host=hosts(initiator=initiator), iqn=iqn, truth=truth)
        yield made
        made.host.cleanup()  # logged out before the target goes
    finally:
        subprocess.run(['tgtadm', '--lld', 'iscsi', '--mode', 'target', '--op', 'delete', '--force', '--tid',
                        str(tid)], capture_output=True, check=False)


# ---------------------------------------------------------------------------------------
# the converge/refused checks, with the root's state and the call log
def watched(host, conn, *domains):
    def state():
        return host.state(), [views(conn, dom.name()) for dom in domains]
    return state


def converge(host, args, state, result_key='luns', verify=None, fields=(), check_calls=True, **env):
    """_lab.converge, plus: check mode ran iscsiadm only to read."""
    start = [len(host.calls())]
    base = host.bound(**env)

    def run(module, margs, **kwargs):
        if kwargs.get('check') and check_calls:
            start[0] = len(host.calls())
        result = base(module, margs, **kwargs)
        if kwargs.get('check') and check_calls:
            writes = [call['argv'] for call in host.calls()[start[0]:] if not read_only_call(call['argv'])]
            assert not writes, 'check mode ran iscsiadm to change something: %s' % writes
        return result
    return _lab.converge(run, 'direct_lun', args, state, result_key, fields, verify)


def refused(host, args, code, state, module='direct_lun', **env):
    """_lab.refused, plus: iscsiadm only read (check mode: not even a rescan)."""
    base = host.bound(**env)

    def run(module_name, margs, **kwargs):
        start = len(host.calls())
        result = base(module_name, margs, **kwargs)
        writes = [call['argv'] for call in host.calls()[start:]
                  if not read_only_call(call['argv'], rescan=not kwargs.get('check'))]
        assert not writes, 'a refused run ran iscsiadm to change something: %s' % writes
        return result
    return _lab.refused(run, module, args, code, state)


def by_key(luns):
    return dict(((lun['target'], lun['lun']), lun) for lun in luns)


def by_id(host, wwid):
    return host.p('dev/disk/by-id', 'wwn-0x' + wwid[1:])


def check_lun(host, reported, truth, target, lun):
    fact = truth[(target, lun)]
    assert reported['wwid'] == fact['wwid']
    assert reported['size'] == fact['size'], 'size must be the backing file\'s, exactly'
    assert (reported['vendor'], reported['model'], reported['serial']) == (VENDOR, MODEL, fact['serial'])
    assert reported['portal'] == PORTAL and reported['target'] == target
    assert reported['path'] == by_id(host, fact['wwid']), 'the by-id link, never /dev/sdX'
    assert re.match(r'sd[a-z]+\Z', os.path.basename(os.path.realpath(reported['path'])))
    assert 'source' not in reported


def login(host, target=OPEN, **extra):
    args = dict(KERNEL, target=target, **extra)
    if target == CHAP:
        args.setdefault('auth', AUTH)
    done = host.run('direct_lun', args)
    assert not done.failed, done.get('msg')
    return done


def make_domain(conn, names, suffix='vm', start=True):
    """A guest-less domain with a small root disk (vda), so a hot-plugged LUN is a data disk."""
    path = names.path('%s-root.qcow2' % suffix)
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', path, '16M'], check=True)
    disk = ("<disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='%s'/>"
            "<target dev='vda' bus='virtio'/><boot order='1'/></disk>" % path)
    return define_domain(conn, names(suffix), disk, start=start)


def block_disks(conn, dom, path):
    """(live, persistent) <disk type='block'> elements whose source is `path`."""
    found = []
    for xml in views(conn, dom.name()):
        match = [disk for disk in disks_of(xml).values() if disk.get('type') == 'block'
                 and disk.find('source') is not None and disk.find('source').get('dev') == path]
        assert len(match) <= 1, 'the LUN is attached twice'
        found.append(match[0] if match else None)
    return tuple(found)


def wait_for(check, timeout=15.0):
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, 'timed out'
        time.sleep(0.1)


# ---------------------------------------------------------------------------------------
# discovery and login
def test_discovery_and_login_then_the_luns_by_their_udev_names(host, truth):
    # direct_lun_info with a portal: what it offers, through a discovery that writes nothing
    before = host.state()
    info = host.run('direct_lun_info', KERNEL)
    assert not info.failed and not info.changed and info['actions'] == [], info.get('msg')
    assert {OPEN, CHAP} <= set(info['targets'])
    assert info['luns'] == [] and info['sessions'] == [], 'no sessions: no LUNs'
    assert host.state() == before and not os.path.exists(host.p('etc/iscsi/nodes')), 'info wrote records'
    assert all(read_only_call(call['argv']) for call in host.calls())

    args = dict(KERNEL, target=OPEN)

    def verify(applied):
        record = host.record(OPEN)
        assert record['node.startup'] == 'automatic', 'the record of a login this module made comes back at boot'
        assert record['node.discovery_type'] == 'send_targets'
        assert list(host.sessions().values()) == [OPEN]
        assert applied['sessions'] == [{'target': OPEN, 'portal': PORTAL, 'transport': 'kernel'}]
        luns = by_key(applied['luns'])
        assert sorted(luns) == [(OPEN, 1), (OPEN, 2)], 'LUN 0 (the controller) is no disk'
        for key, lun in luns.items():
            check_lun(host, lun, truth, *key)
            # (who else uses the lab's shared LUNs is not this test's to say: used_by/in_pool on a private target)

    checked, applied = converge(host, args, watched(host, None), verify=verify)
    assert len(checked['actions']) == 3 and checked['actions'][0].startswith(DISCOVER), checked['actions']
    assert checked['actions'][1:] == ['log in to %s at %s' % (OPEN, PORTAL),
                                      'set node.startup = automatic on node %s at %s' % (OPEN, PORTAL)]
    assert checked['luns'] == [], 'check mode cannot see the LUNs of a session it did not make'
    writes = [call['argv'][1:] for call in host.calls() if not read_only_call(call['argv'])]
    assert writes[:3] == [['-m', 'discovery', '-t', 'sendtargets', '-p', PORTAL, '-o', 'new'],
                          ['-m', 'node', '-T', OPEN, '-p', PORTAL, '--login'],
                          ['-m', 'node', '-T', OPEN, '-p', PORTAL, '-o', 'update', '-n', 'node.startup', '-v',
                           'automatic']]
    assert len(writes) == 3, 'the re-run changed something: %s' % writes[3:]

    # one identity on both transports: the qemu transport names the same LUNs alike
    qemu = by_key(host.run('direct_lun_info', dict(KERNEL, transport='qemu', target=OPEN))['luns'])
    for key, lun in by_key(applied['luns']).items():
        assert (lun['wwid'], lun['size'], lun['serial']) == (qemu[key]['wwid'], qemu[key]['size'], qemu[key]['serial'])

    # direct_lun_info without a portal: the host's sessions and their LUNs, the same as direct_lun saw
    calls = len(host.calls())
    info = host.run('direct_lun_info', {})
    assert not info.failed and info['sessions'] == applied['sessions'], info.get('msg')
    identity = ('wwid', 'lun', 'target', 'portal', 'size', 'vendor', 'model', 'serial', 'path')
    assert [dict((k, lun[k]) for k in identity) for lun in info['luns']] == \
        [dict((k, lun[k]) for k in identity) for lun in applied['luns']]  # (who uses the shared LUNs may change)
    assert set(info['targets']) >= {OPEN, CHAP}, 'the targets of the node records'
    assert all(read_only_call(call['argv']) for call in host.calls()[calls:])


def test_a_new_discovery_never_resets_node_startup(hosts):
    """iscsid.conf here says automatic: a discovery that rebuilt records (plain `-m discovery`)
    would turn a record set to manual back into automatic; `-o new` keeps it."""
    host = hosts(startup='automatic')
    first = host.run('direct_lun', dict(KERNEL, target=OPEN, node_startup='manual'))
    assert not first.failed, first.get('msg')
    assert len(first['actions']) == 3 and first['actions'][0].startswith(DISCOVER), first['actions']
    assert first['actions'][1:] == ['log in to %s at %s' % (OPEN, PORTAL),
                                    'set node.startup = manual on node %s at %s' % (OPEN, PORTAL)]
    assert host.record(OPEN)['node.startup'] == 'manual'
    # the CHAP target becomes unknown to this host: asking for it discovers the portal again
    assert host.iscsiadm('-m', 'node', '-T', CHAP, '-p', PORTAL, '-o', 'delete').returncode == 0
    assert host.record(CHAP) is None
    second = host.run('direct_lun', dict(KERNEL, target=CHAP, auth=AUTH, node_startup='manual'))
    assert not second.failed, second.get('msg')
    assert second['actions'][0].startswith(DISCOVER), second['actions']
    assert host.record(CHAP) is not None and host.record(CHAP)['node.startup'] == 'manual'
    assert host.record(OPEN)['node.startup'] == 'manual', 'the new discovery reset node.startup'
    assert sorted(host.sessions().values()) == [CHAP, OPEN]
    # a discovery record exists after the first run: discoveries may go through it (discoverydb -D)
    discoveries = [call['argv'][1:] for call in module_calls(host) if call['argv'][1:3] == ['-m', 'discovery']
                   or (call['argv'][1:3] == ['-m', 'discoverydb'] and '-D' in call['argv'])]
    persistent = [argv for argv in discoveries if '-o' not in argv or argv[argv.index('-o') + 1] != 'nonpersistent']
    assert len(persistent) == 2 and all(argv[-2:] == ['-o', 'new'] for argv in persistent), discoveries
    # the control: a plain discovery would have reset it (the test can tell)
    assert host.iscsiadm('-m', 'discovery', '-t', 'st', '-p', PORTAL).returncode == 0
    assert host.record(OPEN)['node.startup'] == 'automatic'


# ---------------------------------------------------------------------------------------
# udev lag and multipath
def test_a_login_waits_for_udev_names_within_device_timeout(host, truth):
    started = time.monotonic()
    late = host.run('direct_lun', dict(KERNEL, target=OPEN), VIRTOPS_FAKE_UDEV_DELAY='1.5')
    assert not late.failed, late.get('msg')
    assert time.monotonic() - started >= 1.5
    assert not late.get('warnings'), late.get('warnings')
    luns = by_key(late['luns'])
    assert sorted(luns) == [(OPEN, 1), (OPEN, 2)]
    for key, lun in luns.items():
        check_lun(host, lun, truth, *key)

    # udev slower than device_timeout: the login stands, the LUN shows path null, with a warning
    slow = host.run('direct_lun', dict(KERNEL, target=CHAP, auth=AUTH, device_timeout=0.2),
                    VIRTOPS_FAKE_UDEV_DELAY='2.5')
    named = os.path.lexists(by_id(host, truth[(CHAP, 1)]['wwid']))
    assert not slow.failed and slow.changed, slow.get('msg')
    assert not named, 'the run waited for udev past device_timeout'
    assert sorted(host.sessions().values()) == [CHAP, OPEN]
    (lun,) = by_key(slow['luns']).values()
    assert lun['wwid'] == truth[(CHAP, 1)]['wwid'] and lun['path'] is None, lun
    assert lun['size'] is None or lun['size'] == truth[(CHAP, 1)]['size']
    assert any('udev did not name every LUN of %s within 0.2 s' % CHAP in warning for warning in slow['warnings']), \
        slow.get('warnings')
    # once udev caught up, the same LUN has its name
    wait_for(lambda: os.path.lexists(by_id(host, truth[(CHAP, 1)]['wwid'])))
    info = by_key(host.run('direct_lun_info', {'target': CHAP})['luns'])
    check_lun(host, info[(CHAP, 1)], truth, CHAP, 1)


def test_multipath_owns_the_luns_and_absent_needs_the_multipath_command(private, conn, names):
    host, iqn, truth = private.host, private.iqn, private.truth
    mpath = {'VIRTOPS_FAKE_MULTIPATH': '1'}
    done = host.run('direct_lun', dict(KERNEL, target=iqn), **mpath)
    assert not done.failed, done.get('msg')
    luns = by_key(done['luns'])
    assert sorted(luns) == sorted(truth)
    for key, fact in truth.items():
        assert luns[key]['wwid'] == fact['wwid'] and luns[key]['size'] == fact['size']
        assert luns[key]['path'] == host.p('dev/mapper', fact['wwid']), 'multipath owns it: the map, not a path of it'
        assert re.match(r'dm-\d+\Z', os.path.basename(os.path.realpath(luns[key]['path'])))
        assert luns[key]['in_pool'] is False and luns[key]['held_by'] == [], 'its own map is no host use'
    # a domain that uses the LUN by another of its names (a path of the map, /dev/sdX): the LUN is in use
    wwid = truth[(iqn, 1)]['wwid']
    sd = host.p('dev', os.path.basename(os.path.realpath(by_id(host, wwid))))
    one = define_domain(conn, names('one'), "<disk type='block' device='disk'><driver name='qemu' type='raw'/>"
                                            "<source dev='%s'/><target dev='sdb' bus='scsi'/></disk>" % sd)
    two = make_domain(conn, names, 'two', start=False)
    result = refused(host, dict(KERNEL, target=iqn, wwid=wwid, domain=two.name()), 'LUN_IN_USE',
                     watched(host, conn, one, two), **mpath)
    assert one.name() in result['msg']
    one.undefine()
    # logging out plans the maps' flush first; without multipath-tools the real run is refused before any step
    absent = dict(KERNEL, target=iqn, state='absent')
    # logging out needs the maps flushed first; without multipath-tools that is refused before any
    # step, in check mode as for real
    before = host.state()
    checked = host.run('direct_lun', absent, check=True, **mpath)
    assert checked.failed and checked['error_code'] == 'INVALID_ARGUMENT', checked.result
    real = host.run('direct_lun', absent, **mpath)
    assert real.failed and real['error_code'] == 'INVALID_ARGUMENT', real.result
    assert 'multipath command' in real['msg'] and 'not installed' in real['msg']
    assert not real.changed and real['actions'] == []
    assert host.state() == before, 'something changed before the refusal'
    assert list(host.sessions().values()) == [iqn], 'logged out although the maps could not be flushed'
    assert not any(set(call['argv']) & {'--logout', '-u'} for call in host.calls())


# ---------------------------------------------------------------------------------------
# attach, in use, shareable, detach
def test_attach_by_wwid_hot_plugs_the_by_id_device_refused_elsewhere_shareable_then_detach(private, conn, names):
    host, iqn, truth = private.host, private.iqn, private.truth
    luns = by_key(login(host, iqn)['luns'])
    assert all(luns[key]['used_by'] == [] for key in truth)
    dom, other = make_domain(conn, names), make_domain(conn, names, 'other')
    wwid = truth[(iqn, 1)]['wwid']
    path = by_id(host, wwid)
    args = dict(KERNEL, target=iqn, wwid=wwid, domain=dom.name(), device='disk')
    state = watched(host, conn, dom)

    def verify(applied):
        disk = applied['disk']
        assert (disk['device'], disk['bus'], disk['target']) == ('disk', 'scsi', 'sda')
        assert disk['live'] is True and disk['persistent'] is True and disk['role'] == 'data'
        assert disk['wwid'] == wwid and disk['source']['path'] == path
        for element in block_disks(conn, dom, path):
            assert element is not None, 'the LUN must be in both views, by its by-id name'
            assert (element.get('type'), element.get('device')) == ('block', 'disk')
            assert element.find('target').get('bus') == 'scsi'
            assert element.find('driver').get('type') == 'raw'
        assert '/dev/sd' not in ''.join(x for x in views(conn, dom.name()) if x).replace(host.path, '')
        blocks = monitor(dom, 'info block')
        assert path in blocks, 'QEMU did not open the LUN: %s' % blocks
        assert by_key(applied['luns'])[(iqn, 1)]['used_by'] == [dom.name()]

    checked, applied = converge(host, args, state, 'disk', verify, DISK_FIELDS)
    assert [action.split(' ')[0] for action in checked['actions']] == ['add', 'attach', 'add', 'hot-plug'], \
        checked['actions']
    assert checked['disk'] == applied['disk'], 'check mode predicted another disk'

    # a second domain: LUN_IN_USE; neither domain moves
    both = watched(host, conn, dom, other)
    result = refused(host, dict(args, domain=other.name()), 'LUN_IN_USE', both)
    assert dom.name() in result['msg'] and [use['domain'] for use in result['used_by']] == [dom.name()]

    # shareable on both: LUN 2 to both domains
    wwid2 = truth[(iqn, 2)]['wwid']
    path2 = by_id(host, wwid2)
    first = host.run('direct_lun', dict(args, wwid=wwid2, shareable=True))
    assert not first.failed and first['disk']['shareable'] is True, first.get('msg')

    def shared(applied):
        assert applied['disk']['shareable'] is True
        for one in (dom, other):
            for element in block_disks(conn, one, path2):
                assert element is not None and element.find('shareable') is not None
            assert path2 in monitor(one, 'info block')
        assert by_key(applied['luns'])[(iqn, 2)]['used_by'] == sorted([dom.name(), other.name()])

    converge(host, dict(args, wwid=wwid2, domain=other.name(), shareable=True), both, 'disk', shared, DISK_FIELDS)

    # detach: check mode, apply, gone from both views and from QEMU, re-run unchanged
    def gone(applied):
        assert applied['disk'] is None
        assert block_disks(conn, dom, path) == (None, None)
        assert path not in monitor(dom, 'info block'), 'QEMU still has the LUN open'
        assert by_key(applied['luns'])[(iqn, 1)]['used_by'] == []

    checked, _applied = converge(host, dict(args, attached=False), state, 'disk', gone, DISK_FIELDS)
    assert [action.split(' ')[0] for action in checked['actions']] == ['detach', 'detach'], checked['actions']
    assert list(host.sessions().values()) == [iqn], 'a detach keeps the session'


def test_passthrough_lun_by_number_on_a_shut_off_domain_then_absent_only_once_detached(private, conn, names):
    host, iqn, truth = private.host, private.iqn, private.truth
    login(host, iqn)
    dom = make_domain(conn, names, start=False)
    wwid = truth[(iqn, 1)]['wwid']
    path = by_id(host, wwid)
    args = dict(KERNEL, target=iqn, lun=1, domain=dom.name())  # device: lun, bus: scsi by default
    state = watched(host, conn, dom)

    def verify(applied):
        disk = applied['disk']
        assert (disk['device'], disk['bus'], disk['live'], disk['persistent']) == ('lun', 'scsi', False, True)
        assert disk['wwid'] == wwid
        live, config = block_disks(conn, dom, path)
        assert live is None, 'a shut-off domain has no live view'
        assert (config.get('type'), config.get('device')) == ('block', 'lun')
        assert config.find('target').get('bus') == 'scsi'

    converge(host, args, state, 'disk', verify, DISK_FIELDS)

    # an unknown WWID: LUN_NOT_FOUND names the visible ones
    unknown = '36000000000000000000000000deadbeef'
    result = refused(host, dict(KERNEL, target=iqn, wwid=unknown, domain=dom.name()), 'LUN_NOT_FOUND', state)
    assert sorted(result['visible_wwids']) == sorted(fact['wwid'] for fact in truth.values())
    assert unknown in result['msg'] and all(fact['wwid'] in result['msg'] for fact in truth.values())

    # direct_lun_info: who uses what; unused: true drops the attached LUN
    info = by_key(host.run('direct_lun_info', {})['luns'])
    assert info[(iqn, 1)]['used_by'] == [dom.name()] and info[(iqn, 2)]['used_by'] == []
    unused = host.run('direct_lun_info', dict(KERNEL, unused=True))
    assert sorted(by_key(unused['luns'])) == [(iqn, 2)]

    # logging out from under a domain: refused, nothing moves (session, devices, records)
    absent = dict(KERNEL, target=iqn, state='absent')
    result = refused(host, absent, 'LUN_IN_USE', state)
    assert result['used_by'] == [dom.name()] and dom.name() in result['msg']
    assert list(host.sessions().values()) == [iqn] and os.path.exists(path)

    detached = host.run('direct_lun', dict(args, attached=False))
    assert not detached.failed and detached.changed and block_disks(conn, dom, path) == (None, None)

    def verify_absent(applied):
        assert applied['sessions'] == [] and applied['luns'] == []
        assert host.sessions() == {} and host.record(iqn) is None
        assert host.blocks() == [] and not os.path.lexists(path)
        (logout,) = [call for call in host.calls() if '--logout' in call['argv']]
        assert logout['exit'] == 0
        assert logout['devices_present_at_logout'] == [], 'logged out with SCSI devices still there'
        assert logout['maps_present_at_logout'] == []

    checked, _applied = converge(host, absent, state, 'luns', verify_absent)
    devices = [action for action in checked['actions'] if action.startswith('remove SCSI device ')]
    assert len(devices) == 2 and all(iqn in action for action in devices)
    assert checked['actions'][2:] == ['log out of %s at %s' % (iqn, PORTAL),
                                      'delete the node record of %s at %s' % (iqn, PORTAL)], checked['actions']
    assert host.record(OPEN) is not None, 'the records of other targets stay'


# ---------------------------------------------------------------------------------------
# CHAP
def test_chap_login_with_the_password_only_in_the_node_record(host, truth):
    args = dict(KERNEL, target=CHAP, auth=AUTH)
    wrong = dict(args, auth=dict(AUTH, password=WRONG_PASSWORD))
    # the wrong password: check mode cannot know (nothing logs in), the real run is refused by the target
    before = host.state()
    checked = host.run('direct_lun', wrong, check=True, diff=True, verbosity=3)
    assert not checked.failed and host.state() == before, checked.get('msg')
    failed = host.run('direct_lun', wrong, diff=True, verbosity=3)
    assert failed.failed and failed['error_code'] == 'ISCSI_AUTH_FAILED', failed.result
    assert host.sessions() == {}, 'a session with the wrong password'
    login = failed['actions'].index('failed: log in to %s at %s' % (CHAP, PORTAL))
    # the credentials the target refused are put back: the record never keeps retrying them at boot
    assert all(action.startswith('rolled back: put back ') for action in failed['actions'][login + 1:]), \
        failed['actions']
    assert len(failed['actions'][login + 1:]) == 3, failed['actions']
    record = host.record(CHAP)
    assert record.get('node.session.auth.password', '') != WRONG_PASSWORD
    assert record['node.session.auth.authmethod'] == 'None'
    assert record['node.startup'] == 'manual', 'iscsid.conf says manual here; a failed login does not make it automatic'
    assert failed.changed, 'the records discovery wrote before the login failed are a change'

    def verify(applied):
        record = host.record(CHAP)
        assert record['node.session.auth.authmethod'] == 'CHAP'
        assert record['node.session.auth.username'] == USER
        assert record['node.session.auth.password'] == PASSWORD, 'iscsiadm keeps it in the record, as open-iscsi does'
        assert record['node.startup'] == 'automatic'
        assert list(host.sessions().values()) == [CHAP]
        with open(host.p('sys/class/iscsi_session/session1/username')) as handle:
            assert handle.read().strip() == USER
        (lun,) = applied['luns']
        check_lun(host, lun, truth, CHAP, 1)

    def verbose(module, margs, **kwargs):
        return host.run(module, margs, **dict(kwargs, diff=True, verbosity=3))

    # the right one: the record (its refused credentials were put back) gets CHAP, the login works,
    # and only then is it made to log in at boot
    checked, _applied = _lab.converge(verbose, 'direct_lun', args, host.state, 'luns', (), verify)
    assert checked['actions'] == ['set node.session.auth.authmethod = CHAP on node %s at %s' % (CHAP, PORTAL),
                                  'set node.session.auth.username = %s on node %s at %s' % (USER, CHAP, PORTAL),
                                  'set the CHAP password of node %s at %s' % (CHAP, PORTAL),
                                  'log in to %s at %s' % (CHAP, PORTAL),
                                  'set node.startup = automatic on node %s at %s' % (CHAP, PORTAL)], checked['actions']
    assert 'CHAP password changed\n' in [entry['after'] for entry in checked['diff']]
    # the wrong password once logged in: the session stays, the record now holds the new one
    updated = host.run('direct_lun', wrong, diff=True, verbosity=3)
    assert not updated.failed and updated['actions'] == ['set the CHAP password of node %s at %s' % (CHAP, PORTAL)]
    assert any('old CHAP credentials' in warning for warning in updated['warnings'])
    assert list(host.sessions().values()) == [CHAP]
    # where the password is: the node record, and nowhere else under the root
    holders = []
    for directory, _dirs, files in os.walk(host.path):
        for name in files:
            full = os.path.join(directory, name)
            if os.path.isfile(full) and not os.path.islink(full):
                with open(full, 'rb') as handle:
                    content = handle.read()
                if PASSWORD.encode() in content or WRONG_PASSWORD.encode() in content:
                    holders.append(os.path.relpath(full, host.path))
    assert holders == [os.path.relpath(host.record_path(CHAP), host.path)]


def test_discovery_chap_goes_to_the_discoverydb_record(host):
    login(host)  # a first discovery made the portal's discovery record
    assert host.discovery_record() is not None
    assert host.iscsiadm('-m', 'node', '-T', CHAP, '-p', PORTAL, '-o', 'delete').returncode == 0
    args = dict(KERNEL, target=CHAP, auth=AUTH, discovery_auth=AUTH)
    checked = host.run('direct_lun', args, check=True, diff=True, verbosity=3)
    assert not checked.failed, checked.get('msg')
    done = host.run('direct_lun', args, diff=True, verbosity=3)
    assert not done.failed, done.get('msg')
    assert done['actions'] == checked['actions']
    assert any(action.startswith(DISCOVER) for action in done['actions']), done['actions']
    record = host.discovery_record()
    assert record['discovery.sendtargets.auth.authmethod'] == 'CHAP'
    assert record['discovery.sendtargets.auth.username'] == USER
    assert record['discovery.sendtargets.auth.password'] == PASSWORD
    discoveries = [call['argv'][1:] for call in module_calls(host) if '-D' in call['argv']
                   and option_values(call['argv'], '-o') != ['nonpersistent']]
    assert discoveries == [['-m', 'discoverydb', '-t', 'sendtargets', '-p', PORTAL, '-D', '-o', 'new']]
    assert host.record(CHAP)['node.session.auth.username'] == USER
    assert sorted(host.sessions().values()) == [CHAP, OPEN]
    again = host.run('direct_lun', args)
    assert not again.failed and not again.changed and again['actions'] == [], again.result


def test_discovery_chap_on_a_host_that_never_discovered(host):
    """open-iscsi 2.1.8 answers `-m discoverydb -o show` for a missing record with exit 6, not 21."""
    done = host.run('direct_lun', dict(KERNEL, target=OPEN, discovery_auth=AUTH))
    assert not done.failed, done.get('msg')
    assert host.discovery_record()['discovery.sendtargets.auth.username'] == USER
    assert list(host.sessions().values()) == [OPEN]


# ---------------------------------------------------------------------------------------
# refusals
def test_a_closed_portal_is_unreachable_and_nothing_is_written(host):
    state = host.state
    result = refused(host, dict(KERNEL, portal=CLOSED, target=OPEN), 'ISCSI_UNREACHABLE', state)
    assert CLOSED in result['msg'], result['msg']
    assert not os.path.exists(host.p('etc/iscsi/nodes')) and not os.path.exists(host.p('etc/iscsi/send_targets'))
    assert host.sessions() == {}
    info = host.run('direct_lun_info', dict(KERNEL, portal=CLOSED))
    assert info.failed and info['error_code'] == 'ISCSI_UNREACHABLE' and CLOSED in info['msg']


def test_a_lun_the_host_uses_is_refused_a_pool_on_it_or_a_mount(private, conn, names):
    host, iqn = private.host, private.iqn
    done = login(host, iqn)
    lun = by_key(done['luns'])[(iqn, 1)]
    assert lun['in_pool'] is False and lun['held_by'] == [] and lun['path'] is not None
    dom = make_domain(conn, names, start=False)
    state = watched(host, conn, dom)
    attach = dict(KERNEL, target=iqn, wwid=lun['wwid'], domain=dom.name())
    absent = dict(KERNEL, target=iqn, state='absent')

    # (a) a libvirt pool (defined, never started) whose source device is the LUN's by-id name
    root = etree.Element('pool', type='fs')
    etree.SubElement(root, 'name').text = names('fs')
    etree.SubElement(etree.SubElement(root, 'source'), 'device', path=lun['path'])
    etree.SubElement(etree.SubElement(root, 'target'), 'path').text = names.path('fs-mnt')
    pool = conn.storagePoolDefineXML(etree.tostring(root, encoding='unicode'), 0)
    for args in (attach, absent):
        result = refused(host, args, 'LUN_IN_POOL', state)
        assert pool.name() in result['msg'], result['msg']
    info = by_key(host.run('direct_lun_info', {'target': iqn})['luns'])
    assert info[(iqn, 1)]['in_pool'] is True and any(pool.name() in why for why in info[(iqn, 1)]['held_by'])
    assert info[(iqn, 2)]['in_pool'] is False
    pool.undefine()

    # (a2) an iscsi-direct pool of the whole target: libvirt's own session, so the LUN cannot be
    # handed to a domain, but the host's logout does not touch that pool and goes ahead
    root = etree.Element('pool', type='iscsi-direct')
    etree.SubElement(root, 'name').text = names('direct')
    source = etree.SubElement(root, 'source')
    host_name, port = PORTAL.rsplit(':', 1)
    etree.SubElement(source, 'host', name=host_name, port=port)
    etree.SubElement(source, 'device', path=iqn)
    etree.SubElement(etree.SubElement(source, 'initiator'), 'iqn', name=INITIATOR)
    pool = conn.storagePoolDefineXML(etree.tostring(root, encoding='unicode'), 0)
    try:
        result = refused(host, attach, 'LUN_IN_POOL', state)
        assert pool.name() in result['msg'], result['msg']
        gone = host.run('direct_lun', absent, check=True)  # the logout is not refused (check mode: the
        assert not gone.failed and gone.changed, gone.get('msg')  # session stays for (b))
        assert any('log out' in step for step in gone['actions']), gone['actions']
        assert list(host.sessions().values()) == [iqn]
    finally:
        pool.undefine()

    # (b) a file system on the LUN, mounted on the host
    device = os.path.realpath(lun['path'])
    subprocess.run(['mkfs.ext4', '-q', '-F', device], check=True, capture_output=True)
    mountpoint = names.path('mnt')
    os.makedirs(mountpoint)
    subprocess.run(['mount', device, mountpoint], check=True, capture_output=True)
    try:
        for args in (attach, absent):
            result = refused(host, args, 'LUN_IN_POOL', state)
            assert 'mounted at %s' % mountpoint in result['msg'], result['msg']
        info = by_key(host.run('direct_lun_info', {'target': iqn})['luns'])
        assert 'mounted at %s' % mountpoint in info[(iqn, 1)]['held_by']
        assert list(host.sessions().values()) == [iqn]
    finally:
        subprocess.run(['umount', mountpoint], check=False, capture_output=True)


def test_a_lun_used_through_the_qemu_transport_is_in_use_for_the_kernel_transport(private, conn, names):
    """One LUN, one identity: a network disk of its target and number is a use of it too."""
    host, iqn, truth = private.host, private.iqn, private.truth
    login(host, iqn)
    one, two = make_domain(conn, names, 'one', start=False), make_domain(conn, names, 'two', start=False)
    wwid = truth[(iqn, 2)]['wwid']
    initiator = host.initiator
    through_qemu = host.run('direct_lun', dict(KERNEL, transport='qemu', target=iqn, wwid=wwid, domain=one.name(),
                                               initiator_name=initiator))
    assert not through_qemu.failed, through_qemu.get('msg')
    result = refused(host, dict(KERNEL, target=iqn, wwid=wwid, domain=two.name()), 'LUN_IN_USE',
                     watched(host, conn, one, two))
    assert [use['domain'] for use in result['used_by']] == [one.name()], result['used_by']
    # and the other way round: a LUN a domain uses as the host's block device, through the qemu transport
    wwid1 = truth[(iqn, 1)]['wwid']
    assert not host.run('direct_lun', dict(KERNEL, target=iqn, wwid=wwid1, domain=two.name())).failed
    result = refused(host, dict(KERNEL, transport='qemu', target=iqn, wwid=wwid1, domain=one.name(),
                                initiator_name=initiator), 'LUN_IN_USE', watched(host, conn, one, two))
    assert [use['domain'] for use in result['used_by']] == [two.name()], result['used_by']


def test_every_target_of_a_portal_then_a_re_run_changes_nothing(host):
    """Without target: every target the portal offers; once all are known and logged in, no step."""
    offered = host.iscsiadm('-m', 'discovery', '-t', 'st', '-p', PORTAL, '-o', 'nonpersistent').stdout.split()
    if sorted(offered[1::2]) != sorted([OPEN, CHAP]):
        pytest.skip('the lab portal offers other targets too now: %s' % offered[1::2])
    args = dict(KERNEL, auth=AUTH)
    first = host.run('direct_lun', args)
    assert not first.failed, first.get('msg')
    assert {CHAP, OPEN} <= set(host.sessions().values())
    before = host.state()
    again = host.run('direct_lun', args)
    assert not again.failed and host.state() == before
    assert again['actions'] == [] and not again.changed, again['actions']


def test_the_discovery_diff_shows_every_record_it_writes(host):
    done = host.run('direct_lun', dict(KERNEL, target=OPEN), diff=True)
    assert not done.failed, done.get('msg')
    written = sorted(os.listdir(host.p('etc/iscsi/nodes')))
    (entry,) = [entry for entry in done['diff'] if entry['before_header'] == 'node records of %s' % PORTAL]
    assert entry['before'] == ''
    assert entry['after'] == ''.join('%s\n' % name for name in written)
