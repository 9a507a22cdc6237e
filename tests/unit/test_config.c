#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/config.h"
#include "common/confwriter.h"
#include "common/util.h"

static struct config *
load_ok(const char *text)
{
	struct strlist errors = { 0 };
	struct config *cfg = NULL;

	if (config_load_string("t.conf", text, &cfg, &errors) != 0)
		fail_msg("unexpected error: %s", errors.v[0]);
	return cfg;
}

/* Loads text that must fail; returns the first error. */
static char *
load_bad(const char *text)
{
	struct strlist errors = { 0 };
	struct config *cfg = NULL;
	char *first;

	if (config_load_string("t.conf", text, &cfg, &errors) == 0)
		fail_msg("accepted: %s", text);
	assert_null(cfg);
	assert_true(errors.n > 0);
	first = xstrdup(errors.v[0]);
	strlist_free(&errors);
	return first;
}

static void
defaults(void **state)
{
	struct config *cfg = load_ok("");

	assert_int_equal(
	    cfg_int(cfg, P_BEFORE_FILTER_MESSAGE_SIZE_LIMIT), 10240000);
	assert_int_equal(
	    cfg_int(cfg, P_AFTER_FILTER_MESSAGE_SIZE_LIMIT), 30720000);
	assert_int_equal(cfg_int(cfg, P_RELAY_REJECT_CODE), 454);
	assert_int_equal(cfg_int(cfg, P_UNVERIFIED_RECIPIENT_REJECT_CODE), 450);
	assert_int_equal(cfg_int(cfg, P_MAXIMAL_QUEUE_LIFETIME), 5 * 86400);
	assert_int_equal(cfg_int(cfg, P_SMTPD_TIMEOUT), 300);
	assert_false(cfg_bool(cfg, P_MATCH_SUBDOMAINS));
	assert_false(cfg_bool(cfg, P_REJECT_UNVERIFIED_RECIPIENT));
	assert_int_equal(cfg_cidrs(cfg, P_MYNETWORKS)->n, 2);
	assert_null(cfg_nexthop(cfg, P_EXTERNAL_RELAY_HOST)->host);
	assert_true(*cfg_myhostname(cfg) != '\0');
	assert_string_equal(cfg_helo_name(cfg), cfg_myhostname(cfg));
	config_unref(&cfg);
}

static void
syntax(void **state)
{
	struct config *cfg = load_ok(
	    "# a comment\n"
	    "myhostname = gw.example.com\n"
	    "\n"
	    "   # an indented comment is a comment, not a continuation\n"
	    "relay_domains = example.com,\n"
	    "    Example.NET  example.org\n"
	    "\tsub.example.com\n"
	    "smtp_helo_name=helo.example.com\n"
	    "maximal_queue_lifetime = 2h\n"
	    "smtpd_timeout = 30\n"
	    "mynetworks = 10.0.0.0/8 [2001:db8::]/32, 192.0.2.7\n"
	    "mynetworks = 10.1.0.0/16\n"
	    "match_subdomains = YES");
	const struct strlist *rd = cfg_list(cfg, P_RELAY_DOMAINS);

	assert_string_equal(cfg_myhostname(cfg), "gw.example.com");
	assert_string_equal(cfg_helo_name(cfg), "helo.example.com");
	assert_int_equal(rd->n, 4);
	assert_string_equal(rd->v[1], "example.net");
	assert_string_equal(rd->v[3], "sub.example.com");
	assert_int_equal(cfg_int(cfg, P_MAXIMAL_QUEUE_LIFETIME), 7200);
	assert_int_equal(cfg_int(cfg, P_SMTPD_TIMEOUT), 30);
	/* The last setting wins, as in Postfix. */
	assert_int_equal(cfg_cidrs(cfg, P_MYNETWORKS)->n, 1);
	assert_true(cfg_bool(cfg, P_MATCH_SUBDOMAINS));
	assert_true(cfg->v[P_MATCH_SUBDOMAINS].set);
	assert_false(cfg->v[P_SMTPD_LISTEN].set);
	config_unref(&cfg);
}

static void
nexthops(void **state)
{
	struct config *cfg =
	    load_ok("internal_relay_host = [mail.internal]\n"
		    "external_relay_host = relay.isp.test:587\n");
	const struct nexthop *in = cfg_nexthop(cfg, P_INTERNAL_RELAY_HOST);
	const struct nexthop *ex = cfg_nexthop(cfg, P_EXTERNAL_RELAY_HOST);

	assert_string_equal(in->host, "mail.internal");
	assert_int_equal(in->port, 25);
	assert_false(in->mx);
	assert_string_equal(ex->host, "relay.isp.test");
	assert_int_equal(ex->port, 587);
	assert_true(ex->mx);
	config_unref(&cfg);

	cfg = load_ok("internal_relay_host = [192.0.2.10]:2525\n"
		      "external_relay_host = [ipv6:2001:db8::1]:25\n");
	assert_string_equal(
	    cfg_nexthop(cfg, P_INTERNAL_RELAY_HOST)->host, "192.0.2.10");
	assert_int_equal(cfg_nexthop(cfg, P_INTERNAL_RELAY_HOST)->port, 2525);
	assert_string_equal(
	    cfg_nexthop(cfg, P_EXTERNAL_RELAY_HOST)->host, "2001:db8::1");
	config_unref(&cfg);
}

static void
errors(void **state)
{
	static const struct {
		const char *text, *want;
	} t[] = {
		{ "bogus_parameter = 1\n",
		    "t.conf:1: error: unknown parameter 'bogus_parameter'" },
		{ "\n\nrelay_reject_code = 450\n",
		    "t.conf:3: error: bad value '450' for relay_reject_code: "
		    "must be one of 454, 554" },
		{ "unverified_recipient_reject_code = 554\n",
		    "t.conf:1: error: bad value '554' for "
		    "unverified_recipient_reject_code: must be one of 450, "
		    "550" },
		{ "match_subdomains = maybe\n",
		    "t.conf:1: error: bad value 'maybe' for match_subdomains: "
		    "must be yes or no" },
		{ "mynetworks = 10.0.0.1/8\n",
		    "t.conf:1: error: bad value '10.0.0.1/8' for mynetworks: "
		    "'10.0.0.1/8' is not a network: non-zero host bits" },
		{ "myhostname\n",
		    "t.conf:1: error: missing '=' after "
		    "'myhostname'" },
		{ "  relay_domains = x\n",
		    "t.conf:1: error: continuation "
		    "line without a parameter" },
		{ "internal_relay_host = 192.0.2.1\n",
		    "t.conf:1: error: bad value '192.0.2.1' for "
		    "internal_relay_host: '192.0.2.1' is not a next hop: an IP "
		    "address needs [brackets]: it has no MX records" },
		{ "external_relay_host = [relay]:99999\n",
		    "t.conf:1: error: bad value '[relay]:99999' for "
		    "external_relay_host: '[relay]:99999' is not a next hop: "
		    "bad port number" },
		{ "smtpd_timeout = 5 years\n",
		    "t.conf:1: error: bad value '5 years' for smtpd_timeout: "
		    "must be a time such as 300s, 30m, 4h or 5d" },
		{ "queue_directory = var/spool\n",
		    "t.conf:1: error: bad value 'var/spool' for "
		    "queue_directory: must be an absolute path" },
		{ "store = mysql://x\n",
		    "t.conf:1: error: bad value "
		    "'mysql://x' for store: must be "
		    "sqlite:/absolute/path" },
		{ "smtpd_listen = 127.0.0.1\n",
		    "t.conf:1: error: bad value '127.0.0.1' for smtpd_listen: "
		    "'127.0.0.1': expected host:port" },
		{ "before_filter_message_size_limit = 40000000\n",
		    "t.conf:1: error: after_filter_message_size_limit "
		    "(30720000) must not be smaller than "
		    "before_filter_message_size_limit (40000000)" },
		{ "reject_unverified_recipient = yes\n",
		    "t.conf:1: error: reject_unverified_recipient = yes needs "
		    "an internal_relay_host to ask" },
		{ "dns_servers = 127.0.0.53:5353, ns.example.com\n",
		    "t.conf:1: error: dns_servers: 'ns.example.com' is not an "
		    "IP address" },
		{ "minimal_backoff_time = 1h\nmaximal_backoff_time = 30m\n",
		    "t.conf:1: error: minimal_backoff_time (3600s) must not be "
		    "larger than maximal_backoff_time (1800s)" },
		{ "smtp_tls_security_level = dane\n",
		    "t.conf:1: error: bad value 'dane' for "
		    "smtp_tls_security_level: must be one of may, encrypt, "
		    "none" },
		{ "relay_domains = example.com, bad..domain\n",
		    "t.conf:1: error: bad value 'example.com, bad..domain' for "
		    "relay_domains: 'bad..domain' is not a valid domain name" },
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		char *got = load_bad(t[i].text);
		if (strcmp(got, t[i].want) != 0)
			fail_msg("for %s\n got: %s\nwant: %s", t[i].text, got,
			    t[i].want);
		free(got);
	}
}

static void
all_errors_reported(void **state)
{
	struct strlist errors = { 0 };
	struct config *cfg;

	assert_int_equal(
	    config_load_string("t.conf", "a = 1\nmyhostname = ok.test\nb = 2\n",
		&cfg, &errors),
	    -1);
	assert_int_equal(errors.n, 2);
	assert_string_equal(
	    errors.v[1], "t.conf:3: error: unknown parameter 'b'");
	strlist_free(&errors);
}

static void
file_set_keeps_comments(void **state)
{
	char path[] = "/tmp/mailseal-test-XXXXXX";
	struct strlist errors = { 0 };
	char *text;
	int fd = mkstemp(path);

	assert_true(fd != -1);
	const char *orig = "# Relay domains of the company\n"
			   "relay_domains = a.test,\n"
			   "    b.test\n"
			   "\n"
			   "# hostname\n"
			   "myhostname = gw.test\n";
	assert_int_equal(write(fd, orig, strlen(orig)), (ssize_t)strlen(orig));
	close(fd);

	assert_int_equal(
	    config_file_set(path, "relay_domains", "c.test", false, &errors),
	    0);
	assert_int_equal(
	    config_file_set(path, "match_subdomains", "yes", false, &errors),
	    0);
	assert_int_equal(file_read_all(path, &text, NULL), 0);
	assert_string_equal(text,
	    "# Relay domains of the company\n"
	    "relay_domains = c.test\n"
	    "\n"
	    "# hostname\n"
	    "myhostname = gw.test\n"
	    "match_subdomains = yes\n");
	free(text);

	/* A bad value leaves the file as it was. */
	assert_int_equal(
	    config_file_set(path, "relay_reject_code", "500", false, &errors),
	    -1);
	assert_int_equal(
	    config_file_set(path, "no_such_thing", "1", false, &errors), -1);
	assert_int_equal(
	    config_file_set(path, "before_filter_message_size_limit",
		"99999999", false, &errors),
	    -1);
	assert_int_equal(errors.n, 3);
	strlist_free(&errors);
	assert_int_equal(
	    config_file_set(path, "myhostname", "", true, &errors), 0);
	assert_int_equal(file_read_all(path, &text, NULL), 0);
	assert_null(strstr(text, "myhostname ="));
	assert_non_null(strstr(text, "# hostname\n"));
	free(text);
	unlink(path);
}

static char *
handle(const char *path, const char *req)
{
	return confwriter_handle(path, req, strlen(req));
}

static void
confwriter_allow_list(void **state)
{
	char path[] = "/tmp/mailseal-cw-XXXXXX";
	char *reply, *text;
	int fd = mkstemp(path);
	const char *base = "myhostname = gw.test\n";

	assert_true(fd != -1);
	assert_int_equal(write(fd, base, strlen(base)), (ssize_t)strlen(base));
	close(fd);
	/* An MTA setting goes through. */
	reply = handle(path,
	    "{\"changes\":[{\"name\":\"relay_domains\",\"value\":"
	    "\"a.test\",\"unset\":false}]}");
	assert_string_equal(reply, "{\"ok\":true}");
	free(reply);
	/* What root opens at start is not for the console. */
	static const char *refused[] = { "maillog_file", "queue_directory",
		"mail_owner", "store", "smtpd_tls_key_file", "smtpd_listen",
		"master_key_file", "no_such_parameter" };
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		char *req = xasprintf("{\"changes\":[{\"name\":\"%s\","
				      "\"value\":\"/etc/shadow\"}]}",
		    refused[i]);
		reply = confwriter_handle(path, req, strlen(req));
		assert_non_null(strstr(reply,
		    "cannot be changed from the "
		    "console"));
		free(reply);
		free(req);
	}
	/* A bad value is refused with the file's own message. */
	reply = handle(path,
	    "{\"changes\":[{\"name\":\"relay_reject_code\",\"value\":"
	    "\"500\"}]}");
	assert_non_null(strstr(reply, "must be one of 454, 554"));
	free(reply);
	reply = handle(path, "garbage");
	assert_non_null(strstr(reply, "malformed request"));
	free(reply);
	assert_int_equal(file_read_all(path, &text, NULL), 0);
	assert_string_equal(text,
	    "myhostname = gw.test\nrelay_domains = "
	    "a.test\n");
	free(text);
	unlink(path);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(defaults),
		cmocka_unit_test(syntax),
		cmocka_unit_test(nexthops),
		cmocka_unit_test(errors),
		cmocka_unit_test(all_errors_reported),
		cmocka_unit_test(file_set_keeps_comments),
		cmocka_unit_test(confwriter_allow_list),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
