#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026 virtops.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: vm_state
short_description: Power, autostart and storage notes of a libvirt domain, as storage flows need them
version_added: 1.0.0
description:
  - The domain-level steps that storage work needs around a disk change - stop a domain gracefully
    before its root disk is replaced, start it again, keep it from starting at boot while its root is
    elsewhere, and keep notes about such a change in the domain's own definition.
  - O(state=shutoff) asks the guest to shut down (ACPI, or the guest agent where the hypervisor
    chooses it) and waits up to O(shutdown_timeout) seconds, looking at the domain at growing intervals
    (never a fixed sleep). A domain still running at the deadline is powered off only with
    O(force_off=true); otherwise the module fails with C(DOMAIN_RUNNING) and changes nothing else. A
    paused, crashed or suspended (pmsuspended) domain cannot shut down gracefully, so it needs O(force_off=true).
  - A transient domain that stops is gone - the result then shows it as it was left, shut off.
  - O(metadata) keeps notes (any JSON values) in the domain's persistent definition, inside libvirt's
    C(<metadata>) element under the collection's own XML namespace
    C(https://virtops.example/xmlns/storage/1), so they travel with the domain (migration, backup of
    the XML) and never collide with other tools' metadata. The roles of this collection record there
    what they moved, so a later run knows what to put back.
  - With only O(name) the module changes nothing and reports the domain's state, autostart and notes.
  - Steps run in the order metadata, autostart, power state; when a later one fails the earlier ones
    are undone. Runs on one domain take turns on this host with M(virtops.storage.vm_disk) runs on it.
author:
  - virtops.storage contributors (@virtops)
extends_documentation_fragment:
  - virtops.storage.connection
  - virtops.storage.attributes
  - virtops.storage.attributes.STATE_CHANGING
  - virtops.storage.attributes.ACTIONGROUP_LIBVIRT
options:
  name:
    description: Name (or UUID) of the domain.
    type: str
    required: true
  state:
    description:
      - C(running) starts a shut-off domain, resumes a paused one and wakes a suspended (pmsuspended) one; a
        crashed domain is refused (power it off first).
      - C(shutoff) stops a running domain, gracefully first (see O(shutdown_timeout) and O(force_off)).
      - Omitted, the power state is left as it is.
    type: str
    choices: [running, shutoff]
  shutdown_timeout:
    description:
      - Seconds to wait for a graceful shutdown before giving up (or powering off, with O(force_off)).
      - C(0) gives the guest no time at all - the domain is powered off at once, which needs O(force_off=true)
        (without it C(0) is refused with C(INVALID_ARGUMENT)).
    type: int
    default: 120
  force_off:
    description:
      - Power the domain off (libvirt C(destroy), like pulling the plug) when it has not stopped after
        O(shutdown_timeout) seconds, or when it is paused. The guest loses what it had not written.
    type: bool
    default: false
  autostart:
    description: Whether libvirt starts the domain when the host boots. Persistent domains only.
    type: bool
  metadata:
    description:
      - Notes to keep in the domain's definition. Each top-level key given is set to its value (replaced
        as a whole); a key given as C(null) is removed; keys not given are kept.
      - Persistent domains only. Setting the value a key already has changes nothing.
    type: dict
seealso:
  - module: virtops.storage.vm_disk
  - module: virtops.storage.vm_disk_info
'''

EXAMPLES = r'''
- name: Stop web01 for maintenance, gracefully, power off after 5 minutes
  virtops.storage.vm_state:
    name: web01
    state: shutoff
    shutdown_timeout: 300
    force_off: true

- name: Read web01's state, autostart and notes
  virtops.storage.vm_state:
    name: web01
  register: web01_state

- name: Keep web01 down at the next host boot while its root disk is away
  virtops.storage.vm_state:
    name: web01
    autostart: false
    metadata:
      maintenance:
        ticket: OPS-1234
        autostart: "{{ web01_state.domain.autostart }}"

- name: Back to normal
  virtops.storage.vm_state:
    name: web01
    state: running
    autostart: "{{ web01_state.domain.autostart }}"
    metadata:
      maintenance: null
'''

RETURN = r'''
domain:
  description:
    - The domain after the run (in check mode, as it would be).
    - C(state) is libvirt's word for the power state - C(running), C(blocked), C(paused), C(shutdown) (shutting
      down), C(shutoff), C(crashed), C(pmsuspended); C(running) is true for every state but C(shutoff).
  returned: always
  type: dict
  sample:
    name: web01
    uuid: 2f0d3c1e-8f4a-4d8e-9b1c-0a6e5d4c3b2a
    state: shutoff
    running: false
    persistent: true
    autostart: false
metadata:
  description: Every note the collection keeps in the domain's definition, after the run; C({}) when none.
  returned: always
  type: dict
  sample: {"maintenance": {"ticket": "OPS-1234", "autostart": true}}
shutdown:
  description: How this run stopped the domain - C(graceful), C(forced) (powered off), or null.
  returned: always
  type: str
  sample: graceful
shutdown_seconds:
  description: Seconds this run waited for the domain to stop.
  returned: when this run stopped the domain
  type: float
  sample: 12.4
actions:
  description: One line per step taken (or, in check mode, that would be taken).
  returned: always
  type: list
  elements: str
  sample: ["disable autostart of web01", "shut down web01 gracefully (wait up to 300 s, then power it off)"]
'''

from ansible_collections.virtops.storage.plugins.module_utils._runner import StorageModule
from ansible_collections.virtops.storage.plugins.module_utils._vmstate import VM_STATE_ARGSPEC, run_vm_state_module


def main():
    module = StorageModule(argument_spec=VM_STATE_ARGSPEC, supports_check_mode=True)
    with module.failing_on_errors():
        run_vm_state_module(module)


if __name__ == '__main__':
    main()
