"""A real SIP UA (pjsua2, null sound device) calling the media server; run as a subprocess by the tests.

Usage: python pjsua_call.py '<json plan>'. The plan: ``uri``, ``record`` (WAV of everything heard),
``rtp_port``, ``max_seconds`` and ``steps``: ``{"at": s, "dtmf": "12#", "method": "rfc2833"|"info"}``,
``{"at": s, "play": "file.wav"}``, ``{"at": s, "hangup": true}``; times count from media becoming active.
Prints one JSON line: ``{"connected": bool, "last_status": int, "disconnected_by_remote": bool}``.
"""

from __future__ import annotations

import json
import sys
import time

import pjsua2 as pj

from secondnum.demo.phone import make_endpoint


class Call(pj.Call):  # type: ignore[misc]
    def __init__(self, acc: pj.Account, plan: dict) -> None:  # type: ignore[type-arg]
        super().__init__(acc)
        self.plan = plan
        self.media_at: float | None = None
        self.disconnected = False
        self.last_status = 0
        self.recorder: pj.AudioMediaRecorder | None = None
        self.players: list[pj.AudioMediaPlayer] = []
        self.audio: pj.AudioMedia | None = None

    def onCallState(self, prm: pj.OnCallStateParam) -> None:
        ci = self.getInfo()
        self.last_status = int(ci.lastStatusCode)
        if ci.state == pj.PJSIP_INV_STATE_DISCONNECTED:
            self.disconnected = True

    def onCallMediaState(self, prm: pj.OnCallMediaStateParam) -> None:
        ci = self.getInfo()
        for i, mi in enumerate(ci.media):
            if mi.type == pj.PJMEDIA_TYPE_AUDIO and mi.status == pj.PJSUA_CALL_MEDIA_ACTIVE:
                self.audio = self.getAudioMedia(i)
                if self.recorder is None:
                    self.recorder = pj.AudioMediaRecorder()
                    self.recorder.createRecorder(self.plan["record"])
                    self.audio.startTransmit(self.recorder)
                if self.media_at is None:
                    self.media_at = time.monotonic()

    def play(self, path: str) -> None:
        player = pj.AudioMediaPlayer()
        player.createPlayer(path, pj.PJMEDIA_FILE_NO_LOOP)
        assert self.audio is not None
        player.startTransmit(self.audio)
        self.players.append(player)

    def dtmf(self, digits: str, method: str) -> None:
        prm = pj.CallSendDtmfParam()
        prm.digits = digits
        prm.method = pj.PJSUA_DTMF_METHOD_SIP_INFO if method == "info" else pj.PJSUA_DTMF_METHOD_RFC2833
        self.sendDtmf(prm)


def main() -> int:
    plan = json.loads(sys.argv[1])
    ep = make_endpoint("secondnum-test-phone")
    for codec in ep.codecEnum2():
        prio = 255 if codec.codecId.startswith("PCMU/") else (200 if codec.codecId.startswith("PCMA/") else 0)
        ep.codecSetPriority(codec.codecId, prio)
    acfg = pj.AccountConfig()
    acfg.idUri = plan.get("from", "sip:+42073723123@127.0.0.1")
    acfg.mediaConfig.transportConfig.port = plan["rtp_port"]
    acfg.mediaConfig.transportConfig.portRange = 10
    acfg.mediaConfig.transportConfig.boundAddress = "127.0.0.1"
    acc = pj.Account()
    acc.create(acfg)
    call = Call(acc, plan)
    prm = pj.CallOpParam(True)
    call.makeCall(plan["uri"], prm)
    steps = sorted(plan.get("steps", []), key=lambda s: s["at"])
    started = time.monotonic()
    remote_hangup = False
    we_hung_up = False
    while time.monotonic() - started < plan.get("max_seconds", 60):
        ep.libHandleEvents(10)
        if call.disconnected:
            remote_hangup = not we_hung_up
            break
        if call.media_at is None or not steps:
            continue
        now = time.monotonic() - call.media_at
        while steps and steps[0]["at"] <= now:
            step = steps.pop(0)
            if "dtmf" in step:
                call.dtmf(step["dtmf"], step.get("method", "rfc2833"))
            elif "play" in step:
                call.play(step["play"])
            elif step.get("hangup"):
                we_hung_up = True
                call.hangup(pj.CallOpParam(True))
    connected = call.media_at is not None
    if not call.disconnected:
        call.hangup(pj.CallOpParam(True))
        deadline = time.monotonic() + 5
        while not call.disconnected and time.monotonic() < deadline:
            ep.libHandleEvents(10)
    result = {"connected": connected, "last_status": call.last_status,
              "disconnected_by_remote": remote_hangup}
    call.recorder = None
    call.players = []
    call.audio = None
    del call
    acc.shutdown()
    ep.libDestroy()
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
