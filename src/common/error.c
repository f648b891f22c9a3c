/* error.c — lookups into the CDR_ERROR_MAP table. */
#include "common/error.h"

struct error_entry {
  int status;
  const char *code;
  const char *message;
};

static const struct error_entry error_table[] = {
#define CDR_ERROR_ENTRY(name, status, code, message) {status, code, message},
    CDR_ERROR_MAP(CDR_ERROR_ENTRY)
#undef CDR_ERROR_ENTRY
};

static const struct error_entry *error_lookup(int err) {
  if (err <= CDR_ERROR_FIRST_ || err >= CDR_ERROR_LAST_)
    return 0;
  return &error_table[err - CDR_ERROR_FIRST_ - 1];
}

const char *cdr_error_code(int err) {
  const struct error_entry *e = error_lookup(err);
  return e ? e->code : "unknown_error";
}

const char *cdr_error_message(int err) {
  const struct error_entry *e = error_lookup(err);
  return e ? e->message : "unknown error";
}

int cdr_error_http_status(int err) {
  const struct error_entry *e = error_lookup(err);
  return e ? e->status : 500;
}
