// Declarations of shim.c, for the cgo preambles of package openssl.
#ifndef TLSBRIDGE_OPENSSL_SHIM_H
#define TLSBRIDGE_OPENSSL_SHIM_H
#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <openssl/evp.h>

enum { TB_HANDSHAKE, TB_READ, TB_WRITE, TB_SHUTDOWN };

int tb_init(void);
void tb_set_alpn_cb(SSL_CTX *ctx);
int tb_set_alpn(SSL *s, void *p);
SSL *tb_new_ssl(SSL_CTX *ctx, int server);
int tb_io(SSL *s, int op, const void *in, int inlen, void *buf, int buflen,
		int *sslerr, unsigned long *ecode, size_t *pending);
int tb_drain(SSL *s, void *buf, int n);
int tb_use_cert(SSL *s, X509 *leaf, X509 **chain, int n, EVP_PKEY *key);
X509 *tb_d2i_x509(const void *der, long n);
EVP_PKEY *tb_d2i_key(const void *der, long n);
int tb_version(SSL *s);
int tb_cipher_id(SSL *s);
void tb_alpn(SSL *s, const unsigned char **p, unsigned int *n);
long tb_ctx_set_session_cache(SSL_CTX *ctx, long size, long secs);
long tb_ctx_sessions(SSL_CTX *ctx);
void tb_ctx_resumption(SSL_CTX *ctx, int on);
long tb_ctx_set_cache_size(SSL_CTX *ctx, long size);
long tb_ctx_cache_full(SSL_CTX *ctx);
int tb_min_max(SSL *s, int lo, int hi);
int tb_ctx_options(SSL_CTX *ctx, int server);
int tb_set_session(SSL *s, SSL_SESSION *sess);
SSL_SESSION *tb_get1_session(SSL *s);
int tb_set_host(SSL *s, const char *name);
const char *tb_cipher_name(SSL *s, int id);
int tb_reason(unsigned long e);
int tb_ctx_cipher_ids(SSL_CTX *ctx, unsigned short *out, int max);
int tb_ctx_groups(SSL_CTX *ctx, const char *list);
int tb_ctx_versions(SSL_CTX *ctx, int lo, int hi);
#endif
