/*
 * Admin → network (the seed's Figure 5): hostname, interfaces with their
 * addresses, the default gateway and the DNS servers in use. Read-only
 * but for dns_servers, which is a parameter of mailseal.conf.
 */
#include <sys/socket.h>
#include <sys/types.h>

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <netinet/in.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "admin/admin.h"
#include "admin/api.h"
#include "admin/api_config.h"
#include "common/config.h"
#include "common/util.h"

static const struct console_field dns_fields[] = {
	{ "dns_servers", P_DNS_SERVERS, CF_LIST },
	{ NULL, 0, 0 },
};

static int
prefix_len(const struct sockaddr *mask)
{
	const unsigned char *b;
	size_t n;
	int bits = 0;

	if (mask == NULL)
		return -1;
	if (mask->sa_family == AF_INET) {
		b = (const unsigned char *)&((const struct sockaddr_in *)mask)
			->sin_addr;
		n = 4;
	} else if (mask->sa_family == AF_INET6) {
		b = (const unsigned char *)&((const struct sockaddr_in6 *)mask)
			->sin6_addr;
		n = 16;
	} else
		return -1;
	for (size_t i = 0; i < n; i++)
		for (int k = 7; k >= 0; k--)
			bits += (b[i] >> k) & 1;
	return bits;
}

static json_t *
iface_get(json_t *list, const char *name, unsigned flags)
{
	size_t i;
	json_t *it;

	json_array_foreach(list, i, it)
	{
		if (strcmp(json_string_value(json_object_get(it, "name")),
			name) == 0)
			return it;
	}
	it = json_pack("{s:s,s:b,s:b,s:s,s:[]}", "name", name, "up",
	    (flags & IFF_UP) != 0, "loopback", (flags & IFF_LOOPBACK) != 0,
	    "mac", "", "addresses");
	json_array_append_new(list, it);
	return it;
}

static json_t *
interfaces(void)
{
	struct ifaddrs *ifa, *i;
	json_t *list = json_array();
	char buf[INET6_ADDRSTRLEN];

	if (getifaddrs(&ifa) == -1)
		return list;
	for (i = ifa; i != NULL; i = i->ifa_next) {
		json_t *it = iface_get(list, i->ifa_name, i->ifa_flags);
		int fam = i->ifa_addr != NULL ? i->ifa_addr->sa_family : -1;
		if (fam == AF_PACKET) {
			const struct sockaddr_ll *ll =
			    (const struct sockaddr_ll *)i->ifa_addr;
			char mac[3 * 8] = "";
			for (int k = 0; k < ll->sll_halen && k < 8; k++)
				snprintf(mac + 3 * k,
				    sizeof(mac) - 3 * (size_t)k,
				    k ? ":%02x" : "%02x", ll->sll_addr[k]);
			json_object_set_new(it, "mac",
			    json_string(mac[0] == ':' ? mac + 1 : mac));
			continue;
		}
		if (fam != AF_INET && fam != AF_INET6)
			continue;
		const void *a = fam == AF_INET
		    ? (const void *)&((struct sockaddr_in *)i->ifa_addr)
			  ->sin_addr
		    : (const void *)&((struct sockaddr_in6 *)i->ifa_addr)
			  ->sin6_addr;
		inet_ntop(fam, a, buf, sizeof(buf));
		json_array_append_new(json_object_get(it, "addresses"),
		    json_pack("{s:s,s:s,s:i}", "family",
			fam == AF_INET ? "inet" : "inet6", "address", buf,
			"prefix", prefix_len(i->ifa_netmask)));
	}
	freeifaddrs(ifa);
	return list;
}

/* The nameserver and search lines of /etc/resolv.conf. */
static void
resolv_conf(json_t *servers, json_t *search)
{
	char line[1024], word[256];
	FILE *f = fopen("/etc/resolv.conf", "re");

	if (f == NULL)
		return;
	while (fgets(line, sizeof(line), f) != NULL) {
		const char *p = line;
		int n;
		if (sscanf(p, "nameserver %255s", word) == 1)
			json_array_append_new(servers, json_string(word));
		else if (strncmp(p, "search", 6) == 0 ||
		    strncmp(p, "domain", 6) == 0) {
			p += 6;
			while (sscanf(p, " %255s%n", word, &n) == 1) {
				json_array_append_new(
				    search, json_string(word));
				p += n;
			}
		}
	}
	fclose(f);
}

/* The default IPv4 route, from /proc/net/route (hex, little-endian). */
static json_t *
default_gateway(void)
{
	char line[512], ifname[64];
	unsigned dest, gw, flags;
	FILE *f = fopen("/proc/net/route", "re");
	json_t *out = json_null();

	if (f == NULL)
		return out;
	while (fgets(line, sizeof(line), f) != NULL) {
		if (sscanf(line, "%63s %x %x %x", ifname, &dest, &gw, &flags) !=
			4 ||
		    dest != 0 || !(flags & 0x2))
			continue;
		struct in_addr in = { gw };
		char buf[INET_ADDRSTRLEN];
		inet_ntop(AF_INET, &in, buf, sizeof(buf));
		json_decref(out);
		out =
		    json_pack("{s:s,s:s}", "address", buf, "interface", ifname);
		break;
	}
	fclose(f);
	return out;
}

void
api_network_get(struct api_req *r)
{
	json_t *sys = json_array(), *search = json_array(), *dns, *inuse;
	char host[256] = "";

	gethostname(host, sizeof(host) - 1);
	resolv_conf(sys, search);
	dns = console_fields_state(r->a, dns_fields);
	inuse = json_array_size(json_object_get(
		    json_object_get(dns, "running"), "dns_servers")) > 0
	    ? json_incref(json_object_get(
		  json_object_get(dns, "running"), "dns_servers"))
	    : json_incref(sys);
	api_json(r, 200,
	    json_pack("{s:s,s:s,s:o,s:o,s:{s:o,s:o,s:o,s:o}}", "hostname", host,
		"myhostname", cfg_myhostname(r->a->cfg), "interfaces",
		interfaces(), "default_gateway", default_gateway(), "dns",
		"in_use", inuse, "system", sys, "search", search, "config",
		dns));
}

void
api_network_dns_put(struct api_req *r)
{
	console_fields_put(r, dns_fields);
}
