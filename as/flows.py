"""Call setup dispatch: from the decision (:mod:`appserver.decision`) to the flow that carries it out.

Flow A (forward, then voicemail) is :mod:`appserver.forward`, the voicemail legs of flows A.6 and B are
:mod:`appserver.voicemail`, flow C (outgoing call by REFER) is :mod:`appserver.outgoing`; see
/work/shared/design/call-flows.md.
"""

from __future__ import annotations

from appserver import legs, privacy
from appserver.call import Call
from appserver.cdr import Flow
from appserver.decision import Decision, Reject, VoicemailAccess, VoicemailDeposit
from appserver.diversion import history_base
from appserver.forward import ForwardAttempt
from appserver.outleg import reject
from appserver.voicemail import divert_to_voicemail, to_media
from secondnum.sip import HistoryInfoEntry, SipError, session_timer


async def run(call: Call, decision: Decision) -> None:
    """Set the call up according to ``decision``; returns once answered or finally failed."""
    if isinstance(decision, Reject):
        reject(call, decision.status, decision.reason)
        return
    if "session-expires" in call.invite.headers:
        config = call.server.settings.timer_config
        if session_timer.too_small(call.invite, config):  # RFC 4028 §9, before any leg or CCR-I
            reject(call, 422, "Session Interval Too Small", [("Min-SE", str(config.min_se))])
            return
    asked = privacy.requested(call.invite)
    if asked is not None:
        call.record.privacy = asked.values
    if isinstance(decision, VoicemailAccess):
        call.record.flow = Flow.VOICEMAIL_ACCESS
        uri = legs.media_uri(call.server.media_uri, "vm-access", decision.mailbox,
                             network_auth=decision.network_authenticated)
        await to_media(call, uri, None, [], [])
        return
    history, parent = history_base(_received_history(call), call.invite.uri)
    if isinstance(decision, VoicemailDeposit):
        await divert_to_voicemail(call, decision.cause, history, parent)
        return
    await ForwardAttempt(call, decision, history, parent).run()


def _received_history(call: Call) -> list[HistoryInfoEntry]:
    try:
        return call.invite.history_info
    except SipError:
        return []
