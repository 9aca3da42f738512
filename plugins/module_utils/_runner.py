# -*- coding: utf-8 -*-
# Copyright (c) 2026 virtops.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Plan, then apply: what every module of the collection shares.

A planner is a pure function of (desired, observed) returning a Plan: Actions that
describe themselves and name the method of an "ops" object that carries them out.
Check mode is the one place that decides not to apply; `changed`, `actions` and the
diff all come from the same Plan.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import contextlib

from ansible.module_utils.basic import AnsibleModule, env_fallback, missing_required_lib

from ansible_collections.virtops.storage.plugins.module_utils._errors import StorageError
from ansible_collections.virtops.storage.plugins.module_utils._libvirt import (
    DEFAULT_URI, LIBVIRT_IMPORT_ERROR, LibvirtClient)
from ansible_collections.virtops.storage.plugins.module_utils._xml import LXML_IMPORT_ERROR

CONNECTION_ARGSPEC = {
    'uri': {'type': 'str', 'default': DEFAULT_URI, 'fallback': (env_fallback, ['LIBVIRT_DEFAULT_URI'])},
}


class Action(object):
    """One step: `description` is what users read, `method(*args)` is called on the ops
    object to carry it out. `changes=False` marks steps that change nothing (a refresh).
    `undo`, when given, is the Action that reverses this one if a later step fails."""

    __slots__ = ('description', 'method', 'args', 'changes', 'undo')

    def __init__(self, description, method, args=(), changes=True, undo=None):
        self.description = description
        self.method = method
        self.args = tuple(args)
        self.changes = changes
        self.undo = undo

    def apply(self, ops):
        return getattr(ops, self.method)(*self.args)

    def __repr__(self):
        return 'Action(%r)' % self.description


class Plan(object):
    """The ordered actions of one run, with the diff and extra result keys they imply."""

    def __init__(self):
        self.actions = []
        self.before = {}
        self.after = {}
        self.warnings = []
        self.extra = {}
        self.diff = None  # a list of Ansible diffs (with headers), instead of before/after

    def add(self, description, method, args=(), changes=True, undo=None):
        self.actions.append(Action(description, method, args, changes, undo))

    @property
    def changed(self):
        return any(action.changes for action in self.actions)

    @property
    def descriptions(self):
        return [action.description for action in self.actions]


class Outcome(object):
    """What applying a plan did: the steps that ran, and the error that stopped it."""

    def __init__(self, steps, changed, error=None):
        self.steps = steps
        self.changed = changed
        self.error = error


def apply_plan(plan, ops):
    """Apply the actions in order. When one fails, undo the steps already done that say
    how (newest first), so a failed create leaves nothing half-made behind."""
    done = []
    for action in plan.actions:
        try:
            action.apply(ops)
        except StorageError as err:
            steps = [step.description for step in done] + ['failed: %s' % action.description]
            kept = []  # what still stands: `changed` is about the state left behind
            undone = set()  # several steps may share one undo (restore a whole definition): run it once
            for step in reversed(done):
                if step.undo is None:
                    kept.append(step)
                    continue
                key = (step.undo.method, repr(step.undo.args))
                if key in undone:
                    continue
                undone.add(key)
                try:
                    step.undo.apply(ops)
                    steps.append('rolled back: %s' % step.undo.description)
                except StorageError as undo_err:
                    kept.append(step)
                    steps.append('could not roll back (%s): %s' % (step.undo.description, undo_err.msg))
            return Outcome(steps, any(step.changes for step in kept), err)
        done.append(action)
    return Outcome([step.description for step in done], plan.changed)


class StorageModule(AnsibleModule):
    """AnsibleModule with the shared `uri` option and SPEC-shaped failures: every
    failure carries `error_code` (INVALID_ARGUMENT for argument validation) and `actions`."""

    def __init__(self, argument_spec, **kwargs):
        spec = dict(CONNECTION_ARGSPEC)
        spec.update(argument_spec)
        self._arguments_validated = False
        super(StorageModule, self).__init__(argument_spec=spec, **kwargs)
        self._arguments_validated = True
        if LIBVIRT_IMPORT_ERROR:
            self.fail_json(msg=missing_required_lib('libvirt-python'), exception=LIBVIRT_IMPORT_ERROR,
                           error_code='LIBVIRT_UNREACHABLE')
        if LXML_IMPORT_ERROR:
            self.fail_json(msg=missing_required_lib('lxml'), exception=LXML_IMPORT_ERROR,
                           error_code='INVALID_ARGUMENT')

    def fail_json(self, msg, **kwargs):
        kwargs.setdefault('error_code', 'LIBVIRT_ERROR' if self._arguments_validated else 'INVALID_ARGUMENT')
        kwargs.setdefault('actions', [])
        super(StorageModule, self).fail_json(msg=msg, **kwargs)

    def client(self, events=False):
        if '\0' in (self.params['uri'] or ''):
            self.fail_json(msg='uri must not contain a NUL character', error_code='INVALID_ARGUMENT')
        return LibvirtClient(self.params['uri'], events=events)

    @contextlib.contextmanager
    def failing_on_errors(self):
        """The edge: a StorageError anywhere below becomes fail_json with its code."""
        try:
            yield
        except StorageError as err:
            self.fail_json(msg=err.msg, error_code=err.code, **err.details)

    def apply(self, plan, ops, prior=None):
        """Carry out the plan (never in check mode); fail with what was done and undone.
        `prior` is a plan this run already carried out: its steps lead the failure's actions."""
        if self.check_mode:
            return
        outcome = apply_plan(plan, ops)
        if outcome.error is not None:
            err = outcome.error
            done = prior.descriptions if prior is not None else []
            self.fail_json(msg=err.msg, error_code=err.code, actions=done + outcome.steps,
                           changed=outcome.changed or bool(prior is not None and prior.changed), **err.details)

    def exit_plan(self, plan, **result):
        result.update(plan.extra)
        result['changed'] = plan.changed
        result['actions'] = plan.descriptions
        if self._diff:
            result['diff'] = plan.diff if plan.diff is not None else {'before': plan.before, 'after': plan.after}
        for warning in plan.warnings:
            self.warn(warning)
        self.exit_json(**result)

    def exit_info(self, **result):
        self.exit_json(changed=False, actions=[], **result)
