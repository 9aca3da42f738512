# -*- coding: utf-8 -*-
# Test-only stdout callback: one JSON line per task result, diff included, so the
# integration tests read exactly what a playbook would have registered.
from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
name: result_json
type: stdout
short_description: One JSON line per task result (for the collection's tests)
description:
  - Prints C(RESULT <json>) for every task result, with the whole result.
'''

import json

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'stdout'
    CALLBACK_NAME = 'result_json'

    def _emit(self, result, status):
        payload = dict(result._result)
        payload['_status'] = status
        self._display.display('RESULT ' + json.dumps(payload, sort_keys=True, default=str))

    def v2_runner_on_ok(self, result):
        self._emit(result, 'ok')

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._emit(result, 'failed')

    def v2_runner_on_unreachable(self, result):
        self._emit(result, 'unreachable')
