/* address.h — parsing of HOST:PORT settings into socket addresses. */
#ifndef CDR_ADDRESS_H
#define CDR_ADDRESS_H

#include <stdbool.h>
#include <sys/socket.h>

/* Parses "IPv4:PORT" or "[IPv6]:PORT" into address (numeric hosts only: no DNS on event loops).
 * Returns 0 or CDR_EINVALID_VALUE. */
int address_parse(const char *text, struct sockaddr_storage *address);

/* True for 127.0.0.0/8 and ::1. */
bool address_is_loopback(const struct sockaddr_storage *address);

/* True for addresses that are not on the public internet: loopback, link-local, private
 * (10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7), unspecified and IPv4-mapped forms of them.
 * Outgoing requests to customer-given URLs refuse these (server-side request forgery). */
bool address_is_internal(const struct sockaddr *address);

/* True when the numeric host text (an IPv4 or IPv6 literal, brackets allowed) is internal; false
 * for names and public addresses. */
bool address_text_is_internal(const char *host, size_t len);

/* True when address, written numerically, is one of the comma-separated list's entries. */
bool address_in_list(const struct sockaddr *address, const char *list);

#endif
