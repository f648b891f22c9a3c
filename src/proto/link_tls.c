/* link_tls.c — TLS contexts for the engine<->agent link (link_tls.h). */
#include "proto/link_tls.h"

#include <openssl/err.h>
#include <stdbool.h>
#include <stdio.h>

/* Fills err with what failed and OpenSSL's reason, frees ctx, returns NULL. */
static SSL_CTX *link_tls_fail(SSL_CTX *ctx, const char *what, const char *file, char *err,
                              size_t err_size) {
  char reason[160] = "unknown reason";
  unsigned long error = ERR_get_error();
  if (error)
    ERR_error_string_n(error, reason, sizeof(reason));
  snprintf(err, err_size, "TLS: cannot %s %s: %s", what, file, reason);
  ERR_clear_error();
  SSL_CTX_free(ctx);
  return NULL;
}

/* Loads a certificate chain and its private key into ctx (both or neither). */
static bool link_tls_identity(SSL_CTX *ctx, const char *cert, const char *key, char *err,
                              size_t err_size) {
  if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
    link_tls_fail(NULL, "load the certificate", cert, err, err_size);
    return false;
  }
  if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
      SSL_CTX_check_private_key(ctx) != 1) {
    link_tls_fail(NULL, "load the private key (or it does not match the certificate)", key, err,
                  err_size);
    return false;
  }
  return true;
}

static SSL_CTX *link_tls_context(const SSL_METHOD *method) {
  SSL_CTX *ctx = SSL_CTX_new(method);
  if (ctx)
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  return ctx;
}

SSL_CTX *link_tls_server_context(const char *cert, const char *key, const char *client_ca,
                                 char *err, size_t err_size) {
  SSL_CTX *ctx = link_tls_context(TLS_server_method());
  if (!ctx)
    return link_tls_fail(NULL, "create a context for", cert, err, err_size);
  if (!link_tls_identity(ctx, cert, key, err, err_size)) {
    SSL_CTX_free(ctx);
    return NULL;
  }
  if (client_ca[0]) {
    if (SSL_CTX_load_verify_locations(ctx, client_ca, NULL) != 1)
      return link_tls_fail(ctx, "load the client CA", client_ca, err, err_size);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
  }
  return ctx;
}

SSL_CTX *link_tls_client_context(const char *ca, const char *cert, const char *key, char *err,
                                 size_t err_size) {
  SSL_CTX *ctx = link_tls_context(TLS_client_method());
  if (!ctx)
    return link_tls_fail(NULL, "create a context for", ca, err, err_size);
  if (SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1)
    return link_tls_fail(ctx, "load the CA", ca, err, err_size);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
  if (cert[0] && !link_tls_identity(ctx, cert, key, err, err_size)) {
    SSL_CTX_free(ctx);
    return NULL;
  }
  return ctx;
}
