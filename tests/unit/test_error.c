/* test_error.c — the error table's lookups. */
#include "unit.h"

#include "common/error.h"

static void error_maps_codes_to_status_and_names(void **state) {
  (void)state;
  assert_string_equal(cdr_error_code(CDR_EINVALID_URL), "invalid_url");
  assert_int_equal(cdr_error_http_status(CDR_EINVALID_URL), 400);
  assert_int_equal(cdr_error_http_status(CDR_EBODY_TOO_LARGE), 413);
  assert_int_equal(cdr_error_http_status(CDR_ETASK_NOT_FOUND), 404);
  assert_int_equal(cdr_error_http_status(CDR_ESTORE_UNAVAILABLE), 503);
  assert_string_equal(cdr_error_code(CDR_ECONFIG), "config_error");
}

static void error_handles_values_outside_the_table(void **state) {
  (void)state;
  assert_string_equal(cdr_error_code(0), "unknown_error");
  assert_string_equal(cdr_error_code(-1), "unknown_error");
  assert_int_equal(cdr_error_http_status(12345), 500);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(error_maps_codes_to_status_and_names),
      cmocka_unit_test(error_handles_values_outside_the_table),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
