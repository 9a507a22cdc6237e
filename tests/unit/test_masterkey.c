#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <sys/stat.h>
#include <sys/wait.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/util.h"
#include "store/masterkey.h"
#include "store/store.h"

static char tmpdir[64];

static int
setup(void **state)
{
	strcpy(tmpdir, "/tmp/mailseal-mk-XXXXXX");
	assert_non_null(mkdtemp(tmpdir));
	return 0;
}

static int
teardown(void **state)
{
	char *cmd = xasprintf("rm -rf %s", tmpdir);

	assert_int_equal(system(cmd), 0);
	free(cmd);
	return 0;
}

static char *
tmp(const char *name)
{
	return xasprintf("%s/%s", tmpdir, name);
}

static void
create_and_reload(void **state)
{
	struct masterkey *a = NULL, *b = NULL;
	char *path = tmp("master.key"), ida[MASTERKEY_ID_LEN + 1],
	     idb[MASTERKEY_ID_LEN + 1];
	const char *why = "";
	struct stat st;
	bool created;

	if (masterkey_load(path, true, &a, &created, &why) != 0)
		fail_msg("%s", why);
	assert_true(created);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(st.st_size, MASTERKEY_LEN);
	assert_int_equal(masterkey_load(path, true, &b, &created, &why), 0);
	assert_false(created);
	masterkey_id(a, ida);
	masterkey_id(b, idb);
	assert_string_equal(ida, idb);
	assert_int_equal(strlen(ida), MASTERKEY_ID_LEN);
	masterkey_free(&a);
	masterkey_free(&b);
	assert_null(a);
	free(path);
}

static void
refuses_bad_files(void **state)
{
	struct masterkey *mk = NULL;
	char *path = tmp("k"), *link = tmp("link");
	const char *why;
	int fd;

	/* Missing, without create. */
	assert_int_equal(masterkey_load(path, false, &mk, NULL, &why), -1);
	/* Readable by others. */
	fd = open(path, O_WRONLY | O_CREAT, 0644);
	assert_int_equal(write(fd, "0123456789abcdef0123456789abcdef", 32), 32);
	close(fd);
	chmod(path, 0644);
	assert_int_equal(masterkey_load(path, false, &mk, NULL, &why), -1);
	assert_non_null(strstr(why, "mode 0600"));
	/* The wrong size. */
	chmod(path, 0600);
	fd = open(path, O_WRONLY | O_APPEND);
	assert_int_equal(write(fd, "x", 1), 1);
	close(fd);
	assert_int_equal(masterkey_load(path, false, &mk, NULL, &why), -1);
	assert_non_null(strstr(why, "exactly 32 bytes"));
	/* A symbolic link is not followed. */
	assert_int_equal(truncate(path, 32), 0);
	assert_int_equal(masterkey_load(path, false, &mk, NULL, &why), 0);
	masterkey_free(&mk);
	assert_int_equal(symlink(path, link), 0);
	assert_int_equal(masterkey_load(link, false, &mk, NULL, &why), -1);
	assert_null(mk);
	free(path);
	free(link);
}

static void
seal_open(void **state)
{
	unsigned char k1[MASTERKEY_LEN], k2[MASTERKEY_LEN];
	static const unsigned char secret[] = "-----BEGIN PRIVATE KEY----- x";
	struct masterkey *a, *b;
	unsigned char *blob, *out;
	size_t blen, olen;
	const char *why;

	memset(k1, 1, sizeof(k1));
	memset(k2, 2, sizeof(k2));
	a = masterkey_from_bytes(k1);
	b = masterkey_from_bytes(k2);
	assert_int_equal(masterkey_seal(a, "aad-1", secret, sizeof(secret),
			     &blob, &blen, &why),
	    0);
	assert_int_equal(blen, sizeof(secret) + 1 + 12 + 16);
	/* The plaintext is not in the blob. */
	assert_null(memmem(blob, blen, "PRIVATE KEY", 11));
	assert_int_equal(
	    masterkey_unseal(a, "aad-1", blob, blen, &out, &olen, &why), 0);
	assert_int_equal(olen, sizeof(secret));
	assert_memory_equal(out, secret, olen);
	xfree_secret(out, olen);
	/* Another key, another use (aad), a changed byte: nothing opens. */
	assert_int_equal(
	    masterkey_unseal(b, "aad-1", blob, blen, &out, &olen, &why), -1);
	assert_int_equal(
	    masterkey_unseal(a, "aad-2", blob, blen, &out, &olen, &why), -1);
	blob[20] ^= 1;
	assert_int_equal(
	    masterkey_unseal(a, "aad-1", blob, blen, &out, &olen, &why), -1);
	assert_int_equal(
	    masterkey_unseal(a, "aad-1", blob, 10, &out, &olen, &why), -1);
	free(blob);
	/* Two seals of the same text differ (a fresh nonce each time). */
	unsigned char *b1, *b2;
	size_t l1, l2;
	assert_int_equal(masterkey_seal(a, "x", secret, 4, &b1, &l1, &why), 0);
	assert_int_equal(masterkey_seal(a, "x", secret, 4, &b2, &l2, &why), 0);
	assert_memory_not_equal(b1, b2, l1);
	free(b1);
	free(b2);
	masterkey_free(&a);
	masterkey_free(&b);
}

/* The parent's pipe, read by a forked child through MAILSEAL_KEY_FD. */
static void
pass_to_child(void **state)
{
	unsigned char k[MASTERKEY_LEN];
	char ida[MASTERKEY_ID_LEN + 1];
	struct masterkey *mk;
	const char *why;
	int fd, status;
	pid_t pid;

	for (size_t i = 0; i < sizeof(k); i++)
		k[i] = (unsigned char)(i * 7 + 3);
	mk = masterkey_from_bytes(k);
	masterkey_id(mk, ida);
	assert_int_equal(masterkey_pass(mk, &fd, &why), 0);
	if ((pid = fork()) == 0) {
		struct masterkey *got = NULL;
		char idb[MASTERKEY_ID_LEN + 1], num[16];
		int to = dup(fd); /* without close-on-exec, as after exec */
		snprintf(num, sizeof(num), "%d", to);
		setenv(MASTERKEY_ENV, num, 1);
		if (masterkey_receive(&got, &why) != 0)
			_exit(1);
		masterkey_id(got, idb);
		/* Read once: the variable is gone, the descriptor closed. */
		if (getenv(MASTERKEY_ENV) != NULL || fcntl(to, F_GETFD) != -1)
			_exit(2);
		_exit(strcmp(ida, idb) == 0 ? 0 : 3);
	}
	close(fd);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);

	/* Nothing passed, or something else than one key: refused. */
	unsetenv(MASTERKEY_ENV);
	assert_int_equal(masterkey_receive(&mk, &why), -1);
	int p[2];
	assert_int_equal(pipe(p), 0);
	assert_int_equal(write(p[1], k, sizeof(k)), (ssize_t)sizeof(k));
	assert_int_equal(write(p[1], "x", 1), 1);
	close(p[1]);
	struct masterkey *bad = NULL;
	assert_int_equal(masterkey_receive_fd(p[0], &bad, &why), -1);
	assert_null(bad);
	masterkey_free(&mk);
}

/* The store remembers the key's id: a new or wrong key is noticed. */
static void
store_binding(void **state)
{
	struct masterkey *mk = NULL, *other = NULL;
	struct store *st;
	char *path = tmp("master.key"), *uri, *id = NULL;
	unsigned char k[MASTERKEY_LEN];
	const char *why = "";
	bool created;

	uri = xasprintf("sqlite:%s/store.db", tmpdir);
	assert_int_equal(store_open(uri, STORE_CREATE, &st, &why), 0);
	if (masterkey_setup(st, path, &mk, &created, &why) != 0)
		fail_msg("%s", why);
	assert_true(created);
	assert_int_equal(store_meta_get(st, "masterkey_id", &id, &why), 0);
	assert_non_null(id);
	free(id);
	assert_int_equal(masterkey_check_store(mk, st, &why), 0);
	memset(k, 9, sizeof(k));
	other = masterkey_from_bytes(k);
	assert_int_equal(masterkey_check_store(other, st, &why), -1);
	assert_non_null(strstr(why, "not the one"));
	masterkey_free(&other);
	masterkey_free(&mk);

	/* The file lost: no new key is made for a store that had one. */
	assert_int_equal(unlink(path), 0);
	assert_int_equal(masterkey_setup(st, path, &mk, &created, &why), -1);
	assert_non_null(strstr(why, "missing"));
	assert_int_equal(access(path, F_OK), -1);
	store_close(&st);
	free(uri);
	free(path);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
		    create_and_reload, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    refuses_bad_files, setup, teardown),
		cmocka_unit_test(seal_open),
		cmocka_unit_test(pass_to_child),
		cmocka_unit_test_setup_teardown(store_binding, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
