# -*- coding: utf-8 -*-
# Copyright (c) 2026 virtops.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Passwords handed to libvirt as private secret objects.

A private secret cannot be read back, so to know whether the stored password is the one
asked for, the secret's description carries a salted PBKDF2 digest of it (never the
password itself). Same password, same digest: nothing to do.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import binascii
import hashlib
import hmac
import os
import re

from ansible_collections.virtops.storage.plugins.module_utils import _xml
from ansible_collections.virtops.storage.plugins.module_utils._libvirt import libvirt

_ITERATIONS = 200000
_DIGEST_RE = re.compile(r'pbkdf2-sha256\$(\d+)\$([0-9a-f]+)\$([0-9a-f]+)')
USAGE_TYPES = {'iscsi': 'VIR_SECRET_USAGE_TYPE_ISCSI', 'ceph': 'VIR_SECRET_USAGE_TYPE_CEPH'}


def password_digest(password, salt=None, iterations=_ITERATIONS):
    salt = salt if salt is not None else binascii.hexlify(os.urandom(16)).decode('ascii')
    derived = hashlib.pbkdf2_hmac('sha256', password.encode('utf-8'), salt.encode('ascii'), iterations)
    return 'pbkdf2-sha256$%d$%s$%s' % (iterations, salt, binascii.hexlify(derived).decode('ascii'))


def digest_matches(description, password):
    match = _DIGEST_RE.search(description or '')
    if not match:
        return False
    expected = password_digest(password, salt=match.group(2), iterations=int(match.group(1)))
    return hmac.compare_digest(expected, match.group(0))


class ObservedSecret(object):
    __slots__ = ('uuid', 'usage_type', 'usage_id', 'description')

    def __init__(self, uuid, usage_type, usage_id, description):
        self.uuid = uuid
        self.usage_type = usage_type
        self.usage_id = usage_id
        self.description = description


def observe_secret(client, usage_type, usage_id):
    secret = client.lookup_secret(getattr(libvirt, USAGE_TYPES[usage_type]), usage_id)
    if secret is None:
        return None
    with client.errors('read secret %s' % usage_id):
        root = _xml.parse(secret.XMLDesc(0), 'secret XML')
        return ObservedSecret(secret.UUIDString(), usage_type, usage_id, _xml.text_of(root, 'description'))


def secret_is_current(observed, password):
    return observed is not None and digest_matches(observed.description, password)


def secret_xml(usage_type, usage_id, purpose, password, uuid=None):
    root = _xml.element('secret', {'ephemeral': 'no', 'private': 'yes'})
    if uuid:
        _xml.sub(root, 'uuid', text=uuid)
    _xml.sub(root, 'description', text='%s [managed by virtops.storage; %s]' % (purpose, password_digest(password)))
    usage = _xml.sub(root, 'usage', {'type': usage_type})
    _xml.sub(usage, 'name' if usage_type == 'ceph' else 'target', text=usage_id)
    return _xml.to_string(root)


def store_secret(client, usage_type, usage_id, purpose, password, uuid=None):
    """Define (or redefine) the secret and set its value; returns its UUID."""
    secret = client.define_secret(secret_xml(usage_type, usage_id, purpose, password, uuid))
    with client.errors('set the value of secret %s' % usage_id):
        secret.setValue(password.encode('utf-8'), 0)
        return secret.UUIDString()


def remove_secret(client, usage_type, usage_id):
    secret = client.lookup_secret(getattr(libvirt, USAGE_TYPES[usage_type]), usage_id)
    if secret is not None:
        with client.errors('undefine secret %s' % usage_id):
            secret.undefine()
