"""The MCS tables: the K=7 family unchanged, the LDPC family complete and addressable."""

import pytest

from radio import ldpc
from radio.errors import RadioError
from radio.mcs import LDPC_MCS_TABLE, MCS_TABLE, by_index, by_name, family_table, ldpc_code


def test_conv_family_keeps_its_indices_and_names():
    assert [m.index for m in MCS_TABLE] == list(range(8))
    assert [m.name for m in MCS_TABLE][:2] == ["bpsk-1/4", "bpsk-1/2"]
    assert all(m.family == "conv" and m.code_n == 0 for m in MCS_TABLE)
    assert by_index(3) is MCS_TABLE[3]


def test_ldpc_family_spans_bpsk_quarter_to_256qam_five_sixths():
    assert [m.index for m in LDPC_MCS_TABLE] == list(range(16, 31))
    assert LDPC_MCS_TABLE[0].name == "ldpc-bpsk-1/4" and LDPC_MCS_TABLE[0].code_rate == pytest.approx(0.25)
    assert LDPC_MCS_TABLE[-1].name == "ldpc-256qam-5/6"
    assert LDPC_MCS_TABLE[-1].info_bits_per_symbol == pytest.approx(8 * 5 / 6)
    rates = [m.info_bits_per_symbol for m in LDPC_MCS_TABLE]
    assert rates == sorted(rates) and len(set(rates)) == len(rates)  # strictly increasing, no duplicates
    for m in LDPC_MCS_TABLE:
        c = ldpc_code(m)
        assert isinstance(c, ldpc.LdpcCode) and c.n == 1944 and c.n % m.bits_per_symbol == 0
        assert by_name(m.name) is m and by_index(m.index, "ldpc") is m and family_table("ldpc")[m.index - 16] is m


def test_bad_lookups_name_the_problem():
    with pytest.raises(RadioError, match="ldpc MCS index 8 outside 16..30"):
        by_index(8, "ldpc")
    with pytest.raises(RadioError, match="unknown MCS family 'turbo'"):
        family_table("turbo")
    with pytest.raises(RadioError, match="not an LDPC MCS"):
        ldpc_code(MCS_TABLE[2])
    with pytest.raises(RadioError, match="unknown MCS 'ldpc-8psk-1/2'"):
        by_name("ldpc-8psk-1/2")
