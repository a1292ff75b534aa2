//go:build openssl && cgo

// The C side of package openssl: small wrappers, so that each Go call is
// one cgo call and OpenSSL's per-thread error queue is read in the same
// call that filled it.

#include <stdlib.h>
#include <string.h>
#include "shim.h"

// tb_alpn_idx is the SSL ex_data slot holding a connection's ALPN
// preference list (wire format, 2-byte length first), malloc'ed by Go.
static int tb_alpn_idx = -1;

int tb_init(void) {
	if (tb_alpn_idx < 0)
		tb_alpn_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
	return tb_alpn_idx;
}

// tb_alpn_cb picks the first of our protocols that the app offered, as
// crypto/tls does; none in common (or none of ours) is answered without
// ALPN rather than with an alert, which old stacks handle better.
int tb_alpn_cb(SSL *s, const unsigned char **out, unsigned char *outlen,
		const unsigned char *in, unsigned int inlen, void *arg) {
	const unsigned char *p = SSL_get_ex_data(s, tb_alpn_idx);
	if (p == NULL)
		return SSL_TLSEXT_ERR_NOACK;
	unsigned int n = (unsigned int)p[0] << 8 | p[1];
	if (SSL_select_next_proto((unsigned char **)out, outlen, p + 2, n, in, inlen) != OPENSSL_NPN_NEGOTIATED)
		return SSL_TLSEXT_ERR_NOACK;
	return SSL_TLSEXT_ERR_OK;
}

void tb_set_alpn_cb(SSL_CTX *ctx) {
	SSL_CTX_set_alpn_select_cb(ctx, tb_alpn_cb, NULL);
}

int tb_set_alpn(SSL *s, void *p) { return SSL_set_ex_data(s, tb_alpn_idx, p); }

// tb_new_ssl makes a connection's SSL with two memory BIOs: reads come
// from what Go fed in, writes stay until Go drains them.
SSL *tb_new_ssl(SSL_CTX *ctx, int server) {
	SSL *s = SSL_new(ctx);
	if (s == NULL)
		return NULL;
	BIO *rb = BIO_new(BIO_s_mem()), *wb = BIO_new(BIO_s_mem());
	if (rb == NULL || wb == NULL) {
		BIO_free(rb);
		BIO_free(wb);
		SSL_free(s);
		return NULL;
	}
	BIO_set_mem_eof_return(rb, -1); // empty: "retry", i.e. SSL_ERROR_WANT_READ
	SSL_set_bio(s, rb, wb);
	if (server)
		SSL_set_accept_state(s);
	else
		SSL_set_connect_state(s);
	return s;
}


// tb_io feeds in[0:inlen] to the read BIO, runs one operation and reports
// SSL_get_error, the first queued error code and how many bytes wait in
// the write BIO. All in one call: OpenSSL's error queue is per thread, and
// a goroutine may move to another thread between two cgo calls.
int tb_io(SSL *s, int op, const void *in, int inlen, void *buf, int buflen,
		int *sslerr, unsigned long *ecode, size_t *pending) {
	ERR_clear_error();
	*ecode = 0;
	if (inlen > 0 && BIO_write(SSL_get_rbio(s), in, inlen) != inlen) {
		*sslerr = SSL_ERROR_SSL;
		*ecode = ERR_get_error();
		*pending = BIO_ctrl_pending(SSL_get_wbio(s));
		return -1;
	}
	int r;
	switch (op) {
	case TB_HANDSHAKE: r = SSL_do_handshake(s); break;
	case TB_READ: r = SSL_read(s, buf, buflen); break;
	case TB_WRITE: r = SSL_write(s, buf, buflen); break;
	default: r = SSL_shutdown(s); break;
	}
	*sslerr = r > 0 ? SSL_ERROR_NONE : SSL_get_error(s, r);
	if (*sslerr == SSL_ERROR_SSL || *sslerr == SSL_ERROR_SYSCALL)
		*ecode = ERR_peek_last_error();
	ERR_clear_error();
	*pending = BIO_ctrl_pending(SSL_get_wbio(s));
	return r;
}

int tb_drain(SSL *s, void *buf, int n) { return BIO_read(SSL_get_wbio(s), buf, n); }

// tb_use_cert gives s a leaf, its chain and the key.
int tb_use_cert(SSL *s, X509 *leaf, X509 **chain, int n, EVP_PKEY *key) {
	if (SSL_use_certificate(s, leaf) != 1 || SSL_use_PrivateKey(s, key) != 1)
		return 0;
	for (int i = 0; i < n; i++)
		if (SSL_add1_chain_cert(s, chain[i]) != 1)
			return 0;
	return 1;
}

X509 *tb_d2i_x509(const void *der, long n) {
	const unsigned char *p = der;
	return d2i_X509(NULL, &p, n);
}

EVP_PKEY *tb_d2i_key(const void *der, long n) {
	const unsigned char *p = der;
	return d2i_AutoPrivateKey(NULL, &p, n);
}

int tb_version(SSL *s) { return SSL_version(s); }

int tb_cipher_id(SSL *s) {
	const SSL_CIPHER *c = SSL_get_current_cipher(s);
	return c == NULL ? 0 : SSL_CIPHER_get_protocol_id(c);
}

void tb_alpn(SSL *s, const unsigned char **p, unsigned int *n) { SSL_get0_alpn_selected(s, p, n); }

long tb_ctx_set_session_cache(SSL_CTX *ctx, long size, long secs) {
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
	SSL_CTX_sess_set_cache_size(ctx, size);
	return SSL_CTX_set_timeout(ctx, secs);
}

long tb_ctx_sessions(SSL_CTX *ctx) { return SSL_CTX_sess_number(ctx); }

// tb_ctx_resumption: on, sessions are cached, looked up and sealed in
// tickets; off, none of the three (SSL_SESS_CACHE_OFF alone would still
// look up the sessions cached before).
void tb_ctx_resumption(SSL_CTX *ctx, int on) {
	if (on) {
		SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
		SSL_CTX_clear_options(ctx, SSL_OP_NO_TICKET);
	} else {
		SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF | SSL_SESS_CACHE_NO_INTERNAL);
		SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
	}
}

long tb_ctx_set_cache_size(SSL_CTX *ctx, long size) { return SSL_CTX_sess_set_cache_size(ctx, size); }

long tb_ctx_cache_full(SSL_CTX *ctx) { return SSL_CTX_sess_cache_full(ctx); }

int tb_min_max(SSL *s, int lo, int hi) {
	return SSL_set_min_proto_version(s, lo) == 1 && SSL_set_max_proto_version(s, hi) == 1;
}

int tb_ctx_options(SSL_CTX *ctx, int server) {
	uint64_t o = SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION;
	if (server)
		o |= SSL_OP_CIPHER_SERVER_PREFERENCE;
	SSL_CTX_set_options(ctx, o);
	// Idle connections hand their record buffers back (RSS per idle app).
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	return SSL_CTX_set_min_proto_version(ctx, TLS1_VERSION);
}

int tb_set_session(SSL *s, SSL_SESSION *sess) { return SSL_set_session(s, sess); }
SSL_SESSION *tb_get1_session(SSL *s) { return SSL_get1_session(s); }
int tb_set_host(SSL *s, const char *name) {
	SSL_set_hostflags(s, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	return SSL_set1_host(s, name) == 1 && SSL_set_tlsext_host_name(s, name) == 1;
}
const char *tb_cipher_name(SSL *s, int id) {
	unsigned char b[2] = { (unsigned char)(id >> 8), (unsigned char)id };
	const SSL_CIPHER *c = SSL_CIPHER_find(s, b);
	return c == NULL ? NULL : SSL_CIPHER_get_name(c);
}
int tb_reason(unsigned long e) { return ERR_GET_REASON(e); }

int tb_ctx_versions(SSL_CTX *ctx, int lo, int hi) {
	return (lo == 0 || SSL_CTX_set_min_proto_version(ctx, lo) == 1) &&
		(hi == 0 || SSL_CTX_set_max_proto_version(ctx, hi) == 1);
}

int tb_ctx_groups(SSL_CTX *ctx, const char *list) { return SSL_CTX_set1_groups_list(ctx, list); }

int tb_ctx_cipher_ids(SSL_CTX *ctx, unsigned short *out, int max) {
	STACK_OF(SSL_CIPHER) *sk = SSL_CTX_get_ciphers(ctx);
	int n = 0;
	for (int i = 0; sk != NULL && i < sk_SSL_CIPHER_num(sk) && n < max; i++)
		out[n++] = (unsigned short)SSL_CIPHER_get_protocol_id(sk_SSL_CIPHER_value(sk, i));
	return n;
}
