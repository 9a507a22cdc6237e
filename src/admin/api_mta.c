/*
 * The MTA page (the seed's Figures 10 and 11) on mailseal.conf: what the
 * file says, what the daemon runs, and which of them differ ("pending").
 * A change is checked field by field, then as a whole file, and written
 * atomically; "Apply" (api_config.c) makes the daemon reload it.
 */
#include <stdlib.h>
#include <string.h>

#include "admin/admin.h"
#include "admin/api.h"
#include "admin/api_config.h"
#include "common/config.h"
#include "common/util.h"

const struct console_field mta_fields[] = {
	{ "relay_domains", P_RELAY_DOMAINS, CF_LIST },
	{ "mynetworks", P_MYNETWORKS, CF_LIST },
	{ "myhostname", P_MYHOSTNAME, CF_TEXT },
	{ "external_relay_host", P_EXTERNAL_RELAY_HOST, CF_NEXTHOP },
	{ "internal_relay_host", P_INTERNAL_RELAY_HOST, CF_NEXTHOP },
	{ "match_subdomains", P_MATCH_SUBDOMAINS, CF_BOOL },
	{ "before_filter_message_size_limit",
	    P_BEFORE_FILTER_MESSAGE_SIZE_LIMIT, CF_INT },
	{ "after_filter_message_size_limit", P_AFTER_FILTER_MESSAGE_SIZE_LIMIT,
	    CF_INT },
	{ "smtp_helo_name", P_SMTP_HELO_NAME, CF_TEXT },
	{ "reject_unverified_recipient", P_REJECT_UNVERIFIED_RECIPIENT,
	    CF_BOOL },
	{ "unverified_recipient_reject_code",
	    P_UNVERIFIED_RECIPIENT_REJECT_CODE, CF_INT },
	{ NULL, 0, 0 },
};

void
api_mta_get(struct api_req *r)
{
	api_json(r, 200, console_fields_state(r->a, mta_fields));
}

void
api_mta_put(struct api_req *r)
{
	console_fields_put(r, mta_fields);
}
