# -*- coding: utf-8 -*-
"""The root_volume_rescue role against the real lab: its molecule scenario, the refusals (which
change nothing), the whole lend-and-give-back cycle onto a running and onto a shut-off rescue
domain, and the rollback after a real failure that comes once the patient's root was detached.

Every effect is read back through libvirt itself (both XML views of both domains, autostart,
power state, the record in the patient's definition) and, for a running rescue domain, through
QEMU's own block list - never only from the role's result."""
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
NOTES_NS = 'https://virtops.example/xmlns/storage/1'  # where vm_state keeps the collection's notes
MOLECULE = os.path.join(os.path.dirname(sys.executable), 'molecule')
ANSI = re.compile(r'\x1b\[[0-9;]*[A-Za-z]')
# The controller that runs the role: the venv's, or another ansible-core's ansible-playbook
# (RVR_ANSIBLE_PLAYBOOK=/path/to/ansible-playbook) - the role declares ansible-core 2.16 and
# later. Modules still run on this Python (ansible_env sets ANSIBLE_PYTHON_INTERPRETER).
CONTROLLER = os.environ.get('RVR_ANSIBLE_PLAYBOOK') or ANSIBLE_PLAYBOOK
ROOT = 'root.qcow2'
DATA = 'data.img'
SERIAL = 'PATIENTROOT01'
# settings of the patient's root that the way back must restore
ROOT_DRIVER = "cache='writeback' error_policy='report' discard='unmap' detect_zeroes='unmap'"

PLAYBOOK = """---
- name: Run the root_volume_rescue role
  hosts: localhost
  gather_facts: false
  tasks:
    - name: The role, with what it reported kept
      block:
        - name: Run the role
          ansible.builtin.include_role:
            name: virtops.storage.root_volume_rescue
      rescue:
        - name: Keep the failure
          ansible.builtin.set_fact:
            rvr_test_failure: "{{ ansible_failed_result.msg }}"
      always:
        - name: Write the outcome
          ansible.builtin.copy:
            content: >-
              {{ {'failure': rvr_test_failure | default(none),
                  'result': root_volume_rescue_result | default(none)} | to_json }}
            dest: "{{ rvr_test_outcome }}"
            mode: '0600'
          check_mode: false
          changed_when: false
"""


# ---------------------------------------------------------------------------------------
# helpers
class Outcome(object):
    """One ansible-playbook run of the role: what it reported and how many tasks changed."""

    def __init__(self, proc, outcome):
        self.stdout = proc.stdout + proc.stderr
        assert proc.returncode == 0, self.stdout  # the wrapper rescues the role's own failure
        self.failure = outcome['failure']
        self.result = outcome['result']
        recap = re.search(r'localhost\s+:\s+ok=\d+\s+changed=(\d+)', proc.stdout)
        assert recap, self.stdout
        self.changed_tasks = int(recap.group(1))

    def step_changed(self, task_start):
        """Whether the task whose name starts with `task_start` reported a change."""
        pattern = (r'TASK \[virtops\.storage\.root_volume_rescue : %s[^\]]*\] \*+\n(\S+): \[localhost\]'
                   % re.escape(task_start))
        statuses = re.findall(pattern, self.stdout)
        assert statuses, 'no task %r ran:\n%s' % (task_start, self.stdout)
        return statuses[-1] == 'changed'


def rescue(tmp_path, check=False, playbook_text=PLAYBOOK, **role_vars):
    """The role through ansible-playbook, its variables given without the role's prefix."""
    playbook = tmp_path / ('rescue-%s.yml' % uuid.uuid5(uuid.NAMESPACE_OID, playbook_text).hex)
    if not playbook.exists():
        playbook.write_text(playbook_text)
    outcome_file = tmp_path / ('outcome-%s.json' % uuid.uuid4().hex)
    extra = dict(('root_volume_rescue_%s' % key, value) for key, value in role_vars.items())
    extra['rvr_test_outcome'] = str(outcome_file)
    command = [CONTROLLER, '-i', 'localhost,', '-c', 'local', str(playbook), '-e', json.dumps(extra)]
    if check:
        command.append('--check')
    proc = subprocess.run(command, capture_output=True, text=True, env=ansible_env(ANSIBLE_STDOUT_CALLBACK='default'),
                          timeout=600, check=False)
    assert outcome_file.exists(), proc.stdout + proc.stderr
    return Outcome(proc, json.loads(outcome_file.read_text()))


def volume_disk(pool, volume, target, volume_format, boot=None, serial=None, driver=''):
    return ("<disk type='volume' device='disk'><driver name='qemu' type='%s' %s/><source pool='%s' volume='%s'/>"
            "<target dev='%s' bus='%s'/>%s%s</disk>"
            % (volume_format, driver, pool, volume, target, 'scsi' if target.startswith('sd') else 'virtio',
               '<serial>%s</serial>' % serial if serial else '', "<boot order='%d'/>" % boot if boot else ''))


class Lab(object):
    """A pool with the patient's root and data volumes, the patient (shut off, autostart on, root
    vda with boot order 1, a serial and driver settings, data disk vdb) and rescue domains."""

    def __init__(self, conn, names, serial=SERIAL):
        self.conn, self.names = conn, names
        self.pool, _target = make_dir_pool(conn, names)
        make_volume(conn, self.pool, ROOT, 16 * MIB, 'qcow2')
        make_volume(conn, self.pool, DATA, MIB, 'raw')
        self.root_path = conn.storagePoolLookupByName(self.pool).storageVolLookupByName(ROOT).path()
        self.patient = define_domain(conn, names('patient'),
                                     volume_disk(self.pool, ROOT, 'vda', 'qcow2', 1, serial, ROOT_DRIVER)
                                     + volume_disk(self.pool, DATA, 'vdb', 'raw')).name()
        conn.lookupByName(self.patient).setAutostart(1)

    def rescue_domain(self, suffix='rescue', running=True, extra_xml=''):
        """A guest-less domain with its own root volume (and `extra_xml` devices)."""
        volume = '%s-root.qcow2' % suffix
        make_volume(self.conn, self.pool, volume, 16 * MIB, 'qcow2')
        return define_domain(self.conn, self.names(suffix),
                             volume_disk(self.pool, volume, 'vda', 'qcow2', 1) + extra_xml, start=running).name()

    def state(self, *domains):
        """Both XML views, autostart and power state of each domain, as libvirt gives them."""
        views = {}
        for name in domains:
            dom = self.conn.lookupByName(name)
            views[name] = (dom.XMLDesc(0), dom.XMLDesc(INACTIVE), bool(dom.autostart()), dom.state()[0])
        return views

    def root_disks(self, name, live=False):
        """The <disk> elements of the patient's root volume in a domain's definition (or running XML)."""
        xml = self.conn.lookupByName(name).XMLDesc(0 if live else INACTIVE)
        return [disk for disk in etree.fromstring(xml).findall('devices/disk')
                if disk.find('source') is not None and disk.find('source').get('volume') == ROOT
                and disk.find('source').get('pool') == self.pool]

    def record(self):
        """The role's record in the patient's definition, or None."""
        tree = etree.fromstring(self.conn.lookupByName(self.patient).XMLDesc(INACTIVE))
        node = tree.find('metadata/{%s}storage' % NOTES_NS)
        return json.loads(node.text).get('root_volume_rescue') if node is not None and node.text else None

    def autostart(self):
        return bool(self.conn.lookupByName(self.patient).autostart())


def without_notes(xml):
    """A definition without its <metadata> (the role's record lives there, nothing else)."""
    tree = etree.fromstring(xml)
    for node in tree.findall('metadata'):
        tree.remove(node)
    return etree.tostring(tree, encoding='unicode')


def assert_untouched(lab, before, outcome):
    assert lab.state(*before) == before, 'a refused run changed something:\n%s' % outcome.stdout
    assert outcome.changed_tasks == 0, outcome.stdout


def assert_patient_whole(lab, definition_before):
    """The patient's definition is the one it had before the rescue (the record aside), its
    autostart is on, and no record is left."""
    assert without_notes(lab.conn.lookupByName(lab.patient).XMLDesc(INACTIVE)) == without_notes(definition_before)
    [root] = lab.root_disks(lab.patient)
    assert root.find('target').attrib == {'dev': 'vda', 'bus': 'virtio'}
    assert root.find('boot').get('order') == '1'
    assert root.find('serial').text == SERIAL
    assert lab.autostart() is True
    assert lab.record() is None
    assert not lab.conn.lookupByName(lab.patient).isActive()


@pytest.fixture
def lab(conn, names):
    return Lab(conn, names)


# ---------------------------------------------------------------------------------------
# 1. the molecule scenario
def test_molecule_scenario(conn):
    env = ansible_env(ANSIBLE_STDOUT_CALLBACK='default')
    env['PATH'] = os.path.dirname(sys.executable) + os.pathsep + env.get('PATH', '')
    for key in ('ANSIBLE_CALLBACK_PLUGINS', 'ANSIBLE_LOAD_CALLBACK_PLUGINS'):
        env.pop(key, None)
    proc = subprocess.run([MOLECULE, 'test', '-s', 'root_volume_rescue'], cwd=REPO, capture_output=True, text=True,
                          env=env, timeout=600, check=False)
    output = ANSI.sub('', proc.stdout + proc.stderr)
    assert proc.returncode == 0, output[-6000:]
    for action in ('prepare', 'converge', 'idempotence', 'verify', 'side_effect', 'cleanup'):
        assert re.search(r'root_volume_rescue \S+ %s: Executed: Successful' % action, output), (action, output[-6000:])
    assert not re.search(r'Executed: Failed', output)
    left = [dom.name() for dom in conn.listAllDomains(0) if dom.name().startswith('vtest-mol-') and
            dom.name().endswith('-rvr')]
    assert left == [], 'the scenario left domains behind'
    assert not [pool.name() for pool in conn.listAllStoragePools(0) if pool.name() == 'vtest-mol-pool-rvr']


# ---------------------------------------------------------------------------------------
# 2. refusals: nothing changes, in check mode and for real
@pytest.mark.parametrize('check', [True, False], ids=['check', 'apply'])
def test_running_patient_is_refused(lab, tmp_path, check):
    rescue_domain = lab.rescue_domain()
    lab.conn.lookupByName(lab.patient).create()
    before = lab.state(lab.patient, rescue_domain)
    outcome = rescue(tmp_path, check=check, domain=lab.patient, rescue_domain=rescue_domain)
    assert outcome.failure.startswith('DOMAIN_RUNNING:'), outcome.failure
    assert lab.patient in outcome.failure
    assert_untouched(lab, before, outcome)


def test_patient_as_its_own_rescue_domain_is_refused(lab, tmp_path):
    other = lab.rescue_domain()
    before = lab.state(lab.patient, other)
    patient_uuid = lab.conn.lookupByName(lab.patient).UUIDString()
    for rescue_domain in (lab.patient, patient_uuid):  # by name, and the same domain by UUID
        outcome = rescue(tmp_path, domain=lab.patient, rescue_domain=rescue_domain)
        assert outcome.failure.startswith('INVALID_ARGUMENT:'), outcome.failure
        assert 'own rescue domain' in outcome.failure
        assert_untouched(lab, before, outcome)


def test_record_naming_another_rescue_domain_is_refused(lab, tmp_path):
    first = lab.rescue_domain('first')
    second = lab.rescue_domain('second')
    lent = rescue(tmp_path, domain=lab.patient, rescue_domain=first)
    assert lent.failure is None, lent.failure
    assert lab.record()['rescue_domain'] == first and len(lab.root_disks(first, live=True)) == 1
    before = lab.state(lab.patient, first, second)
    for state in ('present', 'absent'):
        outcome = rescue(tmp_path, domain=lab.patient, rescue_domain=second, state=state)
        assert outcome.failure.startswith('VOLUME_IN_USE:'), outcome.failure
        assert first in outcome.failure and second in outcome.failure
        assert_untouched(lab, before, outcome)
    back = rescue(tmp_path, domain=lab.patient, state='absent')  # the recorded rescue domain
    assert back.failure is None, back.failure
    assert lab.root_disks(first) == [] and lab.root_disks(first, live=True) == []


def test_taken_rescue_target_is_refused_before_the_root_moves(lab, tmp_path):
    make_volume(lab.conn, lab.pool, 'other.img', MIB, 'raw')
    rescue_domain = lab.rescue_domain(extra_xml=volume_disk(lab.pool, 'other.img', 'sda', 'raw'))
    before = lab.state(lab.patient, rescue_domain)
    outcome = rescue(tmp_path, domain=lab.patient, rescue_domain=rescue_domain, target='sda')
    assert outcome.failure.startswith('TARGET_IN_USE:'), outcome.failure
    assert 'other.img' in outcome.failure
    assert_untouched(lab, before, outcome)


# ---------------------------------------------------------------------------------------
# 3. a real failure after the root left the patient: everything goes back
def test_failure_after_the_detach_puts_the_patient_back(lab, tmp_path):
    # a running rescue domain without any USB controller: check mode cannot know that the
    # attach on the usb bus will fail, libvirt refuses it only when it is done
    rescue_domain = lab.rescue_domain(extra_xml="<controller type='usb' model='none'/>")
    definition_before = lab.conn.lookupByName(lab.patient).XMLDesc(INACTIVE)
    rescue_before = lab.state(rescue_domain)
    outcome = rescue(tmp_path, domain=lab.patient, rescue_domain=rescue_domain, bus='usb')
    assert outcome.failure is not None, 'the attach was expected to fail'
    assert outcome.failure.startswith('LIBVIRT_ERROR:'), outcome.failure
    assert 'USB' in outcome.failure and 'rolled back' in outcome.failure
    assert outcome.step_changed('Detach the root volume from the patient'), 'the failure came before the detach'
    assert_patient_whole(lab, definition_before)
    assert lab.state(rescue_domain) == rescue_before
    assert outcome.result is None


# ---------------------------------------------------------------------------------------
# 4. the whole cycle onto a running rescue domain: check mode, lend, re-run, give back
#    (a verified hot-unplug on the scsi bus), re-run
def test_lend_and_give_back_with_a_running_rescue_domain(lab, tmp_path):
    rescue_domain = lab.rescue_domain()
    definition_before = lab.conn.lookupByName(lab.patient).XMLDesc(INACTIVE)
    before = lab.state(lab.patient, rescue_domain)

    checked = rescue(tmp_path, check=True, domain=lab.patient, rescue_domain=rescue_domain)
    assert checked.failure is None, checked.failure
    assert lab.state(lab.patient, rescue_domain) == before, 'check mode changed something'
    assert checked.result['changed'] is True
    assert checked.step_changed('Detach the root volume from the patient')

    lent = rescue(tmp_path, domain=lab.patient, rescue_domain=rescue_domain)
    assert lent.failure is None, lent.failure
    assert lent.result['changed'] is True and lent.changed_tasks > 0
    assert lab.root_disks(lab.patient) == []
    assert lab.autostart() is False
    for live in (True, False):
        [disk] = lab.root_disks(rescue_domain, live=live)
        assert disk.find('target').get('bus') == 'scsi'
        assert disk.find('readonly') is not None
        assert disk.find('boot') is None
        assert disk.find('driver').get('type') == 'qcow2'
        target = disk.find('target').get('dev')
    assert lab.root_path in monitor(lab.conn.lookupByName(rescue_domain), 'info block'), 'QEMU does not have the disk'
    record = lab.record()
    assert record['rescue_domain'] == rescue_domain and record['autostart'] is True
    assert record['rescue_target'] == target
    assert dict((key, record['root'][key]) for key in ('pool', 'volume', 'target', 'bus', 'boot_order', 'serial',
                                                       'format', 'cache', 'error_policy', 'discard', 'detect_zeroes',
                                                       'readonly', 'shareable')) == {
        'pool': lab.pool, 'volume': ROOT, 'target': 'vda', 'bus': 'virtio', 'boot_order': 1, 'serial': SERIAL,
        'format': 'qcow2', 'cache': 'writeback', 'error_policy': 'report', 'discard': 'unmap',
        'detect_zeroes': 'unmap', 'readonly': False, 'shareable': False}
    assert lent.result == {'patient': lab.patient, 'rescue_domain': rescue_domain, 'state': 'present',
                           'volume': {'pool': lab.pool, 'volume': ROOT, 'path': lab.root_path},
                           'rescue_target': target, 'patient_autostart': False, 'changed': True}

    lent_state = lab.state(lab.patient, rescue_domain)
    again = rescue(tmp_path, domain=lab.patient, rescue_domain=rescue_domain)
    assert again.failure is None, again.failure
    assert again.result['changed'] is False and again.changed_tasks == 0, again.stdout
    assert lab.state(lab.patient, rescue_domain) == lent_state

    checked = rescue(tmp_path, check=True, domain=lab.patient, state='absent')
    assert checked.failure is None, checked.failure
    assert checked.result['changed'] is True
    assert lab.state(lab.patient, rescue_domain) == lent_state, 'check mode changed something'

    back = rescue(tmp_path, domain=lab.patient, state='absent')
    assert back.failure is None, back.failure
    assert back.step_changed('Detach the root volume from the rescue domain')
    assert lab.root_disks(rescue_domain, live=True) == [] and lab.root_disks(rescue_domain) == []
    assert lab.root_path not in monitor(lab.conn.lookupByName(rescue_domain), 'info block'), 'QEMU still has the disk'
    assert lab.conn.lookupByName(rescue_domain).isActive()
    assert_patient_whole(lab, definition_before)
    assert back.result == {'patient': lab.patient, 'rescue_domain': rescue_domain, 'state': 'absent',
                           'volume': {'pool': lab.pool, 'volume': ROOT, 'path': lab.root_path},
                           'rescue_target': None, 'patient_autostart': True, 'changed': True}

    back_state = lab.state(lab.patient, rescue_domain)
    again = rescue(tmp_path, domain=lab.patient, state='absent')
    assert again.failure is None, again.failure
    assert again.result['changed'] is False and again.changed_tasks == 0, again.stdout
    assert lab.state(lab.patient, rescue_domain) == back_state


# ---------------------------------------------------------------------------------------
# 5. a shut-off rescue domain gets the disk in its definition; writable when asked
def test_lend_writable_to_a_shut_off_rescue_domain_and_give_back(lab, tmp_path):
    rescue_domain = lab.rescue_domain(running=False)
    definition_before = lab.conn.lookupByName(lab.patient).XMLDesc(INACTIVE)
    lent = rescue(tmp_path, domain=lab.patient, rescue_domain=rescue_domain, readonly=False, bus='virtio',
                  target='vdc')
    assert lent.failure is None, lent.failure
    [disk] = lab.root_disks(rescue_domain)
    assert disk.find('target').attrib == {'dev': 'vdc', 'bus': 'virtio'}
    assert disk.find('readonly') is None and disk.find('boot') is None
    assert not lab.conn.lookupByName(rescue_domain).isActive()
    assert lab.record()['rescue_target'] == 'vdc' and lent.result['rescue_target'] == 'vdc'
    assert lab.root_disks(lab.patient) == [] and lab.autostart() is False

    back = rescue(tmp_path, domain=lab.patient, rescue_domain=rescue_domain, state='absent')
    assert back.failure is None, back.failure
    assert lab.root_disks(rescue_domain) == []
    assert_patient_whole(lab, definition_before)


# ---------------------------------------------------------------------------------------
# 6. the record is enough: the rescue domain is gone (the volume floats), the root comes back
def test_give_back_after_the_rescue_domain_was_removed(lab, tmp_path):
    rescue_domain = lab.rescue_domain()
    definition_before = lab.conn.lookupByName(lab.patient).XMLDesc(INACTIVE)
    assert rescue(tmp_path, domain=lab.patient, rescue_domain=rescue_domain).failure is None
    dom = lab.conn.lookupByName(rescue_domain)
    dom.destroy()
    dom.undefine()
    assert lab.root_disks(lab.patient) == [] and lab.record()['rescue_domain'] == rescue_domain
    back = rescue(tmp_path, domain=lab.patient, state='absent')
    assert back.failure is None, back.failure
    assert_patient_whole(lab, definition_before)
    assert back.result['changed'] is True and back.result['rescue_domain'] == rescue_domain


# ---------------------------------------------------------------------------------------
# 7. a rescue guest that does not release a virtio disk: the way back stops, nothing moves
def test_unreleased_virtio_disk_stops_the_way_back(lab, tmp_path):
    rescue_domain = lab.rescue_domain()
    assert rescue(tmp_path, domain=lab.patient, rescue_domain=rescue_domain, bus='virtio').failure is None
    lent = lab.state(lab.patient, rescue_domain)
    record = lab.record()
    outcome = rescue(tmp_path, domain=lab.patient, state='absent', unplug_timeout=1)
    assert outcome.failure.startswith('HOTUNPLUG_TIMEOUT:'), outcome.failure
    assert lab.root_disks(rescue_domain) != [], 'the definition lost a disk the guest may still write to'
    assert lab.state(lab.patient)[lab.patient] == lent[lab.patient]
    assert lab.record() == record, 'the record must stay until the root is back'
    assert lab.root_disks(lab.patient) == []


# ---------------------------------------------------------------------------------------
# 8. a root without a serial: vm_disk gives every disk it attaches a serial (a default derived
#    from the volume when none is asked), and there is no way to ask for none
def test_root_without_a_serial_comes_back_without_one(conn, names, tmp_path):
    lab = Lab(conn, names, serial=None)
    rescue_domain = lab.rescue_domain()
    definition_before = conn.lookupByName(lab.patient).XMLDesc(INACTIVE)
    assert rescue(tmp_path, domain=lab.patient, rescue_domain=rescue_domain).failure is None
    assert rescue(tmp_path, domain=lab.patient, state='absent').failure is None
    assert without_notes(conn.lookupByName(lab.patient).XMLDesc(INACTIVE)) == without_notes(definition_before)


# ---------------------------------------------------------------------------------------
# 9. a running rescue domain without any hard disk boots from the first one it gets
#    (<os><boot dev='hd'>): the volume would become its root, which vm_disk attaches only to
#    a shut-off domain - refused before the patient loses its root
@pytest.mark.parametrize('check', [True, False], ids=['check', 'apply'])
def test_running_rescue_domain_without_a_disk_is_refused(lab, tmp_path, check):
    rescue_domain = define_domain(lab.conn, lab.names('diskless'), '', start=True).name()
    before = lab.state(lab.patient, rescue_domain)
    outcome = rescue(tmp_path, check=check, domain=lab.patient, rescue_domain=rescue_domain)
    assert outcome.failure.startswith('DOMAIN_RUNNING:'), outcome.failure
    assert rescue_domain in outcome.failure
    assert_untouched(lab, before, outcome)
    assert lab.record() is None
    assert len(lab.root_disks(lab.patient)) == 1


# ---------------------------------------------------------------------------------------
# 10. the record names the rescue domain by UUID too: a renamed rescue domain still has the
#     volume and gives it back; a record of an older run (name only) still works
def test_renamed_rescue_domain_gives_the_root_back(lab, tmp_path):
    rescue_domain = lab.rescue_domain(running=False)
    rescue_uuid = lab.conn.lookupByName(rescue_domain).UUIDString()
    definition_before = lab.conn.lookupByName(lab.patient).XMLDesc(INACTIVE)
    assert rescue(tmp_path, domain=lab.patient, rescue_domain=rescue_domain).failure is None
    record = lab.record()
    assert record['rescue_domain'] == rescue_domain and record['rescue_domain_uuid'] == rescue_uuid
    renamed = lab.names('renamed')
    lab.conn.lookupByName(rescue_domain).rename(renamed, 0)
    assert len(lab.root_disks(renamed)) == 1

    again = rescue(tmp_path, domain=lab.patient, rescue_domain=renamed)  # the same domain: nothing to do
    assert again.failure is None, again.failure
    assert again.changed_tasks == 0, again.stdout

    back = rescue(tmp_path, domain=lab.patient, state='absent')
    assert back.failure is None, back.failure
    assert back.step_changed('Detach the root volume from the rescue domain')
    assert back.result['rescue_domain'] == renamed and back.result['changed'] is True
    assert lab.root_disks(renamed) == []
    assert_patient_whole(lab, definition_before)


def test_record_without_the_rescue_domains_uuid_still_works(lab, tmp_path):
    rescue_domain = lab.rescue_domain()
    definition_before = lab.conn.lookupByName(lab.patient).XMLDesc(INACTIVE)
    assert rescue(tmp_path, domain=lab.patient, rescue_domain=rescue_domain).failure is None
    record = lab.record()
    del record['rescue_domain_uuid']  # as the first version of the role wrote it
    patient = lab.conn.lookupByName(lab.patient)
    node = etree.fromstring(patient.XMLDesc(INACTIVE)).find('metadata/{%s}storage' % NOTES_NS)
    notes = json.loads(node.text)
    notes['root_volume_rescue'] = record
    element = etree.Element('storage')
    element.text = json.dumps(notes, sort_keys=True, separators=(',', ':'))
    patient.setMetadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, etree.tostring(element, encoding='unicode'), 'virtops',
                        NOTES_NS, libvirt.VIR_DOMAIN_AFFECT_CONFIG)
    assert 'rescue_domain_uuid' not in lab.record()

    again = rescue(tmp_path, domain=lab.patient, rescue_domain=rescue_domain)
    assert again.failure is None, again.failure
    assert again.result['changed'] is False and again.changed_tasks == 0, again.stdout
    back = rescue(tmp_path, domain=lab.patient, state='absent')
    assert back.failure is None, back.failure
    assert lab.root_disks(rescue_domain, live=True) == [] and lab.root_disks(rescue_domain) == []
    assert_patient_whole(lab, definition_before)


# ---------------------------------------------------------------------------------------
# 11. a failure that carries no error code (here a module that cannot even start, so its
#     result has no error_code) still starts with one, and changes nothing
def test_failure_without_an_error_code_gets_one(lab, tmp_path):
    rescue_domain = lab.rescue_domain()
    before = lab.state(lab.patient, rescue_domain)
    broken = PLAYBOOK.replace("            name: virtops.storage.root_volume_rescue\n",
                              "            name: virtops.storage.root_volume_rescue\n"
                              "          vars:\n"
                              "            ansible_python_interpreter: /nonexistent/python\n")
    assert broken != PLAYBOOK
    outcome = rescue(tmp_path, playbook_text=broken, domain=lab.patient, rescue_domain=rescue_domain)
    assert outcome.failure.startswith('LIBVIRT_ERROR:'), outcome.failure
    assert re.search(r'MODULE FAILURE|nonexistent|interpreter', outcome.failure), outcome.failure
    assert_untouched(lab, before, outcome)
