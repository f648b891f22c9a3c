/* link_tls.h — the TLS settings of the engine<->agent link, built once per process from PEM files:
 * the engine's server context (its certificate, and optionally a CA agents' client certificates
 * must chain to) and the agent's client context (the CA the engine's certificate must chain to,
 * and optionally its own certificate). TLS 1.2 at least. Connections use them through
 * link_conn_tls. */
#ifndef CDR_LINK_TLS_H
#define CDR_LINK_TLS_H

#include <openssl/ssl.h>
#include <stddef.h>

/* The engine's context: cert and key files; client_ca may be "" (no client certificates asked
 * for). NULL with err set (naming the file and OpenSSL's reason) on failure. */
SSL_CTX *link_tls_server_context(const char *cert, const char *key, const char *client_ca,
                                 char *err, size_t err_size);

/* The agent's context: ca verifies the engine; cert and key may be "" (no client certificate).
 * NULL with err set on failure. */
SSL_CTX *link_tls_client_context(const char *ca, const char *cert, const char *key, char *err,
                                 size_t err_size);

#endif
