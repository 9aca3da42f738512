# -*- coding: utf-8 -*-
from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.virtops.storage.plugins.module_utils._errors import StorageError
from ansible_collections.virtops.storage.plugins.module_utils._runner import Action, Plan, apply_plan


class RecordingOps(object):
    """Records every call; fails the ones named in `failing`."""

    def __init__(self, failing=()):
        self.calls = []
        self.failing = set(failing)

    def __getattr__(self, method):
        def call(*args):
            self.calls.append((method,) + args)
            if method in self.failing:
                raise StorageError('LIBVIRT_ERROR', '%s broke' % method)
        return call


def three_step_plan():
    plan = Plan()
    plan.add('define x', 'define', ('x',), undo=Action('undefine x', 'undefine', ('x',)))
    plan.add('build x', 'build', ('x',))
    plan.add('start x', 'start', ('x',), undo=Action('stop x', 'stop', ('x',)))
    plan.add('autostart x', 'autostart', ('x',))
    return plan


def test_every_step_runs_in_order():
    ops = RecordingOps()
    outcome = apply_plan(three_step_plan(), ops)
    assert outcome.error is None and outcome.changed
    assert [call[0] for call in ops.calls] == ['define', 'build', 'start', 'autostart']
    assert outcome.steps == ['define x', 'build x', 'start x', 'autostart x']


def test_a_failure_undoes_what_was_done_newest_first_and_stops():
    ops = RecordingOps(failing={'autostart'})
    outcome = apply_plan(three_step_plan(), ops)
    assert outcome.error.code == 'LIBVIRT_ERROR'
    assert [call[0] for call in ops.calls] == ['define', 'build', 'start', 'autostart', 'stop', 'undefine']
    assert outcome.steps == ['define x', 'build x', 'start x', 'failed: autostart x', 'rolled back: stop x',
                             'rolled back: undefine x']
    assert outcome.changed


def test_a_failing_undo_is_reported_and_the_rest_still_undone():
    ops = RecordingOps(failing={'autostart', 'stop'})
    outcome = apply_plan(three_step_plan(), ops)
    assert 'could not roll back (stop x): stop broke' in outcome.steps
    assert outcome.steps[-1] == 'rolled back: undefine x'


def test_a_failing_first_step_changed_nothing():
    outcome = apply_plan(three_step_plan(), RecordingOps(failing={'define'}))
    assert outcome.steps == ['failed: define x'] and outcome.changed is False


def test_steps_that_change_nothing_do_not_count_as_a_change():
    plan = Plan()
    plan.add('refresh x', 'refresh', ('x',), changes=False)
    assert plan.changed is False
    assert apply_plan(plan, RecordingOps()).changed is False


def test_a_fully_rolled_back_run_changed_nothing():
    plan = Plan()
    plan.add('create v', 'create', ('v',), undo=Action('delete v', 'delete', ('v',)))
    plan.add('upload into v', 'upload', ('v',))
    outcome = apply_plan(plan, RecordingOps(failing={'upload'}))
    assert outcome.steps == ['create v', 'failed: upload into v', 'rolled back: delete v']
    assert outcome.changed is False, 'nothing of the run is left behind'


def test_an_undo_shared_by_several_steps_runs_once():
    plan = Plan()
    restore = Action('restore the definition of x', 'restore', ('x',))
    plan.add('add controller to x', 'attach', ('controller',), undo=restore)
    plan.add('add disk to x', 'attach', ('disk',), undo=restore)
    plan.add('hot-plug disk into x', 'plug', ('disk',))
    ops = RecordingOps(failing={'plug'})
    outcome = apply_plan(plan, ops)
    assert outcome.steps == ['add controller to x', 'add disk to x', 'failed: hot-plug disk into x',
                             'rolled back: restore the definition of x']
    assert ops.calls.count(('restore', 'x')) == 1 and outcome.changed is False
