# -*- coding: utf-8 -*-
# Copyright (c) 2026 virtops.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type


class ModuleDocFragment(object):

    DOCUMENTATION = r'''
options: {}
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
  platform:
    description: Target OS/families that can be operated against.
    support: N/A
    platforms: posix
'''

    ACTIONGROUP_LIBVIRT = r'''
options: {}
attributes:
  action_group:
    description: Use C(group/virtops.storage.libvirt) in C(module_defaults) to set defaults for this module.
    support: full
    membership:
      - virtops.storage.libvirt
'''

    INFO_MODULE = r'''
options: {}
attributes:
  check_mode:
    support: full
    details:
      - This action does not modify state.
  diff_mode:
    support: N/A
    details:
      - This action does not modify state.
'''

    STATE_CHANGING = r'''
options: {}
attributes:
  check_mode:
    support: full
    details:
      - Predicts every step, which is listed in RV(actions); nothing is changed.
  diff_mode:
    support: full
'''
