# -*- coding: utf-8 -*-
"""The root_volume_swap role against the real lab: its molecule scenario, refusals that change
nothing, swaps of shut-off and running domains to existing and newly created volumes, and the
rollback after a real failure once the old root was detached.

Every effect is read back through libvirt itself (both XML views of the domain, its state, the
pools' volume lists, QEMU's own block list), never only from the role's result."""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import os
import re
import subprocess
import sys
import uuid

import libvirt
import pytest
from lxml import etree

from _lab import ANSIBLE_PLAYBOOK, ansible_env, define_domain, make_dir_pool, make_volume, monitor
from _support import REPO

MIB = 1024 ** 2
INACTIVE = libvirt.VIR_DOMAIN_XML_INACTIVE
MOLECULE = os.path.join(os.path.dirname(sys.executable), 'molecule')
ANSI = re.compile(r'\x1b\[[0-9;]*[A-Za-z]')
# the old root's settings the new root and a rollback must keep
OLD_DRIVER = {'cache': 'none', 'io': 'native', 'discard': 'unmap'}
OLD_SERIAL = 'OLDROOTSERIAL01'
METADATA_URI = 'https://virtops.example/xmlns/storage/1'  # vm_state's namespace
# another controller (e.g. a venv with ansible-core 2.16) may run the role; modules keep the venv's Python
SWAP_PLAYBOOK_COMMAND = os.environ.get('ROOT_VOLUME_SWAP_ANSIBLE_PLAYBOOK', ANSIBLE_PLAYBOOK)

PLAYBOOK = """---
- name: Run the root_volume_swap role
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Swap, keeping what the role reported
      block:
        - name: The role
          ansible.builtin.include_role:
            name: virtops.storage.root_volume_swap
        - name: Keep the result
          ansible.builtin.copy:
            content: "{{ {'failed': false, 'msg': '', 'result': root_volume_swap_result} | to_json }}"
            dest: "{{ swap_outcome_file }}"
            mode: '0600'
          check_mode: false
          changed_when: false
      rescue:
        - name: Keep the failure
          ansible.builtin.copy:
            content: >-
              {{ {'failed': true, 'msg': ansible_failed_result.msg,
                  'result': root_volume_swap_result | default(none)} | to_json }}
            dest: "{{ swap_outcome_file }}"
            mode: '0600'
          check_mode: false
          changed_when: false
        - name: Fail as the role did
          ansible.builtin.fail:
            msg: "{{ ansible_failed_result.msg }}"
"""


# ---------------------------------------------------------------------------------------
# helpers
class Outcome(object):
    """One ansible-playbook run of the role: exit code, what it reported, its output."""

    def __init__(self, proc, outcome):
        self.rc = proc.returncode
        self.stdout = proc.stdout
        self.failed = outcome['failed']
        self.msg = outcome['msg']
        self.result = outcome['result']
        recap = re.search(r'localhost\s+:\s+ok=\d+\s+changed=(\d+)', proc.stdout)
        self.changed_tasks = int(recap.group(1)) if recap else None

    def __repr__(self):
        return 'rc=%s msg=%r result=%r\n%s' % (self.rc, self.msg, self.result, self.stdout[-3000:])


def swap(names, check=False, **role_vars):
    """Run the role with root_volume_swap_<key> = value for each keyword."""
    run_id = uuid.uuid4().hex[:6]
    playbook, outcome_file = names.path('swap-%s.yml' % run_id), names.path('outcome-%s.json' % run_id)
    with open(playbook, 'w') as handle:
        handle.write(PLAYBOOK)
    extra = dict(('root_volume_swap_%s' % key, value) for key, value in role_vars.items())
    extra['swap_outcome_file'] = outcome_file
    command = [SWAP_PLAYBOOK_COMMAND, '-i', 'localhost,', '-c', 'local', playbook, '-e', json.dumps(extra)]
    if check:
        command.append('--check')
    proc = subprocess.run(command, capture_output=True, text=True, env=ansible_env(ANSIBLE_STDOUT_CALLBACK='default'),
                          timeout=600, check=False)
    if not os.path.exists(outcome_file):
        raise AssertionError('the playbook did not run the role:\n%s\n%s' % (proc.stdout, proc.stderr))
    with open(outcome_file) as handle:
        outcome = Outcome(proc, json.load(handle))
    assert (outcome.rc != 0) == outcome.failed, outcome
    return outcome


def volume_disk(pool, volume, target='vda', volume_format='qcow2', boot=None, serial=None, driver=None):
    """A <disk type='volume'> of a definition."""
    disk = etree.Element('disk', type='volume', device='disk')
    etree.SubElement(disk, 'driver', dict({'name': 'qemu', 'type': volume_format}, **(driver or {})))
    etree.SubElement(disk, 'source', pool=pool, volume=volume)
    etree.SubElement(disk, 'target', dev=target, bus='virtio')
    if serial:
        etree.SubElement(disk, 'serial').text = serial
    if boot:
        etree.SubElement(disk, 'boot', order=str(boot))
    return etree.tostring(disk, encoding='unicode')


def old_root_disk(pool, volume='old.qcow2'):
    """The root disk every test starts from: settings a swap keeps and a rollback restores."""
    return volume_disk(pool, volume, boot=1, serial=OLD_SERIAL, driver=OLD_DRIVER)


def make_domain(conn, names, pool, extra_disks='', start=False, legacy_boot=False):
    dom = define_domain(conn, names('vm'), old_root_disk(pool) + extra_disks)
    if legacy_boot:  # <os><boot dev='hd'/>: the first hard disk boots, as virt-install writes it
        tree = etree.fromstring(dom.XMLDesc(INACTIVE))
        for disk in tree.findall('devices/disk'):
            for boot in disk.findall('boot'):
                disk.remove(boot)
        for boot in tree.findall('os/boot'):
            tree.find('os').remove(boot)
        etree.SubElement(tree.find('os'), 'boot', dev='hd')
        dom = conn.defineXML(etree.tostring(tree, encoding='unicode'))
    if start:
        dom.create()
    return dom.name()


def snapshot(conn, domains, pools):
    """Everything a refused or rolled-back run must leave as it was: each domain's state and
    both XML views, and each pool's volume list."""
    state = []
    for name in domains:
        dom = conn.lookupByName(name)
        state.append((name, dom.state()[0], dom.XMLDesc(0), dom.XMLDesc(INACTIVE)))
    for pool in pools:
        state.append((pool, sorted(conn.storagePoolLookupByName(pool).listVolumes())))
    return state


def without_empty_metadata(xml):
    """The XML without an empty <metadata/>: libvirt keeps that container once vm_state has
    removed the last note from it (the notes themselves are compared through metadata_record)."""
    return re.sub(r'\n *<metadata/>', '', xml)


def disks_of(xml):
    """{target: <disk>} of a domain XML."""
    return dict((disk.find('target').get('dev'), disk) for disk in etree.fromstring(xml).findall('devices/disk'))


def source_of(disk):
    source = disk.find('source')
    return source.get('pool'), source.get('volume')


def boot_of(disk):
    boot = disk.find('boot')
    return int(boot.get('order')) if boot is not None else None


def os_boot(xml):
    return [boot.get('dev') for boot in etree.fromstring(xml).findall('os/boot')]


def users_of(conn, pool, volume):
    """Every domain whose running or persistent XML names the volume (by pool/volume or path)."""
    path = conn.storagePoolLookupByName(pool).storageVolLookupByName(volume).path()
    users = []
    for dom in conn.listAllDomains(0):
        try:
            xmls = [dom.XMLDesc(0)] + ([dom.XMLDesc(INACTIVE)] if dom.isPersistent() else [])
        except libvirt.libvirtError as err:  # a domain another test removes meanwhile
            if err.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                continue
            raise
        for xml in xmls:
            for disk in etree.fromstring(xml).findall('devices/disk'):
                source = disk.find('source')
                if source is not None and ((source.get('pool'), source.get('volume')) == (pool, volume)
                                           or source.get('file') == path):
                    users.append(dom.name())
    return sorted(set(users))


def volume_format(conn, pool, volume):
    xml = conn.storagePoolLookupByName(pool).storageVolLookupByName(volume).XMLDesc(0)
    return etree.fromstring(xml).find('target/format').get('type')


def metadata_record(conn, name):
    """The swap record in the domain's definition, read through libvirt (None without one)."""
    try:
        text = conn.lookupByName(name).metadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, METADATA_URI,
                                                libvirt.VIR_DOMAIN_AFFECT_CONFIG)
    except libvirt.libvirtError as err:
        if err.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN_METADATA:
            return None
        raise
    return json.loads(etree.fromstring(text).text).get('root_volume_swap')


def assert_new_root(xml, pool, volume, volume_format_name):
    """vda reads the new volume in its own format, boots first, and keeps the old root's slot
    and driver settings (not its serial: that named the old disk)."""
    disk = disks_of(xml)['vda']
    assert source_of(disk) == (pool, volume), xml
    assert disk.find('target').get('bus') == 'virtio'
    assert boot_of(disk) == 1, xml
    driver = disk.find('driver')
    assert driver.get('type') == volume_format_name
    assert dict((key, driver.get(key)) for key in OLD_DRIVER) == OLD_DRIVER
    serial = disk.find('serial')
    assert serial is None or serial.text != OLD_SERIAL


def assert_old_root_back(xml, pool):
    disk = disks_of(xml)['vda']
    assert source_of(disk) == (pool, 'old.qcow2'), xml
    assert boot_of(disk) == 1, xml
    driver = disk.find('driver')
    assert driver.get('type') == 'qcow2'
    assert dict((key, driver.get(key)) for key in OLD_DRIVER) == OLD_DRIVER
    assert disk.find('serial').text == OLD_SERIAL


def root_shape(pool, volume, path, volume_format_name):
    return {'pool': pool, 'volume': volume, 'path': path, 'format': volume_format_name, 'target': 'vda',
            'bus': 'virtio', 'boot_order': 1}


def path_of(conn, pool, volume):
    return conn.storagePoolLookupByName(pool).storageVolLookupByName(volume).path()


def assert_no_op(names, pool, old_path, **role_vars):
    """A re-run changes nothing and still reports the old root (from the domain's metadata)."""
    again = swap(names, **role_vars)
    assert not again.failed, again
    assert again.changed_tasks == 0, again
    assert again.result['changed'] is False and again.result['actions'] == []
    assert again.result['started'] is False and again.result['left_shut_off'] is False
    assert again.result['old_root'] == root_shape(pool, 'old.qcow2', old_path, 'qcow2')


# ---------------------------------------------------------------------------------------
# molecule
def test_molecule_scenario(conn):
    """`molecule test -s root_volume_swap`: prepare, check, converge, idempotence, verify,
    cleanup, each reported successful, with objects of its own prefix."""
    prefix = 'vtest-mol-swap-%s' % uuid.uuid4().hex[:6]
    env = ansible_env(ANSIBLE_STDOUT_CALLBACK='default', ROOT_VOLUME_SWAP_PREFIX=prefix, NO_COLOR='1',
                      PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get('PATH', ''))
    try:
        proc = subprocess.run([MOLECULE, 'test', '-s', 'root_volume_swap'], cwd=REPO, capture_output=True,
                              text=True, env=env, timeout=600, check=False)
        output = ANSI.sub('', proc.stdout + proc.stderr)
        assert proc.returncode == 0, output[-6000:]
        for step in ('prepare', 'converge', 'idempotence', 'verify', 'cleanup'):
            # molecule draws an arrow on a terminal and '>' otherwise
            assert re.search(r'^root_volume_swap (?:➜|>) %s: Executed: Successful$' % step, output, re.M), \
                (step, output[-6000:])
        assert 'All assertions passed' in output
        assert not any(dom.name().startswith(prefix) for dom in conn.listAllDomains(0)), 'cleanup left the domain'
    finally:
        for dom in conn.listAllDomains(0):
            if dom.name().startswith(prefix):
                if dom.isActive():
                    dom.destroy()
                dom.undefine()
        for pool in conn.listAllStoragePools(0):
            if pool.name().startswith(prefix):
                if pool.isActive():
                    for volume in pool.listAllVolumes(0):
                        volume.delete(0)
                    pool.destroy()
                pool.undefine()


# ---------------------------------------------------------------------------------------
# refusals: each leaves both views of the domain, its state and the pool's volumes as they were
def test_a_running_domain_is_refused_without_shutdown(conn, names):
    pool, _target = make_dir_pool(conn, names)
    make_volume(conn, pool, 'old.qcow2', 16 * MIB, 'qcow2')
    make_volume(conn, pool, 'new.qcow2', 16 * MIB, 'qcow2')
    name = make_domain(conn, names, pool, start=True)
    before = snapshot(conn, [name], [pool])
    for check in (True, False):
        outcome = swap(names, check=check, domain=name, volume={'pool': pool, 'name': 'new.qcow2'})
        assert outcome.failed, outcome
        assert outcome.msg.startswith('DOMAIN_RUNNING: domain %s is running' % name), outcome.msg
        assert outcome.changed_tasks == 0
        assert snapshot(conn, [name], [pool]) == before


@pytest.mark.parametrize('create', [False, True], ids=['existing-volume', 'created-volume'])
def test_a_guest_that_ignores_the_shutdown_is_not_powered_off(conn, names, create):
    """A guest-less domain ignores the ACPI request: after the graceful attempt the run fails
    with DOMAIN_RUNNING, the domain still runs on its old root, and a volume the run created
    for the swap is gone again."""
    pool, _target = make_dir_pool(conn, names)
    make_volume(conn, pool, 'old.qcow2', 16 * MIB, 'qcow2')
    if create:
        make_volume(conn, pool, 'template.qcow2', 16 * MIB, 'qcow2')
        extra = {'create': {'clone_from': {'pool': pool, 'name': 'template.qcow2'}}}
    else:
        make_volume(conn, pool, 'new.qcow2', 16 * MIB, 'qcow2')
        extra = {}
    name = make_domain(conn, names, pool, start=True)
    before = snapshot(conn, [name], [pool])
    outcome = swap(names, domain=name, volume={'pool': pool, 'name': 'new.qcow2'}, shutdown=True,
                   shutdown_timeout=2, force_off=False, **extra)
    assert outcome.failed, outcome
    assert outcome.msg.startswith('DOMAIN_RUNNING: '), outcome.msg
    assert 'still running after 2 s' in outcome.msg and "'Shut the domain down'" in outcome.msg, outcome.msg
    if create:
        assert 'delete volume new.qcow2' in outcome.msg, outcome.msg
        assert outcome.result['rolled_back'] is True
    else:
        assert outcome.msg.endswith('nothing was changed'), outcome.msg
    assert conn.lookupByName(name).state()[0] == libvirt.VIR_DOMAIN_RUNNING
    assert snapshot(conn, [name], [pool]) == before


@pytest.mark.parametrize('case', ['iso-volume', 'dir-volume', 'created-as-iso'])
def test_a_root_the_domain_cannot_boot_from_is_refused(conn, names, case):
    pool, _target = make_dir_pool(conn, names)
    make_volume(conn, pool, 'old.qcow2', 16 * MIB, 'qcow2')
    extra = {}
    if case == 'iso-volume':
        make_volume(conn, pool, 'new.qcow2', MIB, 'iso')
    elif case == 'dir-volume':
        make_volume(conn, pool, 'new.qcow2', 0, 'dir')
    else:
        make_volume(conn, pool, 'template.img', MIB, 'raw')
        extra['create'] = {'clone_from': {'pool': pool, 'name': 'template.img'}, 'format': 'iso'}
    name = make_domain(conn, names, pool)
    before = snapshot(conn, [name], [pool])
    for check in (True, False):
        outcome = swap(names, check=check, domain=name, volume={'pool': pool, 'name': 'new.qcow2'}, **extra)
        assert outcome.failed, outcome
        wanted = 'would be' if case == 'created-as-iso' else 'is'
        assert outcome.msg.startswith('FORMAT_MISMATCH: volume %s/new.qcow2 %s in %s format, which domain %s cannot '
                                      'boot from' % (pool, wanted, 'dir' if case == 'dir-volume' else 'iso', name)), \
            outcome.msg
        assert outcome.changed_tasks == 0
        assert snapshot(conn, [name], [pool]) == before


@pytest.mark.parametrize('other_running', [False, True], ids=['other-shut-off', 'other-running'])
def test_a_volume_another_domain_uses_is_refused(conn, names, other_running):
    pool, _target = make_dir_pool(conn, names)
    make_volume(conn, pool, 'old.qcow2', 16 * MIB, 'qcow2')
    make_volume(conn, pool, 'new.qcow2', 16 * MIB, 'qcow2')
    make_volume(conn, pool, 'other.qcow2', 16 * MIB, 'qcow2')
    name = make_domain(conn, names, pool)
    other = define_domain(conn, names('other'), volume_disk(pool, 'other.qcow2', boot=1)
                          + volume_disk(pool, 'new.qcow2', 'vdb'), start=other_running).name()
    before = snapshot(conn, [name, other], [pool])
    outcome = swap(names, domain=name, volume={'pool': pool, 'name': 'new.qcow2'})
    assert outcome.failed, outcome
    assert outcome.msg.startswith('VOLUME_IN_USE: volume %s/new.qcow2 is used by domain %s (vdb)' % (pool, other)), \
        outcome.msg
    assert snapshot(conn, [name, other], [pool]) == before


def test_a_volume_other_volumes_are_overlays_on_is_refused(conn, names):
    pool, target = make_dir_pool(conn, names)
    make_volume(conn, pool, 'old.qcow2', 16 * MIB, 'qcow2')
    make_volume(conn, pool, 'base.qcow2', 16 * MIB, 'qcow2')
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', '-b', os.path.join(target, 'base.qcow2'), '-F',
                    'qcow2', os.path.join(target, 'overlay.qcow2')], check=True)
    conn.storagePoolLookupByName(pool).refresh(0)
    name = make_domain(conn, names, pool)
    before = snapshot(conn, [name], [pool])
    outcome = swap(names, domain=name, volume={'pool': pool, 'name': 'base.qcow2'})
    assert outcome.failed, outcome
    assert outcome.msg.startswith('VOLUME_IN_USE: volume %s/base.qcow2 is the backing store of %s/overlay.qcow2'
                                  % (pool, pool)), outcome.msg
    assert snapshot(conn, [name], [pool]) == before


def test_missing_domain_and_volume_are_refused(conn, names):
    pool, _target = make_dir_pool(conn, names)
    make_volume(conn, pool, 'old.qcow2', 16 * MIB, 'qcow2')
    name = make_domain(conn, names, pool)
    before = snapshot(conn, [name], [pool])
    outcome = swap(names, domain=names('absent'), volume={'pool': pool, 'name': 'old.qcow2'})
    assert outcome.msg.startswith('DOMAIN_NOT_FOUND: ') and names('absent') in outcome.msg, outcome.msg
    outcome = swap(names, domain=name, volume={'pool': pool, 'name': 'new.qcow2'})
    assert outcome.msg.startswith('VOLUME_NOT_FOUND: volume new.qcow2 does not exist in pool %s' % pool), outcome.msg
    outcome = swap(names, domain=name, volume={'pool': pool, 'name': 'new.qcow2'},
                   create={'clone_from': {'pool': pool, 'name': 'no-such-template'}})
    assert outcome.msg.startswith('VOLUME_NOT_FOUND: '), outcome.msg
    assert 'no-such-template' in outcome.msg
    outcome = swap(names, domain=name, volume={'pool': pool, 'name': 'new.qcow2'},
                   create={'clone_from': {'pool': pool, 'name': 'old.qcow2'}, 'import_from': '/dev/null'})
    assert outcome.msg.startswith('INVALID_ARGUMENT: root_volume_swap_create needs exactly one of'), outcome.msg
    assert snapshot(conn, [name], [pool]) == before


# ---------------------------------------------------------------------------------------
# swaps
def test_swap_a_running_domain_powering_it_off(conn, names):
    """shutdown + force_off: the guest-less domain is powered off after the graceful attempt,
    gets the new root, and runs again on it."""
    pool, _target = make_dir_pool(conn, names)
    make_volume(conn, pool, 'old.qcow2', 16 * MIB, 'qcow2')
    make_volume(conn, pool, 'new.img', 16 * MIB, 'raw')
    name = make_domain(conn, names, pool, start=True)
    role_vars = dict(domain=name, volume={'pool': pool, 'name': 'new.img'}, shutdown=True, shutdown_timeout=2,
                     force_off=True)
    before = snapshot(conn, [name], [pool])
    checked = swap(names, check=True, **role_vars)
    assert not checked.failed, checked
    assert snapshot(conn, [name], [pool]) == before, 'check mode changed something'
    assert checked.result['changed'] is True
    assert any(step.startswith('shut down %s gracefully (wait up to 2 s, then power it off)' % name)
               for step in checked.result['actions']), checked.result['actions']
    assert 'attach disk vda (%s/new.img) to the definition of %s as its root disk (boot order 1)' % (pool, name) \
        in checked.result['actions']
    assert checked.result['actions'][-1] == 'start %s' % name

    applied = swap(names, **role_vars)
    assert not applied.failed, applied
    dom = conn.lookupByName(name)
    assert dom.state()[0] == libvirt.VIR_DOMAIN_RUNNING
    for xml in (dom.XMLDesc(0), dom.XMLDesc(INACTIVE)):
        assert_new_root(xml, pool, 'new.img', 'raw')
        assert list(disks_of(xml)) == ['vda']
    assert os.path.realpath(path_of(conn, pool, 'new.img')) in monitor(dom, 'info block'), 'QEMU runs the new root'
    assert users_of(conn, pool, 'old.qcow2') == [], 'the old root stays, attached nowhere'
    assert 'old.qcow2' in conn.storagePoolLookupByName(pool).listVolumes()
    old_path = path_of(conn, pool, 'old.qcow2')
    result = applied.result
    assert result['shut_down'] == 'forced' and result['started'] is True and result['created'] is False
    assert result['old_root'] == root_shape(pool, 'old.qcow2', old_path, 'qcow2')
    assert result['new_root'] == root_shape(pool, 'new.img', path_of(conn, pool, 'new.img'), 'raw')
    assert metadata_record(conn, name) == {'old_root': result['old_root'], 'new_root': result['new_root']}
    assert_no_op(names, pool, old_path, **role_vars)


def test_swap_to_an_overlay_created_in_the_same_run(conn, names):
    pool, _target = make_dir_pool(conn, names)
    make_volume(conn, pool, 'old.qcow2', 16 * MIB, 'qcow2')
    make_volume(conn, pool, 'base.qcow2', 32 * MIB, 'qcow2')
    make_volume(conn, pool, 'data.img', 8 * MIB, 'raw')
    name = make_domain(conn, names, pool, extra_disks=volume_disk(pool, 'data.img', 'vdb', 'raw', boot=2))
    role_vars = dict(domain=name, volume={'pool': pool, 'name': 'new.qcow2'},
                     create={'backing_store': {'pool': pool, 'name': 'base.qcow2'}})
    before = snapshot(conn, [name], [pool])
    checked = swap(names, check=True, **role_vars)
    assert not checked.failed, checked
    assert snapshot(conn, [name], [pool]) == before, 'check mode changed something'
    assert checked.result['actions'][0].startswith('create volume new.qcow2 in pool %s as a qcow2 overlay' % pool)
    assert 'detach disk vda (%s/old.qcow2) from the definition of %s' % (pool, name) in checked.result['actions']
    assert checked.result['new_root']['format'] == 'qcow2' and checked.result['created'] is True

    applied = swap(names, **role_vars)
    assert not applied.failed, applied
    backing = etree.fromstring(conn.storagePoolLookupByName(pool).storageVolLookupByName('new.qcow2').XMLDesc(0))
    assert backing.find('backingStore/path').text == path_of(conn, pool, 'base.qcow2')
    dom = conn.lookupByName(name)
    assert not dom.isActive(), 'a shut-off domain stays shut off'
    xml = dom.XMLDesc(INACTIVE)
    assert_new_root(xml, pool, 'new.qcow2', 'qcow2')
    assert boot_of(disks_of(xml)['vdb']) == 2 and source_of(disks_of(xml)['vdb']) == (pool, 'data.img')
    assert users_of(conn, pool, 'old.qcow2') == []
    assert applied.result['created'] is True and applied.result['shut_down'] is None
    assert applied.result['started'] is False
    assert_no_op(names, pool, path_of(conn, pool, 'old.qcow2'), **role_vars)


@pytest.mark.parametrize('image_format', ['qcow2', 'raw'])
def test_swap_to_an_imported_image(conn, names, image_format):
    pool, _target = make_dir_pool(conn, names)
    make_volume(conn, pool, 'old.qcow2', 16 * MIB, 'qcow2')
    image = names.path('image.%s' % image_format)
    subprocess.run(['qemu-img', 'create', '-q', '-f', image_format, image, '24M'], check=True)
    name = make_domain(conn, names, pool)
    role_vars = dict(domain=name, volume={'pool': pool, 'name': 'imported'}, create={'import_from': image})
    applied = swap(names, **role_vars)
    assert not applied.failed, applied
    assert volume_format(conn, pool, 'imported') == image_format
    assert_new_root(conn.lookupByName(name).XMLDesc(INACTIVE), pool, 'imported', image_format)
    assert applied.result['new_root']['format'] == image_format
    assert users_of(conn, pool, 'old.qcow2') == []
    assert_no_op(names, pool, path_of(conn, pool, 'old.qcow2'), **role_vars)


def test_swap_when_libvirt_would_boot_the_data_disk(conn, names):
    """<os><boot dev='hd'/> with a data disk, as virt-install writes it: once the old root is
    detached, libvirt boots the data disk; the role moves it aside, and the new root boots first."""
    pool, _target = make_dir_pool(conn, names)
    make_volume(conn, pool, 'old.qcow2', 16 * MIB, 'qcow2')
    make_volume(conn, pool, 'new.qcow2', 16 * MIB, 'qcow2')
    make_volume(conn, pool, 'data.img', 8 * MIB, 'raw')
    name = make_domain(conn, names, pool, extra_disks=volume_disk(pool, 'data.img', 'vdb', 'raw'), legacy_boot=True)
    assert os_boot(conn.lookupByName(name).XMLDesc(INACTIVE)) == ['hd']
    applied = swap(names, domain=name, volume={'pool': pool, 'name': 'new.qcow2'})
    assert not applied.failed, applied
    xml = conn.lookupByName(name).XMLDesc(INACTIVE)
    assert_new_root(xml, pool, 'new.qcow2', 'qcow2')
    disks = disks_of(xml)
    assert boot_of(disks['vdb']) is None, 'the data disk boots no more than it did'
    assert os_boot(xml) == [], 'per-device boot order, the same order'
    assert users_of(conn, pool, 'old.qcow2') == []


def test_swap_a_root_that_is_a_file_outside_every_pool(conn, names):
    """An old root given by path (no pool) is replaced, reported by its path, and left as it was."""
    pool, _target = make_dir_pool(conn, names)
    make_volume(conn, pool, 'new.qcow2', 16 * MIB, 'qcow2')
    old_file = names.path('outside.qcow2')
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', old_file, '16M'], check=True)
    disk = ("<disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='%s'/>"
            "<target dev='vda' bus='virtio'/><boot order='1'/></disk>" % old_file)
    name = define_domain(conn, names('vm'), disk).name()
    applied = swap(names, domain=name, volume={'pool': pool, 'name': 'new.qcow2'})
    assert not applied.failed, applied
    xml = conn.lookupByName(name).XMLDesc(INACTIVE)
    disks = disks_of(xml)
    assert list(disks) == ['vda'] and source_of(disks['vda']) == (pool, 'new.qcow2') and boot_of(disks['vda']) == 1
    assert not [disk for disk in disks.values() if disk.find('source').get('file') == old_file]
    assert os.path.exists(old_file)
    assert applied.result['old_root'] == {'pool': None, 'volume': None, 'path': old_file, 'format': 'qcow2',
                                          'target': 'vda', 'bus': 'virtio', 'boot_order': 1}
    assert metadata_record(conn, name)['old_root']['path'] == old_file


# ---------------------------------------------------------------------------------------
# rollback after a real failure
def test_a_failed_start_puts_the_old_root_back(conn, names):
    """The new qcow2 volume's header is zeroed behind libvirt's back (no pool refresh), so
    libvirt still calls it qcow2 and QEMU refuses to open it: the start after the swap fails.
    The role must detach it, put the old root back with all its settings (here past libvirt's
    first-hard-disk rule, which a data disk without boot order triggers), restore the metadata,
    start the domain again and fail with the start's error."""
    pool, target = make_dir_pool(conn, names)
    make_volume(conn, pool, 'old.qcow2', 16 * MIB, 'qcow2')
    make_volume(conn, pool, 'data.img', 8 * MIB, 'raw')
    make_volume(conn, pool, 'broken.qcow2', 16 * MIB, 'qcow2')
    with open(os.path.join(target, 'broken.qcow2'), 'r+b') as handle:
        handle.write(b'\0' * 512)
    assert volume_format(conn, pool, 'broken.qcow2') == 'qcow2', 'libvirt must still believe it is qcow2'
    name = make_domain(conn, names, pool, extra_disks=volume_disk(pool, 'data.img', 'vdb', 'raw'), start=True)
    dom = conn.lookupByName(name)
    definition, volumes = dom.XMLDesc(INACTIVE), sorted(conn.storagePoolLookupByName(pool).listVolumes())
    live_disks = dict((target_name, etree.tostring(disk)) for target_name, disk in disks_of(dom.XMLDesc(0)).items())

    outcome = swap(names, domain=name, volume={'pool': pool, 'name': 'broken.qcow2'}, shutdown=True,
                   shutdown_timeout=2, force_off=True)
    assert outcome.failed, outcome
    assert outcome.msg.startswith('LIBVIRT_ERROR: replacing the root volume of %s with %s/broken.qcow2 failed at '
                                  "'Start the domain again': start domain %s failed" % (name, pool, name)), outcome.msg
    assert 'Image is not in qcow2 format' in outcome.msg
    assert 'rolled back - the old root %s/old.qcow2 is the root disk vda of %s as before and the domain runs' \
        % (pool, name) in outcome.msg, outcome.msg
    result = outcome.result
    assert result['rolled_back'] is True and result['error_code'] == 'LIBVIRT_ERROR'
    assert result['shut_down'] == 'forced' and result['started'] is True

    dom = conn.lookupByName(name)
    assert dom.state()[0] == libvirt.VIR_DOMAIN_RUNNING
    assert without_empty_metadata(dom.XMLDesc(INACTIVE)) == definition, 'the definition is exactly as it was'
    assert_old_root_back(dom.XMLDesc(0), pool)
    live = disks_of(dom.XMLDesc(0))
    assert sorted(live) == ['vda', 'vdb']
    assert etree.tostring(live['vdb']) == live_disks['vdb']
    assert os.path.join(target, 'old.qcow2') in monitor(dom, 'info block'), 'QEMU runs the old root again'
    assert sorted(conn.storagePoolLookupByName(pool).listVolumes()) == volumes
    assert users_of(conn, pool, 'broken.qcow2') == []
    assert metadata_record(conn, name) is None


# ---------------------------------------------------------------------------------------
# a re-run over what an interrupted run or an incomplete rollback left
def write_record(conn, name, record):
    """Write the swap record as vm_state does (the domain's definition, the collection's namespace)."""
    element = etree.Element('storage')
    element.text = json.dumps({'root_volume_swap': record}, sort_keys=True, separators=(',', ':'))
    conn.lookupByName(name).setMetadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, etree.tostring(element, encoding='unicode'),
                                        'virtops', METADATA_URI, libvirt.VIR_DOMAIN_AFFECT_CONFIG)


def detach_from_definition(conn, name, target):
    dom = conn.lookupByName(name)
    disk = disks_of(dom.XMLDesc(INACTIVE))[target]
    dom.detachDeviceFlags(etree.tostring(disk, encoding='unicode'), libvirt.VIR_DOMAIN_AFFECT_CONFIG)


def set_boot_orders(conn, name, orders):
    """Give the disks of the definition these boot orders ({target: order or None})."""
    dom = conn.lookupByName(name)
    tree = etree.fromstring(dom.XMLDesc(INACTIVE))
    for boot in tree.findall('os/boot'):
        tree.find('os').remove(boot)
    for disk in tree.findall('devices/disk'):
        for boot in disk.findall('boot'):
            disk.remove(boot)
        order = orders.get(disk.find('target').get('dev'))
        if order is not None:
            etree.SubElement(disk, 'boot', order=str(order))
    conn.defineXML(etree.tostring(tree, encoding='unicode'))


def a_record(conn, pool, old, new, old_format='qcow2', new_format='qcow2'):
    return {'old_root': root_shape(pool, old, path_of(conn, pool, old), old_format),
            'new_root': root_shape(pool, new, path_of(conn, pool, new), new_format)}


def assert_refused_changing_nothing(conn, names, name, pool, before, record, role_vars, *fragments):
    for check in (True, False):
        outcome = swap(names, check=check, **role_vars)
        assert outcome.failed, outcome
        assert outcome.msg.startswith('INVALID_ARGUMENT: '), outcome.msg
        for fragment in fragments:
            assert fragment in outcome.msg, (fragment, outcome.msg)
        assert outcome.msg.endswith('nothing was changed'), outcome.msg
        assert outcome.changed_tasks == 0, outcome
        assert snapshot(conn, [name], [pool]) == before
        assert metadata_record(conn, name) == record, 'the record of the real root is kept'
    return outcome


@pytest.mark.parametrize('new_volume', ['new.qcow2', 'other.qcow2'])
def test_a_rerun_after_an_incomplete_rollback_never_swaps_out_the_data_disk(conn, names, new_volume):
    """vda (root, boot order 1) was detached and the rollback stopped before it came back: libvirt
    now boots vdb, the data disk, by <os><boot dev='hd'>. The record still names vda's volume as
    the old root. A re-run must not take vdb for the root: it is refused before anything changes,
    pointing at the record - whatever new volume is asked for."""
    pool, _target = make_dir_pool(conn, names)
    for volume in ('old.qcow2', 'new.qcow2', 'other.qcow2'):
        make_volume(conn, pool, volume, 16 * MIB, 'qcow2')
    make_volume(conn, pool, 'data.img', 8 * MIB, 'raw')
    name = make_domain(conn, names, pool, extra_disks=volume_disk(pool, 'data.img', 'vdb', 'raw'))
    record = a_record(conn, pool, 'old.qcow2', 'new.qcow2')
    write_record(conn, name, record)
    detach_from_definition(conn, name, 'vda')
    xml = conn.lookupByName(name).XMLDesc(INACTIVE)
    assert list(disks_of(xml)) == ['vdb'] and os_boot(xml) == ['hd'], 'libvirt boots the data disk now'
    before = snapshot(conn, [name], [pool])
    outcome = assert_refused_changing_nothing(
        conn, names, name, pool, before, record, dict(domain=name, volume={'pool': pool, 'name': new_volume}),
        'the root disk of domain %s is now vdb (%s/data.img)' % (name, pool),
        'records a swap of its root disk vda from %s/old.qcow2 (the old root) to %s/new.qcow2' % (pool, pool),
        'metadata: {root_volume_swap: null}', 'virtops.storage.vm_disk role=root target=vda')
    assert outcome.result is None, 'refused in the reads, before the swap'
    assert users_of(conn, pool, 'data.img') == [name]


def test_a_recorded_old_root_that_only_boots_by_default_is_refused(conn, names):
    """A record (written by an earlier, faulty run) names the data disk as the old root, and that
    disk boots only as libvirt's first hard disk: nothing says it is the real root - refused."""
    pool, _target = make_dir_pool(conn, names)
    for volume in ('old.qcow2', 'new.qcow2'):
        make_volume(conn, pool, volume, 16 * MIB, 'qcow2')
    make_volume(conn, pool, 'data.img', 8 * MIB, 'raw')
    name = make_domain(conn, names, pool, extra_disks=volume_disk(pool, 'data.img', 'vdb', 'raw'))
    detach_from_definition(conn, name, 'vda')
    record = {'old_root': dict(root_shape(pool, 'data.img', path_of(conn, pool, 'data.img'), 'raw'), target='vdb'),
              'new_root': dict(root_shape(pool, 'old.qcow2', path_of(conn, pool, 'old.qcow2'), 'qcow2'), target='vdb')}
    write_record(conn, name, record)
    before = snapshot(conn, [name], [pool])
    assert_refused_changing_nothing(
        conn, names, name, pool, before, record, dict(domain=name, volume={'pool': pool, 'name': 'new.qcow2'}),
        "boots only as the first hard disk (<os><boot dev='hd'>)", 'metadata: {root_volume_swap: null}')
    # once the root boots by a boot order of its own (the record says it is the old root), the swap goes on
    set_boot_orders(conn, name, {'vdb': 1})
    applied = swap(names, domain=name, volume={'pool': pool, 'name': 'new.qcow2'})
    assert not applied.failed, applied
    assert source_of(disks_of(conn.lookupByName(name).XMLDesc(INACTIVE))['vdb']) == (pool, 'new.qcow2')


@pytest.mark.parametrize('step', ['spare-attached', 'boot-taken-away'])
def test_a_run_interrupted_before_the_promote_is_not_a_no_op(conn, names, step):
    """The new root joined with the spare boot order 65535 (behind the data disk that took the boot
    over), and the run stopped before the new root took boot order 1: a re-run refuses and says how
    to finish, changing nothing; once the new root is made the root, the re-run is a no-op."""
    pool, _target = make_dir_pool(conn, names)
    for volume in ('old.qcow2', 'new.qcow2'):
        make_volume(conn, pool, volume, 16 * MIB, 'qcow2')
    make_volume(conn, pool, 'data.img', 8 * MIB, 'raw')
    name = make_domain(conn, names, pool, extra_disks=volume_disk(pool, 'data.img', 'vdb', 'raw'))
    record = a_record(conn, pool, 'old.qcow2', 'new.qcow2')
    write_record(conn, name, record)
    detach_from_definition(conn, name, 'vda')
    conn.lookupByName(name).attachDeviceFlags(volume_disk(pool, 'new.qcow2', 'vda'), libvirt.VIR_DOMAIN_AFFECT_CONFIG)
    set_boot_orders(conn, name, {'vda': 65535, 'vdb': 1} if step == 'spare-attached' else {'vda': 65535})
    before = snapshot(conn, [name], [pool])
    role_vars = dict(domain=name, volume={'pool': pool, 'name': 'new.qcow2'})
    assert_refused_changing_nothing(
        conn, names, name, pool, before, record, role_vars,
        'has the new root of an unfinished swap attached, but not as its root disk: vda (boot order 65535',
        'a run was interrupted', 'virtops.storage.vm_disk role=root', 'metadata: {root_volume_swap: null}')
    # finished by hand as the message says: the re-run accepts it and reports the recorded old root
    set_boot_orders(conn, name, {'vda': 1})
    assert_no_op(names, pool, path_of(conn, pool, 'old.qcow2'), **role_vars)


def test_a_paused_domain_powered_off_stays_shut_off(conn, names):
    """shutdown + force_off on a paused domain: powered off, swapped, and left shut off (its guest's
    memory is gone), which the result says."""
    pool, _target = make_dir_pool(conn, names)
    make_volume(conn, pool, 'old.qcow2', 16 * MIB, 'qcow2')
    make_volume(conn, pool, 'new.qcow2', 16 * MIB, 'qcow2')
    name = make_domain(conn, names, pool, start=True)
    conn.lookupByName(name).suspend()
    role_vars = dict(domain=name, volume={'pool': pool, 'name': 'new.qcow2'}, shutdown=True, shutdown_timeout=2,
                     force_off=True)
    checked = swap(names, check=True, **role_vars)
    assert not checked.failed, checked
    assert 'start %s' % name not in checked.result['actions']
    assert checked.result['started'] is False and checked.result['left_shut_off'] is True
    applied = swap(names, **role_vars)
    assert not applied.failed, applied
    dom = conn.lookupByName(name)
    assert dom.state()[0] == libvirt.VIR_DOMAIN_SHUTOFF
    assert_new_root(dom.XMLDesc(INACTIVE), pool, 'new.qcow2', 'qcow2')
    result = applied.result
    assert result['shut_down'] == 'forced' and result['started'] is False and result['left_shut_off'] is True
    assert not any(step.startswith('start ') for step in result['actions']), result['actions']
