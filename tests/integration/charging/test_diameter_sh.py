"""The shared node carries Sh (vendor-specific application 16777217) with python-diameter's classes."""

from __future__ import annotations

import struct

from diameter.message import Message
from diameter.message.commands import UserDataAnswer, UserDataRequest

from secondnum.diameter import DiameterNode, PeerConfig, PeerInfo, codec
from secondnum.diameter import constants as dc


async def test_udr_uda_round_trip_with_library_classes() -> None:
    hss = DiameterNode("hss.test", "test", (dc.APP_SH,))
    seen: list[bytes] = []

    def on_udr(req: Message, peer: PeerInfo) -> Message:
        seen.append(codec.encode(req))
        uda = UserDataAnswer()
        uda.header.hop_by_hop_identifier = req.header.hop_by_hop_identifier
        uda.header.end_to_end_identifier = req.header.end_to_end_identifier
        uda.session_id = codec.value(req.avps, dc.AVP_SESSION_ID)
        uda.result_code = dc.SUCCESS
        uda.auth_session_state = 1
        uda.user_data = b"<Sh-Data/>"
        return uda

    hss.register_handler(dc.APP_SH, dc.CMD_USER_DATA, on_udr)
    await hss.start(listen=("127.0.0.1", 0))
    as_node = DiameterNode("as.test", "test", (dc.APP_RO, dc.APP_SH))
    as_node.add_peer(PeerConfig("hss.test", "test", "127.0.0.1", hss.listen_port))
    await as_node.start()
    try:
        await as_node.wait_for_peer(host="hss.test", timeout=10)
        udr = UserDataRequest()
        udr.session_id = "as.test;1;1"
        udr.auth_session_state = 1
        udr.data_reference = [0]
        ans = await as_node.send_request(udr, "test")
        assert codec.result_code(ans) == dc.SUCCESS
        assert ans.header.application_id == dc.APP_SH
        ud = codec.first(ans.avps, dc.AVP_3GPP_USER_DATA_SH, dc.VENDOR_3GPP)
        assert ud is not None and ud.value == b"<Sh-Data/>"
        req = codec.decode(seen[0])
        assert struct.unpack_from("!I", seen[0], 8)[0] == dc.APP_SH
        assert [a.code for a in req.avps].count(dc.AVP_ORIGIN_HOST) == 1
        assert req.avps[0].code == dc.AVP_SESSION_ID
        assert [a.code for a in ans.avps].count(dc.AVP_ORIGIN_HOST) == 1
    finally:
        await as_node.stop()
        await hss.stop()
