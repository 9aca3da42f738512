# -*- coding: utf-8 -*-
# Copyright (c) 2026 virtops.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Small lxml helpers: every XML the collection writes or reads goes through here."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import traceback

from ansible_collections.virtops.storage.plugins.module_utils._errors import StorageError

try:
    from lxml import etree
    LXML_IMPORT_ERROR = None
except ImportError:
    etree = None
    LXML_IMPORT_ERROR = traceback.format_exc()

# Values that libvirt reports at run time; they are never part of a definition.
RUNTIME_ELEMENTS = frozenset(('capacity', 'allocation', 'available'))


def parse(text, what='XML'):
    """Parse XML text without resolving entities or touching the network."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, remove_blank_text=True)
    try:
        return etree.fromstring(text.encode('utf-8') if isinstance(text, str) else text, parser)
    except etree.XMLSyntaxError as exc:
        raise StorageError('INVALID_ARGUMENT', '%s is not well-formed: %s' % (what, exc))


def to_string(element):
    return etree.tostring(element, encoding='unicode', pretty_print=True)


def element(tag, attrs=None, text=None):
    node = etree.Element(tag)
    _fill(node, attrs, text)
    return node


def sub(parent, tag, attrs=None, text=None):
    """Append a child; attributes whose value is None are left out."""
    node = etree.SubElement(parent, tag)
    _fill(node, attrs, text)
    return node


def _fill(node, attrs, text):
    for key, value in (attrs or {}).items():
        if value is not None:
            node.set(key, str(value))
    if text is not None:
        node.text = str(text)


def text_of(node, path, default=None):
    found = node.find(path) if node is not None else None
    if found is None or found.text is None:
        return default
    return found.text.strip()


def attr_of(node, path, name, default=None):
    found = node.find(path) if node is not None else None
    if found is None:
        return default
    return found.get(name, default)


def is_subset(wanted, actual):
    """True when every attribute, text and child of `wanted` is also in `actual`.

    libvirt adds defaults (uuid, permissions, ports) to what it stores, so a definition
    is unchanged when what the user asked for is contained in what libvirt holds.
    Runtime values (capacity, allocation, available) are ignored.
    """
    if wanted.tag != actual.tag:
        return False
    for key, value in wanted.attrib.items():
        if actual.get(key) != value:
            return False
    wanted_text = (wanted.text or '').strip()
    if wanted_text and wanted_text != (actual.text or '').strip():
        return False
    unused = [child for child in actual if isinstance(child.tag, str)]
    for child in wanted:
        if not isinstance(child.tag, str) or child.tag in RUNTIME_ELEMENTS:
            continue
        match = next((candidate for candidate in unused if is_subset(child, candidate)), None)
        if match is None:
            return False
        unused.remove(match)
    return True
