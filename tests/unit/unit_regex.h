/* unit_regex.h — for tests that check what a pattern matches: PCRE2 compile and match in one call.
 */
#ifndef CDR_UNIT_REGEX_H
#define CDR_UNIT_REGEX_H

#include "unit.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdbool.h>
#include <string.h>

/* True when regex (which must compile) matches somewhere in subject. */
static inline bool unit_regex_matches(const char *regex, const char *subject) {
  int error;
  PCRE2_SIZE offset;
  pcre2_code *code =
      pcre2_compile((PCRE2_SPTR)regex, PCRE2_ZERO_TERMINATED, 0, &error, &offset, NULL);
  assert_non_null(code);
  pcre2_match_data *data = pcre2_match_data_create_from_pattern(code, NULL);
  int rc = pcre2_match(code, (PCRE2_SPTR)subject, strlen(subject), 0, 0, data, NULL);
  pcre2_match_data_free(data);
  pcre2_code_free(code);
  return rc >= 0;
}

#endif
