# -*- coding: utf-8 -*-
# Copyright (c) 2026 virtops.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""SCSI data a LUN returns, read the same way whichever transport fetched it.

The kernel transport reads the raw pages from sysfs (vpd_pg83, vpd_pg80, vendor, model,
size); the qemu transport asks the target itself through libiscsi. Both hand the bytes to
these functions, so one LUN has one WWID, size, serial on both.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import struct

# designator types of VPD page 0x83 (SPC-4 7.8.6)
T10_VENDOR, EUI64, NAA, SCSI_NAME = 1, 2, 3, 8
ASSOCIATION_LUN = 0


def designators(page):
    """(code_set, association, type, bytes) of each designator of a VPD page 0x83, read
    only within the page length the page declares."""
    if len(page) < 4 or page[1] != 0x83:
        return []
    page = page[:4 + struct.unpack('>H', page[2:4])[0]]
    found = []
    offset = 4
    while offset + 4 <= len(page):
        length = page[offset + 3]
        body = page[offset + 4:offset + 4 + length]
        if len(body) < length:
            break  # a designator running past the page is no identity
        found.append((page[offset] & 0x0f, (page[offset + 1] >> 4) & 0x03, page[offset + 1] & 0x0f, bytes(body)))
        offset += 4 + length
    return found


NAA_LENGTHS = {6: (16,), 5: (8,), 2: (8,), 3: (8,)}


def _priority(kind, body):
    """How much multipath trusts a designator of the LUN (multipath-tools 0.9, which matches
    udev's 55-scsi-sg3_id.rules): higher wins, the first of equal rank wins; malformed
    designators count for nothing."""
    if kind == NAA and body:
        naa = body[0] >> 4
        if len(body) not in NAA_LENGTHS.get(naa, ()):
            return -1
        return {6: 8, 5: 7, 2: 6, 3: 1}[naa]
    if kind == EUI64:
        return 4 if len(body) in (8, 12, 16) else -1
    if kind == SCSI_NAME:
        return 3 if body[:4] in (b'eui.', b'naa.', b'iqn.') else -1
    if kind == T10_VENDOR:
        return 2 if len(body) >= 8 else -1
    return -1


def wwid_from_page83(page):
    """The WWID a Linux host shows for the LUN (udev's ID_SERIAL, which multipath uses):
    "3" + NAA hex, "2" + EUI-64 hex, "8" + SCSI name string, "1" + T10 vendor id (runs of
    blanks joined by "_"). None when the page names the LUN by nothing usable."""
    best, best_priority = None, 0
    for _code_set, association, kind, body in designators(page):
        if association != ASSOCIATION_LUN:
            continue
        priority = _priority(kind, body)
        if priority > best_priority:
            best, best_priority = (kind, body), priority
    if best is None:
        return None
    kind, body = best
    if kind in (NAA, EUI64):
        return '%d%s' % (kind, body.hex())
    text = body.split(b'\0', 1)[0].decode('ascii', 'replace')
    if kind == SCSI_NAME:
        return '8' + text
    words = text.split()
    return '1' + '_'.join(words) if words else None


def naa_of(wwid):
    """The NAA identifier in hex when the WWID is one ("3..."), else None: udev names the
    LUN's /dev/disk/by-id/wwn-0x<naa> link after it."""
    if wwid and wwid[0] == '3' and len(wwid) in (17, 33) and all(c in '0123456789abcdef' for c in wwid[1:]):
        return wwid[1:]
    return None


def serial_from_page80(page):
    """The unit serial number (VPD page 0x80), blanks around it removed; None if empty."""
    if len(page) < 4 or page[1] != 0x80:
        return None
    length = struct.unpack('>H', page[2:4])[0]
    text = page[4:4 + length].rstrip(b'\0').decode('ascii', 'replace').strip()
    return text or None


def standard_inquiry(data):
    """(peripheral device type, vendor, model, revision) of a standard INQUIRY answer."""
    if len(data) < 36:
        return None, None, None, None

    def text(chunk):
        return chunk.rstrip(b'\0').decode('ascii', 'replace').strip() or None
    return data[0] & 0x1f, text(data[8:16]), text(data[16:32]), text(data[32:36])


def capacity16(data):
    """Size in bytes from a READ CAPACITY(16) answer: (last LBA + 1) x block length."""
    if len(data) < 12:
        return None
    last_lba, block = struct.unpack('>QI', data[:12])
    return (last_lba + 1) * block


def report_luns(data):
    """LUN numbers of a REPORT LUNS answer, as libiscsi, QEMU (iscsi://.../<lun>) and Linux
    (H:C:T:L) number them: the first two bytes of the 8-byte LUN, so flat-addressed LUN 256
    is 16640 everywhere. Entries of other addressing methods are skipped."""
    if len(data) < 8:
        return []
    length = struct.unpack('>I', data[:4])[0]
    luns = []
    for offset in range(8, min(len(data), 8 + length), 8):
        entry = data[offset:offset + 8]
        if len(entry) < 2:
            break
        if entry[0] >> 6 in (0, 1):  # peripheral and flat addressing
            luns.append((entry[0] << 8) | entry[1])
    return luns


DISK_TYPES = (0x00,)  # direct-access block devices: what a VM can use as a disk
