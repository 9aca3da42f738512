# -*- coding: utf-8 -*-
# Copyright (c) 2026 virtops.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type


class ModuleDocFragment(object):

    DOCUMENTATION = r'''
options:
  uri:
    description:
      - The libvirt connection URI, on the managed host.
      - When not given, the environment variable E(LIBVIRT_DEFAULT_URI) of the managed host is used, then V(qemu:///system).
      - Every module of the collection belongs to the action group C(virtops.storage.libvirt), so
        C(module_defaults) of C(group/virtops.storage.libvirt) can set it once for a play.
    type: str
    default: qemu:///system
requirements:
  - libvirt-python (the C(libvirt) Python bindings) on the managed host
  - lxml on the managed host
notes:
  - Every failure returns C(msg) and C(error_code); argument errors have C(error_code=INVALID_ARGUMENT).
'''
