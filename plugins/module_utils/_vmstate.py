# -*- coding: utf-8 -*-
# Copyright (c) 2026 virtops.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""vm_state: the domain-level state the storage flows need - power (a graceful shutdown
with a bounded wait, a hard power-off only when allowed), autostart, and the collection's
own notes in the domain's definition (libvirt <metadata> under our XML namespace)."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import copy
import json
import time

from ansible_collections.virtops.storage.plugins.module_utils._errors import StorageError
from ansible_collections.virtops.storage.plugins.module_utils._libvirt import libvirt
from ansible_collections.virtops.storage.plugins.module_utils._locks import host_lock
from ansible_collections.virtops.storage.plugins.module_utils._runner import Action, Plan
from ansible_collections.virtops.storage.plugins.module_utils._xml import etree

METADATA_URI = 'https://virtops.example/xmlns/storage/1'
METADATA_KEY = 'virtops'
METADATA_ELEMENT = 'storage'

# virDomainState numbers, in libvirt's order (stable ABI)
STATE_NAMES = ('nostate', 'running', 'blocked', 'paused', 'shutdown', 'shutoff', 'crashed', 'pmsuspended')
# active states a shutdown request cannot end, and what the user can do instead
NO_GRACEFUL_SHUTDOWN = {
    'paused': 'resume it first',
    'crashed': 'its guest is not running',
    'pmsuspended': 'wake it up first (state: running)',
}

VM_STATE_ARGSPEC = {
    'name': {'type': 'str', 'required': True},
    'state': {'type': 'str', 'choices': ['running', 'shutoff']},
    'shutdown_timeout': {'type': 'int', 'default': 120},
    'force_off': {'type': 'bool', 'default': False},
    'autostart': {'type': 'bool'},
    'metadata': {'type': 'dict'},
}


class Observed(object):
    """A domain as read: power state name, persistence, autostart and our notes."""

    def __init__(self, name, uuid, state, persistent, autostart, metadata):
        self.name = name
        self.uuid = uuid
        self.state = state
        self.persistent = persistent
        self.autostart = autostart
        self.metadata = metadata

    @property
    def active(self):
        return self.state not in ('shutoff', 'nostate')

    def as_result(self):
        return {'name': self.name, 'uuid': self.uuid, 'state': self.state, 'running': self.active,
                'persistent': self.persistent, 'autostart': self.autostart}

    def view(self):
        return {'state': self.state, 'autostart': self.autostart, 'metadata': self.metadata}


def parse_metadata(text):
    """Our notes from the <storage> element libvirt hands back (JSON text inside it)."""
    if text is None:
        return {}
    try:
        element = etree.fromstring(text.encode('utf-8') if isinstance(text, str) else text)
        data = json.loads(element.text or '{}')
    except (etree.XMLSyntaxError, ValueError) as err:
        raise StorageError('LIBVIRT_ERROR', 'the virtops.storage metadata of the domain is not readable (%s); '
                                            'remove it with virsh metadata --remove' % err)
    if not isinstance(data, dict):
        raise StorageError('LIBVIRT_ERROR', 'the virtops.storage metadata of the domain is not a JSON object')
    return data


def render_metadata(data):
    """The element we store: the notes as canonical JSON text."""
    element = etree.Element(METADATA_ELEMENT)
    element.text = json.dumps(data, sort_keys=True, separators=(',', ':'))
    return etree.tostring(element, encoding='unicode')


def merged_metadata(current, changes):
    """The notes after setting each given key (None removes it); keys not given stay."""
    result = copy.deepcopy(current)
    for key, value in changes.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = value
    return result


def _json_value(value, where):
    try:
        return json.loads(json.dumps(value, sort_keys=True))
    except (TypeError, ValueError) as err:
        raise StorageError('INVALID_ARGUMENT', '%s is not JSON-serialisable: %s' % (where, err))


def plan_vm_state(params, observed):
    """The plan for one run: metadata, then autostart, then power (the only step that
    waits, so a refusal of the others comes first). Pure: no libvirt."""
    plan = Plan()
    after = Observed(observed.name, observed.uuid, observed.state, observed.persistent, observed.autostart,
                     observed.metadata)
    name = observed.name
    changes = params.get('metadata')
    if changes is not None:
        changes = dict((str(key), _json_value(value, 'metadata key %s' % key)) for key, value in changes.items())
        wanted = merged_metadata(observed.metadata, changes)
        if wanted != observed.metadata:
            if not observed.persistent:
                raise StorageError('INVALID_ARGUMENT', 'domain %s is transient: it has no definition to keep '
                                                       'metadata in' % name)
            keys = sorted(key for key in changes if changes[key] != observed.metadata.get(key))
            plan.add('%s metadata %s of %s' % ('set' if any(changes[k] is not None for k in keys) else 'remove',
                                               ', '.join(keys), name),
                     'set_metadata', (wanted,),
                     undo=Action('restore the metadata of %s' % name, 'set_metadata', (observed.metadata,)))
            after.metadata = wanted
    autostart = params.get('autostart')
    if autostart is not None and autostart != observed.autostart:
        if not observed.persistent:
            raise StorageError('INVALID_ARGUMENT', 'domain %s is transient: libvirt cannot start it at boot' % name)
        plan.add('%s autostart of %s' % ('enable' if autostart else 'disable', name), 'set_autostart', (autostart,),
                 undo=Action('restore autostart of %s' % name, 'set_autostart', (observed.autostart,)))
        after.autostart = autostart
    state = params.get('state')
    timeout = params.get('shutdown_timeout')
    if timeout is None:
        timeout = 120
    if timeout < 0:
        raise StorageError('INVALID_ARGUMENT', 'shutdown_timeout must be 0 or more seconds, not %s' % timeout)
    if state == 'shutoff' and timeout == 0 and not params.get('force_off'):
        raise StorageError('INVALID_ARGUMENT', 'shutdown_timeout: 0 gives the guest no time to shut down; it needs '
                                               'force_off: true (power off at once)')
    if state == 'shutoff' and observed.active:
        if observed.state in NO_GRACEFUL_SHUTDOWN or timeout == 0:
            if not params.get('force_off'):
                raise StorageError('DOMAIN_RUNNING', 'domain %s is %s and cannot shut down gracefully; %s, or set '
                                                     'force_off: true to power it off'
                                   % (name, observed.state, NO_GRACEFUL_SHUTDOWN[observed.state]))
            plan.add('power off %s domain %s' % (observed.state, name), 'power_off', ())
        else:
            how = ('shut down %s gracefully (wait up to %d s%s)'
                   % (name, timeout, ', then power it off' if params.get('force_off') else ''))
            plan.add(how, 'shut_down', (timeout, bool(params.get('force_off'))))
        after.state = 'shutoff'
    elif state == 'running' and observed.state == 'paused':
        plan.add('resume %s' % name, 'resume', ())
        after.state = 'running'
    elif state == 'running' and observed.state == 'pmsuspended':
        plan.add('wake up %s' % name, 'wake_up', ())
        after.state = 'running'
    elif state == 'running' and observed.state == 'crashed':
        raise StorageError('INVALID_ARGUMENT', 'domain %s has crashed (kept for inspection); power it off first with '
                                               'state: shutoff and force_off: true, then start it' % name)
    elif state == 'running' and not observed.active:
        plan.add('start %s' % name, 'start', ())
        after.state = 'running'
    plan.before = observed.view()
    plan.after = after.view()
    return plan, after


class VmStateOps(object):
    """The side effects of vm_state, on one domain."""

    def __init__(self, client, domain):
        self.client = client
        self.domain = domain
        self.shutdown = None
        self.waited = None

    def observe(self):
        domain = self.domain
        with self.client.errors('read the state of domain %s' % domain.name()):
            number = domain.state()[0]
            persistent = bool(domain.isPersistent())
            autostart = bool(domain.autostart()) if persistent else False
            uuid = domain.UUIDString()
        state = STATE_NAMES[number] if 0 <= number < len(STATE_NAMES) else 'nostate'
        return Observed(domain.name(), uuid, state, persistent, autostart, self._metadata(persistent))

    def _metadata(self, persistent):
        flags = libvirt.VIR_DOMAIN_AFFECT_CONFIG if persistent else libvirt.VIR_DOMAIN_AFFECT_LIVE
        try:
            text = self.domain.metadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, METADATA_URI, flags)
        except libvirt.libvirtError as err:
            if err.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN_METADATA:
                return {}
            with self.client.errors('read the metadata of domain %s' % self.domain.name()):
                raise
        return parse_metadata(text)

    def set_metadata(self, data):
        flags = libvirt.VIR_DOMAIN_AFFECT_CONFIG
        with self.client.errors('read the state of domain %s' % self.domain.name()):
            if self.domain.isActive():
                flags |= libvirt.VIR_DOMAIN_AFFECT_LIVE
        with self.client.errors('write the metadata of domain %s' % self.domain.name()):
            if data:
                self.domain.setMetadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, render_metadata(data), METADATA_KEY,
                                        METADATA_URI, flags)
            else:
                self.domain.setMetadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, None, None, METADATA_URI, flags)

    def set_autostart(self, value):
        with self.client.errors('set autostart of domain %s' % self.domain.name()):
            self.domain.setAutostart(1 if value else 0)

    def start(self):
        with self.client.errors('start domain %s' % self.domain.name()):
            self.domain.create()

    def resume(self):
        with self.client.errors('resume domain %s' % self.domain.name()):
            self.domain.resume()

    def wake_up(self):
        with self.client.errors('wake up domain %s' % self.domain.name()):
            self.domain.pMWakeup(0)

    def power_off(self):
        if self._active():
            with self.client.errors('power off domain %s' % self.domain.name()):
                try:
                    self.domain.destroy()
                except libvirt.libvirtError:
                    if self._active():
                        raise  # not "it stopped on its own meanwhile"
        self.shutdown = 'forced'

    def _active(self):
        """Whether the domain still runs; a transient domain that stopped is gone, and stopped."""
        with self.client.errors('read the state of domain %s' % self.domain.name()):
            try:
                return bool(self.domain.isActive())
            except libvirt.libvirtError as err:
                if err.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                    return False
                raise

    def shut_down(self, timeout, force_off, clock=time.monotonic, sleep=time.sleep):
        """Ask the guest to shut down, look at the domain with a growing interval until it
        has stopped or `timeout` seconds passed, then power it off when allowed."""
        name = self.domain.name()
        start = clock()
        with self.client.errors('ask domain %s to shut down' % name):
            try:
                self.domain.shutdown()
            except libvirt.libvirtError as err:
                if err.get_error_code() != libvirt.VIR_ERR_OPERATION_INVALID or self._active():
                    raise  # "domain is not running": it stopped on its own meanwhile
        interval = 0.05
        while self._active():
            left = start + timeout - clock()
            if left <= 0:
                self.waited = clock() - start
                if force_off:
                    self.power_off()
                    return
                raise StorageError('DOMAIN_RUNNING', 'domain %s was asked to shut down and is still running after '
                                                     '%d s (its guest ignores or has not finished the request; it '
                                                     'may still stop later); raise shutdown_timeout, or set '
                                                     'force_off: true to power it off' % (name, timeout))
            sleep(min(interval, left))
            interval = min(interval * 2, 0.5)
        self.waited = clock() - start
        self.shutdown = 'graceful'


def run_vm_state_module(module):
    params = module.params
    client = module.client()
    domain = client.get_domain(params['name'])
    ops = VmStateOps(client, domain)
    with client.errors('read the UUID of domain %s' % domain.name()):
        key = (client.canonical_uri, 'domain', domain.UUIDString())
    with host_lock('the disks of domain %s' % domain.name(), key):
        observed = ops.observe()
        plan, after = plan_vm_state(params, observed)
        module.apply(plan, ops)
        if module.check_mode or not plan.changed or (not observed.persistent and after.state == 'shutoff'):
            result = after  # a transient domain that stopped is gone: nothing left to read
        else:
            result = ops.observe()
        if ops.shutdown and ops.waited is not None:
            plan.extra['shutdown_seconds'] = round(ops.waited, 1)
        module.exit_plan(plan, domain=result.as_result(), metadata=result.metadata,
                         shutdown=ops.shutdown if not module.check_mode else None)
