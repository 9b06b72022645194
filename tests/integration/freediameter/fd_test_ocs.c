/*
 * fd_test_ocs: a minimal credit-control server (OCS) extension for freeDiameterd, with a small client
 * mode, used only by the secondnum interop tests (tests/integration/freediameter/).
 *
 * It answers Credit-Control-Request (RFC 4006 §3.1, application 4, command 272) with CCA:
 *   Result-Code 2001, CC-Request-Type / CC-Request-Number echoed (RFC 4006 §8.3, §8.2), and on
 *   INITIAL/UPDATE a Multiple-Services-Credit-Control { Granted-Service-Unit { CC-Time = grant } }
 *   (RFC 4006 §8.16, §8.17, §8.21; TS 32.299 §7.1.9).
 *   When Subscription-Id-Data equals the configured "refuse" number it answers refuse_code
 *   (default 4012 DIAMETER_CREDIT_LIMIT_REACHED, RFC 4006 §9.1) without MSCC.
 *
 * Server-initiated requests, to exercise the client's handlers through a real peer:
 *   after answering a CCR-Update of the "abort" subscriber it sends Abort-Session-Request
 *   (RFC 6733 §8.5.1), after the first CCR-Update (CC-Request-Number 1) of the "reauth" subscriber
 *   a Re-Auth-Request (RFC 6733 §8.3.1, RFC 4006 §5.5); both go to the CCR's Origin-Host.
 *
 * So the tests can assert what freeDiameter actually received, it appends one line per event to a
 * log file (tab-separated key=value pairs, "event" first):
 *   event=ccr  session=.. origin=.. type=1 number=0 sub_type=0 sub_data=.. requested=300 used=-1
 *              role=0 sip_method=INVITE event_type=yes service_context=.. term_cause=-1 result=2001
 *              (-1 / "-": the AVP was absent)
 *   event=asr / event=rar  session=..                   (server-initiated request sent)
 *   event=asa / event=raa  session=.. result=2001       (the client's answer)
 *   event=recv / event=sent  cmd=280 request=1 peer=..   (base protocol messages: CER, DWR, DPR and answers;
 *                                                         "sent" fires just before the socket write, so a
 *                                                         failed write shows in the daemon log, not here)
 *   event=dpr  peer=.. cause=0                           (Disconnect-Cause, RFC 6733 §5.4.3)
 *   event=parse_error  peer=.. error=..                  (message rejected by the dictionary, e.g. 5001)
 *   event=peer_up / event=peer_down  peer=..
 *   client mode: event=client_open, event=client_ccr step=.. (sent), event=cca step=.. type=.. number=..
 *                result=.. granted=.. validity=.. mscc_result=.. fui=0|1 (answer as parsed by freeDiameter)
 *
 * Configuration file (the argument after the extension in freeDiameter.conf), one "key = value" a line:
 *   log = /path/to/events.log      (required)
 *   grant = 60                     (CC-Time granted, seconds)
 *   refuse = 42000000402           (Subscription-Id-Data that is refused)
 *   refuse_code = 4012
 *   abort = 42000000274            (ASR after each CCR-Update)
 *   reauth = 42000000258           (RAR after CCR-Update number 1)
 *   garble = 42000000500           (the CCA also carries AVP 65000/10415 with the M bit, which no
 *                                   dictionary but this extension's defines: RFC 6733 §4.1 bad input)
 *   client_peer / client_realm     (client mode: Destination-Host/-Realm, a ConnectPeer of the daemon)
 *   client_e164 / client_unknown / client_low / client_called   (see "Client mode" below)
 */

#include <freeDiameter/extension.h>

#include <ctype.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define VENDOR_3GPP 10415

/* AVP codes: RFC 6733 §4.5, RFC 4006 §8, TS 32.299 §7.2 */
#define AVP_SESSION_ID 263
#define AVP_ORIGIN_HOST 264
#define AVP_ORIGIN_REALM 296
#define AVP_TERMINATION_CAUSE 295
#define AVP_RESULT_CODE 268
#define AVP_DISCONNECT_CAUSE 273
#define AVP_CC_REQUEST_NUMBER 415
#define AVP_CC_REQUEST_TYPE 416
#define AVP_CC_TIME 420
#define AVP_MSCC 456
#define AVP_REQUESTED_SERVICE_UNIT 437
#define AVP_USED_SERVICE_UNIT 446
#define AVP_SUBSCRIPTION_ID 443
#define AVP_SUBSCRIPTION_ID_DATA 444
#define AVP_SUBSCRIPTION_ID_TYPE 450
#define AVP_SERVICE_CONTEXT_ID 461
#define AVP_RATING_GROUP 432
#define AVP_GRANTED_SERVICE_UNIT 431
#define AVP_VALIDITY_TIME 448
#define AVP_FINAL_UNIT_INDICATION 430
#define AVP_EVENT_TYPE 823         /* 3GPP */
#define AVP_SIP_METHOD 824         /* 3GPP */
#define AVP_ROLE_OF_NODE 829       /* 3GPP */

#define CMD_CER 257
#define CMD_CCR 272
#define CMD_DWR 280
#define CMD_DPR 282
#define CMD_ASR 274
#define CMD_RAR 258

#define CC_TYPE_UPDATE 2
#define CC_TYPE_TERMINATION 3

static char log_path[1024];
static char refuse_number[1024];
static unsigned refuse_code = 4012;
static char abort_number[1024];
static char reauth_number[1024];
static char garble_number[1024];
static unsigned grant_seconds = 60;

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

static struct dict_object *d_app_dcca;
static struct dict_object *d_cmd_ccr;
static struct dict_object *d_auth_app_id;
static struct dict_object *d_result_code;
static struct dict_object *d_cc_request_type;
static struct dict_object *d_cc_request_number;
static struct dict_object *d_mscc;
static struct dict_object *d_gsu;
static struct dict_object *d_cc_time;
static struct dict_object *d_rating_group;
static struct dict_object *d_cmd_asr;
static struct dict_object *d_cmd_rar;
static struct dict_object *d_session_id;
static struct dict_object *d_destination_host;
static struct dict_object *d_destination_realm;
static struct dict_object *d_re_auth_request_type;
static struct dict_object *d_garbage;

static struct disp_hdl *ccr_handle;
static struct fd_hook_hdl *hook_handle;

/* Appends one line to the event log; fields are already formatted by the caller. */
static void log_line(const char *fmt, ...)
{
	va_list ap;
	FILE *f;

	pthread_mutex_lock(&log_lock);
	f = fopen(log_path, "a");
	if (f != NULL) {
		va_start(ap, fmt);
		vfprintf(f, fmt, ap);
		va_end(ap);
		fputc('\n', f);
		fclose(f);
	}
	pthread_mutex_unlock(&log_lock);
}

/* Copies an OctetString/UTF8String value into buf as printable text (tabs and controls become '?'). */
static void os_text(const union avp_value *v, char *buf, size_t size)
{
	size_t i, n;

	if (v == NULL) {
		snprintf(buf, size, "-");
		return;
	}
	n = v->os.len < size - 1 ? v->os.len : size - 1;
	for (i = 0; i < n; i++) {
		unsigned char c = v->os.data[i];
		buf[i] = (isprint(c) && c != '\t') ? (char)c : '?';
	}
	buf[n] = '\0';
}

/* Depth-first search for the first AVP (code, vendor) below parent (a msg or a grouped avp). */
static struct avp *find_avp(msg_or_avp *parent, avp_code_t code, vendor_id_t vendor)
{
	struct avp *child = NULL;

	if (fd_msg_browse(parent, MSG_BRW_FIRST_CHILD, &child, NULL) != 0)
		return NULL;
	while (child != NULL) {
		struct avp_hdr *h = NULL;
		if (fd_msg_avp_hdr(child, &h) == 0) {
			vendor_id_t v = (h->avp_flags & AVP_FLAG_VENDOR) ? h->avp_vendor : 0;
			if (h->avp_code == code && v == vendor)
				return child;
			if (h->avp_value == NULL) { /* grouped (or not understood): look inside */
				struct avp *inner = find_avp(child, code, vendor);
				if (inner != NULL)
					return inner;
			}
		}
		if (fd_msg_browse(child, MSG_BRW_NEXT, &child, NULL) != 0)
			return NULL;
	}
	return NULL;
}

static union avp_value *avp_val(struct avp *avp)
{
	struct avp_hdr *h = NULL;

	if (avp == NULL || fd_msg_avp_hdr(avp, &h) != 0)
		return NULL;
	return h->avp_value;
}

/* Sum of CC-Time over every Used-Service-Unit below parent; -1 when there is none. */
static long long used_cc_time(msg_or_avp *parent)
{
	struct avp *child = NULL;
	long long total = -1;

	if (fd_msg_browse(parent, MSG_BRW_FIRST_CHILD, &child, NULL) != 0)
		return -1;
	while (child != NULL) {
		struct avp_hdr *h = NULL;
		if (fd_msg_avp_hdr(child, &h) == 0 && h->avp_value == NULL) {
			long long inner = -1;
			if (h->avp_code == AVP_USED_SERVICE_UNIT && !(h->avp_flags & AVP_FLAG_VENDOR)) {
				union avp_value *t = avp_val(find_avp(child, AVP_CC_TIME, 0));
				inner = t != NULL ? (long long)t->u32 : 0;
			} else {
				inner = used_cc_time(child);
			}
			if (inner >= 0)
				total = (total < 0 ? 0 : total) + inner;
		}
		if (fd_msg_browse(child, MSG_BRW_NEXT, &child, NULL) != 0)
			break;
	}
	return total;
}

static int add_u32(msg_or_avp *parent, struct dict_object *model, uint32_t value)
{
	struct avp *avp = NULL;
	union avp_value v;

	memset(&v, 0, sizeof(v));
	v.u32 = value;
	CHECK_FCT(fd_msg_avp_new(model, 0, &avp));
	CHECK_FCT(fd_msg_avp_setvalue(avp, &v));
	CHECK_FCT(fd_msg_avp_add(parent, MSG_BRW_LAST_CHILD, avp));
	return 0;
}

static int add_i32(msg_or_avp *parent, struct dict_object *model, int32_t value)
{
	struct avp *avp = NULL;
	union avp_value v;

	memset(&v, 0, sizeof(v));
	v.i32 = value;
	CHECK_FCT(fd_msg_avp_new(model, 0, &avp));
	CHECK_FCT(fd_msg_avp_setvalue(avp, &v));
	CHECK_FCT(fd_msg_avp_add(parent, MSG_BRW_LAST_CHILD, avp));
	return 0;
}

static int add_os(msg_or_avp *parent, struct dict_object *model, const char *text)
{
	struct avp *avp = NULL;
	union avp_value v;

	memset(&v, 0, sizeof(v));
	v.os.data = (uint8_t *)text;
	v.os.len = strlen(text);
	CHECK_FCT(fd_msg_avp_new(model, 0, &avp));
	CHECK_FCT(fd_msg_avp_setvalue(avp, &v)); /* copies the data */
	CHECK_FCT(fd_msg_avp_add(parent, MSG_BRW_LAST_CHILD, avp));
	return 0;
}

/* ASA / RAA from the client: log its Result-Code. */
static void server_answer_cb(void *data, struct msg **answer)
{
	struct msg_hdr *h = NULL;
	union avp_value *rc;
	char session[256];

	(void)data;
	if (answer == NULL || *answer == NULL)
		return;
	os_text(avp_val(find_avp(*answer, AVP_SESSION_ID, 0)), session, sizeof(session));
	rc = avp_val(find_avp(*answer, AVP_RESULT_CODE, 0));
	if (fd_msg_hdr(*answer, &h) == 0)
		log_line("event=%s\tsession=%s\tresult=%d", h->msg_code == CMD_ASR ? "asa" : "raa", session,
			 rc != NULL ? (int)rc->u32 : -1);
	fd_msg_free(*answer);
	*answer = NULL;
}

/* ASR (RFC 6733 §8.5.1) or RAR (§8.3.1) for `session`, to the client that sent the CCR. */
static int send_server_request(struct dict_object *cmd, const char *session, const char *host,
			       const char *realm)
{
	struct msg *req = NULL;
	struct msg_hdr *h = NULL;

	CHECK_FCT(fd_msg_new(cmd, MSGFL_ALLOC_ETEID, &req));
	CHECK_FCT(fd_msg_hdr(req, &h));
	h->msg_appl = 4; /* RFC 4006 §1.2: ASR/RAR of a credit-control session carry application 4 */
	CHECK_FCT(add_os(req, d_session_id, session));
	CHECK_FCT(fd_msg_add_origin(req, 0));
	CHECK_FCT(add_os(req, d_destination_realm, realm));
	CHECK_FCT(add_os(req, d_destination_host, host));
	CHECK_FCT(add_u32(req, d_auth_app_id, 4));
	if (cmd == d_cmd_rar)
		CHECK_FCT(add_i32(req, d_re_auth_request_type, 0)); /* AUTHORIZE_ONLY */
	log_line("event=%s\tsession=%s", cmd == d_cmd_asr ? "asr" : "rar", session);
	CHECK_FCT(fd_msg_send(&req, server_answer_cb, NULL));
	return 0;
}

/* Credit-Control-Request handler (RFC 4006 §5, §6): answer from local configuration. */
static int ccr_cb(struct msg **msg, struct avp *unused_avp, struct session *sess, void *opaque,
		  enum disp_action *act)
{
	struct msg *req = *msg, *ans;
	char session[256], origin[256], origin_realm[256], sub_data[128], sip_method[64], context[128];
	union avp_value *v;
	int32_t cc_type;
	uint32_t cc_number, result;
	long long requested = -1, used;
	long long role = -1, sub_type = -1, rating_group = -1, term_cause = -1;
	int has_event_type;
	struct avp *sub, *rsu;

	(void)unused_avp;
	(void)sess;
	(void)opaque;

	os_text(avp_val(find_avp(req, AVP_SESSION_ID, 0)), session, sizeof(session));
	os_text(avp_val(find_avp(req, AVP_ORIGIN_HOST, 0)), origin, sizeof(origin));
	os_text(avp_val(find_avp(req, AVP_ORIGIN_REALM, 0)), origin_realm, sizeof(origin_realm));
	os_text(avp_val(find_avp(req, AVP_SERVICE_CONTEXT_ID, 0)), context, sizeof(context));
	v = avp_val(find_avp(req, AVP_CC_REQUEST_TYPE, 0));
	cc_type = v != NULL ? v->i32 : -1;
	v = avp_val(find_avp(req, AVP_CC_REQUEST_NUMBER, 0));
	cc_number = v != NULL ? v->u32 : 0;

	sub = find_avp(req, AVP_SUBSCRIPTION_ID, 0);
	sub_data[0] = '\0';
	if (sub != NULL) {
		v = avp_val(find_avp(sub, AVP_SUBSCRIPTION_ID_TYPE, 0));
		sub_type = v != NULL ? v->i32 : -1;
		os_text(avp_val(find_avp(sub, AVP_SUBSCRIPTION_ID_DATA, 0)), sub_data, sizeof(sub_data));
	} else {
		snprintf(sub_data, sizeof(sub_data), "-");
	}

	rsu = find_avp(req, AVP_REQUESTED_SERVICE_UNIT, 0);
	if (rsu != NULL) {
		v = avp_val(find_avp(rsu, AVP_CC_TIME, 0));
		requested = v != NULL ? (long long)v->u32 : 0;
	}
	used = used_cc_time(req);
	v = avp_val(find_avp(req, AVP_RATING_GROUP, 0));
	if (v != NULL)
		rating_group = v->u32;
	v = avp_val(find_avp(req, AVP_TERMINATION_CAUSE, 0));
	if (v != NULL)
		term_cause = v->i32;
	v = avp_val(find_avp(req, AVP_ROLE_OF_NODE, VENDOR_3GPP));
	if (v != NULL)
		role = v->i32;
	os_text(avp_val(find_avp(req, AVP_SIP_METHOD, VENDOR_3GPP)), sip_method, sizeof(sip_method));
	has_event_type = find_avp(req, AVP_EVENT_TYPE, VENDOR_3GPP) != NULL;

	result = 2001;
	if (refuse_number[0] != '\0' && strcmp(sub_data, refuse_number) == 0)
		result = refuse_code;

	CHECK_FCT(fd_msg_new_answer_from_req(fd_g_config->cnf_dict, msg, 0));
	ans = *msg;
	CHECK_FCT(add_u32(ans, d_result_code, result));
	CHECK_FCT(fd_msg_add_origin(ans, 0));
	CHECK_FCT(add_u32(ans, d_auth_app_id, 4));
	CHECK_FCT(add_i32(ans, d_cc_request_type, cc_type));
	CHECK_FCT(add_u32(ans, d_cc_request_number, cc_number));
	if (result == 2001 && cc_type != CC_TYPE_TERMINATION) {
		struct avp *mscc = NULL, *gsu = NULL;
		CHECK_FCT(fd_msg_avp_new(d_mscc, 0, &mscc));
		CHECK_FCT(fd_msg_avp_new(d_gsu, 0, &gsu));
		CHECK_FCT(add_u32(gsu, d_cc_time, grant_seconds));
		CHECK_FCT(fd_msg_avp_add(mscc, MSG_BRW_LAST_CHILD, gsu));
		if (rating_group >= 0)
			CHECK_FCT(add_u32(mscc, d_rating_group, (uint32_t)rating_group));
		CHECK_FCT(add_u32(mscc, d_result_code, 2001));
		CHECK_FCT(fd_msg_avp_add(ans, MSG_BRW_LAST_CHILD, mscc));
	}

	if (garble_number[0] != '\0' && strcmp(sub_data, garble_number) == 0)
		CHECK_FCT(add_u32(ans, d_garbage, 0xdeadbeef));

	/* Written before the answer leaves, so a client that has the CCA can read the line. */
	log_line("event=ccr\tsession=%s\torigin=%s\ttype=%d\tnumber=%u\tsub_type=%lld\tsub_data=%s\t"
		 "requested=%lld\tused=%lld\trole=%lld\tsip_method=%s\tevent_type=%s\tservice_context=%s\t"
		 "term_cause=%lld\tresult=%u",
		 session, origin, (int)cc_type, cc_number, sub_type, sub_data, requested, used, role,
		 sip_method, has_event_type ? "yes" : "no", context, term_cause, result);

	/* The client serialises per session, so an ASR/RAR overtaking this CCA is handled after it. */
	if (result == 2001 && cc_type == CC_TYPE_UPDATE) {
		if (abort_number[0] != '\0' && strcmp(sub_data, abort_number) == 0) {
			CHECK_FCT_DO(send_server_request(d_cmd_asr, session, origin, origin_realm), );
		} else if (reauth_number[0] != '\0' && strcmp(sub_data, reauth_number) == 0 && cc_number == 1) {
			CHECK_FCT_DO(send_server_request(d_cmd_rar, session, origin, origin_realm), );
		}
	}

	*act = DISP_ACT_SEND;
	return 0;
}

static const char *peer_id(struct peer_hdr *peer, void *other)
{
	if (peer != NULL && peer->info.pi_diamid != NULL)
		return peer->info.pi_diamid;
	if (other != NULL)
		return (const char *)other;
	return "-";
}

/* Base protocol traffic (CER/CEA, DWR/DWA, DPR/DPA) and connection events, for the watchdog and
 * disconnect assertions; freeDiameter answers these itself, no dispatch callback sees them. */
static void hook_cb(enum fd_hook_type type, struct msg *msg, struct peer_hdr *peer, void *other,
		    struct fd_hook_permsgdata *pmd, void *regdata)
{
	struct msg_hdr *h = NULL;

	(void)pmd;
	(void)regdata;
	switch (type) {
	case HOOK_PEER_CONNECT_SUCCESS:
		log_line("event=peer_up\tpeer=%s", peer_id(peer, NULL));
		return;
	case HOOK_PEER_CONNECT_FAILED:
		log_line("event=peer_down\tpeer=%s\treason=%s", peer_id(peer, NULL),
			 other != NULL ? (const char *)other : "-");
		return;
	case HOOK_MESSAGE_PARSING_ERROR:
		log_line("event=parse_error\tpeer=%s\terror=%s", peer_id(peer, NULL),
			 (msg != NULL && other != NULL) ? (const char *)other : "-");
		return;
	case HOOK_MESSAGE_RECEIVED:
	case HOOK_MESSAGE_SENT:
		break;
	default:
		return;
	}
	if (msg == NULL || fd_msg_hdr(msg, &h) != 0)
		return;
	if (h->msg_code != CMD_CER && h->msg_code != CMD_DWR && h->msg_code != CMD_DPR)
		return;
	log_line("event=%s\tcmd=%u\trequest=%d\tpeer=%s", type == HOOK_MESSAGE_RECEIVED ? "recv" : "sent",
		 (unsigned)h->msg_code, (h->msg_flags & CMD_FLAG_REQUEST) ? 1 : 0,
		 peer_id(peer, type == HOOK_MESSAGE_RECEIVED ? other : NULL));
	if (type == HOOK_MESSAGE_RECEIVED && h->msg_code == CMD_DPR && (h->msg_flags & CMD_FLAG_REQUEST)) {
		union avp_value *cause;
		/* Resolving is idempotent: the daemon's own parse later skips resolved AVPs. */
		if (fd_msg_parse_dict(msg, fd_g_config->cnf_dict, NULL) == 0) {
			cause = avp_val(find_avp(msg, AVP_DISCONNECT_CAUSE, 0));
			log_line("event=dpr\tpeer=%s\tcause=%d", peer_id(peer, other),
				 cause != NULL ? cause->i32 : -1);
		}
	}
}

/* ------------------------------------------------------------------------------------------------
 * Client mode: freeDiameter as the CTF against OUR built-in OCS (ConnectPeer in freeDiameter.conf).
 * Once client_peer is OPEN, it runs a fixed script and logs every answer as event=cca:
 *   step 0-2: CCR-I (RSU 300), CCR-U (USU 30, RSU 300), CCR-T (USU 10) for client_e164;
 *   step 3:   CCR-I for client_unknown (a new session), if configured;
 *   step 4:   CCR-I for client_low (a new session; meant to get a Final-Unit-Indication), if configured.
 * Answers are parsed against freeDiameter's dictionaries and CCA ABNF before the callback runs; a
 * malformed CCA shows as event=parse_error and the script stops there.
 */

struct client_step {
	int who; /* 0: client_e164, 1: client_unknown, 2: client_low */
	int32_t type;
	uint32_t number;
	int requested;
	int used; /* -1: no Used-Service-Unit */
};

static const struct client_step script[] = {
	{0, 1, 0, 300, -1},
	{0, 2, 1, 300, 30},
	{0, 3, 2, -1, 10},
	{1, 1, 0, 300, -1},
	{2, 1, 0, 300, -1},
};

static char client_peer[1024];
static char client_realm[1024];
static char client_e164[1024];
static char client_unknown[1024];
static char client_low[1024];
static char client_called[1024];
static char client_session[256];
static pthread_t client_thread;
static int client_thread_started;

static struct dict_object *d_service_context_id;
static struct dict_object *d_subscription_id;
static struct dict_object *d_subscription_id_type;
static struct dict_object *d_subscription_id_data;
static struct dict_object *d_rsu;
static struct dict_object *d_usu;
static struct dict_object *d_termination_cause;
static struct dict_object *d_service_information;
static struct dict_object *d_ims_information;
static struct dict_object *d_node_functionality;
static struct dict_object *d_role_of_node;
static struct dict_object *d_called_party_address;

/* First AVP (code, vendor) directly below parent, not inside grouped AVPs. */
static struct avp *find_child(msg_or_avp *parent, avp_code_t code, vendor_id_t vendor)
{
	struct avp *child = NULL;

	if (fd_msg_browse(parent, MSG_BRW_FIRST_CHILD, &child, NULL) != 0)
		return NULL;
	while (child != NULL) {
		struct avp_hdr *h = NULL;
		if (fd_msg_avp_hdr(child, &h) == 0) {
			vendor_id_t v = (h->avp_flags & AVP_FLAG_VENDOR) ? h->avp_vendor : 0;
			if (h->avp_code == code && v == vendor)
				return child;
		}
		if (fd_msg_browse(child, MSG_BRW_NEXT, &child, NULL) != 0)
			return NULL;
	}
	return NULL;
}

static int add_grouped(msg_or_avp *parent, struct dict_object *model, struct avp **out)
{
	CHECK_FCT(fd_msg_avp_new(model, 0, out));
	CHECK_FCT(fd_msg_avp_add(parent, MSG_BRW_LAST_CHILD, *out));
	return 0;
}

static int client_send(int step);

static void client_answer_cb(void *data, struct msg **answer)
{
	int step = (int)(intptr_t)data;
	struct avp *mscc, *gsu;
	union avp_value *v;
	char session[256], origin[256];
	long long result = -1, granted = -1, validity = -1, mscc_result = -1, type = -1, number = -1;
	int fui = 0;

	if (answer == NULL || *answer == NULL)
		return;
	os_text(avp_val(find_child(*answer, AVP_SESSION_ID, 0)), session, sizeof(session));
	os_text(avp_val(find_child(*answer, AVP_ORIGIN_HOST, 0)), origin, sizeof(origin));
	if ((v = avp_val(find_child(*answer, AVP_RESULT_CODE, 0))) != NULL)
		result = v->u32;
	if ((v = avp_val(find_child(*answer, AVP_CC_REQUEST_TYPE, 0))) != NULL)
		type = v->i32;
	if ((v = avp_val(find_child(*answer, AVP_CC_REQUEST_NUMBER, 0))) != NULL)
		number = v->u32;
	mscc = find_child(*answer, AVP_MSCC, 0);
	if (mscc != NULL) {
		gsu = find_child(mscc, AVP_GRANTED_SERVICE_UNIT, 0);
		if (gsu != NULL && (v = avp_val(find_child(gsu, AVP_CC_TIME, 0))) != NULL)
			granted = v->u32;
		if ((v = avp_val(find_child(mscc, AVP_VALIDITY_TIME, 0))) != NULL)
			validity = v->u32;
		if ((v = avp_val(find_child(mscc, AVP_RESULT_CODE, 0))) != NULL)
			mscc_result = v->u32;
		fui = find_child(mscc, AVP_FINAL_UNIT_INDICATION, 0) != NULL;
	}
	log_line("event=cca\tstep=%d\tsession=%s\torigin=%s\ttype=%lld\tnumber=%lld\tresult=%lld\t"
		 "granted=%lld\tvalidity=%lld\tmscc_result=%lld\tfui=%d",
		 step, session, origin, type, number, result, granted, validity, mscc_result, fui);
	fd_msg_free(*answer);
	*answer = NULL;
	if ((size_t)(step + 1) < sizeof(script) / sizeof(script[0]))
		CHECK_FCT_DO(client_send(step + 1), );
}

static int client_send(int step)
{
	const struct client_step *st = &script[step];
	const char *e164 = st->who == 1 ? client_unknown : st->who == 2 ? client_low : client_e164;
	struct msg *req = NULL;
	struct msg_hdr *h = NULL;
	struct avp *sub, *mscc, *unit, *si, *ims;

	if (e164[0] == '\0') /* not configured: skip the step */
		return (size_t)(step + 1) < sizeof(script) / sizeof(script[0]) ? client_send(step + 1) : 0;
	CHECK_FCT(fd_msg_new(d_cmd_ccr, MSGFL_ALLOC_ETEID, &req));
	CHECK_FCT(fd_msg_hdr(req, &h));
	h->msg_appl = 4;
	if (st->number == 0) {
		CHECK_FCT(fd_msg_new_session(req, (os0_t) "fdclient", 8));
		os_text(avp_val(find_child(req, AVP_SESSION_ID, 0)), client_session, sizeof(client_session));
	} else {
		CHECK_FCT(add_os(req, d_session_id, client_session));
	}
	CHECK_FCT(fd_msg_add_origin(req, 0));
	CHECK_FCT(add_os(req, d_destination_realm, client_realm));
	CHECK_FCT(add_os(req, d_destination_host, client_peer));
	CHECK_FCT(add_u32(req, d_auth_app_id, 4));
	CHECK_FCT(add_os(req, d_service_context_id, "32260@3gpp.org"));
	CHECK_FCT(add_i32(req, d_cc_request_type, st->type));
	CHECK_FCT(add_u32(req, d_cc_request_number, st->number));
	CHECK_FCT(add_grouped(req, d_subscription_id, &sub));
	CHECK_FCT(add_i32(sub, d_subscription_id_type, 0)); /* END_USER_E164 */
	CHECK_FCT(add_os(sub, d_subscription_id_data, e164));
	if (st->type == CC_TYPE_TERMINATION)
		CHECK_FCT(add_i32(req, d_termination_cause, 1)); /* DIAMETER_LOGOUT */
	CHECK_FCT(add_grouped(req, d_mscc, &mscc));
	if (st->requested >= 0) {
		CHECK_FCT(add_grouped(mscc, d_rsu, &unit));
		CHECK_FCT(add_u32(unit, d_cc_time, (uint32_t)st->requested));
	}
	if (st->used >= 0) {
		CHECK_FCT(add_grouped(mscc, d_usu, &unit));
		CHECK_FCT(add_u32(unit, d_cc_time, (uint32_t)st->used));
	}
	CHECK_FCT(add_grouped(req, d_service_information, &si));
	CHECK_FCT(add_grouped(si, d_ims_information, &ims));
	CHECK_FCT(add_i32(ims, d_node_functionality, 6)); /* AS */
	CHECK_FCT(add_i32(ims, d_role_of_node, 0));        /* ORIGINATING_ROLE */
	CHECK_FCT(add_os(ims, d_called_party_address, client_called));
	log_line("event=client_ccr\tstep=%d\tsession=%s\ttype=%d\tnumber=%u\tsub_data=%s", step, client_session,
		 (int)st->type, st->number, e164);
	CHECK_FCT(fd_msg_send(&req, client_answer_cb, (void *)(intptr_t)step));
	return 0;
}

/* Waits (up to 60 s) for the connection to client_peer to be OPEN, then starts the script. */
static void *client_main(void *arg)
{
	int i;

	(void)arg;
	for (i = 0; i < 600; i++) {
		struct peer_hdr *peer = NULL;
		if (fd_peer_getbyid(client_peer, strlen(client_peer), 1, &peer) == 0 && peer != NULL
		    && fd_peer_get_state(peer) == STATE_OPEN) {
			log_line("event=client_open\tpeer=%s", client_peer);
			CHECK_FCT_DO(client_send(0), log_line("event=client_error\tstep=0"));
			return NULL;
		}
		usleep(100000);
	}
	log_line("event=client_timeout\tpeer=%s", client_peer);
	return NULL;
}

static int avp_3gpp(const char *name, struct dict_object **obj)
{
	struct dict_avp_request req = {.avp_vendor = VENDOR_3GPP, .avp_name = (char *)name};

	return fd_dict_search(fd_g_config->cnf_dict, DICT_AVP, AVP_BY_NAME_AND_VENDOR, &req, obj, ENOENT);
}

static int avp_by_name(const char *name, struct dict_object **obj);

static int client_init(void)
{
	CHECK_FCT(avp_by_name("Service-Context-Id", &d_service_context_id));
	CHECK_FCT(avp_by_name("Subscription-Id", &d_subscription_id));
	CHECK_FCT(avp_by_name("Subscription-Id-Type", &d_subscription_id_type));
	CHECK_FCT(avp_by_name("Subscription-Id-Data", &d_subscription_id_data));
	CHECK_FCT(avp_by_name("Requested-Service-Unit", &d_rsu));
	CHECK_FCT(avp_by_name("Used-Service-Unit", &d_usu));
	CHECK_FCT(avp_by_name("Termination-Cause", &d_termination_cause));
	CHECK_FCT(avp_3gpp("Service-Information", &d_service_information));
	CHECK_FCT(avp_3gpp("IMS-Information", &d_ims_information));
	CHECK_FCT(avp_3gpp("Node-Functionality", &d_node_functionality));
	CHECK_FCT(avp_3gpp("Role-Of-Node", &d_role_of_node));
	CHECK_FCT(avp_3gpp("Called-Party-Address", &d_called_party_address));
	if (client_peer[0] != '\0') {
		CHECK_POSIX(pthread_create(&client_thread, NULL, client_main, NULL));
		client_thread_started = 1;
	}
	return 0;
}

static int read_conf(const char *path)
{
	FILE *f;
	char line[1200];

	if (path == NULL) {
		TRACE_ERROR("fd_test_ocs: a configuration file is required");
		return EINVAL;
	}
	f = fopen(path, "r");
	if (f == NULL) {
		TRACE_ERROR("fd_test_ocs: cannot open %s", path);
		return errno;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		char key[64], value[1024];
		if (line[0] == '#' || sscanf(line, " %63[a-z0-9_] = %1023s", key, value) != 2)
			continue;
		if (strcmp(key, "log") == 0)
			snprintf(log_path, sizeof(log_path), "%s", value);
		else if (strcmp(key, "grant") == 0)
			grant_seconds = (unsigned)strtoul(value, NULL, 10);
		else if (strcmp(key, "refuse") == 0)
			snprintf(refuse_number, sizeof(refuse_number), "%s", value);
		else if (strcmp(key, "refuse_code") == 0)
			refuse_code = (unsigned)strtoul(value, NULL, 10);
		else if (strcmp(key, "abort") == 0)
			snprintf(abort_number, sizeof(abort_number), "%s", value);
		else if (strcmp(key, "reauth") == 0)
			snprintf(reauth_number, sizeof(reauth_number), "%s", value);
		else if (strcmp(key, "garble") == 0)
			snprintf(garble_number, sizeof(garble_number), "%s", value);
		else if (strcmp(key, "client_peer") == 0)
			snprintf(client_peer, sizeof(client_peer), "%s", value);
		else if (strcmp(key, "client_realm") == 0)
			snprintf(client_realm, sizeof(client_realm), "%s", value);
		else if (strcmp(key, "client_e164") == 0)
			snprintf(client_e164, sizeof(client_e164), "%s", value);
		else if (strcmp(key, "client_unknown") == 0)
			snprintf(client_unknown, sizeof(client_unknown), "%s", value);
		else if (strcmp(key, "client_low") == 0)
			snprintf(client_low, sizeof(client_low), "%s", value);
		else if (strcmp(key, "client_called") == 0)
			snprintf(client_called, sizeof(client_called), "%s", value);
	}
	fclose(f);
	if (log_path[0] == '\0') {
		TRACE_ERROR("fd_test_ocs: 'log = PATH' missing in %s", path);
		return EINVAL;
	}
	return 0;
}

static int avp_by_name(const char *name, struct dict_object **obj)
{
	return fd_dict_search(fd_g_config->cnf_dict, DICT_AVP, AVP_BY_NAME, name, obj, ENOENT);
}

static int test_ocs_entry(char *conffile)
{
	struct disp_when when;
	application_id_t dcca = 4;

	CHECK_FCT(read_conf(conffile));
	CHECK_FCT(fd_dict_search(fd_g_config->cnf_dict, DICT_APPLICATION, APPLICATION_BY_ID, &dcca,
				 &d_app_dcca, ENOENT));
	CHECK_FCT(fd_dict_search(fd_g_config->cnf_dict, DICT_COMMAND, CMD_BY_NAME, "Credit-Control-Request",
				 &d_cmd_ccr, ENOENT));
	CHECK_FCT(avp_by_name("Auth-Application-Id", &d_auth_app_id));
	CHECK_FCT(avp_by_name("Result-Code", &d_result_code));
	CHECK_FCT(avp_by_name("CC-Request-Type", &d_cc_request_type));
	CHECK_FCT(avp_by_name("CC-Request-Number", &d_cc_request_number));
	CHECK_FCT(avp_by_name("Multiple-Services-Credit-Control", &d_mscc));
	CHECK_FCT(avp_by_name("Granted-Service-Unit", &d_gsu));
	CHECK_FCT(avp_by_name("CC-Time", &d_cc_time));
	CHECK_FCT(avp_by_name("Rating-Group", &d_rating_group));
	CHECK_FCT(avp_by_name("Session-Id", &d_session_id));
	CHECK_FCT(avp_by_name("Destination-Host", &d_destination_host));
	CHECK_FCT(avp_by_name("Destination-Realm", &d_destination_realm));
	CHECK_FCT(avp_by_name("Re-Auth-Request-Type", &d_re_auth_request_type));
	CHECK_FCT(fd_dict_search(fd_g_config->cnf_dict, DICT_COMMAND, CMD_BY_NAME, "Abort-Session-Request",
				 &d_cmd_asr, ENOENT));
	CHECK_FCT(fd_dict_search(fd_g_config->cnf_dict, DICT_COMMAND, CMD_BY_NAME, "Re-Auth-Request",
				 &d_cmd_rar, ENOENT));

	{
		struct dict_avp_data garbage = {65000, VENDOR_3GPP, "Secondnum-Test-Garbage",
						 AVP_FLAG_VENDOR | AVP_FLAG_MANDATORY,
						 AVP_FLAG_VENDOR | AVP_FLAG_MANDATORY, AVP_TYPE_UNSIGNED32};
		CHECK_FCT(fd_dict_new(fd_g_config->cnf_dict, DICT_AVP, &garbage, NULL, &d_garbage));
	}

	memset(&when, 0, sizeof(when));
	when.app = d_app_dcca;
	when.command = d_cmd_ccr;
	CHECK_FCT(fd_disp_register(ccr_cb, DISP_HOW_CC, &when, NULL, &ccr_handle));
	/* Advertise Auth-Application-Id 4 in the CEA (RFC 6733 §5.3.2). */
	CHECK_FCT(fd_disp_app_support(d_app_dcca, NULL, 1, 0));
	CHECK_FCT(fd_hook_register(HOOK_MASK(HOOK_MESSAGE_RECEIVED, HOOK_MESSAGE_SENT, HOOK_MESSAGE_PARSING_ERROR,
					     HOOK_PEER_CONNECT_SUCCESS, HOOK_PEER_CONNECT_FAILED),
				   hook_cb, NULL, NULL, &hook_handle));
	CHECK_FCT(client_init());
	log_line("event=ready\tgrant=%u\trefuse=%s\trefuse_code=%u", grant_seconds,
		 refuse_number[0] ? refuse_number : "-", refuse_code);
	return 0;
}

void fd_ext_fini(void)
{
	if (client_thread_started) {
		pthread_cancel(client_thread);
		pthread_join(client_thread, NULL);
	}
	if (ccr_handle != NULL)
		fd_disp_unregister(&ccr_handle, NULL);
	if (hook_handle != NULL)
		fd_hook_unregister(hook_handle);
}

EXTENSION_ENTRY("fd_test_ocs", test_ocs_entry, "dict_dcca_3gpp");
