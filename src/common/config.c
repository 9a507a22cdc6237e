#include <sys/stat.h>

#include <arpa/inet.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "build_config.h"
#include "common/config.h"
#include "common/log.h"
#include "common/util.h"

bool
config_console_settable(int param)
{
	static const int allowed[] = {
		P_MYHOSTNAME,
		P_SMTP_HELO_NAME,
		P_MYNETWORKS,
		P_RELAY_DOMAINS,
		P_MATCH_SUBDOMAINS,
		P_RELAY_REJECT_CODE,
		P_INTERNAL_RELAY_HOST,
		P_EXTERNAL_RELAY_HOST,
		P_BEFORE_FILTER_MESSAGE_SIZE_LIMIT,
		P_AFTER_FILTER_MESSAGE_SIZE_LIMIT,
		P_REJECT_UNVERIFIED_RECIPIENT,
		P_UNVERIFIED_RECIPIENT_REJECT_CODE,
		P_DNS_SERVERS,
		P_SMTP_SASL_PASSWORD_MAPS,
	};

	for (size_t i = 0; i < nitems(allowed); i++)
		if (allowed[i] == param)
			return true;
	return false;
}

const char *
config_default_path(void)
{
	const char *env = getenv("MAILSEAL_CONFIG");

	return env != NULL && *env != '\0' ? env
					   : MAILSEAL_SYSCONFDIR
	    "/mailseal.conf";
}

void
strlist_add(struct strlist *l, const char *s)
{
	l->v = xreallocarray(l->v, l->n + 2, sizeof(*l->v));
	l->v[l->n++] = xstrdup(s);
	l->v[l->n] = NULL;
}

void
strlist_addf(struct strlist *l, const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	s = xvasprintf(fmt, ap);
	va_end(ap);
	strlist_add(l, s);
	free(s);
}

void
strlist_free(struct strlist *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

bool
strlist_contains_ci(const struct strlist *l, const char *s)
{
	for (size_t i = 0; i < l->n; i++)
		if (strcasecmp(l->v[i], s) == 0)
			return true;
	return false;
}

void
strlist_split(struct strlist *l, const char *s)
{
	const char *p = s, *start;

	for (;;) {
		while (*p == ',' || isspace((unsigned char)*p))
			p++;
		if (*p == '\0')
			break;
		start = p;
		while (*p != '\0' && *p != ',' && !isspace((unsigned char)*p))
			p++;
		char *item = xstrndup(start, (size_t)(p - start));
		strlist_add(l, item);
		free(item);
	}
}

bool
hostname_valid(const char *s)
{
	size_t label = 0, total = 0;

	if (*s == '\0' || *s == '.')
		return false;
	for (; *s != '\0'; s++, total++) {
		unsigned char c = (unsigned char)*s;
		if (c == '.') {
			if (label == 0 || s[-1] == '-')
				return false;
			label = 0;
			continue;
		}
		if (!isalnum(c) && c != '-' && c != '_')
			return false;
		if (label == 0 && c == '-')
			return false;
		if (++label > 63)
			return false;
	}
	return total <= 253;
}

static bool
host_or_literal_valid(const char *host)
{
	unsigned char a[16];

	return hostname_valid(host) || inet_pton(AF_INET, host, a) == 1;
}

void
nexthop_free(struct nexthop *nh)
{
	free(nh->host);
	nh->host = NULL;
}

/*
 * Postfix's relayhost syntax: "[host]:port" suppresses the MX lookup;
 * "host:port" looks up MX records of host. An IPv6 address must be in
 * brackets, optionally as "[ipv6:2001:db8::1]".
 */
int
nexthop_parse(
    const char *s, int defport, struct nexthop *nh, const char **error_r)
{
	const char *hstart, *hend, *rest;
	char host[256];
	long long port = defport;
	size_t len;
	unsigned char a[16];

	memset(nh, 0, sizeof(*nh));
	nh->port = defport;
	if (*s == '\0')
		return 0;
	if (*s == '[') {
		hstart = s + 1;
		if ((hend = strchr(hstart, ']')) == NULL) {
			*error_r = "missing ']'";
			return -1;
		}
		rest = hend + 1;
		nh->mx = false;
	} else {
		hstart = s;
		hend = strchr(s, ':');
		if (hend == NULL)
			hend = s + strlen(s);
		rest = hend;
		nh->mx = true;
	}
	len = (size_t)(hend - hstart);
	if (len == 0 || len >= sizeof(host)) {
		*error_r = "bad host name";
		return -1;
	}
	memcpy(host, hstart, len);
	host[len] = '\0';
	if (*rest == ':') {
		if (parse_ll(rest + 1, 1, 65535, &port) == -1) {
			*error_r = "bad port number";
			return -1;
		}
	} else if (*rest != '\0') {
		*error_r = "unexpected text after host";
		return -1;
	}
	if (!nh->mx) {
		const char *h = host;
		if (str_has_prefix_ci(h, "ipv6:"))
			h += 5;
		if (inet_pton(AF_INET6, h, a) == 1 ||
		    host_or_literal_valid(h)) {
			memmove(host, h, strlen(h) + 1);
		} else {
			*error_r = "bad host name";
			return -1;
		}
	} else if (!hostname_valid(host)) {
		*error_r = "bad host name (an IP address needs [brackets])";
		return -1;
	} else if (inet_pton(AF_INET, host, a) == 1) {
		*error_r = "an IP address needs [brackets]: it has no MX "
			   "records";
		return -1;
	}
	nh->host = xstrdup(host);
	str_lower(nh->host);
	nh->port = (int)port;
	return 0;
}

static int
hostport_parse(
    const char *s, int defport, struct hostport *hp, const char **error_r)
{
	const char *hend, *rest, *hstart = s;
	char host[256];
	long long port = defport;
	unsigned char a[16];
	size_t len;

	if (*s == '[') {
		hstart = s + 1;
		if ((hend = strchr(hstart, ']')) == NULL) {
			*error_r = "missing ']'";
			return -1;
		}
		rest = hend + 1;
	} else {
		hend = strchr(s, ':');
		if (hend == NULL)
			hend = s + strlen(s);
		rest = hend;
	}
	len = (size_t)(hend - hstart);
	if (len == 0 || len >= sizeof(host)) {
		*error_r = "bad address";
		return -1;
	}
	memcpy(host, hstart, len);
	host[len] = '\0';
	if (*rest == ':') {
		if (parse_ll(rest + 1, 1, 65535, &port) == -1) {
			*error_r = "bad port number";
			return -1;
		}
	} else if (*rest != '\0' || defport == 0) {
		*error_r = "expected host:port";
		return -1;
	}
	if (s[0] == '[' ? inet_pton(AF_INET6, host, a) != 1
			: !host_or_literal_valid(host)) {
		*error_r = "bad address";
		return -1;
	}
	hp->host = xstrdup(host);
	hp->port = (int)port;
	return 0;
}

static int
parse_time(const char *s, long long *out_r)
{
	char num[32];
	size_t len = strlen(s);
	long long v, mult = 1;

	if (len == 0 || len >= sizeof(num))
		return -1;
	memcpy(num, s, len + 1);
	switch (num[len - 1]) {
	case 's':
		mult = 1;
		break;
	case 'm':
		mult = 60;
		break;
	case 'h':
		mult = 3600;
		break;
	case 'd':
		mult = 86400;
		break;
	case 'w':
		mult = 7 * 86400;
		break;
	default:
		if (!isdigit((unsigned char)num[len - 1]))
			return -1;
		len++;
	}
	num[len - 1] = '\0';
	if (parse_ll(num, 0, 1000000000, &v) == -1)
		return -1;
	*out_r = v * mult;
	return 0;
}

static bool
choice_allowed(const char *choices, const char *value)
{
	size_t vlen = strlen(value);
	const char *p = choices, *bar;

	for (;;) {
		bar = strchr(p, '|');
		size_t len = bar != NULL ? (size_t)(bar - p) : strlen(p);
		if (len == vlen && strncasecmp(p, value, len) == 0)
			return true;
		if (bar == NULL)
			return false;
		p = bar + 1;
	}
}

static const char *
choices_text(const char *choices)
{
	static char buf[256];
	char *o = buf;
	const char *p;

	for (p = choices; *p != '\0' && o < buf + sizeof(buf) - 5; p++) {
		if (*p == '|') {
			*o++ = ',';
			*o++ = ' ';
		} else
			*o++ = *p;
	}
	*o = '\0';
	return buf;
}

/* Parses value into v according to the parameter's type. */
static int
pvalue_parse(
    int param, const char *value, struct pvalue *v, const char **error_r)
{
	const struct param_def *d = &param_table[param];
	static char errbuf[256];
	struct strlist items = { 0 };
	long long n;

	switch (d->type) {
	case PT_STR:
		return 0;
	case PT_HOST:
		if (*value != '\0' && !hostname_valid(value)) {
			*error_r = "not a valid host name";
			return -1;
		}
		return 0;
	case PT_BOOL:
		if (strcasecmp(value, "yes") == 0)
			v->i = 1;
		else if (strcasecmp(value, "no") == 0)
			v->i = 0;
		else {
			*error_r = "must be yes or no";
			return -1;
		}
		return 0;
	case PT_INT:
	case PT_SIZE:
		if (parse_ll(value,
			d->min != 0 || d->max != 0 ? d->min : -(1LL << 62),
			d->min != 0 || d->max != 0 ? d->max : (1LL << 62),
			&n) == -1) {
			if (d->choices != NULL)
				snprintf(errbuf, sizeof(errbuf),
				    "must be one of %s",
				    choices_text(d->choices));
			else
				snprintf(errbuf, sizeof(errbuf),
				    "must be an integer from %lld to %lld",
				    d->min, d->max);
			*error_r = errbuf;
			return -1;
		}
		if (d->choices != NULL && !choice_allowed(d->choices, value)) {
			snprintf(errbuf, sizeof(errbuf), "must be one of %s",
			    choices_text(d->choices));
			*error_r = errbuf;
			return -1;
		}
		v->i = n;
		return 0;
	case PT_TIME:
		if (parse_time(value, &n) == -1) {
			*error_r = "must be a time such as 300s, 30m, 4h or "
				   "5d";
			return -1;
		}
		if (n < d->min || n > d->max) {
			snprintf(errbuf, sizeof(errbuf),
			    "must be from %llds to %llds", d->min, d->max);
			*error_r = errbuf;
			return -1;
		}
		v->i = n;
		return 0;
	case PT_ENUM:
		if (!choice_allowed(d->choices, value)) {
			snprintf(errbuf, sizeof(errbuf), "must be one of %s",
			    choices_text(d->choices));
			*error_r = errbuf;
			return -1;
		}
		return 0;
	case PT_DOMAINS:
		strlist_split(&items, value);
		for (size_t i = 0; i < items.n; i++) {
			if (!hostname_valid(items.v[i])) {
				snprintf(errbuf, sizeof(errbuf),
				    "'%.100s' is not a valid domain name",
				    items.v[i]);
				*error_r = errbuf;
				strlist_free(&items);
				return -1;
			}
			str_lower(items.v[i]);
		}
		v->list = items;
		return 0;
	case PT_CIDRS:
		strlist_split(&items, value);
		v->cidrs.v = xcalloc(items.n, sizeof(struct cidr));
		for (size_t i = 0; i < items.n; i++) {
			const char *why;
			if (cidr_parse(items.v[i], &v->cidrs.v[i], &why) ==
			    -1) {
				snprintf(errbuf, sizeof(errbuf),
				    "'%.100s' is not a network: %s", items.v[i],
				    why);
				*error_r = errbuf;
				strlist_free(&items);
				free(v->cidrs.v);
				v->cidrs.v = NULL;
				return -1;
			}
		}
		v->cidrs.n = items.n;
		v->list = items;
		return 0;
	case PT_NEXTHOP: {
		const char *why;
		if (nexthop_parse(value, 25, &v->nh, &why) == -1) {
			snprintf(errbuf, sizeof(errbuf),
			    "'%.100s' is not a next hop: %s", value, why);
			*error_r = errbuf;
			return -1;
		}
		return 0;
	}
	case PT_LISTEN:
		strlist_split(&items, value);
		v->hp = xcalloc(items.n, sizeof(struct hostport));
		for (size_t i = 0; i < items.n; i++) {
			const char *why;
			int defport = param == P_DNS_SERVERS ? 53 : 0;
			if (hostport_parse(
				items.v[i], defport, &v->hp[i], &why) == -1) {
				snprintf(errbuf, sizeof(errbuf), "'%.100s': %s",
				    items.v[i], why);
				*error_r = errbuf;
				for (size_t j = 0; j < i; j++)
					free(v->hp[j].host);
				free(v->hp);
				v->hp = NULL;
				strlist_free(&items);
				return -1;
			}
		}
		v->nhp = items.n;
		v->list = items;
		return 0;
	case PT_PATH:
		if (*value != '\0' && *value != '/') {
			*error_r = "must be an absolute path";
			return -1;
		}
		return 0;
	case PT_STORE:
		if (strncmp(value, "sqlite:", 7) == 0 && value[7] == '/')
			return 0;
		if (strncmp(value, "postgresql://", 13) == 0) {
			*error_r = "the postgresql store is not available in "
				   "this version";
			return -1;
		}
		*error_r = "must be sqlite:/absolute/path";
		return -1;
	}
	msg_panic("pvalue_parse: bad type %d", d->type);
}

static void
pvalue_free(struct pvalue *v)
{
	free(v->raw);
	strlist_free(&v->list);
	free(v->cidrs.v);
	nexthop_free(&v->nh);
	for (size_t i = 0; i < v->nhp; i++)
		free(v->hp[i].host);
	free(v->hp);
	memset(v, 0, sizeof(*v));
}

int
config_check_value(int param, const char *value, const char **error_r)
{
	struct pvalue v = { 0 };
	int rc;

	rc = pvalue_parse(param, value, &v, error_r);
	pvalue_free(&v);
	return rc;
}

/* Cross-parameter checks, after every value is parsed. */
static void
config_check_all(struct config *cfg, const char *name, struct strlist *errors)
{
	struct pvalue *a = &cfg->v[P_AFTER_FILTER_MESSAGE_SIZE_LIMIT];
	struct pvalue *b = &cfg->v[P_BEFORE_FILTER_MESSAGE_SIZE_LIMIT];

	if (a->i < b->i)
		strlist_addf(errors,
		    "%s:%d: error: after_filter_message_size_limit (%lld) "
		    "must not be smaller than "
		    "before_filter_message_size_limit (%lld)",
		    name, a->set ? a->line : b->line, a->i, b->i);
	if (cfg->v[P_MINIMAL_BACKOFF_TIME].i >
	    cfg->v[P_MAXIMAL_BACKOFF_TIME].i) {
		struct pvalue *m = &cfg->v[P_MINIMAL_BACKOFF_TIME];
		strlist_addf(errors,
		    "%s:%d: error: minimal_backoff_time (%llds) must not be "
		    "larger than maximal_backoff_time (%llds)",
		    name,
		    m->set ? m->line : cfg->v[P_MAXIMAL_BACKOFF_TIME].line,
		    m->i, cfg->v[P_MAXIMAL_BACKOFF_TIME].i);
	}
	for (size_t i = 0; i < cfg->v[P_DNS_SERVERS].nhp; i++) {
		unsigned char addr[16];
		const char *h = cfg->v[P_DNS_SERVERS].hp[i].host;
		if (inet_pton(AF_INET, h, addr) != 1 &&
		    inet_pton(AF_INET6, h, addr) != 1)
			strlist_addf(errors,
			    "%s:%d: error: dns_servers: '%s' is not an IP "
			    "address",
			    name, cfg->v[P_DNS_SERVERS].line, h);
	}
	if (cfg_nexthop(cfg, P_INTERNAL_RELAY_HOST)->host == NULL &&
	    cfg_bool(cfg, P_REJECT_UNVERIFIED_RECIPIENT)) {
		struct pvalue *r = &cfg->v[P_REJECT_UNVERIFIED_RECIPIENT];
		strlist_addf(errors,
		    "%s:%d: error: reject_unverified_recipient = yes needs "
		    "an internal_relay_host to ask",
		    name, r->line);
	}
}

static void
config_set_hostname(struct config *cfg)
{
	char host[256];

	if (*cfg_str(cfg, P_MYHOSTNAME) != '\0') {
		cfg->hostname = xstrdup(cfg_str(cfg, P_MYHOSTNAME));
		return;
	}
	if (gethostname(host, sizeof(host) - 1) == -1 || host[0] == '\0')
		strlcpy_ms(host, "localhost", sizeof(host));
	host[sizeof(host) - 1] = '\0';
	cfg->hostname = xstrdup(host);
}

/* Applies one logical line "name = value". */
static void
config_apply_line(struct config *cfg, const char *file, int line, char *logical,
    struct strlist *errors)
{
	struct pvalue nv = { 0 };
	char *eq, *pname, *val;
	const char *why;
	int id;

	if ((eq = strchr(logical, '=')) == NULL) {
		strlist_addf(errors, "%s:%d: error: missing '=' after '%.100s'",
		    file, line, logical);
		return;
	}
	*eq = '\0';
	pname = str_trim(logical);
	val = str_trim(eq + 1);
	if ((id = param_lookup(pname)) < 0) {
		strlist_addf(errors, "%s:%d: error: unknown parameter '%.100s'",
		    file, line, pname);
		return;
	}
	if (pvalue_parse(id, val, &nv, &why) == -1) {
		strlist_addf(errors,
		    "%s:%d: error: bad value '%.200s' for %s: %s", file, line,
		    val, pname, why);
		pvalue_free(&nv);
		return;
	}
	pvalue_free(&cfg->v[id]);
	nv.raw = xstrdup(val);
	nv.set = true;
	nv.line = line;
	cfg->v[id] = nv;
}

int
config_load_string(const char *name, const char *text, struct config **cfg_r,
    struct strlist *errors)
{
	struct config *cfg;
	size_t nerr = errors->n;
	const char *p = text;
	char *logical = NULL;
	int lineno = 0, start = 0;

	cfg = xcalloc(1, sizeof(*cfg));
	cfg->refs = 1;
	cfg->path = xstrdup(name);
	for (int i = 0; i < P__COUNT; i++) {
		const char *why;
		cfg->v[i].raw = xstrdup(param_table[i].def);
		if (pvalue_parse(i, param_table[i].def, &cfg->v[i], &why) == -1)
			msg_panic(
			    "default of %s: %s", param_table[i].name, why);
	}

	/* Logical lines: a line that starts with white space continues. */
	for (;;) {
		const char *eol = strchr(p, '\n');
		size_t len = eol != NULL ? (size_t)(eol - p) : strlen(p);
		char *line = xstrndup(p, len), *t;

		if (len > 0 && line[len - 1] == '\r')
			line[len - 1] = '\0';
		lineno++;
		t = str_trim(line);
		if (*t == '\0' || *t == '#') {
			/* Blank and comment lines. */
		} else if (isspace((unsigned char)line[0])) {
			if (logical == NULL)
				strlist_addf(errors,
				    "%s:%d: error: continuation line without "
				    "a parameter",
				    name, lineno);
			else {
				char *j = xasprintf("%s %s", logical, t);
				free(logical);
				logical = j;
			}
		} else {
			if (logical != NULL)
				config_apply_line(
				    cfg, name, start, logical, errors);
			free(logical);
			logical = xstrdup(t);
			start = lineno;
		}
		free(line);
		if (eol == NULL)
			break;
		p = eol + 1;
	}
	if (logical != NULL)
		config_apply_line(cfg, name, start, logical, errors);
	free(logical);
	if (errors->n == nerr)
		config_check_all(cfg, name, errors);
	if (errors->n != nerr) {
		config_unref(&cfg);
		return -1;
	}
	config_set_hostname(cfg);
	*cfg_r = cfg;
	return 0;
}

int
config_load(const char *path, struct config **cfg_r, struct strlist *errors)
{
	char *text;
	int rc;

	if (file_read_all(path, &text, NULL) == -1) {
		strlist_addf(errors, "%s: error: cannot read: %s", path,
		    strerror(errno));
		return -1;
	}
	rc = config_load_string(path, text, cfg_r, errors);
	free(text);
	return rc;
}

struct config *
config_ref(struct config *cfg)
{
	cfg->refs++;
	return cfg;
}

void
config_unref(struct config **cfgp)
{
	struct config *cfg = *cfgp;

	if (cfg == NULL)
		return;
	*cfgp = NULL;
	if (--cfg->refs > 0)
		return;
	for (int i = 0; i < P__COUNT; i++)
		pvalue_free(&cfg->v[i]);
	free(cfg->hostname);
	free(cfg->path);
	free(cfg);
}

const char *
cfg_str(const struct config *cfg, enum param_id id)
{
	return cfg->v[id].raw;
}

long long
cfg_int(const struct config *cfg, enum param_id id)
{
	return cfg->v[id].i;
}

bool
cfg_bool(const struct config *cfg, enum param_id id)
{
	return cfg->v[id].i != 0;
}

const struct strlist *
cfg_list(const struct config *cfg, enum param_id id)
{
	return &cfg->v[id].list;
}

const struct cidr_list *
cfg_cidrs(const struct config *cfg, enum param_id id)
{
	return &cfg->v[id].cidrs;
}

const struct nexthop *
cfg_nexthop(const struct config *cfg, enum param_id id)
{
	return &cfg->v[id].nh;
}

const struct hostport *
cfg_listen(const struct config *cfg, enum param_id id, size_t *n_r)
{
	*n_r = cfg->v[id].nhp;
	return cfg->v[id].hp;
}

const char *
cfg_myhostname(const struct config *cfg)
{
	return cfg->hostname;
}

const char *
cfg_helo_name(const struct config *cfg)
{
	const char *h = cfg_str(cfg, P_SMTP_HELO_NAME);

	return *h != '\0' ? h : cfg->hostname;
}

const char *
config_bool_str(bool b)
{
	return b ? "yes" : "no";
}

/* Rewriting the file, keeping comments and the order of lines. */

static bool
line_sets(const char *line, const char *name)
{
	size_t n = strlen(name);

	if (strncmp(line, name, n) != 0)
		return false;
	line += n;
	while (*line == ' ' || *line == '\t')
		line++;
	return *line == '=';
}

/* The text with name = value set (or its line removed when unset). */
static char *
config_text_set(
    const char *text, const char *name, const char *value, bool unset)
{
	struct strlist out = { 0 };
	bool replaced = false, skipping = false;
	size_t total = 0;
	char *joined;

	for (const char *p = text, *eol; *p != '\0'; p = eol) {
		eol = strchr(p, '\n');
		eol = eol != NULL ? eol + 1 : p + strlen(p);
		char *line = xstrndup(p, (size_t)(eol - p));
		bool cont = line[0] == ' ' || line[0] == '\t';
		char *copy = xstrdup(line), *t = str_trim(copy);
		bool comment = *t == '\0' || *t == '#';
		free(copy);
		if (skipping && cont && !comment) {
			free(line);
			continue;
		}
		skipping = false;
		if (!cont && line_sets(line, name)) {
			skipping = true;
			if (!replaced && !unset)
				strlist_addf(&out, "%s = %s\n", name, value);
			replaced = true;
			free(line);
			continue;
		}
		strlist_add(&out, line);
		free(line);
	}
	if (!replaced && !unset) {
		if (out.n > 0 &&
		    out.v[out.n - 1][strlen(out.v[out.n - 1]) - 1] != '\n')
			strlist_add(&out, "\n");
		strlist_addf(&out, "%s = %s\n", name, value);
	}
	for (size_t i = 0; i < out.n; i++)
		total += strlen(out.v[i]);
	joined = xmalloc(total + 1);
	joined[0] = '\0';
	for (size_t i = 0, off = 0; i < out.n; i++) {
		size_t l = strlen(out.v[i]);
		memcpy(joined + off, out.v[i], l + 1);
		off += l;
	}
	strlist_free(&out);
	return joined;
}

int
config_file_set(const char *path, const char *name, const char *value,
    bool unset, struct strlist *errors)
{
	struct config_change ch = { name, value, unset };

	return config_file_change(path, &ch, 1, errors);
}

int
config_file_change(const char *path, const struct config_change *changes,
    size_t n, struct strlist *errors)
{
	struct config *check = NULL;
	struct stat st;
	char *text = NULL, *tmp = NULL;
	const char *why;
	size_t nerr = errors->n;
	int fd = -1, rc = -1;

	for (size_t i = 0; i < n; i++) {
		const struct config_change *c = &changes[i];
		int id = param_lookup(c->name);
		if (id < 0) {
			strlist_addf(
			    errors, "error: unknown parameter '%s'", c->name);
			continue;
		}
		if (strchr(c->value, '\n') != NULL ||
		    strchr(c->value, '\r') != NULL) {
			strlist_addf(
			    errors, "error: a value cannot hold a line break");
			continue;
		}
		if (!c->unset && config_check_value(id, c->value, &why) == -1)
			strlist_addf(errors, "error: bad value '%s' for %s: %s",
			    c->value, c->name, why);
	}
	if (errors->n != nerr)
		return -1;
	if (file_read_all(path, &text, NULL) == -1) {
		if (errno != ENOENT) {
			strlist_addf(errors, "%s: error: cannot read: %s", path,
			    strerror(errno));
			return -1;
		}
		text = xstrdup("");
	}
	for (size_t i = 0; i < n; i++) {
		char *next = config_text_set(
		    text, changes[i].name, changes[i].value, changes[i].unset);
		free(text);
		text = next;
	}

	/* The whole new file must be valid before it replaces the old. */
	if (config_load_string(path, text, &check, errors) == -1)
		goto out;
	config_unref(&check);

	tmp = xasprintf("%s.tmp.%ld", path, (long)getpid());
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) ==
	    -1) {
		strlist_addf(errors, "%s: error: cannot create: %s", tmp,
		    strerror(errno));
		goto out;
	}
	if (stat(path, &st) == 0) {
		(void)!fchmod(fd, st.st_mode & 07777);
		(void)!fchown(fd, st.st_uid, st.st_gid);
	}
	if (write_full(fd, text, strlen(text)) == -1 || fsync(fd) == -1) {
		strlist_addf(errors, "%s: error: cannot write: %s", tmp,
		    strerror(errno));
		unlink(tmp);
		goto out;
	}
	if (rename(tmp, path) == -1) {
		strlist_addf(errors, "%s: error: cannot rename: %s", path,
		    strerror(errno));
		unlink(tmp);
		goto out;
	}
	rc = 0;
out:
	if (fd != -1)
		close(fd);
	free(tmp);
	free(text);
	return rc;
}
