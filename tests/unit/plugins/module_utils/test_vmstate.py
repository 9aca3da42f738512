# -*- coding: utf-8 -*-
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json

import libvirt
import pytest

from ansible_collections.virtops.storage.plugins.module_utils import _vmstate
from ansible_collections.virtops.storage.plugins.module_utils._errors import StorageError
from ansible_collections.virtops.storage.plugins.module_utils._runner import apply_plan
from ansible_collections.virtops.storage.plugins.module_utils._vmstate import (
    Observed, VmStateOps, merged_metadata, parse_metadata, plan_vm_state, render_metadata)


def observed(state='shutoff', persistent=True, autostart=False, metadata=None):
    return Observed('web01', 'u-1', state, persistent, autostart, dict(metadata or {}))


def params(**values):
    base = {'name': 'web01', 'state': None, 'shutdown_timeout': 120, 'force_off': False, 'autostart': None,
            'metadata': None}
    base.update(values)
    return base


def methods(plan):
    return [action.method for action in plan.actions]


def test_only_the_name_plans_nothing():
    plan, after = plan_vm_state(params(), observed('running', autostart=True, metadata={'k': 1}))
    assert plan.actions == [] and not plan.changed
    assert after.as_result() == {'name': 'web01', 'uuid': 'u-1', 'state': 'running', 'running': True,
                                 'persistent': True, 'autostart': True}


@pytest.mark.parametrize('state, wanted, expected', [
    ('shutoff', 'running', ['start']),
    ('paused', 'running', ['resume']),
    ('running', 'running', []),
    ('blocked', 'running', []),
    ('running', 'shutoff', ['shut_down']),
    ('shutdown', 'shutoff', ['shut_down']),
    ('shutoff', 'shutoff', []),
])
def test_power_steps(state, wanted, expected):
    plan, after = plan_vm_state(params(state=wanted), observed(state))
    assert methods(plan) == expected
    assert after.state == (state if not expected else ('running' if wanted == 'running' else 'shutoff'))


def test_shutdown_carries_the_timeout_and_the_permission():
    plan, _after = plan_vm_state(params(state='shutoff', shutdown_timeout=7, force_off=True), observed('running'))
    assert plan.actions[0].args == (7, True)
    assert plan.descriptions == ['shut down web01 gracefully (wait up to 7 s, then power it off)']


def test_a_paused_domain_needs_force_off():
    with pytest.raises(StorageError) as err:
        plan_vm_state(params(state='shutoff'), observed('paused'))
    assert err.value.code == 'DOMAIN_RUNNING' and 'force_off' in err.value.msg
    plan, _after = plan_vm_state(params(state='shutoff', force_off=True), observed('paused'))
    assert methods(plan) == ['power_off']


@pytest.mark.parametrize('state', ['crashed', 'pmsuspended'])
def test_states_a_shutdown_request_cannot_end_need_force_off(state):
    with pytest.raises(StorageError) as err:
        plan_vm_state(params(state='shutoff'), observed(state))
    assert err.value.code == 'DOMAIN_RUNNING' and state in err.value.msg
    plan, after = plan_vm_state(params(state='shutoff', force_off=True), observed(state))
    assert methods(plan) == ['power_off'] and after.state == 'shutoff'


def test_waking_and_crashed_domains():
    plan, after = plan_vm_state(params(state='running'), observed('pmsuspended'))
    assert methods(plan) == ['wake_up'] and after.state == 'running'
    with pytest.raises(StorageError) as err:
        plan_vm_state(params(state='running'), observed('crashed'))
    assert err.value.code == 'INVALID_ARGUMENT'


def test_zero_timeout_means_power_off_at_once_and_needs_permission():
    with pytest.raises(StorageError) as err:
        plan_vm_state(params(state='shutoff', shutdown_timeout=0), observed('running'))
    assert err.value.code == 'INVALID_ARGUMENT' and 'force_off' in err.value.msg
    plan, _after = plan_vm_state(params(state='shutoff', shutdown_timeout=0, force_off=True), observed('running'))
    assert methods(plan) == ['power_off']


def test_negative_timeout_is_refused():
    with pytest.raises(StorageError) as err:
        plan_vm_state(params(state='shutoff', shutdown_timeout=-1), observed('running'))
    assert err.value.code == 'INVALID_ARGUMENT'


def test_autostart_changes_only_when_different_and_undoes_to_the_old_value():
    plan, _after = plan_vm_state(params(autostart=True), observed(autostart=True))
    assert plan.actions == []
    plan, after = plan_vm_state(params(autostart=False), observed(autostart=True))
    assert methods(plan) == ['set_autostart'] and plan.actions[0].args == (False,)
    assert plan.actions[0].undo.method == 'set_autostart' and plan.actions[0].undo.args == (True,)
    assert after.autostart is False


def test_metadata_keys_are_set_removed_and_kept():
    current = {'keep': 1, 'drop': {'a': 1}, 'same': [1, 2]}
    plan, after = plan_vm_state(params(metadata={'drop': None, 'same': [1, 2], 'new': {'x': 'y'}}),
                                observed(metadata=current))
    assert after.metadata == {'keep': 1, 'same': [1, 2], 'new': {'x': 'y'}}
    assert plan.descriptions == ['set metadata drop, new of web01']
    assert plan.actions[0].undo.args == (current,)
    assert plan.before['metadata'] == current and plan.after['metadata'] == after.metadata


def test_metadata_already_there_is_no_change():
    plan, _after = plan_vm_state(params(metadata={'a': {'b': 1}, 'gone': None}), observed(metadata={'a': {'b': 1}}))
    assert plan.actions == []


def test_transient_domains_have_no_definition_for_notes_or_autostart():
    for values in ({'metadata': {'a': 1}}, {'autostart': True}):
        with pytest.raises(StorageError) as err:
            plan_vm_state(params(**values), observed('running', persistent=False))
        assert err.value.code == 'INVALID_ARGUMENT' and 'transient' in err.value.msg
    plan, _after = plan_vm_state(params(autostart=False, metadata={'a': None}), observed('running', persistent=False))
    assert plan.actions == []


def test_unserialisable_metadata_is_refused():
    with pytest.raises(StorageError) as err:
        plan_vm_state(params(metadata={'a': object()}), observed())
    assert err.value.code == 'INVALID_ARGUMENT'


def test_order_metadata_autostart_power_and_rollback_of_the_first_two():
    plan, _after = plan_vm_state(params(metadata={'a': 1}, autostart=True, state='shutoff'),
                                 observed('running', metadata={'b': 2}))
    assert methods(plan) == ['set_metadata', 'set_autostart', 'shut_down']

    class Ops(object):
        def __init__(self):
            self.calls = []

        def set_metadata(self, data):
            self.calls.append(('set_metadata', data))

        def set_autostart(self, value):
            self.calls.append(('set_autostart', value))

        def shut_down(self, timeout, force):
            raise StorageError('DOMAIN_RUNNING', 'still running')

    ops = Ops()
    outcome = apply_plan(plan, ops)
    assert outcome.error.code == 'DOMAIN_RUNNING' and not outcome.changed
    assert ops.calls == [('set_metadata', {'a': 1, 'b': 2}), ('set_autostart', True), ('set_autostart', False),
                         ('set_metadata', {'b': 2})]


def test_metadata_round_trip_through_the_element():
    data = {'root_volume_rescue': {'root': {'pool': 'p', 'volume': 'v<&>'}, 'autostart': True}}
    text = render_metadata(data)
    assert text.startswith('<storage>') and json.loads(text[len('<storage>'):-len('</storage>')].replace(
        '&lt;', '<').replace('&gt;', '>').replace('&amp;', '&')) == data
    # libvirt hands the element back with its namespace prefix
    assert parse_metadata('<virtops:storage xmlns:virtops="%s">%s</virtops:storage>'
                          % (_vmstate.METADATA_URI, json.dumps(data).replace('&', '&amp;').replace('<', '&lt;')
                             .replace('>', '&gt;'))) == data
    assert parse_metadata(None) == {}


@pytest.mark.parametrize('text', ['<storage>not json</storage>', '<storage>[1]</storage>', '<storage'])
def test_unreadable_metadata_is_an_error_not_a_silent_reset(text):
    with pytest.raises(StorageError) as err:
        parse_metadata(text)
    assert err.value.code == 'LIBVIRT_ERROR'


def test_merge_does_not_touch_the_input():
    current = {'a': {'b': 1}}
    merged = merged_metadata(current, {'a': None, 'c': 2})
    assert current == {'a': {'b': 1}} and merged == {'c': 2}


class FakeDomain(object):
    """A domain that stops `stops_after` seconds of pretend time after the shutdown request
    (never, when None)."""

    def __init__(self, clock, stops_after):
        self.clock = clock
        self.stops_after = stops_after
        self.requested = None
        self.destroyed = False
        self.looks = 0

    def name(self):
        return 'web01'

    def shutdown(self):
        self.requested = self.clock.now

    def isActive(self):
        self.looks += 1
        if self.destroyed:
            return False
        return not (self.stops_after is not None and self.requested is not None
                    and self.clock.now - self.requested >= self.stops_after)

    def destroy(self):
        self.destroyed = True


class Clock(object):
    def __init__(self):
        self.now = 100.0
        self.sleeps = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


class FakeClient(object):
    import contextlib

    @contextlib.contextmanager
    def errors(self, _doing):
        yield


def shut(stops_after, timeout, force_off):
    clock = Clock()
    domain = FakeDomain(clock, stops_after)
    ops = VmStateOps(FakeClient(), domain)
    try:
        ops.shut_down(timeout, force_off, clock=clock, sleep=clock.sleep)
        return ops, domain, clock, None
    except StorageError as err:
        return ops, domain, clock, err


def test_graceful_shutdown_is_seen_soon_after_it_happens():
    ops, domain, clock, err = shut(stops_after=3.0, timeout=120, force_off=False)
    assert err is None and ops.shutdown == 'graceful' and not domain.destroyed
    # looks back off from 0.05 s to at most 0.5 s: the stop is noticed within half a second
    assert 3.0 <= ops.waited <= 3.5
    assert clock.sleeps[0] == 0.05 and max(clock.sleeps) == 0.5


def test_timeout_without_permission_fails_and_never_powers_off():
    ops, domain, clock, err = shut(stops_after=None, timeout=5, force_off=False)
    assert err is not None and err.code == 'DOMAIN_RUNNING' and 'force_off' in err.msg
    assert not domain.destroyed and ops.shutdown is None
    assert clock.now - 100.0 == pytest.approx(5.0)  # waited exactly the timeout, not a sleep past it


def test_timeout_with_permission_powers_off():
    ops, domain, _clock, err = shut(stops_after=None, timeout=5, force_off=True)
    assert err is None and domain.destroyed and ops.shutdown == 'forced'
    assert ops.waited == pytest.approx(5.0)


def test_a_transient_domain_that_stops_is_gone_and_stopped():
    clock = Clock()
    domain = FakeDomain(clock, stops_after=1.0)
    gone = libvirt.libvirtError('no domain')
    gone.get_error_code = lambda: libvirt.VIR_ERR_NO_DOMAIN

    def is_active():
        if domain.requested is not None and clock.now - domain.requested >= 1.0:
            raise gone
        return True
    domain.isActive = is_active
    ops = VmStateOps(FakeClient(), domain)
    ops.shut_down(30, False, clock=clock, sleep=clock.sleep)
    assert ops.shutdown == 'graceful' and 1.0 <= ops.waited <= 1.5
