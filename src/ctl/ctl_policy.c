/*
 * mailsealctl domain | user | global | property: the policy levels and
 * their properties (src/policy/).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/config.h"
#include "common/util.h"
#include "ctl/ctl.h"
#include "policy/policy.h"
#include "store/store.h"

/* Takes --json out of argv; returns whether it was there. */
static bool
take_json(int *argc, char **argv)
{
	bool found = false;
	int k = 0;

	for (int i = 0; i < *argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			found = true;
		else
			argv[k++] = argv[i];
	}
	*argc = k;
	return found;
}

/* die_on(f(..., &why), &why): the pointer, since argument order is free. */
static void
die_on(int rc, const char *const *why)
{
	if (rc == -1)
		ctl_die("%s", *why);
}

static const char *
source_text(const struct policy_value *v, char *buf, size_t size)
{
	if (v->source != NULL)
		snprintf(
		    buf, size, "%s %s", policy_level_name(v->level), v->source);
	else
		snprintf(buf, size, "%s", policy_level_name(v->level));
	return buf;
}

static json_t *
policy_json(const struct policy *pol)
{
	json_t *props = json_object();

	for (int i = 0; i < PROP__COUNT; i++) {
		const struct policy_value *v = &pol->v[i];
		json_object_set_new(props, prop_table[i].name,
		    json_pack("{s:s,s:s,s:s?}", "value", v->value, "level",
			policy_level_name(v->level), "source", v->source));
	}
	return json_pack("{s:s?,s:b,s:o}", "name", pol->name, "record",
	    pol->has_record, "properties", props);
}

static void
policy_print(const struct policy *pol)
{
	char src[300];

	printf("%-28s %-28s %s\n", "property", "value", "from");
	for (int i = 0; i < PROP__COUNT; i++) {
		const struct policy_value *v = &pol->v[i];
		printf("%-28s %-28s %s\n", prop_table[i].name,
		    *v->value ? v->value : "\"\"",
		    source_text(v, src, sizeof(src)));
	}
}

static int
level_show(struct ctl *ctl, enum store_level level, int argc, char **argv,
    const char *cmd)
{
	bool json = take_json(&argc, argv);
	struct policy *pol;
	const char *why;

	if (argc != (level == STORE_GLOBAL ? 1 : 2))
		return ctl_usage(cmd);
	die_on(policy_resolve(ctl_store(ctl), level,
		   level == STORE_GLOBAL ? NULL : argv[1], &pol, &why),
	    &why);
	if (json)
		ctl_json_print(policy_json(pol));
	else {
		if (level == STORE_USER)
			printf("user: %s%s\n", pol->name,
			    pol->has_record ? "" : " (no user record)");
		else if (level == STORE_DOMAIN)
			printf("domain: %s%s\n", pol->name,
			    pol->has_record ? "" : " (no domain record)");
		policy_print(pol);
	}
	policy_free(&pol);
	return 0;
}

static int
level_set(struct ctl *ctl, enum store_level level, int argc, char **argv,
    const char *cmd)
{
	const char *why, *owner = NULL;
	int k = 1;

	if (argc != (level == STORE_GLOBAL ? 3 : 4))
		return ctl_usage(cmd);
	if (level != STORE_GLOBAL)
		owner = argv[k++];
	die_on(policy_set(
		   ctl_store(ctl), level, owner, argv[k], argv[k + 1], &why),
	    &why);
	return 0;
}

static int
level_inherit(struct ctl *ctl, enum store_level level, int argc, char **argv,
    const char *cmd)
{
	const char *why, *owner = NULL;
	int k = 1;

	if (argc != (level == STORE_GLOBAL ? 2 : 3))
		return ctl_usage(cmd);
	if (level != STORE_GLOBAL)
		owner = argv[k++];
	die_on(
	    policy_inherit(ctl_store(ctl), level, owner, argv[k], &why), &why);
	return 0;
}

static int
names_list(struct ctl *ctl, enum store_level level, int argc, char **argv,
    const char *cmd)
{
	bool json = take_json(&argc, argv);
	struct strlist names = { 0 };
	const char *why;

	if (argc > (level == STORE_USER ? 2 : 1))
		return ctl_usage(cmd);
	if (level == STORE_USER)
		die_on(store_user_list(ctl_store(ctl),
			   argc == 2 ? argv[1] : NULL, &names, &why),
		    &why);
	else
		die_on(store_domain_list(ctl_store(ctl), &names, &why), &why);
	if (json) {
		json_t *a = json_array();
		for (size_t i = 0; i < names.n; i++)
			json_array_append_new(a, json_string(names.v[i]));
		ctl_json_print(a);
	} else
		for (size_t i = 0; i < names.n; i++)
			printf("%s\n", names.v[i]);
	strlist_free(&names);
	return 0;
}

typedef int name_fn(struct store *, const char *, const char **);

static int
name_op(struct ctl *ctl, name_fn *fn, int argc, char **argv, const char *cmd)
{
	const char *why;

	if (argc != 2)
		return ctl_usage(cmd);
	die_on(fn(ctl_store(ctl), argv[1], &why), &why);
	return 0;
}

/* The subcommands of domain and user, one table. */
struct level_cmd {
	const char *name;
	int (*run)(struct ctl *, enum store_level, int, char **, const char *);
};

static int
do_add(struct ctl *ctl, enum store_level level, int argc, char **argv,
    const char *cmd)
{
	return name_op(ctl,
	    level == STORE_USER ? store_user_add : store_domain_add, argc, argv,
	    cmd);
}

static int
do_delete(struct ctl *ctl, enum store_level level, int argc, char **argv,
    const char *cmd)
{
	return name_op(ctl,
	    level == STORE_USER ? store_user_delete : store_domain_delete, argc,
	    argv, cmd);
}

static const struct level_cmd level_cmds[] = {
	{ "add", do_add },
	{ "delete", do_delete },
	{ "list", names_list },
	{ "show", level_show },
	{ "set", level_set },
	{ "inherit", level_inherit },
};

static int
level_main(struct ctl *ctl, enum store_level level, int argc, char **argv)
{
	const char *cmd = argv[0];

	if (argc < 2)
		return ctl_usage(cmd);
	for (size_t i = 0; i < nitems(level_cmds); i++) {
		if (strcmp(argv[1], level_cmds[i].name) != 0)
			continue;
		if (level == STORE_GLOBAL && level_cmds[i].run != level_show &&
		    level_cmds[i].run != level_set &&
		    level_cmds[i].run != level_inherit)
			break;
		return level_cmds[i].run(ctl, level, argc - 1, argv + 1, cmd);
	}
	return ctl_usage(cmd);
}

int
ctl_domain_main(struct ctl *ctl, int argc, char **argv)
{
	return level_main(ctl, STORE_DOMAIN, argc, argv);
}

int
ctl_user_main(struct ctl *ctl, int argc, char **argv)
{
	return level_main(ctl, STORE_USER, argc, argv);
}

int
ctl_global_main(struct ctl *ctl, int argc, char **argv)
{
	return level_main(ctl, STORE_GLOBAL, argc, argv);
}

static void
print_choices(const struct prop_def *d)
{
	for (const char *p = d->choices; *p != '\0'; p++)
		if (*p == '|')
			printf(", ");
		else
			putchar(*p);
}

void
ctl_property_doc(void)
{
	printf("# Policy properties\n\n"
	       "<!-- Generated by `mailsealctl property doc` from "
	       "src/policy/properties.def; do not edit. -->\n\n"
	       "Every setting that can differ per recipient or sender is a "
	       "property. A property is set, or inherited, at each level; "
	       "the effective value of an address comes from the first "
	       "level that sets it: the user (the address), its domain, the "
	       "wildcard domains that cover it (`*.example.com` covers "
	       "`sub.example.com` and deeper, not `example.com`; the most "
	       "specific first), the global level, and last the factory "
	       "default below. `mailsealctl user show EMAIL` prints each "
	       "effective value and the level it came from, also for "
	       "addresses that have no user record.\n\n"
	       "```sh\n"
	       "mailsealctl domain add example.com\n"
	       "mailsealctl domain set example.com locality internal\n"
	       "mailsealctl user set alice@example.com sign_mode always\n"
	       "mailsealctl user inherit alice@example.com sign_mode\n"
	       "mailsealctl global set encrypt_mode mandatory\n"
	       "```\n\n"
	       "Recipient properties decide encryption and decryption; the "
	       "sender's properties decide signing.\n\n");
	printf("| property | default |\n|---|---|\n");
	for (int i = 0; i < PROP__COUNT; i++)
		printf("| [`%s`](#%s) | `%s` |\n", prop_table[i].name,
		    prop_table[i].name,
		    *prop_table[i].def ? prop_table[i].def : " ");
	printf("\n");
	for (int i = 0; i < PROP__COUNT; i++) {
		const struct prop_def *d = &prop_table[i];
		printf("## %s\n\n%s\n\n- Type: %s", d->name, d->help,
		    prop_type_name(d->type));
		if (d->choices != NULL) {
			printf(", one of ");
			print_choices(d);
		}
		printf("\n- Default: %s%s%s\n\n", *d->def ? "`" : "",
		    *d->def ? d->def : "(empty)", *d->def ? "`" : "");
	}
}

static int
property_list(int argc, char **argv)
{
	bool json = take_json(&argc, argv);
	json_t *a = json_array();

	if (argc != 1)
		return ctl_usage("property");
	for (int i = 0; i < PROP__COUNT; i++) {
		const struct prop_def *d = &prop_table[i];
		if (json) {
			json_array_append_new(a,
			    json_pack("{s:s,s:s,s:s,s:s?,s:s}", "name", d->name,
				"type", prop_type_name(d->type), "default",
				d->def, "choices", d->choices, "help",
				d->help));
			continue;
		}
		printf("%-28s %-10s ", d->name, *d->def ? d->def : "\"\"");
		if (d->choices != NULL)
			print_choices(d);
		else
			printf("%s", prop_type_name(d->type));
		printf("\n");
	}
	if (json)
		ctl_json_print(a);
	else
		json_decref(a);
	return 0;
}

int
ctl_property_main(struct ctl *ctl, int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "list") == 0)
		return property_list(argc - 1, argv + 1);
	if (argc == 2 && strcmp(argv[1], "doc") == 0) {
		ctl_property_doc();
		return 0;
	}
	return ctl_usage("property");
}
