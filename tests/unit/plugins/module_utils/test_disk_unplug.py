# -*- coding: utf-8 -*-
"""The verified hot-unplug: DiskOps.detach_live waits for the device-removed event and
believes only the live XML; DeviceRemovalWatch records events per alias."""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import threading
import time

import pytest

from ansible_collections.virtops.storage.plugins.module_utils import _disk
from ansible_collections.virtops.storage.plugins.module_utils._errors import StorageError
from ansible_collections.virtops.storage.plugins.module_utils._libvirt import DeviceRemovalWatch, libvirt

WITH_DISK = ("<domain><devices><disk type='file' device='disk'><source file='/d.img'/>"
             "<target dev='vdb' bus='virtio'/><alias name='virtio-disk1'/></disk></devices></domain>")
WITHOUT_DISK = "<domain><devices/></domain>"


class FakeWatch(object):
    def __init__(self, outcome, delay=0.0):
        self.outcome, self.delay, self.closed = outcome, delay, False

    def wait(self, alias, deadline):
        if self.outcome is None:
            time.sleep(max(0.0, deadline - time.monotonic()))
            return None
        time.sleep(self.delay)
        return self.outcome

    def close(self):
        self.closed = True


class FakeClient(object):
    """What detach_live asks of the client, with the live XML the guest leaves behind."""

    def __init__(self, outcome, xml_after, xml_changes_after=0.0):
        self.watch = FakeWatch(outcome)
        self.xml_after = xml_after
        self.detached_at = None
        self.xml_changes_after = xml_changes_after
        self.calls = []

    def watch_device_removal(self, domain):
        self.calls.append('watch')
        return self.watch

    def detach_device(self, domain, xml, live):
        assert self.calls == ['watch'], 'the watch must be registered before the detach request'
        self.calls.append(('detach', live))
        self.detached_at = time.monotonic()

    def domain_xml(self, domain, flags=0):
        if time.monotonic() - self.detached_at < self.xml_changes_after:
            return WITH_DISK
        return self.xml_after


def detach(client, timeout=1.0):
    ops = _disk.DiskOps(client)
    ops._domains['vm'] = object()
    ops.detach_live('vm', '<disk/>', 'vdb', 'virtio-disk1', timeout, poll=0.01)


def test_removed_event_and_gone_from_the_live_xml():
    client = FakeClient('removed', WITHOUT_DISK)
    detach(client)
    assert client.calls == ['watch', ('detach', True)] and client.watch.closed


def test_the_live_xml_decides_when_the_event_comes_first():
    client = FakeClient('removed', WITHOUT_DISK, xml_changes_after=0.2)
    started = time.monotonic()
    detach(client, timeout=2.0)
    assert 0.2 <= time.monotonic() - started < 2.0


def test_guest_that_never_releases_times_out():
    client = FakeClient(None, WITH_DISK)
    started = time.monotonic()
    with pytest.raises(StorageError) as caught:
        detach(client, timeout=0.3)
    assert caught.value.code == 'HOTUNPLUG_TIMEOUT'
    assert 'definition is unchanged' in caught.value.msg and 'vdb' in caught.value.msg
    assert 0.3 <= time.monotonic() - started < 2.0
    assert client.watch.closed


def test_guest_that_refuses_fails_at_once():
    client = FakeClient('failed', WITH_DISK)
    started = time.monotonic()
    with pytest.raises(StorageError) as caught:
        detach(client, timeout=5.0)
    assert caught.value.code == 'HOTUNPLUG_TIMEOUT' and 'refused' in caught.value.msg
    assert time.monotonic() - started < 1.0


def test_gone_without_an_event_still_counts():
    """A removal whose event was missed is seen in the live XML within the timeout."""
    client = FakeClient(None, WITHOUT_DISK)
    started = time.monotonic()
    detach(client, timeout=5.0)
    assert time.monotonic() - started < 1.5, 'a missed event costs one slice, not the whole timeout'


class FakeConn(object):
    def __init__(self):
        self.callbacks = {}
        self.deregistered = []

    def domainEventRegisterAny(self, domain, event, callback, opaque):
        self.callbacks[event] = (callback, opaque)
        return len(self.callbacks)

    def domainEventDeregisterAny(self, callback_id):
        self.deregistered.append(callback_id)

    def fire(self, event, alias):
        callback, opaque = self.callbacks[event]
        callback(self, None, alias, opaque)


def test_watch_wakes_for_its_alias_only():
    conn = FakeConn()
    watch = DeviceRemovalWatch(conn, object())
    timer = threading.Timer(0.1, conn.fire, (libvirt.VIR_DOMAIN_EVENT_ID_DEVICE_REMOVED, 'virtio-disk1'))
    timer.start()
    conn.fire(libvirt.VIR_DOMAIN_EVENT_ID_DEVICE_REMOVED, 'scsi0-0-0-1')
    assert watch.wait('virtio-disk1', time.monotonic() + 2) == 'removed'
    assert watch.wait('virtio-disk2', time.monotonic() + 0.05) is None
    conn.fire(libvirt.VIR_DOMAIN_EVENT_ID_DEVICE_REMOVAL_FAILED, 'virtio-disk2')
    assert watch.wait('virtio-disk2', time.monotonic() + 1) == 'failed'
    watch.close()
    assert sorted(conn.deregistered) == [1, 2]
