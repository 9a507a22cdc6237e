#include <sys/mman.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "common/config.h"
#include "common/log.h"
#include "common/util.h"
#include "store/masterkey.h"
#include "store/store.h"

#define SEAL_VERSION 1
#define SEAL_NONCE 12
#define SEAL_TAG 16
#define SEAL_OVERHEAD (1 + SEAL_NONCE + SEAL_TAG)

struct masterkey {
	unsigned char key[MASTERKEY_LEN];
};

static char errbuf[256];

char *
masterkey_path(const struct config *cfg)
{
	const char *p = cfg_str(cfg, P_MASTER_KEY_FILE);

	if (*p != '\0')
		return xstrdup(p);
	return xasprintf("%s/master.key", cfg_str(cfg, P_DATA_DIRECTORY));
}

/*
 * A page of its own: locked out of swap (best effort, as RLIMIT_MEMLOCK
 * allows) and left out of core dumps.
 */
static struct masterkey *
masterkey_alloc(void)
{
	struct masterkey *mk;

	mk = mmap(NULL, (size_t)sysconf(_SC_PAGESIZE), PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mk == MAP_FAILED)
		msg_fatal("mmap: %m");
	(void)mlock(mk, sizeof(*mk));
	(void)madvise(mk, (size_t)sysconf(_SC_PAGESIZE), MADV_DONTDUMP);
	return mk;
}

struct masterkey *
masterkey_from_bytes(const unsigned char *key)
{
	struct masterkey *mk = masterkey_alloc();

	memcpy(mk->key, key, MASTERKEY_LEN);
	return mk;
}

void
masterkey_free(struct masterkey **mkp)
{
	struct masterkey *mk = *mkp;

	if (mk == NULL)
		return;
	*mkp = NULL;
	OPENSSL_cleanse(mk, sizeof(*mk));
	(void)munlock(mk, sizeof(*mk));
	munmap(mk, (size_t)sysconf(_SC_PAGESIZE));
}

static int
fail_errno(const char *what, const char *path, const char **error_r)
{
	snprintf(
	    errbuf, sizeof(errbuf), "%s %s: %s", what, path, strerror(errno));
	*error_r = errbuf;
	return -1;
}

/*
 * Makes the file: written to a temporary name, synced, then linked into
 * place, so that a crash never leaves a short key file and two processes
 * that start at once do not make two keys (link fails on the loser).
 */
static int
masterkey_create(const char *path, const char **error_r)
{
	unsigned char key[MASTERKEY_LEN];
	char *tmp = xasprintf("%s.new.%ld", path, (long)getpid());
	char *dir = xstrdup(path);
	int fd, rc = -1;

	if (RAND_priv_bytes(key, sizeof(key)) != 1) {
		*error_r = "cannot make a master key: no randomness";
		goto out;
	}
	(void)unlink(tmp);
	fd = open(
	    tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd == -1) {
		fail_errno("cannot create", tmp, error_r);
		goto out;
	}
	if (fchmod(fd, 0600) == -1 || write_full(fd, key, sizeof(key)) == -1 ||
	    fsync(fd) == -1) {
		fail_errno("cannot write", tmp, error_r);
		close(fd);
		unlink(tmp);
		goto out;
	}
	close(fd);
	if (link(tmp, path) == -1 && errno != EEXIST) {
		fail_errno("cannot create", path, error_r);
		unlink(tmp);
		goto out;
	}
	unlink(tmp);
	(void)fsync_dir(dirname(dir));
	rc = 0;
out:
	OPENSSL_cleanse(key, sizeof(key));
	free(tmp);
	free(dir);
	return rc;
}

static int
masterkey_read(const char *path, struct masterkey **mk_r, const char **error_r)
{
	unsigned char key[MASTERKEY_LEN + 1];
	struct stat st;
	ssize_t n;
	int fd;

	if ((fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) == -1)
		return fail_errno("cannot open master key file", path, error_r);
	if (fstat(fd, &st) == -1) {
		close(fd);
		return fail_errno("cannot stat", path, error_r);
	}
	/* Anyone else who could read or replace it would hold every key. */
	if (!S_ISREG(st.st_mode) || st.st_uid != geteuid() ||
	    (st.st_mode & 077) != 0) {
		close(fd);
		snprintf(errbuf, sizeof(errbuf),
		    "master key file %s must be a regular file owned by uid "
		    "%ld with mode 0600",
		    path, (long)geteuid());
		*error_r = errbuf;
		return -1;
	}
	do
		n = read(fd, key, sizeof(key));
	while (n == -1 && errno == EINTR);
	close(fd);
	if (n != MASTERKEY_LEN) {
		OPENSSL_cleanse(key, sizeof(key));
		if (n == -1)
			return fail_errno("cannot read", path, error_r);
		snprintf(errbuf, sizeof(errbuf),
		    "master key file %s must hold exactly %d bytes", path,
		    MASTERKEY_LEN);
		*error_r = errbuf;
		return -1;
	}
	*mk_r = masterkey_from_bytes(key);
	OPENSSL_cleanse(key, sizeof(key));
	return 0;
}

int
masterkey_load(const char *path, bool create, struct masterkey **mk_r,
    bool *created_r, const char **error_r)
{
	if (created_r != NULL)
		*created_r = false;
	if (create && access(path, F_OK) == -1 && errno == ENOENT) {
		if (masterkey_create(path, error_r) == -1)
			return -1;
		if (created_r != NULL)
			*created_r = true;
	}
	return masterkey_read(path, mk_r, error_r);
}

int
masterkey_pass(const struct masterkey *mk, int *fd_r, const char **error_r)
{
	int p[2];

	if (pipe2(p, O_CLOEXEC) == -1) {
		*error_r = "pipe: cannot pass the master key";
		return -1;
	}
	/* 32 bytes always fit in a pipe's buffer: this does not block. */
	if (write_full(p[1], mk->key, MASTERKEY_LEN) == -1) {
		close(p[0]);
		close(p[1]);
		*error_r = "cannot write the master key into its pipe";
		return -1;
	}
	close(p[1]);
	*fd_r = p[0];
	return 0;
}

int
masterkey_receive_fd(int fd, struct masterkey **mk_r, const char **error_r)
{
	unsigned char key[MASTERKEY_LEN + 1];
	size_t got = 0;
	ssize_t n;

	/* Exactly the key, then end of file: anything else is not ours. */
	for (;;) {
		n = read(fd, key + got, sizeof(key) - got);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
		if (got == sizeof(key))
			break;
	}
	close(fd);
	if (n == -1 || got != MASTERKEY_LEN) {
		OPENSSL_cleanse(key, sizeof(key));
		*error_r = "the master key descriptor did not hold exactly "
			   "one key";
		return -1;
	}
	*mk_r = masterkey_from_bytes(key);
	OPENSSL_cleanse(key, sizeof(key));
	return 0;
}

int
masterkey_receive(struct masterkey **mk_r, const char **error_r)
{
	const char *s = getenv(MASTERKEY_ENV);
	long long fd;

	if (s == NULL) {
		*error_r =
		    "no master key was passed (" MASTERKEY_ENV " is not set)";
		return -1;
	}
	if (parse_ll(s, 3, 65535, &fd) == -1) {
		*error_r = MASTERKEY_ENV " is not a descriptor number";
		return -1;
	}
	unsetenv(MASTERKEY_ENV);
	return masterkey_receive_fd((int)fd, mk_r, error_r);
}

void
masterkey_id(const struct masterkey *mk, char id[MASTERKEY_ID_LEN + 1])
{
	static const char label[] = "mailseal master key id v1";
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int len = 0;

	if (HMAC(EVP_sha256(), mk->key, MASTERKEY_LEN,
		(const unsigned char *)label, sizeof(label) - 1, mac,
		&len) == NULL ||
	    len < MASTERKEY_ID_LEN / 2)
		msg_panic("masterkey_id: HMAC-SHA256 failed");
	for (size_t i = 0; i < MASTERKEY_ID_LEN / 2; i++)
		snprintf(id + 2 * i, 3, "%02x", mac[i]);
}

int
masterkey_check_store(
    const struct masterkey *mk, struct store *st, const char **error_r)
{
	char id[MASTERKEY_ID_LEN + 1], *stored = NULL;
	int rc = 0;

	masterkey_id(mk, id);
	if (store_meta_get(st, "masterkey_id", &stored, error_r) == -1)
		return -1;
	if (stored == NULL)
		return store_meta_set(st, "masterkey_id", id, error_r);
	if (strcmp(stored, id) != 0) {
		snprintf(errbuf, sizeof(errbuf),
		    "the master key (id %s) is not the one the store's private "
		    "keys are sealed under (id %s): restore the right "
		    "master_key_file",
		    id, stored);
		*error_r = errbuf;
		rc = -1;
	}
	free(stored);
	return rc;
}

int
masterkey_seal(const struct masterkey *mk, const char *aad,
    const unsigned char *in, size_t len, unsigned char **out_r,
    size_t *outlen_r, const char **error_r)
{
	EVP_CIPHER_CTX *c;
	unsigned char *out, *nonce, *ct;
	int n, fin, rc = -1;

	if (len > 1 << 24) {
		*error_r = "masterkey_seal: too much data";
		return -1;
	}
	out = xmalloc(len + SEAL_OVERHEAD);
	out[0] = SEAL_VERSION;
	nonce = out + 1;
	ct = nonce + SEAL_NONCE;
	if (RAND_bytes(nonce, SEAL_NONCE) != 1) {
		free(out);
		*error_r = "masterkey_seal: no randomness";
		return -1;
	}
	if ((c = EVP_CIPHER_CTX_new()) == NULL)
		msg_fatal("out of memory");
	if (EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), NULL, mk->key, nonce) !=
		1 ||
	    EVP_EncryptUpdate(c, NULL, &n, (const unsigned char *)aad,
		(int)strlen(aad)) != 1 ||
	    EVP_EncryptUpdate(c, ct, &n, in, (int)len) != 1 ||
	    EVP_EncryptFinal_ex(c, ct + n, &fin) != 1 ||
	    (size_t)(n + fin) != len ||
	    EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, SEAL_TAG, ct + len) !=
		1) {
		*error_r = "masterkey_seal: AES-256-GCM failed";
		free(out);
		goto done;
	}
	*out_r = out;
	*outlen_r = len + SEAL_OVERHEAD;
	rc = 0;
done:
	EVP_CIPHER_CTX_free(c);
	return rc;
}

int
masterkey_unseal(const struct masterkey *mk, const char *aad,
    const unsigned char *in, size_t len, unsigned char **out_r,
    size_t *outlen_r, const char **error_r)
{
	const unsigned char *nonce = in + 1, *ct = in + 1 + SEAL_NONCE;
	EVP_CIPHER_CTX *c;
	unsigned char *out;
	size_t ctlen;
	int n = 0, fin = 0, rc = -1;

	if (len < SEAL_OVERHEAD || in[0] != SEAL_VERSION) {
		*error_r = "not a sealed key blob";
		return -1;
	}
	ctlen = len - SEAL_OVERHEAD;
	out = xmalloc(ctlen + 1);
	if ((c = EVP_CIPHER_CTX_new()) == NULL)
		msg_fatal("out of memory");
	if (EVP_DecryptInit_ex(c, EVP_aes_256_gcm(), NULL, mk->key, nonce) !=
		1 ||
	    EVP_DecryptUpdate(c, NULL, &n, (const unsigned char *)aad,
		(int)strlen(aad)) != 1 ||
	    EVP_DecryptUpdate(c, out, &n, ct, (int)ctlen) != 1 ||
	    EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, SEAL_TAG,
		(void *)(uintptr_t)(ct + ctlen)) != 1 ||
	    EVP_DecryptFinal_ex(c, out + n, &fin) != 1) {
		/* A wrong master key, or a blob that was changed or moved. */
		*error_r = "the sealed key does not open: wrong master key or "
			   "damaged blob";
		xfree_secret(out, ctlen + 1);
		goto done;
	}
	*out_r = out;
	*outlen_r = (size_t)(n + fin);
	rc = 0;
done:
	EVP_CIPHER_CTX_free(c);
	return rc;
}

int
masterkey_setup(struct store *st, const char *path, struct masterkey **mk_r,
    bool *created_r, const char **error_r)
{
	char *id = NULL;
	bool create;

	*mk_r = NULL;
	if (store_meta_get(st, "masterkey_id", &id, error_r) == -1)
		return -1;
	create = id == NULL;
	if (!create && access(path, F_OK) == -1 && errno == ENOENT) {
		snprintf(errbuf, sizeof(errbuf),
		    "master key file %s is missing, but the store holds keys "
		    "sealed under master key id %s: restore the file from "
		    "its backup",
		    path, id);
		free(id);
		*error_r = errbuf;
		return -1;
	}
	free(id);
	if (masterkey_load(path, create, mk_r, created_r, error_r) == -1)
		return -1;
	if (masterkey_check_store(*mk_r, st, error_r) == -1) {
		masterkey_free(mk_r);
		return -1;
	}
	return 0;
}
