# -*- coding: utf-8 -*-
# Copyright (c) 2026 virtops.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Passwords handed to libvirt as private secret objects.

A private secret cannot be read back, so to know whether the stored password is the one
asked for, the secret's description carries an HMAC-SHA256 of it. The HMAC key is a
random per-host key kept in a secret of its own (usage "virtops.storage/digest-key"),
whose value libvirt gives only to read-write connections: a read-only client sees the
HMAC but cannot test password guesses against it.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import base64
import binascii
import hashlib
import hmac
import os
import re

from ansible_collections.virtops.storage.plugins.module_utils import _xml
from ansible_collections.virtops.storage.plugins.module_utils._errors import StorageError
from ansible_collections.virtops.storage.plugins.module_utils._libvirt import libvirt

USAGE_TYPES = {'iscsi': 'VIR_SECRET_USAGE_TYPE_ISCSI', 'ceph': 'VIR_SECRET_USAGE_TYPE_CEPH'}
DIGEST_KEY_USAGE = 'virtops.storage/digest-key'
_DIGEST_RE = re.compile(r'hmac-sha256:([0-9a-f]{64})')


def _usage_type(usage_type):
    return getattr(libvirt, USAGE_TYPES[usage_type])


def password_digest(key, password):
    return 'hmac-sha256:' + hmac.new(key, password.encode('utf-8'), hashlib.sha256).hexdigest()


def digest_matches(description, key, password):
    match = _DIGEST_RE.search(description or '')
    if not match or key is None:
        return False
    return hmac.compare_digest(password_digest(key, password), match.group(0))


def secret_bytes(usage_type, password):
    """What libvirt stores: a ceph key is given base64-encoded (as `ceph auth get-key`
    prints it) and stored decoded; a CHAP password is stored as its UTF-8 bytes."""
    if usage_type != 'ceph':
        return password.encode('utf-8')
    try:
        return base64.b64decode(password.encode('ascii'), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise StorageError('INVALID_ARGUMENT', 'a cephx key must be base64, as `ceph auth get-key` prints it')


class ObservedSecret(object):
    """A secret as found; `matches` says whether it holds the password asked for (None
    when no password was asked for)."""

    __slots__ = ('uuid', 'usage_type', 'usage_id', 'description', 'matches')

    def __init__(self, uuid, usage_type, usage_id, description, matches=None):
        self.uuid = uuid
        self.usage_type = usage_type
        self.usage_id = usage_id
        self.description = description
        self.matches = matches


def observe_secret(client, usage_type, usage_id, password=None):
    secret = client.lookup_secret(_usage_type(usage_type), usage_id)
    if secret is None:
        return None
    with client.errors('read secret %s' % usage_id):
        root = _xml.parse(secret.XMLDesc(0), 'secret XML')
    observed = ObservedSecret(secret.UUIDString(), usage_type, usage_id, _xml.text_of(root, 'description'))
    if password is not None:
        observed.matches = digest_matches(observed.description, digest_key(client), password)
    return observed


def digest_key(client, create=False):
    """The host's HMAC key, or None when there is none yet (and `create` is false)."""
    secret = client.lookup_secret(libvirt.VIR_SECRET_USAGE_TYPE_ISCSI, DIGEST_KEY_USAGE)
    if secret is not None:
        with client.errors('read the digest key of virtops.storage'):
            return secret.value(0)
    if not create:
        return None
    root = _xml.element('secret', {'ephemeral': 'no', 'private': 'no'})
    _xml.sub(root, 'description', text='virtops.storage: key of the password digests in other secrets')
    _xml.sub(_xml.sub(root, 'usage', {'type': 'iscsi'}), 'target', text=DIGEST_KEY_USAGE)
    key = os.urandom(32)
    secret = client.define_secret(_xml.to_string(root))
    with client.errors('store the digest key of virtops.storage'):
        secret.setValue(key, 0)
    return key


def store_secret(client, usage_type, usage_id, purpose, password, uuid=None):
    """Define (or redefine, keeping `uuid`) the secret and set its value; returns its UUID."""
    value = secret_bytes(usage_type, password)
    key = digest_key(client, create=True)
    root = _xml.element('secret', {'ephemeral': 'no', 'private': 'yes'})
    if uuid:
        _xml.sub(root, 'uuid', text=uuid)
    _xml.sub(root, 'description', text='%s [managed by virtops.storage; %s]' % (purpose, password_digest(key, password)))
    _xml.sub(_xml.sub(root, 'usage', {'type': usage_type}), 'name' if usage_type == 'ceph' else 'target', text=usage_id)
    secret = client.define_secret(_xml.to_string(root))
    with client.errors('set the value of secret %s' % usage_id):
        secret.setValue(value, 0)
        return secret.UUIDString()


def remove_secret(client, usage_type, usage_id):
    secret = client.lookup_secret(_usage_type(usage_type), usage_id)
    if secret is not None:
        with client.errors('undefine secret %s' % usage_id):
            secret.undefine()
