#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/admin.h"
#include "admin/admin_store.h"
#include "admin/password.h"
#include "common/config.h"
#include "common/util.h"
#include "crypto/certs.h"
#include "store/masterkey.h"
#include "store/store.h"

int
admin_store_open(struct admin *a, const char **error_r)
{
	struct admin_store *as = xcalloc(1, sizeof(*as));

	a->store = as;
	if (a->test_mode)
		return 0;
	if (masterkey_receive(&as->mk, error_r) == -1)
		return -1;
	if (store_open(cfg_str(a->cfg, P_STORE), 0, &as->st, error_r) == -1)
		return -1;
	if (masterkey_check_store(as->mk, as->st, error_r) == -1)
		return -1;
	return certs_open(as->st, &as->cs, error_r);
}

void
admin_store_close(struct admin *a)
{
	struct admin_store *as = a->store;

	if (as == NULL)
		return;
	certs_close(&as->cs);
	store_close(&as->st);
	masterkey_free(&as->mk);
	free(as);
	a->store = NULL;
}

struct store *
admin_st(struct admin *a)
{
	return ((struct admin_store *)a->store)->st;
}

int
admin_first_setup(struct store *st, const char **error_r)
{
	struct store_admin *v = NULL;
	char password[21], *hash;
	size_t n = 0;

	if (store_admin_list(st, &v, &n, error_r) == -1)
		return -1;
	store_admin_free(v, n);
	if (n > 0)
		return 0;
	password_random(password, sizeof(password));
	if (password_hash(password, &hash, error_r) == -1)
		return -1;
	if (store_admin_add(st, "admin", hash, error_r) == -1) {
		free(hash);
		return -1;
	}
	free(hash);
	/* The terminal of whoever starts the daemon; never the mail log. */
	fprintf(stderr,
	    "\n"
	    "mailseald: made the first admin console user:\n"
	    "    user:     admin\n"
	    "    password: %s\n"
	    "This password is shown only now. Change it in the console "
	    "(Admin -> admins)\n"
	    "or with: mailsealctl admin passwd admin\n\n",
	    password);
	fflush(stderr);
	explicit_bzero(password, sizeof(password));
	return 0;
}
