"""SIP parser, stream framing and transaction layer under garbage and mutated IMS messages.

Properties: only :class:`SipParseError` (and its subclass ``BadHeaderError``) leaves the parser and the typed
accessors; what parsed re-encodes into something that parses; the transaction layer, fed through the same
checks as :class:`SipEndpoint`, keeps no transaction, 2xx-ACK entry or timer once every timer has run out.
"""

from __future__ import annotations

import fuzz_corpus as corpus
import fuzz_targets as ft
import pytest
from fuzz_strategies import RUNS, fuzz_settings, mutated
from hypothesis import given
from hypothesis import strategies as st

SIP = mutated(corpus.SIP_SEEDS, corpus.SIP_TOKENS)


@pytest.mark.parametrize("seed", corpus.SIP_SEEDS, ids=lambda s: s.split(b" ", 1)[0].decode())
def test_seeds_are_valid(seed: bytes) -> None:
    assert ft.sip_message(seed) == "ok"


@fuzz_settings(400)
@given(st.binary(max_size=1500))
def test_garbage(data: bytes) -> None:
    RUNS["sip_parser.garbage"] += 1
    ft.sip_message(data)


@fuzz_settings(1500)
@given(SIP)
def test_mutated_ims_messages(data: bytes) -> None:
    RUNS["sip_parser.mutated"] += 1
    ft.sip_message(data)


@fuzz_settings(300)
@given(st.lists(SIP, min_size=1, max_size=4), st.lists(st.integers(1, 300), max_size=12))
def test_stream_framing(messages: list[bytes], cuts: list[int]) -> None:
    RUNS["sip_stream"] += 1
    ft.sip_stream(b"".join(messages), cuts)


DATAGRAM = st.one_of(st.sampled_from(corpus.SIP_SEEDS), SIP)


@fuzz_settings(400)
@given(st.lists(DATAGRAM, min_size=1, max_size=12),
       st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=12))
def test_transaction_layer_leaks_nothing(datagrams: list[bytes], choices: list[int]) -> None:
    RUNS["sip_transactions"] += 1
    ft.sip_transactions(datagrams, choices)


def test_transaction_layer_clean_dialog_leaks_nothing() -> None:
    """The unmutated flow (INVITE, retransmission, CANCEL, ACK, BYE, responses) ends with empty tables."""
    seq = [corpus.INVITE, corpus.INVITE, corpus.RESP_180, corpus.CANCEL, corpus.ACK_NON2XX, corpus.RESP_200,
           corpus.RESP_200, corpus.BYE, corpus.RESP_OPT_200, corpus.OPTIONS, corpus.REFER, corpus.NOTIFY]
    assert ft.sip_transactions(seq, [0, 1 << 4, 2 << 4, 3 << 4, 0, 0, 0, 0xFFF0, 0, 0x30, 0x20, 0x10]) == "ok"
