/* address.c — HOST:PORT parsing for listen and dial settings. */
#include "common/address.h"

#include "common/error.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

int address_parse(const char *text, struct sockaddr_storage *address) {
  const char *colon = strrchr(text, ':');
  if (!colon || colon == text)
    return CDR_EINVALID_VALUE;
  char *end;
  long port = strtol(colon + 1, &end, 10);
  if (*end || end == colon + 1 || port < 0 || port > 65535)
    return CDR_EINVALID_VALUE;
  char host[128];
  size_t host_len = (size_t)(colon - text);
  bool bracketed = text[0] == '[' && colon[-1] == ']';
  if (bracketed) {
    text++;
    host_len -= 2;
  }
  if (host_len >= sizeof(host))
    return CDR_EINVALID_VALUE;
  memcpy(host, text, host_len);
  host[host_len] = '\0';
  memset(address, 0, sizeof(*address));
  struct sockaddr_in *v4 = (struct sockaddr_in *)address;
  struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)address;
  if (!bracketed && inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons((uint16_t)port);
  } else if (bracketed && inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons((uint16_t)port);
  } else {
    return CDR_EINVALID_VALUE;
  }
  return 0;
}

bool address_is_loopback(const struct sockaddr_storage *address) {
  if (address->ss_family == AF_INET)
    return (ntohl(((const struct sockaddr_in *)address)->sin_addr.s_addr) >> 24) == 127;
  return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)address)->sin6_addr);
}
