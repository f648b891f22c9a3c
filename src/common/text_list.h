/* text_list.h — membership in short separator-separated lists of names held in settings
 * ("full|normal", "127.0.0.1,::1"). */
#ifndef CDR_TEXT_LIST_H
#define CDR_TEXT_LIST_H

#include <stdbool.h>
#include <stddef.h>

/* True when item[0..len) is one of the entries of list, entries separated by separator. */
bool text_list_contains(const char *list, char separator, const char *item, size_t len);

#endif
