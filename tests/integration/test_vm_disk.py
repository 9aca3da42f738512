# -*- coding: utf-8 -*-
"""vm_disk and vm_disk_info against real QEMU domains of the lab, running and shut off.

Each behaviour: check mode (neither view of the domain changes) -> apply -> re-apply (no
change) -> verify the live and the persistent XML through libvirt itself. Every refusal is
shown to leave both views exactly as they were. (Root disk and boot order: test_vm_disk_root.py.)"""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import re
import subprocess
import time

import libvirt
import pytest
from lxml import etree

import _lab
from _disks import INACTIVE, converge, disk_in, disks_of, refused, views
from _lab import ANSIBLE, ansible_env, define_domain, make_dir_pool, parallel_runs
from ansible_collections.virtops.storage.plugins.module_utils._locks import host_lock

MIB = 1024 ** 2


# ---------------------------------------------------------------------------------------
# helpers
def make_pool(conn, names, suffix='pool'):
    return make_dir_pool(conn, names, suffix)[0]


def make_volume(conn, pool_name, name, volume_format='qcow2', capacity=16 * MIB):
    return _lab.make_volume(conn, pool_name, name, capacity, volume_format).path()


def make_domain(conn, names, suffix='vm', start=True, root=True):
    """A guest-less domain with a root disk (vda, per-device boot order 1) unless root=False."""
    disks = ''
    if root:
        path = names.path('%s-root.qcow2' % suffix)
        subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', path, '16M'], check=True)
        disks = ("<disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='%s'/>"
                 "<target dev='vda' bus='virtio'/><boot order='1'/></disk>" % path)
    return define_domain(conn, names(suffix), disks, start=start)


# ---------------------------------------------------------------------------------------
# attach and detach
def test_hotplug_volume_into_running_domain_then_detach(run, conn, names):
    pool = make_pool(conn, names)
    path = make_volume(conn, pool, 'data 1 & <x>.qcow2')
    dom = make_domain(conn, names)
    args = {'domain': dom.name(), 'pool': pool, 'volume': 'data 1 & <x>.qcow2'}

    def verify(applied):
        disk = applied['disk']
        assert disk['target'] == 'vdb' and disk['bus'] == 'virtio' and disk['live'] and disk['persistent']
        live, config = disk_in(conn, dom.name(), 'vdb')
        for element in (live, config):
            assert element is not None, 'the disk must be in both views'
            assert element.get('type') == 'volume'
            assert element.find('source').get('pool') == pool
            assert element.find('source').get('volume') == 'data 1 & <x>.qcow2'
            assert element.find('driver').get('type') == 'qcow2', 'the format is the volume\'s own'
            assert element.findtext('serial') == disk['serial']
        assert len(disk['serial']) == 20
        assert disk['guest_path'] == '/dev/disk/by-id/virtio-%s' % disk['serial']
        assert disk['source'] == {'pool': pool, 'volume': 'data 1 & <x>.qcow2', 'key': path, 'path': path,
                                  'network': None}
        # what the guest is given: the serial reached QEMU's device
        qtree = subprocess.run(['virsh', '-c', 'qemu:///system', 'qemu-monitor-command', dom.name(), '--hmp',
                                'info qtree'], capture_output=True, text=True, check=True).stdout
        assert 'serial = "%s"' % disk['serial'] in qtree

    checked, applied = converge(run, conn, args, verify)
    assert checked['actions'] == [
        'attach disk vdb (%s/data 1 & <x>.qcow2) to the definition of %s' % (pool, dom.name()),
        'hot-plug disk vdb (%s/data 1 & <x>.qcow2) into running domain %s' % (pool, dom.name())]
    diff = dict((entry['before_header'], entry) for entry in checked['diff'])
    entry = diff['%s (running): disk vdb' % dom.name()]
    assert entry['before'] == '' and '<source pool="%s" volume="data 1 &amp; &lt;x&gt;.qcow2"/>' % pool in entry['after']

    # the same serial on a second attach: it is derived from the volume, not random
    serial = applied['disk']['serial']
    detach = dict(args, state='absent', bus='scsi')  # bus is not an identity on detach
    detach.pop('bus')
    dom.destroy()
    converge(run, conn, dict(detach, domain=dom.name()))
    assert disk_in(conn, dom.name(), 'vdb') == (None, None)
    again = run('vm_disk', args)
    assert again['disk']['serial'] == serial


def test_attach_to_shut_off_domain_changes_only_the_definition(run, conn, names):
    pool = make_pool(conn, names)
    make_volume(conn, pool, 'raw.img', 'raw')
    dom = make_domain(conn, names, start=False)
    args = {'domain': dom.name(), 'pool': pool, 'volume': 'raw.img'}

    def verify(applied):
        assert applied['disk']['live'] is False and applied['disk']['persistent'] is True
        live, config = disk_in(conn, dom.name(), 'vdb')
        assert live is None and config.find('driver').get('type') == 'raw'

    converge(run, conn, args, verify)
    dom.create()  # the disk is there at the next start
    live, config = disk_in(conn, dom.name(), 'vdb')
    assert live is not None and config is not None


def test_path_sources_file_and_block_device(run, conn, names):
    dom = make_domain(conn, names)
    image = names.path('outside.qcow2')
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', image, '8M'], check=True)
    device = names.loop_device(16)

    def verify_file(applied):
        assert applied['disk']['format'] == 'qcow2' and applied['disk']['source']['pool'] is None
        live, config = disk_in(conn, dom.name(), applied['disk']['target'])
        for element in (live, config):
            assert element.get('type') == 'file' and element.find('source').get('file') == image
            assert element.find('driver').get('type') == 'qcow2'

    converge(run, conn, {'domain': dom.name(), 'path': image}, verify_file)

    def verify_block(applied):
        live, config = disk_in(conn, dom.name(), applied['disk']['target'])
        for element in (live, config):
            assert element.get('type') == 'block' and element.find('source').get('dev') == device
            assert element.find('driver').get('type') == 'raw'

    converge(run, conn, {'domain': dom.name(), 'path': device, 'bus': 'scsi'}, verify_block)
    missing = refused(run, conn, {'domain': dom.name(), 'path': names.path('nothing.img')}, 'VOLUME_NOT_FOUND')
    assert 'nothing.img' in missing['msg']


def test_identity_is_the_source_not_the_target(run, conn, names):
    pool = make_pool(conn, names)
    make_volume(conn, pool, 'a.qcow2')
    make_volume(conn, pool, 'b.qcow2')
    dom = make_domain(conn, names)
    first = run('vm_disk', {'domain': dom.name(), 'pool': pool, 'volume': 'a.qcow2', 'target': 'vdc'})
    assert not first.failed and first['disk']['target'] == 'vdc'
    # re-run without a target finds it at vdc
    again = run('vm_disk', {'domain': dom.name(), 'pool': pool, 'volume': 'a.qcow2'})
    assert not again.changed and again['disk']['target'] == 'vdc'
    # the same volume by its path is the same disk
    by_path = run('vm_disk', {'domain': dom.name(), 'path': first['disk']['source']['path']})
    assert not by_path.changed and by_path['disk']['target'] == 'vdc'
    refused(run, conn, {'domain': dom.name(), 'pool': pool, 'volume': 'a.qcow2', 'target': 'vdd'}, 'TARGET_MISMATCH')
    refused(run, conn, {'domain': dom.name(), 'pool': pool, 'volume': 'a.qcow2', 'bus': 'scsi'}, 'TARGET_MISMATCH')
    refused(run, conn, {'domain': dom.name(), 'pool': pool, 'volume': 'b.qcow2', 'target': 'vdc'}, 'TARGET_IN_USE')
    refused(run, conn, {'domain': dom.name(), 'pool': pool, 'volume': 'b.qcow2', 'target': 'vda'}, 'TARGET_IN_USE')
    # automatic choice skips every target in use: vda (root), vdc -> vdb, then vdd
    second = run('vm_disk', {'domain': dom.name(), 'pool': pool, 'volume': 'b.qcow2'})
    assert second['disk']['target'] == 'vdb'


def test_volume_in_use_unless_shareable_on_both_sides(run, conn, names):
    pool = make_pool(conn, names)
    make_volume(conn, pool, 'shared.img', 'raw')
    make_volume(conn, pool, 'private.img', 'raw')
    one, two = make_domain(conn, names, 'one'), make_domain(conn, names, 'two')
    assert not run('vm_disk', {'domain': one.name(), 'pool': pool, 'volume': 'private.img'}).failed
    result = refused(run, conn, {'domain': two.name(), 'pool': pool, 'volume': 'private.img'}, 'VOLUME_IN_USE',
                     [one.name(), two.name()])
    assert one.name() in result['msg'] and result['used_by'][0]['domain'] == one.name()
    refused(run, conn, {'domain': two.name(), 'pool': pool, 'volume': 'private.img', 'shareable': True},
            'VOLUME_IN_USE', [one.name(), two.name()])
    # shareable on both sides
    assert not run('vm_disk', {'domain': one.name(), 'pool': pool, 'volume': 'shared.img', 'shareable': True}).failed

    def verify(applied):
        for name in (one.name(), two.name()):
            live, config = disk_in(conn, name, 'vdc' if name == one.name() else 'vdb')
            for element in (live, config):
                assert element.find('shareable') is not None

    converge(run, conn, {'domain': two.name(), 'pool': pool, 'volume': 'shared.img', 'shareable': True,
                         'cache': 'none'}, verify)
    # shareable only here, not there
    refused(run, conn, {'domain': two.name(), 'pool': pool, 'volume': 'private.img', 'shareable': True,
                        'target': 'vdd'}, 'VOLUME_IN_USE', [one.name(), two.name()])


def test_backing_file_of_another_domain_only_read_only(run, conn, names):
    pool = make_pool(conn, names)
    base = make_volume(conn, pool, 'base.qcow2')
    overlay = names.path('overlay.qcow2')
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', base, overlay], check=True)
    reader, other = make_domain(conn, names, 'reader'), make_domain(conn, names, 'other')
    assert not run('vm_disk', {'domain': reader.name(), 'path': overlay, 'format': 'qcow2'}).failed
    refused(run, conn, {'domain': other.name(), 'pool': pool, 'volume': 'base.qcow2'}, 'VOLUME_IN_USE',
            [reader.name(), other.name()])
    ok = run('vm_disk', {'domain': other.name(), 'pool': pool, 'volume': 'base.qcow2', 'readonly': True})
    assert not ok.failed, ok.get('msg')
    live, config = disk_in(conn, other.name(), ok['disk']['target'])
    assert live.find('readonly') is not None and config.find('readonly') is not None


def test_sata_cannot_hotplug_but_can_wait_for_the_next_start(run, conn, names):
    pool = make_pool(conn, names)
    make_volume(conn, pool, 'sata.img', 'raw')
    dom = make_domain(conn, names)
    args = {'domain': dom.name(), 'pool': pool, 'volume': 'sata.img', 'bus': 'sata'}
    refused(run, conn, args, 'HOTPLUG_UNSUPPORTED')
    refused(run, conn, dict(args, bus='ide'), 'HOTPLUG_UNSUPPORTED')

    def verify(applied):
        assert applied['disk']['target'] == 'sda' and not applied['disk']['live'] and applied['disk']['persistent']
        live, config = disk_in(conn, dom.name(), 'sda')
        assert live is None and config.find('target').get('bus') == 'sata'

    converge(run, conn, dict(args, live=False), verify)
    info = run('vm_disk_info', {'domain': dom.name()})
    drifted = dict((disk['target'], disk['drift']) for disk in info['disks'])
    assert drifted == {'vda': [], 'sda': ['only in the definition']}
    # detaching a sata disk from a running domain: refused live, fine in the definition only
    dom.destroy()
    dom.create()
    refused(run, conn, dict(args, state='absent'), 'HOTPLUG_UNSUPPORTED')
    converge(run, conn, dict(args, state='absent', live=False))
    live, config = disk_in(conn, dom.name(), 'sda')
    assert live is not None and config is None


def test_scsi_hotplug_adds_a_virtio_scsi_controller_and_unplugs_at_once(run, conn, names):
    pool = make_pool(conn, names)
    make_volume(conn, pool, 's1.img', 'raw')
    make_volume(conn, pool, 's2.img', 'raw')
    dom = make_domain(conn, names)
    args = {'domain': dom.name(), 'pool': pool, 'volume': 's1.img', 'bus': 'scsi'}

    def controllers(xml):
        return [(c.get('index'), c.get('model')) for c in etree.fromstring(xml).findall('devices/controller')
                if c.get('type') == 'scsi']

    def verify(applied):
        live, config = views(conn, dom.name())
        assert controllers(live) == [('0', 'virtio-scsi')] and controllers(config) == [('0', 'virtio-scsi')]
        assert applied['disk']['guest_path'] == '/dev/disk/by-id/scsi-0QEMU_QEMU_HARDDISK_%s' % applied['disk']['serial']

    checked, applied = converge(run, conn, args, verify)
    assert [action.split(' ')[0] for action in checked['actions']] == ['add', 'attach', 'add', 'hot-plug']
    second = run('vm_disk', dict(args, volume='s2.img'))
    assert len(second['actions']) == 2, 'the controller is there now'
    started = time.monotonic()
    converge(run, conn, dict(args, state='absent'))
    assert disk_in(conn, dom.name(), applied['disk']['target']) == (None, None)
    assert time.monotonic() - started < 60


def test_usb_disk_hotplug_and_unplug(run, conn, names):
    pool = make_pool(conn, names)
    make_volume(conn, pool, 'stick.img', 'raw')
    dom = make_domain(conn, names)
    args = {'domain': dom.name(), 'pool': pool, 'volume': 'stick.img', 'bus': 'usb'}

    def verify(applied):
        live, config = disk_in(conn, dom.name(), 'sda')
        assert live.find('target').get('bus') == 'usb' and config.find('target').get('bus') == 'usb'

    converge(run, conn, args, verify)
    converge(run, conn, dict(args, state='absent'))
    assert disk_in(conn, dom.name(), 'sda') == (None, None)


def test_virtio_unplug_the_guest_never_releases_times_out_and_keeps_the_definition(run, conn, names):
    pool = make_pool(conn, names)
    make_volume(conn, pool, 'held.img', 'raw')
    dom = make_domain(conn, names)
    args = {'domain': dom.name(), 'pool': pool, 'volume': 'held.img'}
    assert not run('vm_disk', args).failed
    before_config = views(conn, dom.name())[1]
    started = time.monotonic()
    result = run('vm_disk', dict(args, state='absent', unplug_timeout=2))
    elapsed = time.monotonic() - started
    assert result.failed and result['error_code'] == 'HOTUNPLUG_TIMEOUT', result.get('msg')
    assert not result.changed
    assert result['actions'] == ['failed: detach disk vdb (%s/held.img) from running domain %s' % (pool, dom.name())]
    assert elapsed < 30, 'bounded by unplug_timeout (plus libvirt\'s own wait of about 5 s)'
    live, config = disk_in(conn, dom.name(), 'vdb')
    assert live is not None, 'the guest still holds the disk'
    assert views(conn, dom.name())[1] == before_config, 'the definition must be left unchanged'
    # check mode predicts the detach but does not ask the guest
    checked = run('vm_disk', dict(args, state='absent'), check=True)
    assert checked.changed and not checked.failed
    # once the domain is shut off, the detach is a definition change
    dom.destroy()
    converge(run, conn, dict(args, state='absent'))
    assert disk_in(conn, dom.name(), 'vdb') == (None, None)


def test_tunables_on_a_new_disk(run, conn, names):
    pool = make_pool(conn, names)
    make_volume(conn, pool, 'tuned.img', 'raw')
    dom = make_domain(conn, names)
    args = {'domain': dom.name(), 'pool': pool, 'volume': 'tuned.img', 'cache': 'none', 'io': 'native',
            'discard': 'unmap', 'detect_zeroes': 'unmap', 'error_policy': 'report', 'readonly': True,
            'serial': 'DATA-01', 'boot_order': 3}

    def verify(applied):
        live, config = disk_in(conn, dom.name(), 'vdb')
        for element in (live, config):
            driver = element.find('driver')
            assert (driver.get('cache'), driver.get('io'), driver.get('discard'), driver.get('detect_zeroes'),
                    driver.get('error_policy')) == ('none', 'native', 'unmap', 'unmap', 'report')
            assert element.find('readonly') is not None and element.findtext('serial') == 'DATA-01'
        assert config.find('boot').get('order') == '3'
        assert applied['disk']['guest_path'] == '/dev/disk/by-id/virtio-DATA-01'
        assert applied['disk']['boot_order'] == 3 and applied['disk']['bootable'] and applied['disk']['role'] == 'data'

    converge(run, conn, args, verify)


def test_changing_tunables_of_an_attached_disk(run, conn, names):
    pool = make_pool(conn, names)
    make_volume(conn, pool, 'tune.img', 'raw')
    dom = make_domain(conn, names)
    args = {'domain': dom.name(), 'pool': pool, 'volume': 'tune.img'}
    assert not run('vm_disk', args).failed
    changed = dict(args, cache='writethrough', serial='NEWSERIAL')

    def verify(applied):
        live, config = disk_in(conn, dom.name(), 'vdb')
        assert config.find('driver').get('cache') == 'writethrough' and config.findtext('serial') == 'NEWSERIAL'
        assert live.find('driver').get('cache') is None, 'a running disk keeps its settings until a restart'
        assert applied['restart_required'] is True

    checked, applied = converge(run, conn, changed, verify)
    assert any('restart' in warning for warning in applied.get('warnings', []))
    info = dict((disk['target'], disk) for disk in run('vm_disk_info', {'domain': dom.name()})['disks'])
    assert sorted(info['vdb']['drift']) == ['cache', 'serial']
    # live-only runs cannot change a running disk's settings
    refused(run, conn, dict(args, cache='unsafe', persistent=False), 'INVALID_ARGUMENT')
    # shut off, the definition is all there is
    dom.destroy()
    converge(run, conn, dict(args, cache='directsync', readonly=True),
             lambda applied: disk_in(conn, dom.name(), 'vdb')[1].find('readonly') is not None)


def test_existing_disk_with_another_format_is_refused(run, conn, names):
    """A raw volume attached with a qcow2 driver (QEMU would follow whatever header the guest
    writes) is refused, never "fixed"; a qcow2 volume attached raw stays raw, since from the host
    it cannot be told from a raw disk whose guest wrote a qcow2 header."""
    pool = make_pool(conn, names)
    raw = make_volume(conn, pool, 'r.img', 'raw')
    qcow = make_volume(conn, pool, 'q.qcow2')
    disk = ("<disk type='file' device='disk'><driver name='qemu' type='%s'/><source file='%s'/>"
            "<target dev='%s' bus='virtio'/></disk>")
    dom = make_domain(conn, names, start=False)
    dom.attachDeviceFlags(disk % ('qcow2', raw, 'vdb'), libvirt.VIR_DOMAIN_AFFECT_CONFIG)
    dom.attachDeviceFlags(disk % ('raw', qcow, 'vdc'), libvirt.VIR_DOMAIN_AFFECT_CONFIG)
    result = refused(run, conn, {'domain': dom.name(), 'pool': pool, 'volume': 'r.img'}, 'FORMAT_MISMATCH')
    assert 'raw' in result['msg'] and 'qcow2' in result['msg']
    kept = run('vm_disk', {'domain': dom.name(), 'pool': pool, 'volume': 'q.qcow2'})
    assert not kept.failed and not kept.changed and kept['disk']['format'] == 'raw'
    assert disk_in(conn, dom.name(), 'vdc')[1].find('driver').get('type') == 'raw'


def test_live_and_persistent_options(run, conn, names):
    pool = make_pool(conn, names)
    make_volume(conn, pool, 'l.img', 'raw')
    running, stopped = make_domain(conn, names, 'run'), make_domain(conn, names, 'off', start=False)
    refused(run, conn, {'domain': stopped.name(), 'pool': pool, 'volume': 'l.img', 'live': True}, 'INVALID_ARGUMENT')
    refused(run, conn, {'domain': stopped.name(), 'pool': pool, 'volume': 'l.img', 'persistent': False},
            'INVALID_ARGUMENT')
    refused(run, conn, {'domain': running.name(), 'pool': pool, 'volume': 'l.img', 'live': 'maybe'},
            'INVALID_ARGUMENT')

    def verify(applied):
        live, config = disk_in(conn, running.name(), 'vdb')
        assert live is not None and config is None
        assert applied['disk']['live'] and not applied['disk']['persistent']

    converge(run, conn, {'domain': running.name(), 'pool': pool, 'volume': 'l.img', 'persistent': False,
                         'live': True}, verify)
    info = dict((disk['target'], disk) for disk in run('vm_disk_info', {'domain': running.name()})['disks'])
    assert info['vdb']['drift'] == ['only in the running domain']
    # live: false adds it to the definition only
    converge(run, conn, {'domain': running.name(), 'pool': pool, 'volume': 'l.img', 'live': False},
             lambda applied: disk_in(conn, running.name(), 'vdb')[1] is not None)
    assert run('vm_disk_info', {'domain': running.name()})['disks'][1]['drift'] == []


def test_transient_domain_takes_live_only_changes(run, conn, names):
    pool = make_pool(conn, names)
    make_volume(conn, pool, 't.img', 'raw')
    dom = make_domain(conn, names, 'transient', start=True)
    dom.undefine()  # running and transient now
    args = {'domain': dom.name(), 'pool': pool, 'volume': 't.img'}
    before = dom.XMLDesc(0)
    result = run('vm_disk', args)
    assert result.failed and result['error_code'] == 'INVALID_ARGUMENT' and 'transient' in result['msg']
    assert dom.XMLDesc(0) == before
    applied = run('vm_disk', dict(args, persistent=False))
    assert not applied.failed and applied['disk']['live'] and not applied['disk']['persistent']
    assert disks_of(dom.XMLDesc(0)).get('vdb') is not None


def test_lookups_fail_cleanly(run, conn, names):
    pool = make_pool(conn, names)
    dom = make_domain(conn, names, start=False)
    result = run('vm_disk', {'domain': names('nope'), 'pool': pool, 'volume': 'x'})
    assert result['error_code'] == 'DOMAIN_NOT_FOUND'
    refused(run, conn, {'domain': dom.name(), 'pool': pool, 'volume': 'x'}, 'VOLUME_NOT_FOUND')
    refused(run, conn, {'domain': dom.name(), 'pool': names('nopool'), 'volume': 'x'}, 'POOL_NOT_FOUND')
    conn.storagePoolLookupByName(pool).destroy()
    refused(run, conn, {'domain': dom.name(), 'pool': pool, 'volume': 'x'}, 'POOL_INACTIVE')
    refused(run, conn, {'domain': dom.name(), 'pool': pool, 'volume': 'x', 'path': '/x'}, 'INVALID_ARGUMENT')
    refused(run, conn, {'domain': dom.name(), 'pool': pool, 'volume': 'x', 'target': 'xyz'}, 'INVALID_ARGUMENT')
    refused(run, conn, {'domain': dom.name(), 'pool': pool, 'volume': 'a/b'}, 'INVALID_NAME')
    refused(run, conn, {'domain': dom.name(), 'pool': pool, 'volume': 'x', 'bogus': 1}, 'INVALID_ARGUMENT')


def test_concurrent_runs_on_one_domain_keep_every_change(conn, names):
    """Six plays attaching disks to one domain at once, with automatic targets. Measured
    without the per-domain lock: 2 of 18 such runs failed (two chose the same target)."""
    pool = make_pool(conn, names)
    dom = make_domain(conn, names)
    volumes = ['c%d.img' % index for index in range(6)]
    for volume in volumes:
        make_volume(conn, pool, volume, 'raw')
    results = parallel_runs('vm_disk', [{'domain': dom.name(), 'pool': pool, 'volume': volume, 'bus': 'scsi'}
                                        for volume in volumes])
    assert all(code == 0 for code, _out in results), results
    for xml in views(conn, dom.name()):
        sources = sorted(element.find('source').get('volume') for element in disks_of(xml).values()
                         if element.get('type') == 'volume')
        assert sources == volumes


def _waits_for(lock_parts, args, conn, watched):
    """Hold a host lock as another run would, start vm_disk: it must wait (libvirt untouched)
    until the lock is released, then do its work."""
    before = [views(conn, name) for name in watched]
    with host_lock('test', lock_parts):
        proc = subprocess.Popen([ANSIBLE, 'localhost', '-c', 'local', '-m', 'virtops.storage.vm_disk', '-a',
                                 json.dumps(args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=ansible_env(ANSIBLE_STDOUT_CALLBACK='default'))
        time.sleep(4)  # module start-up takes about 1 s
        assert proc.poll() is None, 'the run did not wait for the lock: %s' % (proc.communicate(),)
        assert [views(conn, name) for name in watched] == before
    out = proc.communicate(timeout=120)[0]
    assert proc.returncode == 0 and 'CHANGED' in out, out


def test_runs_on_one_domain_take_turns(conn, names):
    pool = make_pool(conn, names)
    make_volume(conn, pool, 'turn.img', 'raw')
    dom = make_domain(conn, names, start=False)
    _waits_for((conn.getURI(), 'domain', dom.UUIDString()), {'domain': dom.name(), 'pool': pool, 'volume': 'turn.img'},
               conn, [dom.name()])


def test_runs_on_one_volume_take_turns_across_domains_and_with_storage_volume(conn, names):
    """The source lock is storage_volume's own: a delete and an attach of one volume, or two
    domains attaching it, never interleave (the check of who uses it holds until the attach)."""
    pool = make_pool(conn, names)
    make_volume(conn, pool, 'one.img', 'raw')
    dom = make_domain(conn, names, start=False)
    _waits_for((conn.getURI(), 'volume', pool, 'one.img'), {'domain': dom.name(), 'pool': pool, 'volume': 'one.img'},
               conn, [dom.name()])


def test_vm_disk_info_reports_both_views(run, conn, names):
    pool = make_pool(conn, names)
    path = make_volume(conn, pool, 'i.qcow2')
    dom = make_domain(conn, names)
    assert not run('vm_disk', {'domain': dom.name(), 'pool': pool, 'volume': 'i.qcow2', 'bus': 'scsi'}).failed
    by_name = run('vm_disk_info', {'domain': dom.name()})
    by_uuid = run('vm_disk_info', {'domain': dom.UUIDString()})
    assert by_name['disks'] == by_uuid['disks'] and not by_name.changed and by_name['actions'] == []
    assert by_name['root'] == 'vda'
    legacy = [boot.get('dev') for boot in etree.fromstring(dom.XMLDesc(INACTIVE)).findall('os/boot')]
    assert by_name['domain'] == {'name': dom.name(), 'uuid': dom.UUIDString(), 'running': True, 'persistent': True,
                                 'legacy_boot': legacy}
    disks = dict((disk['target'], disk) for disk in by_name['disks'])
    assert set(disks) == set(disks_of(dom.XMLDesc(0))) == set(disks_of(dom.XMLDesc(INACTIVE)))
    assert disks['vda']['role'] == 'root' and disks['vda']['boot_order'] == 1 and disks['vda']['bootable']
    assert disks['sda']['role'] == 'data' and not disks['sda']['bootable']
    assert disks['sda']['source'] == {'pool': pool, 'volume': 'i.qcow2', 'key': path, 'path': path, 'network': None}
    assert disks['sda']['format'] == 'qcow2' and disks['sda']['live'] and disks['sda']['persistent']
    missing = run('vm_disk_info', {'domain': names('absent')})
    assert missing.failed and missing['error_code'] == 'DOMAIN_NOT_FOUND'


@pytest.mark.parametrize('mode', ['check', 'apply'])
def test_diff_shows_disk_xml_before_and_after(run, conn, names, mode):
    pool = make_pool(conn, names)
    make_volume(conn, pool, 'd.img', 'raw')
    dom = make_domain(conn, names, start=False)
    args = {'domain': dom.name(), 'pool': pool, 'volume': 'd.img', 'cache': 'none'}
    assert not run('vm_disk', args).failed
    result = run('vm_disk', dict(args, cache='writeback'), check=mode == 'check', diff=True)
    assert result.changed
    (entry,) = result['diff']
    assert entry['before_header'] == '%s (definition): disk vdb' % dom.name()
    assert "cache=\"none\"" in entry['before'] and "cache=\"writeback\"" in entry['after']
    config = disk_in(conn, dom.name(), 'vdb')[1]
    assert config.find('driver').get('cache') == ('none' if mode == 'check' else 'writeback')


# ---------------------------------------------------------------------------------------
# what a review found, each shown on the real lab
def test_rewriting_the_definition_keeps_its_secrets(run, conn, names):
    """The boot order rewrite redefines the domain: its graphics password must survive."""
    pool = make_pool(conn, names)
    make_volume(conn, pool, 'r.qcow2')
    dom = make_domain(conn, names, start=False, root=False)
    xml = etree.fromstring(dom.XMLDesc(INACTIVE | libvirt.VIR_DOMAIN_XML_SECURE))
    etree.SubElement(xml.find('devices'), 'graphics', type='vnc', passwd='s3cretpw')
    dom = conn.defineXML(etree.tostring(xml, encoding='unicode'))
    converge(run, conn, {'domain': dom.name(), 'pool': pool, 'volume': 'r.qcow2', 'role': 'root', 'cache': 'none'})
    secure = etree.fromstring(dom.XMLDesc(INACTIVE | libvirt.VIR_DOMAIN_XML_SECURE))
    assert secure.find('devices/graphics').get('passwd') == 's3cretpw'
    root = disks_of(dom.XMLDesc(INACTIVE))['vda']
    assert root.find('boot').get('order') == '1' and root.find('driver').get('cache') == 'none', \
        'the boot order and the setting changed in one run must both hold'


def test_iso_image_as_cdrom(run, conn, names):
    iso = names.path('tools.iso')
    subprocess.run(['dd', 'if=/dev/zero', 'of=%s' % iso, 'bs=2048', 'count=64'], capture_output=True, check=True)
    with open(iso, 'r+b') as handle:  # an ISO 9660 primary volume descriptor
        handle.seek(0x8001)
        handle.write(b'CD001')
    dom = make_domain(conn, names, start=False)
    args = {'domain': dom.name(), 'path': iso, 'device': 'cdrom', 'bus': 'sata', 'live': False}

    def verify(applied):
        config = disk_in(conn, dom.name(), 'sda')[1]
        assert config.get('device') == 'cdrom' and config.find('driver').get('type') == 'raw'
        assert config.find('readonly') is not None
        assert applied['disk']['guest_path'] is None or applied['disk']['guest_path'].startswith('/dev/disk/by-id/ata-')

    converge(run, conn, args, verify)
    dom.create()  # QEMU opens it
    assert disk_in(conn, dom.name(), 'sda')[0] is not None


def test_cache_default_is_the_unset_value(run, conn, names):
    pool = make_pool(conn, names)
    make_volume(conn, pool, 'c.img', 'raw')
    dom = make_domain(conn, names, start=False)
    args = {'domain': dom.name(), 'pool': pool, 'volume': 'c.img', 'cache': 'none'}
    assert not run('vm_disk', args).failed
    converge(run, conn, dict(args, cache='default'),
             lambda applied: disk_in(conn, dom.name(), 'vdb')[1].find('driver').get('cache') is None)


def test_odd_timeouts_and_formats_are_refused(run, conn, names):
    pool = make_pool(conn, names)
    make_volume(conn, pool, 'q.qcow2')
    dom = make_domain(conn, names)
    for timeout in ('nan', 'inf', -1):
        refused(run, conn, {'domain': dom.name(), 'pool': pool, 'volume': 'q.qcow2', 'unplug_timeout': timeout},
                'INVALID_ARGUMENT')
    refused(run, conn, {'domain': dom.name(), 'pool': pool, 'volume': 'q.qcow2', 'format': 'vmdk'}, 'FORMAT_MISMATCH')
    result = refused(run, conn, {'domain': dom.name(), 'pool': pool, 'volume': 'q.qcow2', 'shareable': True},
                     'INVALID_ARGUMENT')
    assert 'raw' in result['msg']


def test_file_outside_pools_with_a_backing_file_needs_its_format_confirmed(run, conn, names):
    base = names.path('base.qcow2')
    top = names.path('top.qcow2')
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', base, '8M'], check=True)
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', base, top], check=True)
    dom = make_domain(conn, names)
    result = refused(run, conn, {'domain': dom.name(), 'path': top}, 'INVALID_ARGUMENT')
    assert 'format: qcow2' in result['msg']

    def verify(applied):
        live, config = disk_in(conn, dom.name(), 'vdb')
        assert live.find('driver').get('type') == 'qcow2' and config.find('driver').get('type') == 'qcow2'
        assert live.find('backingStore/source').get('file') == base

    converge(run, conn, {'domain': dom.name(), 'path': top, 'format': 'qcow2'}, verify)


def test_a_volume_whose_header_reaches_outside_the_pools_needs_its_format_confirmed(run, conn, names):
    """libvirt reads a file volume's format from its header, which a guest of a raw volume can
    write: a qcow2 header pointing at a host file must not be believed unasked."""
    pool = make_pool(conn, names)
    path = make_volume(conn, pool, 'guest-written.img', 'raw')
    secret = names.path('host-secret.txt')
    with open(secret, 'w') as handle:
        handle.write('not for guests\n')
    header = names.path('header.qcow2')
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', '-F', 'raw', '-b', secret, header, '16M'], check=True)
    subprocess.run(['dd', 'if=%s' % header, 'of=%s' % path, 'conv=notrunc', 'status=none'], check=True)
    conn.storagePoolLookupByName(pool).refresh(0)
    dom = make_domain(conn, names)
    args = {'domain': dom.name(), 'pool': pool, 'volume': 'guest-written.img'}
    result = refused(run, conn, args, 'INVALID_ARGUMENT')
    assert secret in result['msg'] and 'format' in result['msg']

    def verify(applied):
        live, config = disk_in(conn, dom.name(), 'vdb')
        assert live.find('driver').get('type') == 'raw' and config.find('driver').get('type') == 'raw'
        assert live.find('backingStore/source') is None, 'QEMU must not open the host file'

    converge(run, conn, dict(args, format='raw'), verify)


def test_a_disk_hot_plugged_before_a_legacy_root_stays_a_data_disk(run, conn, names):
    """Under <boot dev='hd'/> libvirt lists a hot-plugged sda before the sdb the domain booted
    from: the definition, not that order, says which disk is root."""
    pool = make_pool(conn, names)
    make_volume(conn, pool, 'root.qcow2')
    make_volume(conn, pool, 'data.img', 'raw')
    root = ("<controller type='scsi' index='0' model='virtio-scsi'/><disk type='volume' device='disk'>"
            "<driver name='qemu' type='qcow2'/><source pool='%s' volume='root.qcow2'/><target dev='sdb' bus='scsi'/>"
            "</disk>" % pool)
    dom = define_domain(conn, names('legacy'), root, start=True)
    args = {'domain': dom.name(), 'pool': pool, 'volume': 'data.img', 'target': 'sda', 'role': 'data'}
    converge(run, conn, args)
    assert [disk.find('target').get('dev') for disk in etree.fromstring(dom.XMLDesc(0)).findall('devices/disk')] == \
        ['sda', 'sdb'], 'libvirt lists the new disk first'
    info = run('vm_disk_info', {'domain': dom.name()})
    assert info['root'] == 'sdb'
    assert dict((disk['target'], (disk['role'], disk['drift'])) for disk in info['disks']) == {
        'sda': ('data', []), 'sdb': ('root', [])}
    converge(run, conn, dict(args, state='absent'))
    assert disk_in(conn, dom.name(), 'sda') == (None, None)


def test_vm_disk_info_pairs_a_source_attached_twice(run, conn, names):
    pool = make_pool(conn, names)
    make_volume(conn, pool, 'twice.img', 'raw')
    twice = ''.join("<disk type='volume' device='disk'><driver name='qemu' type='raw'/><source pool='%s' "
                    "volume='twice.img'/><target dev='%s' bus='virtio'/><readonly/></disk>" % (pool, target)
                    for target in ('vdb', 'vdc'))
    dom = define_domain(conn, names('twice'), twice, start=True)
    info = run('vm_disk_info', {'domain': dom.name()})
    assert [(disk['target'], disk['drift'], disk['live'], disk['persistent']) for disk in info['disks']] == [
        ('vdb', [], True, True), ('vdc', [], True, True)]


# ---------------------------------------------------------------------------------------
# what a third review found, each shown on the real lab
def test_a_disk_for_an_install_style_domain_boots_after_the_installer(run, conn, names):
    pool = make_pool(conn, names)
    make_volume(conn, pool, 'system.qcow2')
    installer = "<disk type='file' device='cdrom'><target dev='sda' bus='sata'/><readonly/></disk>"
    dom = define_domain(conn, names('install'), installer)
    xml = etree.fromstring(dom.XMLDesc(INACTIVE))
    os_node = xml.find('os')
    for boot in os_node.findall('boot'):
        os_node.remove(boot)
    for dev in ('cdrom', 'hd'):
        etree.SubElement(os_node, 'boot', dev=dev)
    dom = conn.defineXML(etree.tostring(xml, encoding='unicode'))
    converge(run, conn, {'domain': dom.name(), 'pool': pool, 'volume': 'system.qcow2'})
    definition = etree.fromstring(dom.XMLDesc(INACTIVE))
    assert [boot.get('dev') for boot in definition.findall('os/boot')] == ['cdrom', 'hd'], 'left as it was'
    dom.create()
    with open('/var/log/libvirt/qemu/%s.log' % dom.name()) as handle:
        command = handle.read().rsplit('LC_ALL', 1)[-1]
    assert re.search(r'"driver":"virtio-blk-pci",[^}]*"id":"virtio-disk0","bootindex":2', command), \
        'QEMU boots the disk second'


def test_a_running_diskless_domain_does_not_get_a_root_by_hot_plug(run, conn, names):
    pool = make_pool(conn, names)
    make_volume(conn, pool, 'd.img', 'raw')
    dom = make_domain(conn, names, root=False)
    result = refused(run, conn, {'domain': dom.name(), 'pool': pool, 'volume': 'd.img'}, 'DOMAIN_RUNNING')
    assert 'root' in result['msg']


def test_a_guest_written_header_neither_blocks_a_detach_nor_changes_the_format(run, conn, names):
    pool = make_pool(conn, names)
    path = make_volume(conn, pool, 'guest.img', 'raw')
    dom = make_domain(conn, names)
    args = {'domain': dom.name(), 'pool': pool, 'volume': 'guest.img'}
    assert not run('vm_disk', args).failed
    secret = names.path('secret.txt')
    with open(secret, 'w') as handle:
        handle.write('host only\n')
    header = names.path('header.qcow2')
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', '-F', 'raw', '-b', secret, header, '16M'], check=True)
    subprocess.run(['dd', 'if=%s' % header, 'of=%s' % path, 'conv=notrunc', 'status=none'], check=True)
    conn.storagePoolLookupByName(pool).refresh(0)  # libvirt now says qcow2
    again = run('vm_disk', args)
    assert not again.failed and not again.changed, again.get('msg')
    assert again['disk']['format'] == 'raw'
    dom.destroy()
    converge(run, conn, dict(args, state='absent'))
    assert disk_in(conn, dom.name(), 'vdb') == (None, None)


def test_empty_drives_are_no_drift(run, conn, names):
    drives = ("<disk type='file' device='cdrom'><target dev='hdc' bus='ide'/><readonly/></disk>"
              "<disk type='file' device='cdrom'><target dev='sda' bus='sata'/><readonly/></disk>")
    dom = define_domain(conn, names('drives'), drives, start=True)
    info = run('vm_disk_info', {'domain': dom.name()})
    assert [(disk['target'], disk['drift']) for disk in info['disks']] == [('hdc', []), ('sda', [])]


def test_detach_by_path_while_the_pool_is_stopped(run, conn, names):
    pool = make_pool(conn, names)
    path = make_volume(conn, pool, 'p.img', 'raw')
    dom = make_domain(conn, names, start=False)
    assert not run('vm_disk', {'domain': dom.name(), 'pool': pool, 'volume': 'p.img'}).failed
    conn.storagePoolLookupByName(pool).destroy()
    converge(run, conn, {'domain': dom.name(), 'path': path, 'state': 'absent'})
    assert disk_in(conn, dom.name(), 'vdb') == (None, None)
