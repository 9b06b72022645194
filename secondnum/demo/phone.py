"""A real SIP phone with audio (pjsua2, null sound device), run as a subprocess by ``secondnum demo``.

pjsua2 runs in its own process because it is a C library with global state that aborts on an unclean
shutdown; a subprocess keeps the demo's asyncio loop and exit code independent of it.

Usage: ``python -m secondnum.demo.phone '<json plan>'``. The plan:

* ``target``: Request-URI (``tel:+42027777100``); ``from``: our identity (a SIP or tel URI);
* ``proxies``: Route set for the INVITE (here: the AS, then the S-CSCF's ``odi`` entry, as an S-CSCF
  forwards an initial request to an AS on ISC, TS 24.229 §5.4.3.3);
* ``headers``: extra headers (P-Asserted-Identity, P-Served-User, P-Charging-Vector);
* ``record``: WAV file of everything heard (8 kHz, 16-bit mono);
* ``play``: ``{"wav": path, "at": seconds}`` plays a WAV into the call;
* ``dtmf``: ``[{"at": seconds, "digits": "1"}]`` (RFC 4733 telephone-events);
* ``hangup_at``: seconds; ``hangup_after_reinvite``: seconds after the far end re-INVITEs us with new media
  (flow C: the AS connects us to the called party); ``max_seconds``: give up.

Times count from the moment media becomes active. Prints one JSON line with what happened.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import pjsua2 as pj


class Call(pj.Call):  # type: ignore[misc]
    def __init__(self, acc: pj.Account) -> None:
        super().__init__(acc)
        self.record_path = ""
        self.media_at: float | None = None
        self.media_updates = 0
        self.reinvited_at: float | None = None
        self.connected = False
        self.disconnected = False
        self.last_status = 0
        self.recorder: pj.AudioMediaRecorder | None = None
        self.players: list[pj.AudioMediaPlayer] = []
        self.audio: pj.AudioMedia | None = None

    def onCallState(self, prm: pj.OnCallStateParam) -> None:  # noqa: N802 (pjsua2 callback)
        ci = self.getInfo()
        self.last_status = int(ci.lastStatusCode)
        if ci.state == pj.PJSIP_INV_STATE_CONFIRMED:
            self.connected = True
        if ci.state == pj.PJSIP_INV_STATE_DISCONNECTED:
            self.disconnected = True

    def onCallMediaState(self, prm: pj.OnCallMediaStateParam) -> None:  # noqa: N802
        ci = self.getInfo()
        for i, mi in enumerate(ci.media):
            if mi.type == pj.PJMEDIA_TYPE_AUDIO and mi.status == pj.PJSUA_CALL_MEDIA_ACTIVE:
                self.audio = self.getAudioMedia(i)
                self.media_updates += 1
                if self.recorder is None:
                    self.recorder = pj.AudioMediaRecorder()
                    self.recorder.createRecorder(self.record_path)
                self.audio.startTransmit(self.recorder)
                for player in self.players:
                    player.startTransmit(self.audio)
                if self.media_at is None:
                    self.media_at = time.monotonic()
                elif self.reinvited_at is None:
                    self.reinvited_at = time.monotonic()

    def play(self, path: str) -> None:
        player = pj.AudioMediaPlayer()
        player.createPlayer(path, pj.PJMEDIA_FILE_NO_LOOP)
        self.players.append(player)
        if self.audio is not None:
            player.startTransmit(self.audio)

    def dtmf(self, digits: str) -> None:
        prm = pj.CallSendDtmfParam()
        prm.digits = digits
        prm.method = pj.PJSUA_DTMF_METHOD_RFC2833
        self.sendDtmf(prm)


def make_endpoint(user_agent: str = "secondnum-demo-phone") -> pj.Endpoint:
    """A started pjsua2 endpoint for scripted calls: no sound device, 8 kHz, one UDP transport on 127.0.0.1.

    Single-threaded (the caller polls ``libHandleEvents``); no VAD or echo canceller, so what is recorded is
    what was received.
    """
    ep = pj.Endpoint()
    ep.libCreate()
    cfg = pj.EpConfig()
    cfg.uaConfig.threadCnt = 0
    cfg.uaConfig.mainThreadOnly = True
    cfg.uaConfig.userAgent = user_agent
    cfg.logConfig.level = 1
    cfg.logConfig.consoleLevel = 1
    cfg.medConfig.clockRate = 8000
    cfg.medConfig.sndClockRate = 8000
    cfg.medConfig.noVad = True
    cfg.medConfig.ecTailLen = 0
    ep.libInit(cfg)
    ep.audDevManager().setNullDev()
    tcfg = pj.TransportConfig()
    tcfg.port = 0
    tcfg.boundAddress = "127.0.0.1"
    ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, tcfg)
    ep.libStart()
    return ep


def run(plan: dict[str, Any]) -> dict[str, Any]:
    ep = make_endpoint()
    acc = pj.Account()
    acfg = pj.AccountConfig()
    acfg.idUri = plan["from"]
    for proxy in plan.get("proxies", []):
        acfg.sipConfig.proxies.append(proxy)
    acfg.mediaConfig.transportConfig.boundAddress = "127.0.0.1"
    acfg.mediaConfig.transportConfig.port = int(plan.get("rtp_port", 0))
    acc.create(acfg)
    call = Call(acc)
    call.record_path = plan["record"]
    prm = pj.CallOpParam(True)
    for name, value in plan.get("headers", {}).items():
        header = pj.SipHeader()
        header.hName = name
        header.hValue = value
        prm.txOption.headers.append(header)
    result: dict[str, Any] = {"connected": False, "last_status": 0, "disconnected_by_remote": False,
                              "reinvited": False, "dtmf_sent": "", "media_seconds": 0.0}
    call.makeCall(plan["target"], prm)
    started = time.monotonic()
    pending_dtmf = sorted(plan.get("dtmf", []), key=lambda s: float(s["at"]))
    play = plan.get("play")
    hangup_at = plan.get("hangup_at")
    after_reinvite = plan.get("hangup_after_reinvite")
    we_hung_up = False
    while not call.disconnected and time.monotonic() - started < float(plan.get("max_seconds", 90)):
        ep.libHandleEvents(20)
        if call.media_at is None:
            continue
        t = time.monotonic() - call.media_at
        if play is not None and t >= float(play["at"]):
            call.play(play["wav"])
            play = None
        while pending_dtmf and t >= float(pending_dtmf[0]["at"]):
            digits = str(pending_dtmf.pop(0)["digits"])
            call.dtmf(digits)
            result["dtmf_sent"] += digits
        due = hangup_at is not None and t >= float(hangup_at)
        if call.reinvited_at is not None and after_reinvite is not None:
            due = due or time.monotonic() - call.reinvited_at >= float(after_reinvite)
        if due and not we_hung_up:
            we_hung_up = True
            call.hangup(pj.CallOpParam(True))
    if not call.disconnected:
        we_hung_up = True
        call.hangup(pj.CallOpParam(True))
        end = time.monotonic() + 5
        while not call.disconnected and time.monotonic() < end:
            ep.libHandleEvents(20)
    if call.media_at is not None:
        result["media_seconds"] = round(time.monotonic() - call.media_at, 2)
    result["connected"] = call.connected
    result["last_status"] = call.last_status
    result["disconnected_by_remote"] = not we_hung_up
    result["reinvited"] = call.reinvited_at is not None
    # pjsua2 asserts at libDestroy() if Call objects outlive it: drop them first.
    call.players.clear()
    call.recorder = None
    del call
    acc.shutdown()
    ep.libDestroy()
    return result


def main() -> int:
    plan = json.loads(sys.argv[1])
    print(json.dumps(run(plan)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
