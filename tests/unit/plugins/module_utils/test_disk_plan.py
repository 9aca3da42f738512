# -*- coding: utf-8 -*-
"""The disk planner is a pure function of (desired, observed domain, source, users): tested as a table.

Observed domains are written as the XML libvirt shows (`virsh dumpxml [--inactive]`) and read
with _domain.parse_view, the way DiskOps.observe reads them.
"""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import dataclasses

import pytest

from ansible_collections.virtops.storage.plugins.module_utils import _disk, _domain, _xml
from ansible_collections.virtops.storage.plugins.module_utils._disk import DiskSource
from ansible_collections.virtops.storage.plugins.module_utils._errors import StorageError
from ansible_collections.virtops.storage.plugins.module_utils._usage import DiskUse

UUID = '4f1c2a9e-0d7b-4c1e-9a55-2b7e1f0c3d11'
MAC = '52:54:00:12:34:56'
NIC = 'interface %s' % MAC


def volume_source(name, fmt='qcow2'):
    path = '/srv/images/%s' % name
    return DiskSource(kind='volume', format=fmt, pool='images', volume=name, key=path, path=path, real_path=path)


ROOT = volume_source('root.qcow2')
DATA = volume_source('data.qcow2')
OTHER = DiskSource(kind='file', format='raw', path='/srv/images/other.img', real_path='/srv/images/other.img')
ISO = DiskSource(kind='file', format='raw', path='/srv/iso/install.iso', real_path='/srv/iso/install.iso')
LUN = DiskSource(kind='block', format='raw', path='/dev/mapper/3600a0b8000', real_path='/dev/dm-3', block=True)
DATA_RAW = volume_source('data.img', 'raw')
DATA_FILE = DiskSource(kind='file', format='qcow2', path='/srv/images/data.qcow2', real_path='/srv/images/data.qcow2')
# what DiskOps._with_paths learns from the host: the file of each volume, and symbolic links
VOLUME_FILES = {('images', 'root.qcow2'): '/srv/images/root.qcow2', ('images', 'data.qcow2'): '/srv/images/data.qcow2'}
LINKS = {'/var/lib/libvirt/images/data-link.qcow2': '/srv/images/data.qcow2'}


# domain XML ------------------------------------------------------------------------------
def vol(target, volume, bus='virtio', fmt='qcow2', boot=None, alias=None, extra='', driver=''):
    """A <disk type='volume'>."""
    return ("<disk type='volume' device='disk'><driver name='qemu' type='%s'%s/>"
            "<source pool='images' volume='%s'/><target dev='%s' bus='%s'/>%s%s%s</disk>"
            % (fmt, driver, volume, target, bus, extra, _boot(boot), _alias(alias)))


def file_disk(target, path, bus='virtio', fmt='raw', device='disk', boot=None, alias=None, extra='', disk_type='file'):
    source = "<source %s='%s'/>" % ('dev' if disk_type == 'block' else 'file', path) if path else ''
    return ("<disk type='%s' device='%s'><driver name='qemu' type='%s'/>%s<target dev='%s' bus='%s'/>%s%s%s</disk>"
            % (disk_type, device, fmt, source, target, bus, extra, _boot(boot), _alias(alias)))


def cdrom(target='sda', bus='sata', boot=None, alias=None):
    return ("<disk type='file' device='cdrom'><driver name='qemu' type='raw'/><target dev='%s' bus='%s'/>"
            "<readonly/>%s%s</disk>" % (target, bus, _boot(boot), _alias(alias)))


def nic(boot=None):
    return ("<interface type='network'><mac address='%s'/><source network='default'/><model type='virtio'/>%s"
            "</interface>" % (MAC, _boot(boot)))


def controller(model='virtio-scsi'):
    return "<controller type='scsi' index='0'%s/>" % (" model='%s'" % model if model else '')


def _boot(order):
    return "<boot order='%d'/>" % order if order is not None else ''


def _alias(name):
    return "<alias name='%s'/>" % name if name else ''


def domain_xml(devices, boot=()):
    return ("<domain type='kvm'><name>vm1</name><uuid>%s</uuid><memory unit='KiB'>1048576</memory>"
            "<os><type arch='x86_64' machine='pc-q35-8.2'>hvm</type>%s</os>"
            "<devices><emulator>/usr/bin/qemu-system-x86_64</emulator>%s</devices></domain>"
            % (UUID, ''.join("<boot dev='%s'/>" % dev for dev in boot), ''.join(devices)))


def resolved(view):
    """The view as DiskOps._with_paths hands it on: volume files and real paths filled in."""
    disks = []
    for disk in view.disks:
        path = VOLUME_FILES.get((disk.pool, disk.volume)) if disk.type == 'volume' else disk.path
        disks.append(dataclasses.replace(disk, path=path, real_path=LINKS.get(path, path)))
    return dataclasses.replace(view, disks=tuple(disks))


def _boot_default(xml):
    """libvirt's post-parse rule (virDomainDefPostParseBoot): a definition that names no boot
    device at all, neither <os><boot dev> nor a per-device <boot order>, boots from 'hd'."""
    root = _xml.parse(xml)
    if root.find('os/boot') is None and root.find('devices/*/boot') is None:
        _xml.sub(root.find('os'), 'boot', {'dev': 'hd'})
    return _xml.to_string(root)


def from_xml(config_xml=None, live_xml=None):
    """The domain as DiskOps.observe reads it from libvirt."""
    config_xml = _boot_default(config_xml) if config_xml is not None else None
    live_xml = _boot_default(live_xml) if live_xml is not None else None
    return _disk.ObservedDomain(
        name='vm1', uuid=UUID, running=live_xml is not None, persistent=config_xml is not None,
        config=resolved(_domain.parse_view(config_xml)) if config_xml is not None else None,
        live=resolved(_domain.parse_view(live_xml)) if live_xml is not None else None)


def observed(config=None, live=None, boot=(), live_boot=None):
    """A domain: persistent when `config` (devices) is given, running when `live` is."""
    return from_xml(domain_xml(config, boot) if config is not None else None,
                    domain_xml(live, boot if live_boot is None else live_boot) if live is not None else None)


# what libvirt does with the planned steps --------------------------------------------------
def _add_device(xml, device_xml):
    root = _xml.parse(xml)
    devices = root.find('devices')
    element = _xml.parse(device_xml)
    disks = devices.findall('disk')
    if element.tag == 'disk' and disks:
        new = _domain.parse_disk(element)
        position = _domain.insert_position(_domain.parse_view(xml), new.bus, new.target)  # virDomainDiskInsert
        if position < len(disks):
            disks[position].addprevious(element)
        else:
            disks[-1].addnext(element)
    else:
        devices.append(element)
    return _xml.to_string(root)


def _disk_with_target(root, target):
    return next(disk for disk in root.findall('devices/disk') if disk.find('target').get('dev') == target)


def _replace_disk(xml, device_xml):
    root = _xml.parse(xml)
    element = _xml.parse(device_xml)
    old = _disk_with_target(root, element.find('target').get('dev'))
    old.addprevious(element)
    old.getparent().remove(old)
    return _xml.to_string(root)


def _remove_disk(xml, target):
    root = _xml.parse(xml)
    old = _disk_with_target(root, target)
    old.getparent().remove(old)
    return _xml.to_string(root)


def applied(domain, steps):
    """The domain as libvirt would show it after carrying out `steps`."""
    config = domain.config.xml if domain.config is not None else None
    live = domain.live.xml if domain.live is not None else None
    for action in steps.actions:
        if action.method == 'attach_config':
            config = _add_device(config, action.args[1])
        elif action.method == 'attach_live':
            live = _add_device(live, action.args[1])
        elif action.method == 'rewrite_boot_order':  # as DiskOps.rewrite_boot_order does
            config = _domain.rewrite_boot_order(config, *action.args[1:])
        elif action.method == 'update_config':  # as DiskOps.update_config does, on the definition as it is now
            config = _replace_disk(config, _updated_xml(config, action))
        elif action.method == 'detach_config':
            config = _remove_disk(config, _xml.attr_of(_xml.parse(action.args[1]), 'target', 'dev'))
        elif action.method == 'detach_live':
            live = _remove_disk(live, action.args[2])
        else:
            raise AssertionError('no such step: %s' % action.method)
    return from_xml(config, live)


# desired ---------------------------------------------------------------------------------
def params(**overrides):
    base = dict(uri='qemu:///system', domain='vm1', state='present', pool='images', volume='data.qcow2', path=None,
                target=None, bus=None, device=None, role=None, boot_order=None, readonly=None, shareable=None,
                serial=None, cache=None, io=None, discard=None, detect_zeroes=None, error_policy=None, live='auto',
                persistent=True, unplug_timeout=30.0)
    base.update(overrides)
    return base


def desired(**overrides):
    return _disk.desired_from_params(params(**overrides))


def source_params(source):
    if source.kind == 'volume':
        return {'pool': source.pool, 'volume': source.volume, 'path': None}
    return {'pool': None, 'volume': None, 'path': source.path}


def plan(domain, source=DATA, users=(), chain_users=(), **overrides):
    wanted = dict(source_params(source))
    wanted.update(overrides)
    return _disk.plan_disk(desired(**wanted), domain, source, users, chain_users)


def refused(code, domain, source=DATA, users=(), chain_users=(), **overrides):
    with pytest.raises(StorageError) as caught:
        plan(domain, source, users, chain_users, **overrides)
    assert caught.value.code == code, caught.value
    return caught.value


def methods(steps):
    return [action.method for action in steps.actions]


def tree(action):
    return _xml.parse(action.args[1])


def _updated_xml(config_xml, action):
    """The <disk> an update_config step (domain, target, changes) gives the definition."""
    return _domain.update_disk_xml(_domain.parse_view(config_xml).disk_at(action.args[1]), action.args[2])


def updated(domain, action):
    return _xml.parse(_updated_xml(domain.config.xml, action))


def disk_of(action):
    return _domain.parse_disk(tree(action))


def added(steps):
    """The <disk> the plan adds to the definition: alone, or in the same change as a boot order rewrite."""
    for action in steps.actions:
        if action.method == 'rewrite_boot_order' and len(action.args) > 2:
            return _domain.parse_disk(_xml.parse(action.args[2]))
        if action.method == 'attach_config' and tree(action).tag == 'disk':
            return disk_of(action)
    return None


# a shut-off and a running domain with a root disk (per-device boot order)
ROOT_DISK = vol('vda', 'root.qcow2', boot=1)
SHUT_OFF = observed(config=[ROOT_DISK, nic()])
RUNNING = observed(config=[ROOT_DISK, nic()], live=[vol('vda', 'root.qcow2', boot=1, alias='virtio-disk0'), nic()])


# ---------------------------------------------------------------------------------------
# desired_from_params
@pytest.mark.parametrize('overrides, code', [
    ({'target': 'xda'}, 'INVALID_ARGUMENT'),
    ({'target': 'vd'}, 'INVALID_ARGUMENT'),
    ({'target': 'vdaaaa'}, 'INVALID_ARGUMENT'),
    ({'target': 'vdA'}, 'INVALID_ARGUMENT'),
    ({'target': 'nvme0n1'}, 'INVALID_ARGUMENT'),
    ({'target': 'vdb', 'bus': 'scsi'}, 'INVALID_ARGUMENT'),
    ({'target': 'sdb', 'bus': 'virtio'}, 'INVALID_ARGUMENT'),
    ({'target': 'hda', 'bus': 'sata'}, 'INVALID_ARGUMENT'),
    ({'target': 'sdb', 'bus': 'ide'}, 'INVALID_ARGUMENT'),
    ({'serial': 'a/b'}, 'INVALID_ARGUMENT'),
    ({'serial': 'x;reboot'}, 'INVALID_ARGUMENT'),
    ({'serial': u'disk-é'}, 'INVALID_ARGUMENT'),
    ({'serial': 'a<b>'}, 'INVALID_ARGUMENT'),
    ({'boot_order': 0}, 'INVALID_ARGUMENT'),
    ({'boot_order': -3}, 'INVALID_ARGUMENT'),
    ({'role': 'root', 'boot_order': 2}, 'INVALID_ARGUMENT'),
    ({'role': 'data', 'boot_order': 1}, 'INVALID_ARGUMENT'),
    ({'device': 'lun', 'bus': 'virtio'}, 'INVALID_ARGUMENT'),
    ({'device': 'lun', 'bus': 'sata'}, 'INVALID_ARGUMENT'),
    ({'device': 'cdrom', 'bus': 'virtio'}, 'INVALID_ARGUMENT'),
    ({'live': 'maybe'}, 'INVALID_ARGUMENT'),
    ({'live': 'sometimes'}, 'INVALID_ARGUMENT'),
    ({'unplug_timeout': -1.0}, 'INVALID_ARGUMENT'),
    ({'domain': ''}, 'INVALID_NAME'),
    ({'domain': 'a/b'}, 'INVALID_NAME'),
    ({'domain': '..'}, 'INVALID_NAME'),
    ({'domain': 'vm\x07'}, 'INVALID_NAME'),
    ({'pool': 'p/q'}, 'INVALID_NAME'),
    ({'volume': 'x' * 256}, 'INVALID_NAME'),
])
def test_desired_from_params_refusals(overrides, code):
    with pytest.raises(StorageError) as caught:
        desired(**overrides)
    assert caught.value.code == code, caught.value


@pytest.mark.parametrize('value, expected', [
    ('auto', 'auto'), ('AUTO', 'auto'), ('true', 'true'), ('yes', 'true'), ('on', 'true'), (True, 'true'),
    ('false', 'false'), ('no', 'false'), (False, 'false'), ('False', 'false'),
])
def test_desired_live_values(value, expected):
    assert desired(live=value).live == expected


@pytest.mark.parametrize('overrides', [
    {'target': 'vdb', 'bus': 'virtio'}, {'target': 'sdb', 'bus': 'sata'}, {'target': 'sdc', 'bus': 'usb'},
    {'target': 'sdd', 'bus': 'scsi'}, {'target': 'hdc', 'bus': 'ide'}, {'target': 'vdaaa'}, {'role': 'root'},
    {'role': 'root', 'boot_order': 1}, {'role': 'data', 'boot_order': 2}, {'device': 'lun'},
    {'device': 'lun', 'bus': 'scsi'}, {'device': 'cdrom', 'bus': 'sata'}, {'serial': 'A-1_b.c+d e'},
    {'domain': u'web & db <prod> 服务器'}, {'path': '/srv/a b.img', 'pool': None, 'volume': None},
])
def test_desired_from_params_accepts(overrides):
    wanted = desired(**overrides)
    for name, value in overrides.items():
        assert getattr(wanted, name) == value
    assert wanted.state == 'present' and wanted.persistent is True and wanted.live == 'auto'


# ---------------------------------------------------------------------------------------
# views_in_scope
@pytest.mark.parametrize('running, persistent_domain, live, persistent, state, expected', [
    (True, True, 'auto', True, 'present', ['config', 'live']),
    (True, True, 'true', True, 'present', ['config', 'live']),
    (True, True, 'false', True, 'present', ['config']),
    (True, True, 'auto', False, 'present', ['live']),
    (True, True, 'false', False, 'present', 'INVALID_ARGUMENT'),
    (True, True, 'false', False, 'absent', 'INVALID_ARGUMENT'),  # nothing to change, either way
    (True, True, 'auto', True, 'absent', ['config', 'live']),
    (False, True, 'auto', True, 'present', ['config']),
    (False, True, 'false', True, 'present', ['config']),
    (False, True, 'true', True, 'present', 'INVALID_ARGUMENT'),
    (False, True, 'true', True, 'absent', 'INVALID_ARGUMENT'),  # live: true needs a running domain
    (False, True, 'auto', False, 'present', 'INVALID_ARGUMENT'),
    (False, True, 'auto', False, 'absent', 'INVALID_ARGUMENT'),
    (True, False, 'auto', True, 'present', 'INVALID_ARGUMENT'),  # transient: no definition to add to
    (True, False, 'auto', True, 'absent', ['live']),
    (True, False, 'auto', False, 'present', ['live']),
    (True, False, 'true', False, 'present', ['live']),
    (True, False, 'false', False, 'present', 'INVALID_ARGUMENT'),
    (True, False, 'false', True, 'absent', 'INVALID_ARGUMENT'),
])
def test_views_in_scope(running, persistent_domain, live, persistent, state, expected):
    domain = observed(config=[] if persistent_domain else None, live=[] if running else None)
    want = desired(live=live, persistent=persistent, state=state)
    if isinstance(expected, list):
        assert _disk.views_in_scope(want, domain) == expected
    else:
        with pytest.raises(StorageError) as caught:
            _disk.views_in_scope(want, domain)
        assert caught.value.code == expected
        assert 'vm1' in caught.value.msg or 'false' in caught.value.msg


# ---------------------------------------------------------------------------------------
# attaching a new disk
def test_new_disk_on_a_shut_off_domain():
    steps = plan(SHUT_OFF)
    [attach] = steps.actions
    assert attach.method == 'attach_config' and attach.args[0] == 'vm1'
    assert attach.description == 'attach disk vdb (images/data.qcow2) to the definition of vm1'
    element = tree(attach)
    assert element.get('type') == 'volume' and element.get('device') == 'disk'
    assert element.find('source').attrib == {'pool': 'images', 'volume': 'data.qcow2'}
    assert element.find('driver').attrib == {'name': 'qemu', 'type': 'qcow2'}, 'the volume format, never probed'
    assert element.find('target').attrib == {'dev': 'vdb', 'bus': 'virtio'}
    assert element.findtext('serial') == _domain.default_serial(DATA.key)
    assert element.find('boot') is None and element.find('readonly') is None and element.find('shareable') is None
    assert attach.undo.method == 'define' and attach.undo.args == ('vm1', SHUT_OFF.config.xml), 'undone by restoring the definition'
    assert list(steps.predicted) == ['config'] and steps.predicted['config'].target == 'vdb'
    assert steps.rewrite is None and steps.boot is None and steps.warnings == [] and steps.changed


def test_an_empty_serial_asks_for_none():
    [attach] = plan(SHUT_OFF, serial='').actions
    assert tree(attach).find('serial') is None
    # an existing disk without a serial stays as it is; one with a serial loses it
    domain = observed(config=[ROOT_DISK, vol('vdb', 'data.qcow2')])
    assert plan(domain, serial='').actions == []
    domain = observed(config=[ROOT_DISK, vol('vdb', 'data.qcow2', extra='<serial>s1</serial>')])
    [update] = plan(domain, serial='').actions
    assert 'serial: s1 -> unset' in update.description
    assert _domain.parse_disk(updated(domain, update)).serial is None


def test_new_disk_on_a_running_domain_goes_to_the_definition_first():
    steps = plan(RUNNING)
    assert methods(steps) == ['attach_config', 'attach_live']
    config, live = steps.actions
    assert live.description == 'hot-plug disk vdb (images/data.qcow2) into running domain vm1'
    assert disk_of(config).target == disk_of(live).target == 'vdb'
    assert disk_of(live).serial == disk_of(config).serial == _domain.default_serial(DATA.key)
    assert config.undo is not None and config.undo.method == 'define'
    assert steps.predicted['live'].target == 'vdb' and steps.predicted['config'].target == 'vdb'


@pytest.mark.parametrize('config, live, overrides, target', [
    ([ROOT_DISK, file_disk('vdc', '/x.img')], None, {}, 'vdb'),
    ([ROOT_DISK, file_disk('vdb', '/x.img')], [ROOT_DISK, file_disk('vdc', '/y.img')], {}, 'vdd'),  # either view
    ([ROOT_DISK], [ROOT_DISK, file_disk('vdb', '/y.img')], {}, 'vdc'),  # hot-plugged only
    ([ROOT_DISK, cdrom('sda', 'sata')], None, {'bus': 'scsi'}, 'sdb'),  # sata and scsi share sdX
    ([ROOT_DISK, cdrom('sda', 'sata')], None, {'bus': 'sata'}, 'sdb'),
    ([ROOT_DISK, cdrom('hda', 'ide')], None, {'bus': 'ide'}, 'hdb'),
    ([ROOT_DISK], None, {'target': 'sdc'}, 'sdc'),
])
def test_automatic_target_skips_targets_used_in_either_view(config, live, overrides, target):
    steps = plan(observed(config=config, live=live), live='false', **overrides)
    assert added(steps).target == target


def test_a_target_without_bus_takes_the_bus_of_its_name():
    steps = plan(SHUT_OFF, target='sdc')
    assert disk_of(steps.actions[-1]).bus == 'scsi'
    assert disk_of(plan(SHUT_OFF, target='hdb').actions[-1]).bus == 'ide'


def test_disk_only_in_one_view_is_added_to_the_other():
    data = vol('vdb', 'data.qcow2')
    only_config = observed(config=[ROOT_DISK, data], live=[ROOT_DISK])
    steps = plan(only_config)
    assert methods(steps) == ['attach_live'] and disk_of(steps.actions[0]).target == 'vdb'
    only_live = observed(config=[ROOT_DISK], live=[ROOT_DISK, vol('vdc', 'data.qcow2', alias='virtio-disk2')])
    steps = plan(only_live)
    assert methods(steps) == ['attach_config'] and disk_of(steps.actions[0]).target == 'vdc'


def test_a_disk_named_through_a_link_is_the_same_disk():
    domain = observed(config=[ROOT_DISK, file_disk('vdb', '/var/lib/libvirt/images/data-link.qcow2', fmt='qcow2')])
    assert domain.config.disks[1].real_path == '/srv/images/data.qcow2'
    assert list(_disk.find_disks(domain, DATA_FILE)) == ['config']
    assert plan(domain, DATA_FILE).actions == []
    unresolved = dataclasses.replace(domain, config=_domain.parse_view(domain.config.xml))
    assert _disk.find_disks(unresolved, DATA_FILE) == {}, 'without the real path it is another file'


def test_volume_disk_is_found_by_its_path_too():
    domain = observed(config=[ROOT_DISK, vol('vdb', 'data.qcow2')])
    assert _disk.find_disks(domain, DATA_FILE)['config'].target == 'vdb'
    assert _disk.find_disks(domain, DATA)['config'].target == 'vdb'
    assert _disk.find_disks(domain, OTHER) == {}


def test_cdrom_and_lun_defaults():
    [attach] = plan(SHUT_OFF, ISO, device='cdrom', bus='sata').actions
    cd = disk_of(attach)
    assert (cd.device, cd.bus, cd.target, cd.type, cd.path, cd.readonly) == ('cdrom', 'sata', 'sda', 'file', ISO.path, True)
    steps = plan(SHUT_OFF, LUN, device='lun')
    lun = disk_of(steps.actions[-1])
    assert (lun.device, lun.bus, lun.target, lun.type, lun.path, lun.format) == ('lun', 'scsi', 'sda', 'block', LUN.path, 'raw')
    assert lun.serial is None, 'a LUN shows the guest its own serial'
    refused('INVALID_ARGUMENT', SHUT_OFF, OTHER, device='lun')  # a file cannot pass SCSI commands through


# ---------------------------------------------------------------------------------------
# a second identical run changes nothing
RERUNS = [
    ('shut off', SHUT_OFF, DATA, {}),
    ('running', RUNNING, DATA, {}),
    ('running scsi', RUNNING, DATA, {'bus': 'scsi'}),
    ('tunables', RUNNING, DATA, {'cache': 'none', 'io': 'native', 'discard': 'unmap', 'detect_zeroes': 'unmap',
                                 'error_policy': 'report', 'serial': 'my disk-1', 'readonly': True, 'shareable': True}),
    ('boot order', RUNNING, DATA, {'boot_order': 3}),
    ('file on sata', SHUT_OFF, OTHER, {'bus': 'sata'}),
    ('cdrom', SHUT_OFF, ISO, {'device': 'cdrom', 'bus': 'sata'}),
    ('lun', RUNNING, LUN, {'device': 'lun'}),
    ('root after other boot devices', observed(config=[cdrom(boot=1), nic(boot=2)]), ROOT, {'role': 'root'}),
    ('root in a legacy definition', observed(config=[cdrom(), nic()], boot=['cdrom', 'hd']), ROOT, {'role': 'root'}),
    ('new first disk of a legacy definition', observed(config=[vol('vdb', 'root.qcow2')], boot=['hd']), DATA,
     {'target': 'vda'}),
    ('legacy with boot order', observed(config=[vol('vda', 'root.qcow2'), nic()], boot=['hd', 'network']), DATA,
     {'boot_order': 3}),
    ('diskless legacy', observed(config=[nic()], boot=['hd']), DATA, {}),
    ('demote', observed(config=[ROOT_DISK, cdrom(boot=2)]), ROOT, {'role': 'data'}),
    ('promote', observed(config=[cdrom(boot=1), vol('vdb', 'data.qcow2')]), DATA, {'role': 'root'}),
    ('detach', observed(config=[ROOT_DISK, vol('vdb', 'data.qcow2')],
                        live=[ROOT_DISK, vol('vdb', 'data.qcow2', alias='virtio-disk1')]), DATA, {'state': 'absent'}),
]


@pytest.mark.parametrize('domain, source, overrides', [case[1:] for case in RERUNS], ids=[case[0] for case in RERUNS])
def test_second_run_changes_nothing(domain, source, overrides):
    first = plan(domain, source, **overrides)
    assert first.actions
    second = plan(applied(domain, first), source, **overrides)
    assert second.actions == [], second.descriptions
    assert not second.changed


# ---------------------------------------------------------------------------------------
# identity: target, bus, device
ATTACHED = observed(config=[ROOT_DISK, vol('vdb', 'data.qcow2')])
ATTACHED_LIVE_ONLY = observed(config=[ROOT_DISK], live=[ROOT_DISK, vol('vdb', 'data.qcow2', alias='virtio-disk1')])


@pytest.mark.parametrize('domain, overrides, words', [
    (ATTACHED, {'target': 'vdc'}, 'the definition of'),
    (ATTACHED, {'bus': 'scsi'}, 'the definition of'),
    (ATTACHED, {'device': 'cdrom', 'bus': 'sata'}, 'the definition of'),
    (ATTACHED, {'device': 'lun'}, 'the definition of'),
    (ATTACHED_LIVE_ONLY, {'target': 'vdc'}, 'the running domain'),
    (ATTACHED_LIVE_ONLY, {'target': 'sdb', 'bus': 'scsi'}, 'the running domain'),
])
def test_same_source_elsewhere_is_a_target_mismatch(domain, overrides, words):
    error = refused('TARGET_MISMATCH', domain, **overrides)
    assert 'vdb' in error.msg and words in error.msg


def test_target_holding_another_source_is_in_use():
    error = refused('TARGET_IN_USE', SHUT_OFF, target='vda')
    assert 'images/root.qcow2' in error.msg
    hot = observed(config=[ROOT_DISK], live=[ROOT_DISK, file_disk('vdc', '/srv/images/other.img', alias='virtio-disk2')])
    error = refused('TARGET_IN_USE', hot, target='vdc')
    assert 'running domain' in error.msg and '/srv/images/other.img' in error.msg
    refused('TARGET_IN_USE', hot, target='vdc', live='false')  # the definition would clash at the next start


# ---------------------------------------------------------------------------------------
# who else uses the source
VM2 = DiskUse('vm2', 'vdb', persistent=True)
VM2_SHARED = DiskUse('vm2', 'vdb', live=True, persistent=True, shareable=True)
VM3 = DiskUse('vm3', 'vdc', live=True)
VM2_CHAIN = DiskUse('vm2', 'vda', live=True, persistent=True, readonly=True, via='/srv/images/vm2-top.qcow2')
OWN_CHAIN = DiskUse('vm1', 'vda', live=True, persistent=True, readonly=True, via='/srv/images/root.qcow2')


@pytest.mark.parametrize('users, chain_users, overrides, blamed', [
    ([VM2], [], {}, ['vm2']),
    ([VM2_SHARED], [], {'shareable': True}, None),  # shareable on both sides
    ([VM2_SHARED], [], {}, ['vm2']),  # shareable only there
    ([VM2], [], {'shareable': True}, ['vm2']),  # shareable only here
    ([VM2_SHARED, VM3], [], {'shareable': True}, ['vm3']),  # one that does not share is enough
    ([VM2_CHAIN], [], {}, ['vm2']),  # another domain reads it through its backing chain
    ([VM2_CHAIN], [], {'readonly': True}, None),
    ([OWN_CHAIN], [], {}, ['vm1']),  # so does this domain, through its own root overlay
    ([OWN_CHAIN], [], {'readonly': True}, None),
    ([], [DiskUse('vm2', 'vdb', persistent=True)], {}, ['vm2']),  # a file under this overlay is written to
    ([], [DiskUse('vm2', 'vdb', persistent=True)], {'readonly': True}, ['vm2']),
    ([], [DiskUse('vm2', 'vdb', persistent=True, readonly=True)], {}, None),
    ([], [VM2_CHAIN], {}, None),  # another overlay on the same base only reads it
])
def test_volume_in_use(users, chain_users, overrides, blamed):
    source = DATA_RAW if overrides.get('shareable') else DATA  # QEMU shares writable disks only in raw format
    for domain in (SHUT_OFF, RUNNING):
        if blamed is None:
            steps = plan(domain, source, users=users, chain_users=chain_users, **overrides)
            assert methods(steps)[0] == 'attach_config'
            assert bool(tree(steps.actions[0]).find('shareable') is not None) == bool(overrides.get('shareable'))
        else:
            error = refused('VOLUME_IN_USE', domain, source, users=users, chain_users=chain_users, **overrides)
            assert set(blamed) <= set(use['domain'] for use in error.details['used_by'])
            assert all(name in error.msg for name in blamed)


def test_turning_shareable_off_checks_the_other_users_again():
    domain = observed(config=[ROOT_DISK, vol('vdb', 'data.qcow2', extra='<shareable/>')])
    refused('VOLUME_IN_USE', domain, users=[VM2_SHARED], shareable=False)
    assert plan(domain, users=[VM2_SHARED]).actions == [], 'left out, shareable stays as it is'
    [update] = plan(domain, shareable=False).actions
    assert update.method == 'update_config' and updated(domain, update).find('shareable') is None


def test_making_a_disk_writable_checks_who_reads_it_through_a_backing_chain():
    """Attached read-only, a base image other domains read through their overlays is safe;
    turning readonly off on that disk must be refused as attaching it writable is."""
    domain = observed(config=[ROOT_DISK, vol('vdb', 'data.qcow2', extra='<readonly/>')])
    assert plan(domain, users=[VM2_CHAIN]).actions == []
    error = refused('VOLUME_IN_USE', domain, users=[VM2_CHAIN], readonly=False)
    assert 'vm2' in error.msg


def test_format_of_an_attached_disk_must_be_the_volumes():
    raw = observed(config=[ROOT_DISK, vol('vdb', 'data.qcow2', fmt='raw')])
    error = refused('FORMAT_MISMATCH', raw)
    assert 'raw' in error.msg and 'qcow2' in error.msg and 'vdb' in error.msg
    refused('FORMAT_MISMATCH', raw, cache='none')
    live_raw = observed(config=[ROOT_DISK], live=[ROOT_DISK, vol('vdb', 'data.qcow2', fmt='raw', alias='virtio-disk1')])
    error = refused('FORMAT_MISMATCH', live_raw)
    assert 'running domain' in error.msg


# ---------------------------------------------------------------------------------------
# hot-plug
@pytest.mark.parametrize('source, overrides', [
    (DATA, {'bus': 'sata'}), (DATA, {'bus': 'ide'}), (ISO, {'device': 'cdrom', 'bus': 'sata'}),
    (DATA, {'target': 'hdb'}),
])
def test_sata_and_ide_cannot_hot_plug(source, overrides):
    error = refused('HOTPLUG_UNSUPPORTED', RUNNING, source, **overrides)
    assert 'live: false' in error.msg
    steps = plan(RUNNING, source, live='false', **overrides)
    assert methods(steps) == ['attach_config']
    assert methods(plan(observed(config=[ROOT_DISK]), source, **overrides)) == ['attach_config']


@pytest.mark.parametrize('bus', ['virtio', 'scsi', 'usb'])
def test_hot_pluggable_buses(bus):
    steps = plan(RUNNING, bus=bus)
    assert methods(steps)[-1] == 'attach_live' and disk_of(steps.actions[-1]).bus == bus


@pytest.mark.parametrize('bus, target', [('sata', 'sdb'), ('ide', 'hdb')])
def test_sata_and_ide_cannot_hot_unplug(bus, target):
    disk = vol(target, 'data.qcow2', bus=bus)
    domain = observed(config=[ROOT_DISK, disk], live=[ROOT_DISK, vol(target, 'data.qcow2', bus=bus, alias='x0')])
    error = refused('HOTPLUG_UNSUPPORTED', domain, state='absent')
    assert target in error.msg
    steps = plan(domain, state='absent', live='false')
    assert methods(steps) == ['detach_config']
    assert methods(plan(observed(config=[ROOT_DISK, disk]), state='absent')) == ['detach_config']


@pytest.mark.parametrize('config, live, expected', [
    ([ROOT_DISK], None, [('attach_config', 'controller'), ('attach_config', 'disk')]),
    ([ROOT_DISK, controller()], None, [('attach_config', 'disk')]),
    ([ROOT_DISK, controller(None)], None, [('attach_config', 'disk')]),  # libvirt picks the model
    ([ROOT_DISK], [ROOT_DISK], [('attach_config', 'controller'), ('attach_config', 'disk'),
                                ('attach_live', 'controller'), ('attach_live', 'disk')]),
    ([ROOT_DISK, controller()], [ROOT_DISK, controller()], [('attach_config', 'disk'), ('attach_live', 'disk')]),
    ([ROOT_DISK, controller()], [ROOT_DISK], [('attach_config', 'disk'), ('attach_live', 'controller'),
                                              ('attach_live', 'disk')]),
])
def test_scsi_bus_adds_a_virtio_scsi_controller_only_where_there_is_none(config, live, expected):
    steps = plan(observed(config=config, live=live), bus='scsi')
    assert [(action.method, tree(action).tag) for action in steps.actions] == expected
    for action in steps.actions:
        if tree(action).tag == 'controller':
            assert tree(action).attrib == {'type': 'scsi', 'index': '0', 'model': 'virtio-scsi'}
            assert action.method == 'attach_live' or action.undo.method == 'define'


# ---------------------------------------------------------------------------------------
# the root disk and the boot order
def test_root_disk_needs_a_shut_off_domain():
    diskless = observed(config=[nic()], live=[nic()], boot=['hd'])
    error = refused('DOMAIN_RUNNING', diskless, ROOT, role='root')
    assert 'vm1' in error.msg
    refused('DOMAIN_RUNNING', diskless, ROOT, role='root', live='false')


def test_root_disk_already_root_is_fine_while_running():
    assert plan(RUNNING, ROOT, role='root').actions == []
    legacy = observed(config=[vol('vda', 'root.qcow2')], live=[vol('vda', 'root.qcow2', alias='virtio-disk0')],
                      boot=['hd'])
    assert plan(legacy, ROOT, role='root').actions == []


@pytest.mark.parametrize('domain', [
    SHUT_OFF,
    observed(config=[vol('vda', 'root.qcow2'), nic()], boot=['hd', 'network']),
    observed(config=[cdrom(), vol('vdc', 'root.qcow2')], boot=['hd', 'cdrom']),
])
def test_second_root_disk_is_refused(domain):
    error = refused('ROOT_DISK_PRESENT', domain, role='root')
    assert 'images/root.qcow2' in error.msg


def test_boot_order_1_without_role_follows_the_root_disk_rules():
    """role defaults to data (SPEC) and the root disk is the one with boot order 1: a disk
    asked for with boot_order 1 and no role must not become a root disk of a running domain."""
    diskless = observed(config=[nic()], live=[nic()], boot=['hd'])
    with pytest.raises(StorageError) as caught:
        plan(diskless, boot_order=1)
    assert caught.value.code in ('INVALID_ARGUMENT', 'DOMAIN_RUNNING')


def test_root_disk_boots_first_and_the_others_move_down():
    domain = observed(config=[cdrom(boot=1), nic(boot=2), vol('vdb', 'data.qcow2')])
    steps = plan(domain, ROOT, role='root')
    [step] = steps.actions  # one definition change: the order 1 is free when the disk arrives
    assert step.method == 'rewrite_boot_order'
    assert step.description == 'attach disk vda (images/root.qcow2) to the definition of vm1, renumbering its boot order'
    assert step.args[0] == 'vm1' and dict(step.args[1], vda=1) == {'vda': 1, 'sda': 2, NIC: 3}
    assert (added(steps).target, added(steps).boot_order, added(steps).volume) == ('vda', 1, 'root.qcow2')
    assert steps.rewrite == {'sda': 2, NIC: 3}
    assert step.undo.method == 'define' and step.undo.args == ('vm1', domain.config.xml)
    assert steps.boot == ('sda: 1\n%s: 2\n' % NIC, 'vda: 1\nsda: 2\n%s: 3\n' % NIC)
    assert steps.predicted['config'].boot_order == 1


def test_an_attached_data_disk_becomes_the_root():
    domain = observed(config=[cdrom(boot=1), vol('vdb', 'data.qcow2')])
    steps = plan(domain, role='root')
    [step] = steps.actions
    assert (step.method, step.description) == ('rewrite_boot_order', 'renumber the boot order of vm1')
    assert step.args == ('vm1', {'sda': 2, 'vdb': 1}) and steps.rewrite == {'sda': 2, 'vdb': 1}
    refused('DOMAIN_RUNNING', observed(config=[cdrom(boot=1), vol('vdb', 'data.qcow2')],
                                       live=[cdrom(boot=1), vol('vdb', 'data.qcow2')]), role='root')


def test_legacy_boot_list_is_converted_for_a_boot_order():
    domain = observed(config=[vol('vda', 'root.qcow2'), nic()], boot=['hd', 'network'])
    assert domain.config.root().target == 'vda'
    steps = plan(domain, boot_order=3)
    [step] = steps.actions
    assert step.method == 'rewrite_boot_order'
    assert step.description == ('attach disk vdb (images/data.qcow2) to the definition of vm1, converting its '
                                '<os><boot dev> to per-device boot order')
    assert dict(step.args[1], vdb=3) == {'vda': 1, NIC: 2, 'vdb': 3} and steps.rewrite == {'vda': 1, NIC: 2}
    assert added(steps).boot_order == 3
    assert step.undo.method == 'define' and step.undo.args == ('vm1', domain.config.xml)
    assert steps.boot == ('<os><boot dev>: hd, network\nvda: 1\n%s: 2\n' % NIC, 'vda: 1\n%s: 2\nvdb: 3\n' % NIC)


def test_legacy_boot_list_of_an_existing_disk_is_converted_alone():
    domain = observed(config=[vol('vda', 'root.qcow2'), vol('vdb', 'data.qcow2')], boot=['hd'])
    steps = plan(domain, boot_order=2)
    [step] = steps.actions
    assert step.description == 'convert <os><boot dev> of vm1 to per-device boot order'
    assert step.args == ('vm1', {'vda': 1, 'vdb': 2}) and steps.rewrite == {'vda': 1, 'vdb': 2}
    assert step.undo.method == 'define' and step.undo.args == ('vm1', domain.config.xml)


def test_legacy_boot_list_is_converted_for_a_new_root():
    domain = observed(config=[cdrom(), nic()], boot=['cdrom', 'hd'])
    steps = plan(domain, ROOT, role='root')
    assert methods(steps) == ['rewrite_boot_order'] and steps.rewrite == {'sda': 2}
    assert added(steps).boot_order == 1


def test_scsi_controller_comes_before_the_disk_and_its_boot_order():
    domain = observed(config=[cdrom(boot=1)])
    steps = plan(domain, ROOT, role='root', bus='scsi')
    assert methods(steps) == ['attach_config', 'rewrite_boot_order']
    assert tree(steps.actions[0]).tag == 'controller' and steps.actions[1].args[1] == {'sda': 2, 'sdb': 1}
    assert (added(steps).target, added(steps).bus) == ('sdb', 'scsi')


BOOTS_AS_PLANNED = [
    ('new root before the others', observed(config=[cdrom(boot=1), nic(boot=2), vol('vdb', 'data.qcow2')]), ROOT,
     {'role': 'root'}, {'vda': 1, 'sda': 2, NIC: 3}, 'vda'),
    ('new root in a legacy definition', observed(config=[cdrom(), nic()], boot=['cdrom', 'hd']), ROOT, {'role': 'root'},
     {'vda': 1, 'sda': 2}, 'vda'),
    ('new root before network boot', observed(config=[nic()], boot=['network', 'hd']), ROOT, {'role': 'root'},
     {'vda': 1, NIC: 2}, 'vda'),
    ('legacy and a data boot order', observed(config=[vol('vda', 'root.qcow2'), nic()], boot=['hd', 'network']), DATA,
     {'boot_order': 3}, {'vda': 1, NIC: 2, 'vdb': 3}, 'vda'),
    ('data boot order', observed(config=[ROOT_DISK, cdrom(boot=2)]), DATA, {'boot_order': 3},
     {'vda': 1, 'sda': 2, 'vdb': 3}, 'vda'),
    ('new first disk of a legacy definition', observed(config=[vol('vdb', 'root.qcow2')], boot=['hd']), DATA,
     {'target': 'vda'}, {'vdb': 1}, 'vdb'),
    ('legacy and an existing disk', observed(config=[vol('vda', 'root.qcow2'), vol('vdb', 'data.qcow2')], boot=['hd']),
     DATA, {'boot_order': 2}, {'vda': 1, 'vdb': 2}, 'vda'),
    ('promote', observed(config=[cdrom(boot=1), vol('vdb', 'data.qcow2')]), DATA, {'role': 'root'},
     {'vdb': 1, 'sda': 2}, 'vdb'),
    ('demote', observed(config=[ROOT_DISK, cdrom(boot=2)]), ROOT, {'role': 'data'}, {'sda': 2}, None),
    ('demote in a legacy definition', observed(config=[vol('vda', 'root.qcow2'), nic()], boot=['hd', 'network']), ROOT,
     {'role': 'data'}, {NIC: 2}, None),
]


@pytest.mark.parametrize('domain, source, overrides, orders, root', [case[1:] for case in BOOTS_AS_PLANNED],
                         ids=[case[0] for case in BOOTS_AS_PLANNED])
def test_definition_boots_as_planned(domain, source, overrides, orders, root):
    """What the definition boots from once libvirt has carried out the steps."""
    steps = plan(domain, source, **overrides)
    after = applied(domain, steps).config
    assert after.legacy_boot == ()
    assert after.boot_orders() == orders
    assert (after.root().target if after.root() is not None else None) == root


@pytest.mark.parametrize('config, boot, target, rewrite', [
    ([vol('vdb', 'root.qcow2')], ['hd'], 'vda', {'vdb': 1}),  # vda would be inserted first and boot
    ([cdrom(), vol('vdb', 'root.qcow2')], ['cdrom', 'hd'], 'vda', {'sda': 1, 'vdb': 2}),
    ([vol('vdb', 'root.qcow2'), nic()], ['network', 'hd'], 'vda', {NIC: 1, 'vdb': 2}),
    ([vol('vda', 'root.qcow2')], ['hd'], None, None),  # lands after the root
    ([vol('vda', 'root.qcow2')], ['hd'], 'vdc', None),
    ([file_disk('sda', '/srv/images/root.img', bus='sata')], ['hd'], None, None),  # another bus: at the end
    ([vol('vdb', 'root.qcow2')], ['cdrom'], 'vda', None),  # no disk boots
])
def test_new_disk_landing_first_in_a_legacy_definition(config, boot, target, rewrite):
    domain = observed(config=config, boot=boot)
    before = domain.config.boot_orders()
    steps = plan(domain, target=target)
    assert steps.rewrite == rewrite
    assert methods(steps) == (['rewrite_boot_order'] if rewrite is not None else ['attach_config'])
    assert added(steps).boot_order is None
    if rewrite is not None:
        assert steps.actions[0].args[1] == rewrite
    after = applied(domain, steps).config
    assert after.boot_orders() == before, 'what booted before still boots, in the same order'


def test_diskless_legacy_definition_warns_instead_of_converting():
    domain = observed(config=[nic()], boot=['hd'])
    steps = plan(domain)
    assert methods(steps) == ['attach_config'] and steps.rewrite is None and steps.boot is None
    [warning] = steps.warnings
    assert 'vdb' not in warning and 'vda' in warning and 'boot disk' in warning
    assert applied(domain, steps).config.root().target == 'vda'


def test_boot_order_taken_by_another_device_is_refused():
    domain = observed(config=[ROOT_DISK, cdrom(boot=2)])
    error = refused('INVALID_ARGUMENT', domain, boot_order=2)
    assert 'sda' in error.msg
    assert added(plan(domain, boot_order=3)).boot_order == 3


def test_boot_order_of_a_hot_plugged_disk():
    steps = plan(RUNNING, boot_order=3)
    config, live = steps.actions
    assert disk_of(config).boot_order == 3 and disk_of(live).boot_order == 3
    taken = observed(config=[ROOT_DISK], live=[ROOT_DISK, cdrom(boot=3)])
    config, live = plan(taken, boot_order=3).actions
    assert disk_of(config).boot_order == 3 and disk_of(live).boot_order is None, 'the running domain has it taken'
    legacy = observed(config=[vol('vda', 'root.qcow2')], live=[vol('vda', 'root.qcow2')], boot=['hd'])
    steps = plan(legacy, boot_order=3)
    assert methods(steps) == ['rewrite_boot_order', 'attach_live']
    assert added(steps).boot_order == 3
    assert disk_of(steps.actions[-1]).boot_order is None, 'a legacy running domain cannot mix boot orders'
    assert steps.predicted['live'].boot_order is None and steps.predicted['config'].boot_order == 3


def test_demoting_the_root_disk():
    domain = observed(config=[ROOT_DISK, cdrom(boot=2)])
    steps = plan(domain, ROOT, role='data')
    [step] = steps.actions
    assert step.description == 'renumber the boot order of vm1'
    assert step.args == ('vm1', {'sda': 2}) and steps.rewrite == {'sda': 2}
    assert steps.predicted['config'].boot_order is None


def test_demoting_the_root_disk_of_a_legacy_definition():
    domain = observed(config=[vol('vda', 'root.qcow2'), nic()], boot=['hd', 'network'])
    steps = plan(domain, ROOT, role='data')
    assert methods(steps) == ['rewrite_boot_order'] and steps.rewrite == {NIC: 2}
    assert steps.actions[0].description == 'convert <os><boot dev> of vm1 to per-device boot order'
    alone = observed(config=[vol('vda', 'root.qcow2')], boot=['hd'])
    kept = plan(alone, ROOT, role='data')
    assert kept.actions == [] and 'stays the boot disk' in kept.warnings[0], 'nothing else boots: libvirt would boot it'
    error = refused('INVALID_ARGUMENT', alone, ROOT, boot_order=2)
    assert 'vda' in error.msg


def test_the_only_boot_device_cannot_stop_being_the_root():
    """With no boot order left at all libvirt puts <boot dev='hd'/> back, and the first disk
    boots again: the only device that boots stays the root (said in a warning, nothing planned
    that would not hold), and a boot order other than 1 for it is refused."""
    domain = observed(config=[ROOT_DISK, nic()])
    steps = plan(domain, ROOT, role='data')
    assert steps.actions == [] and 'stays the boot disk' in steps.warnings[0]
    assert applied(domain, steps).config.root().target == 'vda'
    refused('INVALID_ARGUMENT', domain, ROOT, boot_order=3)


def test_demoting_the_root_disk_needs_a_shut_off_domain():
    bootable_nic = nic(boot=2)
    running = observed(config=[ROOT_DISK, bootable_nic],
                       live=[vol('vda', 'root.qcow2', boot=1, alias='virtio-disk0'), bootable_nic])
    refused('DOMAIN_RUNNING', running, ROOT, role='data')
    refused('DOMAIN_RUNNING', running, ROOT, boot_order=3)


# ---------------------------------------------------------------------------------------
# detaching
def test_detach_unplugs_live_first_and_can_put_the_definition_back():
    domain = observed(config=[ROOT_DISK, vol('vdb', 'data.qcow2')],
                      live=[ROOT_DISK, vol('vdb', 'data.qcow2', alias='virtio-disk1')])
    steps = plan(domain, state='absent', unplug_timeout=12.5)
    assert methods(steps) == ['detach_live', 'detach_config']
    live, config = steps.actions
    assert live.description == 'detach disk vdb (images/data.qcow2) from running domain vm1'
    assert live.args[0] == 'vm1' and live.args[2:] == ('vdb', 'virtio-disk1', 12.5)
    assert _domain.parse_disk(_xml.parse(live.args[1])).alias == 'virtio-disk1'
    assert live.undo is None
    assert config.description == 'detach disk vdb (images/data.qcow2) from the definition of vm1'
    assert config.args == ('vm1', domain.config.disk_at('vdb').xml)
    assert config.undo.method == 'define' and config.undo.args == ('vm1', domain.config.xml)
    assert steps.predicted == {'config': None, 'live': None}


@pytest.mark.parametrize('overrides, expected', [
    ({'live': 'false'}, ['detach_config']),
    ({'persistent': False}, ['detach_live']),
])
def test_detach_from_one_view(overrides, expected):
    domain = observed(config=[ROOT_DISK, vol('vdb', 'data.qcow2')],
                      live=[ROOT_DISK, vol('vdb', 'data.qcow2', alias='virtio-disk1')])
    assert methods(plan(domain, state='absent', **overrides)) == expected


def test_detach_of_a_disk_that_is_not_there():
    assert plan(SHUT_OFF, state='absent').actions == []
    assert plan(RUNNING, state='absent').actions == []


@pytest.mark.parametrize('domain, overrides', [
    (RUNNING, {}),
    (RUNNING, {'live': 'false'}),
    (observed(config=[vol('vda', 'root.qcow2')], live=[vol('vda', 'root.qcow2', alias='virtio-disk0')], boot=['hd']),
     {}),
])
def test_root_disk_of_a_running_domain_stays(domain, overrides):
    error = refused('DOMAIN_RUNNING', domain, ROOT, state='absent', **overrides)
    assert 'root disk' in error.msg and 'vda' in error.msg


def test_root_disk_of_a_shut_off_domain_can_be_detached():
    assert methods(plan(SHUT_OFF, ROOT, state='absent')) == ['detach_config']


# ---------------------------------------------------------------------------------------
# tunables
def test_tunable_change_of_a_running_domain_needs_a_restart():
    data = vol('vdb', 'data.qcow2', extra='<serial>s1</serial>')
    domain = observed(config=[ROOT_DISK, data], live=[ROOT_DISK, vol('vdb', 'data.qcow2', alias='virtio-disk1',
                                                                     extra='<serial>s1</serial>')])
    steps = plan(domain, cache='none')
    [update] = steps.actions
    assert update.method == 'update_config' and update.args[0] == 'vm1'
    assert update.description == 'update disk vdb of the definition of vm1 (cache: unset -> none)'
    changed = _domain.parse_disk(updated(domain, update))
    assert changed.cache == 'none' and changed.serial == 's1' and changed.format == 'qcow2'
    assert update.undo.method == 'define' and update.undo.args == ('vm1', domain.config.xml)
    [warning] = steps.warnings
    assert 'vdb' in warning and 'restart' in warning and 'cache' in warning
    assert steps.extra == {'restart_required': True}
    assert steps.predicted['config'].cache == 'none'


def test_tunable_change_of_a_shut_off_domain():
    domain = observed(config=[ROOT_DISK, vol('vdb', 'data.qcow2', driver=" cache='writeback'")])
    steps = plan(domain, readonly=True, serial='new-serial', io='threads')
    [update] = steps.actions
    changed = _domain.parse_disk(updated(domain, update))
    assert (changed.readonly, changed.serial, changed.io, changed.cache) == (True, 'new-serial', 'threads', 'writeback')
    assert 'readonly: false -> true' in update.description and 'serial: unset -> new-serial' in update.description
    assert steps.warnings == [] and 'restart_required' not in steps.extra


def test_tunable_change_of_a_running_domain_without_its_definition_is_refused():
    domain = observed(config=[ROOT_DISK, vol('vdb', 'data.qcow2')],
                      live=[ROOT_DISK, vol('vdb', 'data.qcow2', alias='virtio-disk1')])
    error = refused('INVALID_ARGUMENT', domain, cache='none', persistent=False)
    assert 'cache' in error.msg
    transient = observed(live=[ROOT_DISK, vol('vdb', 'data.qcow2', alias='virtio-disk1')])
    refused('INVALID_ARGUMENT', transient, cache='none', persistent=False)


# ---------------------------------------------------------------------------------------
# results
def test_describe_disk_of_the_root():
    domain = observed(config=[vol('vda', 'root.qcow2', boot=1, extra='<serial>r00t</serial>')])
    described = _disk.describe_disk(domain, _disk.find_disks(domain, ROOT), ROOT)
    assert described['source'] == {'pool': 'images', 'volume': 'root.qcow2', 'key': ROOT.key,
                                   'path': '/srv/images/root.qcow2', 'network': None}
    assert (described['target'], described['bus'], described['device'], described['format']) == (
        'vda', 'virtio', 'disk', 'qcow2')
    assert (described['role'], described['bootable'], described['boot_order']) == ('root', True, 1)
    assert described['guest_path'] == '/dev/disk/by-id/virtio-r00t'
    assert (described['live'], described['persistent'], described['readonly']) == (False, True, False)


def test_describe_disk_of_a_data_disk_in_both_views():
    domain = observed(config=[ROOT_DISK, vol('vdb', 'data.qcow2', boot=2)],
                      live=[ROOT_DISK, vol('vdb', 'data.qcow2', alias='virtio-disk1', boot=2)])
    described = _disk.describe_disk(domain, _disk.find_disks(domain, DATA), DATA)
    assert (described['role'], described['bootable'], described['boot_order']) == ('data', True, 2)
    assert described['live'] is True and described['persistent'] is True and described['guest_path'] is None
    assert _disk.describe_disk(domain, {}, DATA) is None


@pytest.mark.parametrize('config, live, expected', [
    ([vol('vdb', 'data.qcow2')], [vol('vdb', 'data.qcow2', alias='virtio-disk1')], []),
    ([vol('vdb', 'data.qcow2', driver=" cache='none'")], [vol('vdb', 'data.qcow2')], ['cache']),
    ([vol('vdb', 'data.qcow2', extra='<readonly/>')], [vol('vdb', 'data.qcow2')], ['readonly']),
    ([vol('vdb', 'data.qcow2', boot=2)], [vol('vdb', 'data.qcow2')], ['boot_order']),
    ([vol('vdb', 'data.qcow2')], [], ['only in the definition']),
    ([], [vol('vdb', 'data.qcow2')], ['only in the running domain']),
])
def test_drift_between_the_definition_and_the_running_domain(config, live, expected):
    domain = observed(config=[ROOT_DISK] + config, live=[ROOT_DISK] + live)
    assert _disk._drift(domain, _disk.find_disks(domain, DATA)) == expected


def test_no_drift_without_both_views():
    shut_off = observed(config=[ROOT_DISK, vol('vdb', 'data.qcow2')])
    assert _disk._drift(shut_off, _disk.find_disks(shut_off, DATA)) == []
    transient = observed(live=[ROOT_DISK, vol('vdb', 'data.qcow2')])
    assert _disk._drift(transient, _disk.find_disks(transient, DATA)) == []


# ---------------------------------------------------------------------------------------
# found by the second review
def test_a_hot_plugged_disk_listed_first_in_a_legacy_running_view_is_not_the_root():
    """libvirt lists a hot-plugged sda before the sdb the domain booted from; the definition
    (sdb first) decides which disk is root, so the data disk re-runs and detaches freely."""
    root_disk = vol('sdb', 'root.qcow2', bus='scsi')
    domain = observed(config=[controller(), root_disk, vol('sda', 'data.qcow2', bus='scsi')],
                      live=[controller(), vol('sda', 'data.qcow2', bus='scsi', alias='scsi0-0-0-0'),
                            vol('sdb', 'root.qcow2', bus='scsi', alias='scsi0-0-0-1')], boot=['hd'])
    domain = dataclasses.replace(domain, config=dataclasses.replace(
        domain.config, disks=(domain.config.disks[0],)))  # the data disk only in the running domain
    assert domain.root().target == 'sdb'
    assert plan(domain, role='data', persistent=False).actions == []
    [detach] = plan(domain, state='absent').actions
    assert detach.method == 'detach_live'


def test_a_writable_shareable_disk_runs_uncached_without_that_being_a_change():
    shared = vol('vdb', 'data.img', fmt='raw', extra='<shareable/>')
    live_shared = vol('vdb', 'data.img', fmt='raw', driver=" cache='none'", extra='<shareable/>', alias='virtio-disk1')
    domain = observed(config=[ROOT_DISK, shared], live=[ROOT_DISK, live_shared])
    steps = plan(domain, DATA_RAW, shareable=True)
    assert steps.actions == [] and steps.warnings == [] and 'restart_required' not in steps.extra
    assert plan(domain, DATA_RAW, shareable=True, persistent=False).actions == []


@pytest.mark.parametrize('overrides', [{'role': 'root'}, {'readonly': False}])
def test_a_cdrom_is_never_root_nor_writable(overrides):
    with pytest.raises(StorageError) as caught:
        desired(device='cdrom', bus='sata', **overrides)
    assert caught.value.code == 'INVALID_ARGUMENT'
    domain = observed(config=[ROOT_DISK, file_disk('sdb', '/srv/iso/install.iso', bus='sata', device='cdrom',
                                                   extra='<readonly/>')])
    refused('INVALID_ARGUMENT', domain, ISO, **overrides)


def test_boot_order_1_on_a_cdrom_is_not_the_root_role():
    running_root = vol('vda', 'root.qcow2', boot=2, alias='virtio-disk0')
    domain = observed(config=[vol('vda', 'root.qcow2', boot=2)], live=[running_root])
    steps = plan(domain, ISO, device='cdrom', bus='scsi', boot_order=1, live=False)
    assert 'attach_config' in methods(steps), 'a running domain may get a boot cdrom in its definition'


def test_a_new_cdrom_first_in_a_legacy_definition_does_not_take_the_cdrom_boot_slot():
    domain = observed(config=[vol('vda', 'root.qcow2'), cdrom('sdb')], boot=['cdrom', 'hd'])
    steps = plan(domain, ISO, device='cdrom', bus='sata', target='sda')
    assert methods(steps)[0] == 'rewrite_boot_order'
    after = applied(domain, steps).config
    assert after.boot_orders() == {'sdb': 1, 'vda': 2}, 'the cdrom that booted first still does'


# ---------------------------------------------------------------------------------------
# found by the third review
def test_a_disk_for_an_install_style_domain_takes_the_empty_hd_slot():
    """<boot dev='cdrom'/><boot dev='hd'/> with only the installer cdrom: the new disk boots
    second, as libvirt would boot it, so the installed system can start from it."""
    domain = observed(config=[cdrom('sda')], boot=['cdrom', 'hd'])
    steps = plan(domain)
    assert methods(steps) == ['attach_config'] and steps.warnings == []
    assert applied(domain, steps).config.boot_orders() == {'sda': 1, 'vda': 2}


def test_a_data_disk_cannot_become_the_root_of_a_running_diskless_domain():
    domain = observed(config=[nic()], live=[nic()], boot=['hd'])
    error = refused('DOMAIN_RUNNING', domain)
    assert 'root' in error.msg
    assert 'becomes its boot disk' in plan(observed(config=[nic()], boot=['hd'])).warnings[0], 'shut off: a warning'


def test_a_header_read_now_does_not_overrule_how_the_disk_is_attached():
    guessed = dataclasses.replace(volume_source('data.qcow2'), guessed=True, outside='/etc/shadow')
    domain = observed(config=[ROOT_DISK, vol('vdb', 'data.qcow2', fmt='raw')])
    assert plan(domain, guessed).actions == [], 'attached raw stays raw; no FORMAT_MISMATCH, no header trust'
    other = observed(config=[ROOT_DISK, vol('vdb', 'data.qcow2', fmt='vmdk')])
    refused('FORMAT_MISMATCH', other, guessed)  # a non-raw driver that is not the volume's format is a mismatch
    error = refused('INVALID_ARGUMENT', SHUT_OFF, guessed)
    assert '/etc/shadow' in error.msg and 'format' in error.msg


@pytest.mark.parametrize('source, overrides, code', [
    (dataclasses.replace(volume_source('enc.img', 'luks')), {}, 'INVALID_ARGUMENT'),
    (DATA_RAW, {'bus': 'sata', 'readonly': True, 'live': 'false'}, 'INVALID_ARGUMENT'),
    (DATA_RAW, {'io': 'native'}, 'INVALID_ARGUMENT'),
    (DATA_RAW, {'io': 'native', 'cache': 'writeback'}, 'INVALID_ARGUMENT'),
])
def test_what_qemu_would_refuse_is_refused_first(source, overrides, code):
    refused(code, SHUT_OFF, source, **overrides)


def test_io_native_with_cache_none_is_fine():
    assert methods(plan(SHUT_OFF, DATA_RAW, io='native', cache='none')) == ['attach_config']


@pytest.mark.parametrize('target', ['vdc\n', 'vdc ', 'VDC'])
def test_target_names_are_matched_whole(target):
    with pytest.raises(StorageError) as caught:
        desired(target=target)
    assert caught.value.code == 'INVALID_ARGUMENT'


def test_a_boot_order_change_of_a_running_domain_waits_for_its_restart():
    data = vol('vdb', 'data.qcow2', boot=3)
    domain = observed(config=[ROOT_DISK, data], live=[vol('vda', 'root.qcow2', boot=1, alias='virtio-disk0'),
                                                      vol('vdb', 'data.qcow2', boot=3, alias='virtio-disk1')])
    steps = plan(domain, boot_order=4)
    assert methods(steps) == ['rewrite_boot_order'] and steps.extra == {'restart_required': True}
    assert any('restarts' in warning for warning in steps.warnings)


def test_an_empty_drive_is_no_format_drift():
    config = _domain.parse_disk(_xml.parse(cdrom('sda')))
    live = dataclasses.replace(config, format=None)
    domain = observed(config=[cdrom('sda')], live=[cdrom('sda')])
    assert _disk._drift(domain, {'config': config, 'live': live}) == []
