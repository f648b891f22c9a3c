/* address.c — HOST:PORT parsing for listen and dial settings. */
#include "common/address.h"

#include "common/error.h"
#include "common/text_list.h"

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

static bool address_v4_internal(uint32_t ip) {
  return (ip >> 24) == 127 || (ip >> 24) == 10 || (ip >> 24) == 0 || (ip >> 16) == 0xa9fe ||
         (ip >> 20) == 0xac1 || (ip >> 16) == 0xc0a8 || (ip >> 22) == (0x64400000u >> 22);
}

bool address_is_internal(const struct sockaddr *address) {
  if (address->sa_family == AF_INET)
    return address_v4_internal(
        ntohl(((const struct sockaddr_in *)(const void *)address)->sin_addr.s_addr));
  if (address->sa_family != AF_INET6)
    return true;
  const struct in6_addr *v6 = &((const struct sockaddr_in6 *)(const void *)address)->sin6_addr;
  if (IN6_IS_ADDR_V4MAPPED(v6)) {
    uint32_t ip;
    memcpy(&ip, &v6->s6_addr[12], 4);
    return address_v4_internal(ntohl(ip));
  }
  return IN6_IS_ADDR_LOOPBACK(v6) || IN6_IS_ADDR_UNSPECIFIED(v6) || IN6_IS_ADDR_LINKLOCAL(v6) ||
         (v6->s6_addr[0] & 0xfe) == 0xfc;
}

bool address_text_is_internal(const char *host, size_t len) {
  char text[64];
  if (len >= 2 && host[0] == '[') {
    host++;
    len -= 2;
  }
  if (len >= sizeof(text))
    return false;
  memcpy(text, host, len);
  text[len] = '\0';
  struct sockaddr_storage address;
  memset(&address, 0, sizeof(address));
  struct sockaddr_in *v4 = (struct sockaddr_in *)&address;
  struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&address;
  if (inet_pton(AF_INET, text, &v4->sin_addr) == 1)
    v4->sin_family = AF_INET;
  else if (inet_pton(AF_INET6, text, &v6->sin6_addr) == 1)
    v6->sin6_family = AF_INET6;
  else
    return false;
  return address_is_internal((const struct sockaddr *)&address);
}

bool address_in_list(const struct sockaddr *address, const char *list) {
  char text[INET6_ADDRSTRLEN];
  const void *raw =
      address->sa_family == AF_INET
          ? (const void *)&((const struct sockaddr_in *)(const void *)address)->sin_addr
          : (const void *)&((const struct sockaddr_in6 *)(const void *)address)->sin6_addr;
  if (!inet_ntop(address->sa_family, raw, text, sizeof(text)))
    return false;
  return text_list_contains(list, ',', text, strlen(text));
}
