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

#endif
