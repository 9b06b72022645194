"""Diameter decoder and peer state machine under garbage and mutated CCR/CCA/UDR/UDA/CER.

``codec.decode`` may raise only ``codec.DiameterError``; what decodes re-encodes and decodes again; a
responder ``PeerConnection`` turns any byte stream into events (errors answered or the connection closed),
never an exception.
"""

from __future__ import annotations

import struct

import fuzz_corpus as corpus
import fuzz_targets as ft
import pytest
from fuzz_strategies import RUNS, fuzz_settings, ops
from hypothesis import given
from hypothesis import strategies as st

from secondnum.diameter import codec

SEEDS = ft.diameter_seeds()


def _fix_length(data: bytes, fix: bool) -> bytes:
    """Optionally make the header's length field match, so that mutations reach the AVP decoder."""
    if fix and len(data) >= 4:
        return data[:1] + len(data).to_bytes(3, "big") + data[4:]
    return data


mutated = st.builds(
    lambda seed, o, fix: _fix_length(ft.apply_ops(seed, o, SEEDS, corpus.DIAMETER_TOKENS), fix),
    st.sampled_from(SEEDS), ops, st.booleans())


@pytest.mark.parametrize("seed", SEEDS, ids=["CCR-I", "CCR-T", "CCA", "UDR", "UDA", "CER"])
def test_seeds_are_valid(seed: bytes) -> None:
    assert ft.diameter_message(seed) == "ok"


@fuzz_settings(400)
@given(st.binary(max_size=400))
def test_garbage(data: bytes) -> None:
    RUNS["diameter_codec.garbage"] += 1
    ft.diameter_message(data)


@fuzz_settings(300)
@given(st.binary(max_size=400).map(lambda b: b + b"\0" * (-len(b) % 4)))
def test_garbage_behind_a_valid_header(body: bytes) -> None:
    RUNS["diameter_codec.garbage_body"] += 1
    head = struct.pack("!IIIII", (1 << 24) | (20 + len(body)), (0x80 << 24) | 272, 4, 1, 2)
    ft.diameter_message(head + body)


@fuzz_settings(1500)
@given(mutated)
def test_mutated_ccr_cca_udr(data: bytes) -> None:
    RUNS["diameter_codec.mutated"] += 1
    ft.diameter_message(data)


@fuzz_settings(500)
@given(mutated, st.integers(0, 2**16))
def test_peer_state_machine(data: bytes, split: int) -> None:
    RUNS["diameter_peer"] += 1
    ft.diameter_peer(data, split)


@pytest.mark.parametrize("size", [0, 5, 19])
def test_short_input_raises_diameter_error(size: int) -> None:
    with pytest.raises(codec.DiameterError):
        codec.decode(bytes(size))
