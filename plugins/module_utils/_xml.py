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
    try:
        for key, value in (attrs or {}).items():
            if value is not None:
                node.set(key, str(value))
        if text is not None:
            node.text = str(text)
    except ValueError as exc:
        # lxml refuses control characters and other text XML 1.0 cannot hold
        raise StorageError('INVALID_ARGUMENT', 'a value of <%s> cannot be written to XML (%s): %r'
                           % (node.tag, exc, text if text is not None else attrs))


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


def same_tree(left, right, ignore=RUNTIME_ELEMENTS):
    """Structural equality of two elements (tags, attributes, stripped text, children in
    order), skipping children whose tag is in `ignore`."""
    if left.tag != right.tag or dict(left.attrib) != dict(right.attrib):
        return False
    if (left.text or '').strip() != (right.text or '').strip():
        return False
    left_children = [child for child in left if isinstance(child.tag, str) and child.tag not in ignore]
    right_children = [child for child in right if isinstance(child.tag, str) and child.tag not in ignore]
    return len(left_children) == len(right_children) and all(
        same_tree(a, b, ignore) for a, b in zip(left_children, right_children))
