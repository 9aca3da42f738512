# -*- coding: utf-8 -*-
"""What a LUN answers, decoded the way a Linux host names it.

VPD page 0x83 pages are built byte by byte (SPC-4 7.8.6): a 4-byte page header (peripheral
byte, page code, page length) and designators of 4 header bytes (protocol id | code set,
PIV | association | designator type, reserved, length) plus the identifier. The WWID rule is
multipath's parse_vpd_pg83 (libmultipath/discovery.c), which udev's 55-scsi-sg3_id.rules
agree with: among the designators associated with the LUN (association 0),
NAA 6 > NAA 5 > NAA 2 > EUI-64 > SCSI name string (eui./naa./iqn.) > T10 vendor id > NAA 3,
the first of equal rank winning.
"""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import itertools
import struct

import pytest

from ansible_collections.virtops.storage.plugins.module_utils import _scsi

T10, EUI64, NAA, NAME = 1, 2, 3, 8
BINARY, ASCII, UTF8 = 1, 2, 3


def designator(kind, body, association=0, code_set=None, piv=False, protocol=0):
    """One designator: header bytes then the identifier."""
    if code_set is None:
        code_set = UTF8 if kind == NAME else ASCII if kind == T10 else BINARY
    return bytes([(protocol << 4) | code_set, (0x80 if piv else 0) | (association << 4) | kind, 0,
                  len(body)]) + body


def page83(*designators, **kwargs):
    """A VPD page 0x83 holding `designators`; `length` overrides the page length field,
    `trailing` is appended after the page, `code` replaces the page code."""
    body = b''.join(designators)
    length = kwargs.get('length', len(body))
    return bytes([0, kwargs.get('code', 0x83)]) + struct.pack('>H', length) + body + kwargs.get('trailing', b'')


# identifiers used below: NAA hex by type, EUI-64, T10, names
NAA6 = bytes.fromhex('6001405a1b2c3d4e5f60718293a4b5c6')
NAA5 = bytes.fromhex('5000c500a1b2c3d4')
NAA2 = bytes.fromhex('2000001b32a1b2c3')
NAA3 = bytes.fromhex('3000000100000001')
EUI = bytes.fromhex('0123456789abcdef')
T10_ID = b'LIO-ORG IBLOCK          4f3a1c2d'
IQN_NAME = b'iqn.2003-01.org.example:storage.lun1\0\0\0\0'

EXPECTED = {
    'naa6': '3' + NAA6.hex(),
    'naa5': '3' + NAA5.hex(),
    'naa2': '3' + NAA2.hex(),
    'naa3': '3' + NAA3.hex(),
    'eui64': '2' + EUI.hex(),
    'name': '8iqn.2003-01.org.example:storage.lun1',
    't10': '1LIO-ORG_IBLOCK_4f3a1c2d',
}
DESIGNATORS = {
    'naa6': designator(NAA, NAA6),
    'naa5': designator(NAA, NAA5),
    'naa2': designator(NAA, NAA2),
    'naa3': designator(NAA, NAA3),
    'eui64': designator(EUI64, EUI),
    'name': designator(NAME, IQN_NAME),
    't10': designator(T10, T10_ID),
}
# best first, as multipath ranks them (prio 8, 7, 6, 4, 3, 2, 1)
RANKING = ['naa6', 'naa5', 'naa2', 'eui64', 'name', 't10', 'naa3']

# the lab's tgtd LUN (scsi_id=virtops-open-lun1): T10 vendor id, NAA 3, NAA 6
TGTD_PAGE = bytes.fromhex(
    '0083004802010024766972746f70732d6f70656e2d6c756e3100000000000000000000000000000000000000010300083000000100000001'
    '010300106000000000000000000000000e000001')


# ---------------------------------------------------------------------------------------
# the lab fixture
def test_tgtd_page_layout():
    """Checked by hand: 4 + (4 + 36) + (4 + 8) + (4 + 16) = 76 bytes, page length 0x48."""
    assert len(TGTD_PAGE) == 76 and TGTD_PAGE[1] == 0x83 and struct.unpack('>H', TGTD_PAGE[2:4])[0] == 72
    assert _scsi.designators(TGTD_PAGE) == [
        (ASCII, 0, T10, b'virtops-open-lun1' + b'\0' * 19),
        (BINARY, 0, NAA, bytes.fromhex('3000000100000001')),
        (BINARY, 0, NAA, bytes.fromhex('6000000000000000000000000e000001')),
    ]


def test_tgtd_page_wwid_is_the_naa6_designator():
    assert _scsi.wwid_from_page83(TGTD_PAGE) == '36000000000000000000000000e000001'


# ---------------------------------------------------------------------------------------
# each designator type on its own
@pytest.mark.parametrize('name', sorted(EXPECTED))
def test_each_designator_type_alone(name):
    assert _scsi.wwid_from_page83(page83(DESIGNATORS[name])) == EXPECTED[name]


@pytest.mark.parametrize('size', [8, 12, 16])
def test_eui64_of_every_length_is_hex(size):
    body = bytes(range(0xa0, 0xa0 + size))
    assert _scsi.wwid_from_page83(page83(designator(EUI64, body))) == '2' + body.hex()


def test_naa_hex_is_lowercase():
    body = bytes.fromhex('600A0B80002F7A0C000035D94F1F6B2E')
    assert _scsi.wwid_from_page83(page83(designator(NAA, body))) == '3600a0b80002f7a0c000035d94f1f6b2e'


def test_piv_and_protocol_bits_do_not_change_the_association():
    """PIV=1 with a protocol identifier (iSCSI = 5) on a LUN designator: still the LUN's."""
    page = page83(designator(T10, T10_ID), designator(NAA, NAA6, piv=True, protocol=5))
    assert _scsi.wwid_from_page83(page) == EXPECTED['naa6']


# ---------------------------------------------------------------------------------------
# preference
PAIRS = [(better, worse) for better, worse in itertools.combinations(RANKING, 2)
         if (better, worse) != ('eui64', 'name')]


@pytest.mark.parametrize('better,worse', PAIRS)
@pytest.mark.parametrize('better_first', [True, False], ids=['better-first', 'better-last'])
def test_preference_whatever_the_order(better, worse, better_first):
    parts = [DESIGNATORS[better], DESIGNATORS[worse]]
    if not better_first:
        parts.reverse()
    assert _scsi.wwid_from_page83(page83(*parts)) == EXPECTED[better]


@pytest.mark.parametrize('eui_first', [True, False], ids=['eui-first', 'name-first'])
def test_eui64_beats_scsi_name_string(eui_first):
    parts = [DESIGNATORS['eui64'], DESIGNATORS['name']]
    if not eui_first:
        parts.reverse()
    assert _scsi.wwid_from_page83(page83(*parts)) == EXPECTED['eui64']


def test_every_kind_together_picks_naa6():
    parts = [DESIGNATORS[name] for name in reversed(RANKING)]
    assert _scsi.wwid_from_page83(page83(*parts)) == EXPECTED['naa6']


@pytest.mark.parametrize('first', ['t10', 'naa3'])
def test_naa3_loses_to_t10(first):
    other = 'naa3' if first == 't10' else 't10'
    assert _scsi.wwid_from_page83(page83(DESIGNATORS[first], DESIGNATORS[other])) == EXPECTED['t10']


def test_naa3_alone_is_used():
    assert _scsi.wwid_from_page83(page83(DESIGNATORS['naa3'])) == EXPECTED['naa3']


@pytest.mark.parametrize('association', [1, 2])
def test_only_lun_association_counts(association):
    """An NAA 6 of the target port (1) or target device (2) is not the LUN's name."""
    page = page83(designator(NAA, NAA6, association=association), DESIGNATORS['t10'])
    assert _scsi.wwid_from_page83(page) == EXPECTED['t10']
    assert _scsi.wwid_from_page83(page83(designator(NAA, NAA6, association=association))) is None


def test_target_port_designators_of_an_iscsi_target_are_ignored():
    """What an iSCSI target adds: relative target port (type 4), target port group (5),
    target port name (SCSI name, association 1) and target name (association 2)."""
    page = page83(designator(4, b'\0\0\0\x01', association=1),
                  designator(5, b'\0\0\0\x01', association=1),
                  designator(NAME, b'iqn.2003-01.org.example:t1,t,0x0001\0', association=1),
                  designator(NAME, b'iqn.2003-01.org.example:t1\0\0', association=2),
                  DESIGNATORS['t10'])
    assert _scsi.wwid_from_page83(page) == EXPECTED['t10']


@pytest.mark.parametrize('kind,first,second', [
    (NAA, NAA6, bytes.fromhex('6001405ffffffffffffffffffffffff0')),
    (NAA, NAA5, bytes.fromhex('5000c500ffffffff')),
    (EUI64, EUI, bytes.fromhex('fedcba9876543210')),
    (T10, T10_ID, b'LIO-ORG IBLOCK          99999999'),
], ids=['naa6', 'naa5', 'eui64', 't10'])
def test_equal_priority_first_wins(kind, first, second):
    first_only = _scsi.wwid_from_page83(page83(designator(kind, first)))
    assert _scsi.wwid_from_page83(page83(designator(kind, first), designator(kind, second))) == first_only


def test_unknown_naa_type_and_other_designators_name_nothing():
    page = page83(designator(NAA, bytes.fromhex('1000000000000001')), designator(0, b'vendor-specific'),
                  designator(7, bytes(16)), designator(6, b'\0\0\0\x01'))
    assert _scsi.wwid_from_page83(page) is None


def test_scsi_name_without_a_known_prefix_is_ignored():
    page = page83(designator(NAME, b'storage-lun-1\0\0\0'), DESIGNATORS['naa3'])
    assert _scsi.wwid_from_page83(page) == EXPECTED['naa3']
    assert _scsi.wwid_from_page83(page83(designator(NAME, b'IQN.2003-01.org.example:x\0\0\0'))) is None


# ---------------------------------------------------------------------------------------
# malformed pages
def test_truncated_designator_is_no_identity_but_earlier_ones_count():
    """The NAA 6 says 16 bytes; the buffer (and the page length) ends after 8 of them."""
    whole = page83(DESIGNATORS['t10'], DESIGNATORS['naa6'])
    cut = whole[:-8]
    cut = cut[:2] + struct.pack('>H', len(cut) - 4) + cut[4:]
    assert _scsi.wwid_from_page83(cut) == EXPECTED['t10']
    assert _scsi.wwid_from_page83(whole[:-8]) == EXPECTED['t10']  # page length says more than the buffer holds


def test_page_length_shorter_than_the_buffer_ignores_trailing_garbage():
    """Bytes after the page length are not designators, even when they look like one."""
    page = page83(DESIGNATORS['t10'], trailing=DESIGNATORS['naa6'] + b'\xff' * 7)
    assert _scsi.wwid_from_page83(page) == EXPECTED['t10']
    assert len(_scsi.designators(page)) == 1


def test_designator_running_past_the_page_length_is_not_read_from_the_garbage():
    t10 = DESIGNATORS['t10']
    naa6 = DESIGNATORS['naa6']
    # the page length covers the T10 designator and the NAA 6 header plus 4 of its 16 bytes
    page = page83(t10, naa6, length=len(t10) + 8)
    assert _scsi.wwid_from_page83(page) == EXPECTED['t10']


@pytest.mark.parametrize('page', [
    b'', b'\x00\x83\x00', page83(DESIGNATORS['naa6'], code=0x80), page83(DESIGNATORS['naa6'], code=0x00),
    page83(), page83(length=0, trailing=DESIGNATORS['naa6']),
], ids=['empty', 'short-header', 'page-0x80', 'page-0x00', 'no-designators', 'zero-length'])
def test_pages_that_name_nothing(page):
    assert _scsi.wwid_from_page83(page) is None


def test_designators_of_a_wrong_page_code_are_none():
    assert _scsi.designators(page83(DESIGNATORS['naa6'], code=0x80)) == []


@pytest.mark.parametrize('page,expected', [
    (page83(designator(NAA, NAA6[:8]), DESIGNATORS['t10']), EXPECTED['t10']),
    (page83(designator(NAA, NAA5 + b'\0' * 8), DESIGNATORS['t10']), EXPECTED['t10']),
    (page83(designator(EUI64, EUI[:4]), DESIGNATORS['t10']), EXPECTED['t10']),
    (page83(designator(T10, b'ABCD'), DESIGNATORS['naa3']), EXPECTED['naa3']),
], ids=['naa6-8-bytes', 'naa5-16-bytes', 'eui64-4-bytes', 't10-4-bytes'])
def test_designators_of_invalid_length_are_skipped(page, expected):
    assert _scsi.wwid_from_page83(page) == expected


# ---------------------------------------------------------------------------------------
# T10 vendor id
@pytest.mark.parametrize('body,expected', [
    (b'LIO-ORG IBLOCK          4f3a1c2d', '1LIO-ORG_IBLOCK_4f3a1c2d'),
    (b'IET     VIRTUAL-DISK    beaf10   ', '1IET_VIRTUAL-DISK_beaf10'),
    (b'IET     VIRTUAL-DISK    beaf10\0\0\0\0', '1IET_VIRTUAL-DISK_beaf10'),
    (b'IET     a b  c   d', '1IET_a_b_c_d'),
    (b'NOSPACESATALL', '1NOSPACESATALL'),
], ids=['lio', 'trailing-blanks', 'trailing-nuls', 'many-runs', 'no-blank'])
def test_t10_vendor_id_blank_runs_become_one_underscore(body, expected):
    assert _scsi.wwid_from_page83(page83(designator(T10, body))) == expected


def test_t10_vendor_id_of_blanks_only_names_nothing():
    assert _scsi.wwid_from_page83(page83(designator(T10, b' ' * 8 + b'\0' * 8))) is None


# ---------------------------------------------------------------------------------------
# SCSI name strings
@pytest.mark.parametrize('body,expected', [
    (b'iqn.2003-01.org.example:storage.lun1\0\0\0\0', '8iqn.2003-01.org.example:storage.lun1'),
    (b'iqn.2003-01.org.example:Disk.A\0\0', '8iqn.2003-01.org.example:Disk.A'),
    (b'eui.0123456789ABCDEF\0\0\0\0', '8eui.0123456789ABCDEF'),
    (b'naa.6001405A1B2C3D4E5F60718293A4B5C6\0\0\0\0', '8naa.6001405A1B2C3D4E5F60718293A4B5C6'),
    (b'naa.5000C500A1B2C3D4', '8naa.5000C500A1B2C3D4'),
], ids=['iqn-padded', 'iqn-case-kept', 'eui', 'naa-32', 'naa-16-unpadded'])
def test_scsi_name_strings(body, expected):
    assert _scsi.wwid_from_page83(page83(designator(NAME, body))) == expected


def test_a_binary_naa_beats_a_naa_name_string():
    # udev (sg3 rules) and multipath both rank the binary NAA above any SCSI name string
    name = designator(NAME, b'naa.' + NAA6.hex().upper().encode() + b'\0\0\0\0')
    assert _scsi.wwid_from_page83(page83(name, DESIGNATORS['naa6'])) == '3' + NAA6.hex()
    assert _scsi.wwid_from_page83(page83(name)) == '8naa.' + NAA6.hex().upper()


# ---------------------------------------------------------------------------------------
# naa_of
@pytest.mark.parametrize('wwid,expected', [
    ('3' + NAA5.hex(), NAA5.hex()),
    ('3' + NAA6.hex(), NAA6.hex()),
    ('36000000000000000000000000e000001', '6000000000000000000000000e000001'),
    ('3' + NAA6.hex().upper(), None),
    ('3' + NAA5.hex()[:-1], None),
    ('3' + NAA6.hex() + '0', None),
    ('2' + EUI.hex(), None),
    ('1LIO-ORG_IBLOCK_4f3a1c2d', None),
    ('8iqn.2003-01.org.example:x', None),
    ('3' + 'g' * 16, None),
    ('', None),
    (None, None),
], ids=['naa-16', 'naa-32', 'tgtd', 'upper', 'short', 'long', 'eui', 't10', 'name', 'not-hex', 'empty', 'none'])
def test_naa_of(wwid, expected):
    assert _scsi.naa_of(wwid) == expected


# ---------------------------------------------------------------------------------------
# unit serial number (VPD 0x80)
def page80(serial, length=None, code=0x80, trailing=b''):
    return bytes([0, code]) + struct.pack('>H', len(serial) if length is None else length) + serial + trailing


@pytest.mark.parametrize('page,expected', [
    (page80(b'beaf10'), 'beaf10'),
    (page80(b'   beaf10   '), 'beaf10'),
    (page80(b'virtops-sn-1\0\0\0\0'), 'virtops-sn-1'),
    (page80(b'SN 0001 A'), 'SN 0001 A'),
    (page80(b'abcdef', length=3, trailing=b'garbage'), 'abc'),
    (page80(b'        '), None),
    (page80(b''), None),
    (page80(b'beaf10', code=0x83), None),
    (b'\x00\x80', None),
], ids=['plain', 'blanks', 'nuls', 'inner-blanks', 'length-short', 'blank', 'empty', 'wrong-page', 'short'])
def test_serial_from_page80(page, expected):
    assert _scsi.serial_from_page80(page) == expected


# ---------------------------------------------------------------------------------------
# standard INQUIRY
def inquiry(kind=0, vendor=b'LIO-ORG ', model=b'IBLOCK          ', revision=b'4.0 ', qualifier=0, extra=b''):
    data = bytes([(qualifier << 5) | kind, 0, 6, 2, 31 + len(extra), 0, 0, 2])
    return data + vendor.ljust(8)[:8] + model.ljust(16)[:16] + revision.ljust(4)[:4] + extra


def test_standard_inquiry_strips_padding():
    assert _scsi.standard_inquiry(inquiry()) == (0, 'LIO-ORG', 'IBLOCK', '4.0')


def test_standard_inquiry_of_the_tgtd_controller_lun():
    assert _scsi.standard_inquiry(inquiry(kind=0x0c, vendor=b'IET', model=b'Controller', revision=b'0001')) == (
        12, 'IET', 'Controller', '0001')


def test_standard_inquiry_nul_padding_and_blank_fields():
    data = inquiry(vendor=b'QEMU\0\0\0\0', model=b' ' * 16, revision=b'\0\0\0\0', extra=b'x' * 60)
    assert _scsi.standard_inquiry(data) == (0, 'QEMU', None, None)


def test_standard_inquiry_type_ignores_the_qualifier():
    assert _scsi.standard_inquiry(inquiry(kind=0, qualifier=1))[0] == 0
    assert _scsi.standard_inquiry(inquiry(kind=0x1f, qualifier=3))[0] == 0x1f


def test_standard_inquiry_too_short():
    assert _scsi.standard_inquiry(inquiry()[:35]) == (None, None, None, None)
    assert _scsi.standard_inquiry(b'') == (None, None, None, None)


# ---------------------------------------------------------------------------------------
# READ CAPACITY(16)
def capacity(last_lba, block, size=32):
    data = struct.pack('>QI', last_lba, block)
    return data + b'\0' * (size - len(data))


@pytest.mark.parametrize('last_lba,block,expected', [
    (0x1ffff, 512, 67108864),
    (0x3ffff, 4096, 1073741824),
    (0, 512, 512),
    (0xffffffffffff, 512, (0xffffffffffff + 1) * 512),  # beyond READ CAPACITY(10)'s 2 TiB
    (2097151, 520, 2097152 * 520),
])
def test_capacity16(last_lba, block, expected):
    assert _scsi.capacity16(capacity(last_lba, block)) == expected


def test_capacity16_reads_only_the_first_12_bytes():
    data = capacity(0x1ffff, 512, size=12)
    assert _scsi.capacity16(data) == 67108864
    assert _scsi.capacity16(data + b'\x01\x07' + b'\xff' * 18) == 67108864  # protection/exponent bits


def test_capacity16_short_answer():
    assert _scsi.capacity16(capacity(0x1ffff, 512)[:11]) is None
    assert _scsi.capacity16(b'') is None


# ---------------------------------------------------------------------------------------
# REPORT LUNS
def report(entries, length=None, trailing=b''):
    body = b''.join(entries)
    return struct.pack('>I', len(body) if length is None else length) + b'\0' * 4 + body + trailing


def peripheral(lun, bus=0):
    return bytes([bus & 0x3f, lun]) + b'\0' * 6


def flat(lun):
    return bytes([0x40 | (lun >> 8), lun & 0xff]) + b'\0' * 6


def test_report_luns_peripheral():
    assert _scsi.report_luns(report([peripheral(0), peripheral(1), peripheral(255)])) == [0, 1, 255]


def test_report_luns_peripheral_with_a_bus_identifier():
    assert _scsi.report_luns(report([peripheral(3, bus=1)])) == [0x0103]  # as Linux's scsilun_to_int


def test_report_luns_flat():
    """Numbered as libiscsi, QEMU's iscsi:// URIs and Linux's H:C:T:L do: the first two bytes
    of the LUN, address method bits included (flat LUN 256 is 16640)."""
    assert _scsi.report_luns(report([flat(0), flat(256), flat(300), flat(16383)])) == [
        0x4000, 16640, 0x4000 | 300, 0x7fff]


def test_report_luns_mixed_addressing_keeps_order():
    assert _scsi.report_luns(report([peripheral(0), flat(1024), peripheral(7)])) == [0, 0x4000 | 1024, 7]


def test_report_luns_skips_other_addressing_methods():
    logical_unit = bytes([0x80 | 0x01, 0x23]) + b'\0' * 6
    extended = bytes([0xc0 | 0x12, 0x34]) + b'\0' * 6
    assert _scsi.report_luns(report([peripheral(1), logical_unit, extended, peripheral(2)])) == [1, 2]


def test_report_luns_length_field_shorter_than_buffer():
    """An allocation length bigger than the list: bytes after the list length are padding."""
    data = report([peripheral(0), peripheral(1)], length=8, trailing=peripheral(9) + flat(500))
    assert _scsi.report_luns(data) == [0]


def test_report_luns_length_field_longer_than_buffer():
    assert _scsi.report_luns(report([peripheral(0), peripheral(1)], length=64)) == [0, 1]


@pytest.mark.parametrize('data', [b'', b'\0\0\0\x08\0\0\0', report([])], ids=['empty', 'short', 'no-luns'])
def test_report_luns_nothing(data):
    assert _scsi.report_luns(data) == []


def test_disk_types_is_direct_access_only():
    assert _scsi.DISK_TYPES == (0x00,)
