"""The HSS as master of subscriber data (TS 29.328 §7.6.1 Repository-Data, TS 29.329 §6.1).

- Start-up and every ``resync_seconds``: for each account, SNR (Repository-Data of our Service-Indication,
  with Expiry-Time and Send-Data-Indication) subscribes and returns the current data, which is applied to
  MongoDB; identities are learned from UDR IMSPublicIdentity (Data-Reference 10) and MSISDN (17).
  An account the HSS holds no data for is written to it with PUR (Sequence-Number 1).
- Subscriptions are renewed at 80 % of the Expiry-Time the HSS granted (TS 29.329 §6.1.5/§6.3.16).
- PNR (§6.1.7) is answered 2001 at once; its Sh-Data is then applied to MongoDB (malformed: logged,
  not applied; RepositoryData without ServiceData: the HSS removed it, so is the account).
- A change through the REST API sends PUR with the next Sequence-Number (§6.1.3). On
  DIAMETER_ERROR_TRANSPARENT_DATA_OUT_OF_SYNC (5105) the HSS copy is re-read (UDR), merged three-way with the
  last agreed copy (a local change wins per top-level member) and PUR is retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from typing import Any

from diameter.message import Message
from prometheus_client import Counter

from hss_adapter import store
from hss_adapter.models import AccountDoc
from hss_adapter.settings import HssSettings
from hss_adapter.sh import constants as sh
from hss_adapter.sh.client import ShAnswer, ShClient, public_identity_of, sh_application_avps, user_data_of
from hss_adapter.sh.ifc import check_ifc
from hss_adapter.sh.servicedata import SyncDoc, from_element, to_element
from hss_adapter.sh.shdata import RepositoryData, ShData, ShDataError, build_repository_data, parse_sh_data
from hss_adapter.sh.state import ShSyncState, drop_state, load_state, save_state, three_way_merge
from secondnum.diameter import codec
from secondnum.diameter import constants as dc
from secondnum.diameter.node import DiameterNode, NoRouteError, PeerInfo, RequestTimeout
from secondnum.diameter.peer import PeerState
from secondnum.diameter.routing import PeerConfig
from secondnum.identity import IdentityError, canonical, tel_uri
from secondnum.log import get_logger
from secondnum.mongo import ensure_collections

log = get_logger(__name__)

SH_NOTIFICATIONS = Counter("secondnum_sh_notifications_total", "PNRs received, by outcome", ["outcome"])

PUR_ATTEMPTS = 3
PEER_CHECK_SECONDS = 1.0
SYNC_CONCURRENCY = 16
"""Accounts synchronised in parallel (each is 3-5 Sh requests in sequence)."""


def did_of_identity(public_identity: str | None) -> str | None:
    """The DID a Sh Public-Identity names (``tel:+E164`` or ``sip:+E164@..;user=phone``), else None."""
    if not public_identity:
        return None
    try:
        key = canonical(public_identity)
    except IdentityError:
        return None
    return key if key.isdigit() else None


class ShMirror:
    """Keeps MongoDB in step with the HSS; ``account_changed`` is the provisioning API's hook."""

    def __init__(self, settings: HssSettings, node: DiameterNode | None = None) -> None:
        self.settings = settings
        self._own_node = node is None
        self.node = node or DiameterNode(settings.origin_host, settings.origin_realm, (dc.APP_SH,),
                                         tx_timeout=settings.tx_seconds)
        self.client = ShClient(self.node, settings.destination_realm, settings.peer_host, settings.tx_seconds)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._locks: dict[str, asyncio.Lock] = {}
        self._renew_at: dict[str, float] = {}
        self._wake = asyncio.Event()
        self._ifc_checked: set[str] = set()

    # --- life cycle -------------------------------------------------------------------------------------

    async def start(self) -> None:
        await asyncio.to_thread(ensure_collections, ShSyncState)
        self.node.register_handler(dc.APP_SH, dc.CMD_PUSH_NOTIFICATION, self.handle_pnr)
        if self._own_node:
            self.node.add_peer(PeerConfig(self.settings.peer_host, self.settings.destination_realm,
                                          self.settings.peer_address, self.settings.peer_port))
            await self.node.start()
        self._spawn(self._maintain())

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._own_node:
            await self.node.stop()

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _lock(self, did: str) -> asyncio.Lock:
        return self._locks.setdefault(did, asyncio.Lock())

    def _hss_open(self) -> bool:
        return any(p.host == self.settings.peer_host and p.state == PeerState.OPEN.value
                   for p in self.node.peers())

    async def _maintain(self) -> None:
        """Sync when the HSS becomes reachable (at start and after every outage: it may have lost our
        subscriptions, and PNRs sent meanwhile were lost), renew subscriptions, resync periodically."""
        loop = asyncio.get_running_loop()
        next_full = 0.0
        while True:
            if not self._hss_open():
                next_full = 0.0
                try:
                    await self.node.wait_for_peer(host=self.settings.peer_host, timeout=3600)
                except TimeoutError:
                    continue
                log.info("sh_hss_reachable", host=self.settings.peer_host)
            if loop.time() >= next_full:
                await self.sync_all()
                next_full = loop.time() + self.settings.resync_seconds
            for did, due in list(self._renew_at.items()):
                if loop.time() >= due:
                    await self._guarded(self.subscribe(did), did)
            # Wake for the next renewal or resync, and at least every PEER_CHECK_SECONDS to notice an outage.
            wait = min([next_full, loop.time() + PEER_CHECK_SECONDS, *self._renew_at.values()]) - loop.time()
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(0.05, wait))

    async def _guarded(self, coro: Any, did: str) -> None:
        try:
            await coro
        except (NoRouteError, RequestTimeout) as exc:
            log.warning("sh_request_failed", did=did, error=str(exc))

    async def sync_all(self) -> None:
        dids = await asyncio.to_thread(lambda: [a.did for a in AccountDoc.objects.only("did")])
        limit = asyncio.Semaphore(SYNC_CONCURRENCY)

        async def one(did: str) -> None:
            async with limit:
                await self._guarded(self.sync_account(did), did)

        await asyncio.gather(*(one(did) for did in dids))
        log.info("sh_sync_done", accounts=len(dids))

    # --- procedures -------------------------------------------------------------------------------------

    async def subscribe(self, did: str, send_data: bool = False) -> ShAnswer:
        """SNR for our Repository-Data; schedules renewal at 80 % of the granted Expiry-Time."""
        loop = asyncio.get_running_loop()
        wanted = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=self.settings.subscription_seconds)
        answer = await self.client.snr(tel_uri(did), sh.DataReference.REPOSITORY_DATA,
                                       service_indication=self.settings.service_indication, expiry=wanted,
                                       send_data=send_data)
        if answer.ok:
            granted = answer.expiry_time or wanted
            seconds = max(1.0, (granted - dt.datetime.now(dt.UTC)).total_seconds())
            self._renew_at[did] = loop.time() + 0.8 * seconds
            self._wake.set()
            log.info("sh_subscribed", did=did, expiry=granted.isoformat())
        else:
            self._renew_at.pop(did, None)
            log.warning("sh_subscribe_refused", did=did, result_code=answer.result_code)
        return answer

    async def sync_account(self, did: str) -> None:
        """Subscribe (receiving the current data), apply or seed it, learn identities and MSISDN."""
        async with self._lock(did):
            answer = await self.subscribe(did, send_data=True)
            repo = self._our_repository(answer.user_data)
            if repo is not None and repo.service_data is not None:
                await self._apply_repository(did, repo)
            elif answer.ok and answer.data_error is None:
                await self._push_locked(did)  # HSS has nothing for us yet: MongoDB seeds it
            await self.learn_identities(did)
            if self.settings.check_ifc and did not in self._ifc_checked:
                self._ifc_checked.add(did)
                await check_ifc(self.client, tel_uri(did), self.settings.as_server_name)

    async def learn_identities(self, did: str) -> list[str]:
        """UDR IMSPublicIdentity and MSISDN; adds identities other than the DID as aliases."""
        ids = await self.client.udr(tel_uri(did), sh.DataReference.IMS_PUBLIC_IDENTITY,
                                    identity_set=sh.IdentitySet.ALL_IDENTITIES)
        msisdn = await self.client.udr(tel_uri(did), sh.DataReference.MSISDN)
        learned: list[dict[str, Any]] = []
        if ids.ok and ids.user_data is not None:
            learned += [{"identity": i, "allow_registration": True} for i in ids.user_data.public_identities]
        if msisdn.ok and msisdn.user_data is not None:
            learned += [{"identity": f"{m}@pstn", "allow_registration": False}
                        for m in msisdn.user_data.msisdns]
        fresh = [a for a in learned if _key(a["identity"]) not in (None, did)]
        if not fresh:
            return []
        doc = await asyncio.to_thread(store.sync_doc_of, did)
        if doc is None:
            return []
        known = {_key(a["identity"]) for a in doc["aliases"]}
        added = [a for a in fresh if _key(a["identity"]) not in known]
        if added:
            doc["aliases"] = [*doc["aliases"], *added]
            conflicts = await asyncio.to_thread(store.upsert_from_sync, did, doc)
            log.info("sh_identities_learned", did=did, added=[a["identity"] for a in added],
                     conflicts=conflicts)
        return [a["identity"] for a in added]

    def _our_repository(self, data: ShData | None) -> RepositoryData | None:
        if data is None:
            return None
        for repo in data.repository_data:
            if repo.service_indication == self.settings.service_indication:
                return repo
        return None

    async def _apply_repository(self, did: str, repo: RepositoryData) -> bool:
        """Apply HSS data to MongoDB; malformed service data is logged and not applied."""
        if repo.service_data is None:
            removed = await asyncio.to_thread(store.delete_account, did)
            await asyncio.to_thread(drop_state, did)
            log.info("sh_repository_data_removed", did=did, account_deleted=removed)
            return True
        try:
            doc = from_element(repo.service_data, did)
            conflicts = await asyncio.to_thread(store.upsert_from_sync, did, doc)
        except (ShDataError, store.StoreError) as exc:
            log.error("sh_service_data_rejected", did=did, sequence=repo.sequence_number, error=str(exc))
            return False
        await asyncio.to_thread(save_state, did, repo.sequence_number, doc)
        log.info("sh_repository_data_applied", did=did, sequence=repo.sequence_number, conflicts=conflicts)
        return True

    async def account_changed(self, did: str) -> None:
        """Provisioning API hook: push the account to the HSS (PUR), merging on 5105."""
        try:
            async with self._lock(did):
                await self._push_locked(did)
        except (NoRouteError, RequestTimeout) as exc:
            # The next resync re-reads the HSS; the local change stays in MongoDB meanwhile.
            log.warning("sh_pur_failed", did=did, error=str(exc))

    async def _push_locked(self, did: str) -> bool:
        for attempt in range(1, PUR_ATTEMPTS + 1):
            seq, base = await asyncio.to_thread(load_state, did)
            local = await asyncio.to_thread(store.sync_doc_of, did)
            next_seq = sh.next_sequence(seq)
            element = None if local is None else to_element(did, local)
            body = build_repository_data(self.settings.service_indication, next_seq, element)
            answer = await self.client.pur(tel_uri(did), body)
            if answer.ok:
                if local is None:
                    await asyncio.to_thread(drop_state, did)
                else:
                    await asyncio.to_thread(save_state, did, next_seq, local)
                log.info("sh_pur_ok", did=did, sequence=next_seq, attempt=attempt)
                return True
            if answer.result_code != sh.ERROR_TRANSPARENT_DATA_OUT_OF_SYNC:
                log.error("sh_pur_refused", did=did, result_code=answer.result_code)
                return False
            log.info("sh_pur_out_of_sync", did=did, sent_sequence=next_seq, attempt=attempt)
            await self._merge_remote(did, base, local)
        log.error("sh_pur_gave_up", did=did, attempts=PUR_ATTEMPTS)
        return False

    async def _merge_remote(self, did: str, base: SyncDoc | None, local: SyncDoc | None) -> None:
        fresh = await self.client.udr(tel_uri(did), sh.DataReference.REPOSITORY_DATA,
                                      service_indication=self.settings.service_indication)
        repo = self._our_repository(fresh.user_data)
        if repo is None or repo.service_data is None:
            # Nothing on the HSS (any more): our copy is new data for it, Sequence-Number restarts.
            await asyncio.to_thread(drop_state, did)
            return
        try:
            remote = from_element(repo.service_data, did)
        except ShDataError as exc:
            log.error("sh_service_data_rejected", did=did, sequence=repo.sequence_number, error=str(exc))
            await asyncio.to_thread(save_state, did, repo.sequence_number, base or {})
            return
        merged = remote if local is None else three_way_merge(base, local, remote)
        try:
            await asyncio.to_thread(store.upsert_from_sync, did, merged)
        except store.StoreError as exc:
            log.error("sh_merge_not_applied", did=did, error=str(exc))
        await asyncio.to_thread(save_state, did, repo.sequence_number, remote)

    # --- PNR ----------------------------------------------------------------------------------------------

    def handle_pnr(self, request: Message, peer: PeerInfo) -> Message:
        """Push-Notification-Request (TS 29.329 §6.1.7): answer 2001 at once, apply afterwards."""
        identity = public_identity_of(request)
        raw = user_data_of(request)
        did = did_of_identity(identity)
        if did is None or raw is None:
            SH_NOTIFICATIONS.labels("unusable").inc()
            log.warning("sh_pnr_unusable", identity=identity, has_user_data=raw is not None)
            # 5005 is a permanent failure, not a protocol error: no E bit (RFC 6733 §7.1.5, §7.2).
            return codec.new_answer(request, dc.MISSING_AVP, avps=sh_application_avps())
        self._spawn(self._apply_pnr(did, raw))
        return codec.new_answer(request, dc.SUCCESS, avps=sh_application_avps())

    async def _apply_pnr(self, did: str, raw: bytes) -> None:
        try:
            data = parse_sh_data(raw)
        except ShDataError as exc:
            SH_NOTIFICATIONS.labels("malformed").inc()
            log.error("sh_pnr_malformed", did=did, error=str(exc))
            return
        repo = self._our_repository(data)
        if repo is None:
            SH_NOTIFICATIONS.labels("not_ours").inc()
            log.info("sh_pnr_not_ours", did=did)
            return
        async with self._lock(did):
            seq, _ = await asyncio.to_thread(load_state, did)
            if repo.service_data is not None and repo.sequence_number == seq and seq != 0:
                SH_NOTIFICATIONS.labels("duplicate").inc()
                log.debug("sh_pnr_already_applied", did=did, sequence=seq)
                return
            applied = await self._apply_repository(did, repo)
            SH_NOTIFICATIONS.labels("applied" if applied else "rejected").inc()


def _key(identity: str) -> str | None:
    try:
        return canonical(identity)
    except IdentityError:
        return None

