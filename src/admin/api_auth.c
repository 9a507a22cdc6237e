/*
 * Login, logout and the session probe. The session cookie is HttpOnly
 * (no script reads it), Secure (HTTPS only) and SameSite=Strict (no
 * other site's page sends it); the CSRF token goes to the page in the
 * body of the login and session replies, which another origin cannot
 * read.
 */
#include <stdlib.h>
#include <string.h>

#include "admin/admin.h"
#include "admin/admin_store.h"
#include "admin/api.h"
#include "admin/password.h"
#include "common/config.h"
#include "common/log.h"
#include "common/util.h"
#include "store/store.h"

#define COOKIE "mailseal_session"

/* Verified when the user does not exist, so both take as long. */
static const char dummy_hash[] =
    "$scrypt$ln=15,r=8,p=1$00000000000000000000000000000000$"
    "0000000000000000000000000000000000000000000000000000000000000000";

static json_t *
session_json(struct api_req *r, const struct session *s)
{
	return json_pack("{s:s,s:s,s:I}", "username", s->username, "csrf_token",
	    s->csrf, "idle_timeout",
	    (json_int_t)cfg_int(r->a->cfg, P_ADMIN_SESSION_TIMEOUT));
}

void
api_login(struct api_req *r)
{
	static const char *const keys[] = { "username", "password", NULL };
	struct store_admin *adm = NULL;
	json_t *errors = json_object();
	const char *user, *pw, *why;
	char *kaddr, *kuser, id[SESSION_ID_HEX + 1];
	unsigned wait, w2;
	uint64_t now = clock_mono_us();
	struct session *s;
	bool ok;

	json_reject_unknown(r->json, keys, errors);
	json_get_string(r->json, "username", true, 64, &user, errors);
	json_get_string(r->json, "password", true, 1024, &pw, errors);
	if (json_object_size(errors) > 0) {
		api_field_errors(r, errors);
		return;
	}
	json_decref(errors);
	kaddr = xasprintf("addr:%s", r->client_addr);
	kuser = xasprintf("user:%s", user);
	wait = ratelimit_blocked(r->a->rl, kaddr, now);
	w2 = ratelimit_blocked(r->a->rl, kuser, now);
	if (w2 > wait)
		wait = w2;
	if (wait > 0) {
		api_header(r, "Retry-After", "%u", wait);
		api_error(r, 429,
		    "too many failed logins: try again in %u seconds", wait);
		goto out;
	}
	if (*user != '\0' &&
	    store_admin_get(admin_st(r->a), user, &adm, &why) == -1 &&
	    adm == NULL && strstr(why, "admin name") == NULL) {
		api_error(r, 500, "store: %s", why);
		goto out;
	}
	ok = password_verify(
		 pw, adm != NULL ? adm->password_hash : dummy_hash) &&
	    adm != NULL;
	if (!ok) {
		ratelimit_fail(r->a->rl, kaddr, now);
		ratelimit_fail(r->a->rl, kuser, now);
		msg_warn("admin login failed for user %.64s from %s", user,
		    r->client_addr);
		api_error(r, 401, "wrong user name or password");
		goto out;
	}
	ratelimit_reset(r->a->rl, kaddr);
	ratelimit_reset(r->a->rl, kuser);
	if (r->session != NULL)
		sessions_remove(&r->a->sessions, r->session);
	s = sessions_create(&r->a->sessions, adm->name, now, id);
	session_set_pw_tag(s, adm->password_hash);
	r->session = s;
	api_header(r, "Set-Cookie",
	    COOKIE "=%s; Path=/; Secure; HttpOnly; SameSite=Strict", id);
	explicit_bzero(id, sizeof(id));
	msg_info("admin %s logged in from %s", adm->name, r->client_addr);
	api_json(r, 200, session_json(r, s));
out:
	if (adm != NULL)
		store_admin_free(adm, 1);
	free(kaddr);
	free(kuser);
}

void
api_logout(struct api_req *r)
{
	msg_info("admin %s logged out", r->session->username);
	sessions_remove(&r->a->sessions, r->session);
	r->session = NULL;
	api_header(r, "Set-Cookie",
	    COOKIE "=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0");
	api_no_content(r);
}

void
api_session(struct api_req *r)
{
	api_json(r, 200, session_json(r, r->session));
}
