# -*- coding: utf-8 -*-
"""Helpers for the integration tests: the modules run through ansible against the real lab (libvirtd,
QEMU, tgtd from scripts/lab.sh), and every effect is verified through libvirt itself."""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import os
import re
import shutil
import subprocess
import sys
import uuid

import libvirt

from _support import COLLECTIONS_ROOT, lab_env

LAB = lab_env()
URI = 'qemu:///system'
ANSIBLE = os.path.join(os.path.dirname(sys.executable), 'ansible')
ANSIBLE_PLAYBOOK = os.path.join(os.path.dirname(sys.executable), 'ansible-playbook')


def ansible_env(**extra):
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS_ROOT, ANSIBLE_STDOUT_CALLBACK='result_json',
               ANSIBLE_CALLBACK_PLUGINS=os.path.join(os.path.dirname(os.path.abspath(__file__)), 'callback_plugins'),
               ANSIBLE_LOAD_CALLBACK_PLUGINS='1', ANSIBLE_NOCOLOR='1', ANSIBLE_HOST_KEY_CHECKING='0',
               ANSIBLE_LOCALHOST_WARNING='0', ANSIBLE_INVENTORY_UNPARSED_WARNING='0',
               ANSIBLE_PYTHON_INTERPRETER=sys.executable, ANSIBLE_DEPRECATION_WARNINGS='0')
    env.update(extra)
    return env


class ModuleRun(object):
    """One module run through `ansible localhost -m`, with its parsed result."""

    def __init__(self, module, args, check=False, diff=False, verbosity=0, env=None):
        command = [ANSIBLE, 'localhost', '-c', 'local', '-m', 'virtops.storage.%s' % module]
        if args:  # ansible takes an empty '{}' for raw parameters
            command += ['-a', json.dumps(args)]
        if check:
            command.append('--check')
        if diff:
            command.append('--diff')
        if verbosity:
            command.append('-' + 'v' * verbosity)
        proc = subprocess.run(command, capture_output=True, text=True, env=ansible_env(**(env or {})), timeout=300,
                              check=False)
        self.stdout, self.stderr = proc.stdout, proc.stderr
        line = next((text for text in proc.stdout.splitlines() if text.startswith('RESULT ')), None)
        if line is None:
            raise AssertionError('no result from ansible:\n%s\n%s' % (proc.stdout, proc.stderr))
        self.result = json.loads(line[len('RESULT '):])

    def __getitem__(self, key):
        return self.result[key]

    def get(self, key, default=None):
        return self.result.get(key, default)

    @property
    def failed(self):
        return self.result['_status'] == 'failed'

    @property
    def changed(self):
        return bool(self.result.get('changed'))


def run_playbook(path, extra_vars=None):
    command = [ANSIBLE_PLAYBOOK, '-i', 'localhost,', '-c', 'local', path]
    if extra_vars:
        command += ['-e', json.dumps(extra_vars)]
    env = ansible_env(ANSIBLE_STDOUT_CALLBACK='default')
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=600, check=False)


class Names(object):
    """Random, recognisable names for one test, and the clean-up of what they name."""

    def __init__(self, conn, tmp_root):
        self.conn = conn
        self.prefix = 'vtest-%s-' % uuid.uuid4().hex[:8]
        self.dir = os.path.join(tmp_root, self.prefix.rstrip('-'))
        os.makedirs(self.dir)
        self.loops = []

    def __call__(self, suffix):
        return self.prefix + suffix

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    def loop_device(self, size_mib=64):
        image = self.path('loop%d.img' % len(self.loops))
        with open(image, 'wb') as handle:
            handle.truncate(size_mib * 1024 * 1024)
        device = subprocess.run(['losetup', '--find', '--show', image], capture_output=True, text=True,
                                check=True).stdout.strip()
        self.loops.append(device)
        return device

    def cleanup(self):
        for dom in self.conn.listAllDomains(0):
            if dom.name().startswith(self.prefix):
                persistent = dom.isPersistent()  # a transient domain is gone once destroyed
                if dom.isActive():
                    dom.destroy()
                if persistent:
                    dom.undefine()
        for pool in self.conn.listAllStoragePools(0):
            if pool.name().startswith(self.prefix):
                if pool.isActive():
                    pool.destroy()
                if pool.isPersistent():
                    pool.undefine()
        for secret in self.conn.listAllSecrets(0):
            if (secret.usageID() or '').startswith('virtops-pool/' + self.prefix):
                secret.undefine()
        for device in self.loops:
            subprocess.run(['umount', device], capture_output=True, check=False)
            subprocess.run(['losetup', '-d', device], capture_output=True, check=False)
        shutil.rmtree(self.dir, ignore_errors=True)


def pool_or_none(conn, name):
    try:
        return conn.storagePoolLookupByName(name)
    except libvirt.libvirtError as err:
        if err.get_error_code() == libvirt.VIR_ERR_NO_STORAGE_POOL:
            return None
        raise


def define_domain(conn, name, disks_xml='', start=False):
    """A guest-less QEMU domain (TCG), enough to hold disks."""
    from lxml import etree
    root = etree.Element('domain', type='qemu')
    etree.SubElement(root, 'name').text = name
    etree.SubElement(root, 'memory', unit='MiB').text = '64'
    os_node = etree.SubElement(root, 'os')
    etree.SubElement(os_node, 'type', arch='x86_64', machine='pc').text = 'hvm'
    features = etree.SubElement(root, 'features')
    etree.SubElement(features, 'acpi')
    devices = etree.SubElement(root, 'devices')
    for disk in etree.fromstring('<d>%s</d>' % disks_xml):
        devices.append(disk)
    dom = conn.defineXML(etree.tostring(root, encoding='unicode'))
    if start:
        dom.create()
    return dom


def make_dir_pool(conn, names, suffix='pool'):
    """A dir pool of this test, made through libvirt directly: (name, target directory)."""
    from lxml import etree
    name, target = names(suffix), names.path(suffix)
    os.makedirs(target)
    root = etree.Element('pool', type='dir')
    etree.SubElement(root, 'name').text = name
    etree.SubElement(etree.SubElement(root, 'target'), 'path').text = target
    pool = conn.storagePoolDefineXML(etree.tostring(root, encoding='unicode'), 0)
    pool.create(0)
    return name, target


def make_volume(conn, pool_name, name, capacity, volume_format='raw'):
    """A thin volume made through libvirt directly (its XML built with lxml: any name works)."""
    from lxml import etree
    root = etree.Element('volume')
    etree.SubElement(root, 'name').text = name
    etree.SubElement(root, 'capacity').text = str(capacity)
    etree.SubElement(root, 'allocation').text = '0'
    etree.SubElement(etree.SubElement(root, 'target'), 'format', type=volume_format)
    return conn.storagePoolLookupByName(pool_name).createXML(etree.tostring(root, encoding='unicode'), 0)


def converge(run, module, args, state, result_key, fields, verify=None, known_only=False, must_change=True):
    """The behaviour every state-changing module owes: check mode changes nothing that `state()`
    reads from libvirt -> the run takes the predicted steps and gives the predicted result
    (`fields` of `result_key`; with `known_only`, those check mode could know) -> `verify` ->
    the same run again changes nothing and takes no step."""
    before = state()
    checked = run(module, args, check=True, diff=True)
    assert not checked.failed, checked.get('msg')
    assert checked.changed and checked['actions'], 'a change without steps'
    assert state() == before, 'check mode changed something'
    applied = run(module, args, diff=True)
    assert not applied.failed, applied.get('msg')
    assert applied.changed
    assert applied['actions'] == checked['actions'], 'check mode predicted other steps than were taken'
    if must_change:
        assert state() != before, 'the run changed nothing in libvirt'
    predicted, real = checked[result_key], applied[result_key]
    assert (predicted is None) == (real is None), (predicted, real)
    for field in (fields if real is not None else ()):
        if not known_only or predicted[field] is not None:
            assert predicted[field] == real[field], 'check mode predicted %s=%r, the run gave %r' % (
                field, predicted[field], real[field])
    if verify is not None:
        verify(applied)
    after = state()
    again = run(module, args)
    assert not again.failed, again.get('msg')
    assert not again.changed, again['actions']
    assert again['actions'] == []
    assert state() == after, 'the re-run changed something'
    return checked, applied


def refused(run, module, args, code, state, check_too=True):
    """The run fails with `code` (in check mode as well) and `state()` is as it was."""
    before = state()
    for check in ((True, False) if check_too else (False,)):
        result = run(module, args, check=check)
        assert result.failed, 'expected %s, the run succeeded: %s' % (code, result.get('actions'))
        assert result['error_code'] == code, result.get('msg')
        assert not result.changed
        assert state() == before, 'a refused run changed something'
    return result


def parallel_runs(module, args_list, timeout=300):
    """Start one `ansible -m module` per args at the same moment; (exit code, stdout) of each."""
    env = ansible_env(ANSIBLE_STDOUT_CALLBACK='default')
    procs = [subprocess.Popen([ANSIBLE, 'localhost', '-c', 'local', '-m', 'virtops.storage.%s' % module,
                               '-a', json.dumps(args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=env) for args in args_list]
    results = []
    for proc in procs:
        out = proc.communicate(timeout=timeout)[0]
        results.append((proc.returncode, out))
    return results


# Debian 12's /etc/iscsi/iscsid.conf settings (node.startup left to the test): what a root of
# the iscsiadm stand-in starts from, as a fresh host does
ISCSID_CONF = """iscsid.startup = /bin/systemctl start iscsid.socket
node.startup = %s
node.leading_login = No
node.session.timeo.replacement_timeout = 120
node.conn[0].timeo.login_timeout = 15
node.conn[0].timeo.logout_timeout = 15
node.conn[0].timeo.noop_out_interval = 5
node.conn[0].timeo.noop_out_timeout = 5
node.session.err_timeo.abort_timeout = 15
node.session.err_timeo.lu_reset_timeout = 30
node.session.err_timeo.tgt_reset_timeout = 30
node.session.err_timeo.host_reset_timeout = 60
node.session.initial_login_retry_max = 8
node.session.cmds_max = 128
node.session.queue_depth = 32
node.session.xmit_thread_priority = -20
node.session.iscsi.InitialR2T = No
node.session.iscsi.ImmediateData = Yes
node.session.iscsi.FirstBurstLength = 262144
node.session.iscsi.MaxBurstLength = 16776192
node.conn[0].iscsi.MaxRecvDataSegmentLength = 262144
node.conn[0].iscsi.MaxXmitDataSegmentLength = 0
discovery.sendtargets.iscsi.MaxRecvDataSegmentLength = 32768
node.session.nr_sessions = 1
node.session.reopen_max = 0
node.session.iscsi.FastAbort = Yes
node.session.scan = auto
"""


def monitor(dom, command):
    """What QEMU itself says (HMP `info block`, `info qtree`): proof it opened a disk."""
    return subprocess.run(['virsh', '-c', URI, 'qemu-monitor-command', dom.name(), '--hmp', command],
                          capture_output=True, text=True, check=True).stdout


def attached_loops():
    """Loop devices attached now, except the ones Names.loop_device makes (loopN.img files of
    other tests, which may get a number the iscsiadm stand-in used a moment ago)."""
    listing = subprocess.run(['losetup', '--list', '--noheadings', '--output', 'NAME,BACK-FILE'],
                             capture_output=True, text=True, check=True).stdout
    found = set()
    for line in listing.splitlines():
        parts = line.split(None, 1)
        if parts and not re.search(r'/loop\d+\.img( \(deleted\))?$', parts[1] if len(parts) > 1 else ''):
            found.add(parts[0])
    return found
