/* sd_notify.c — the sd_notify(3) datagram, sent to $NOTIFY_SOCKET (sd_notify.h). */
#include "common/sd_notify.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int sd_notify_send(const char *state) {
  const char *path = getenv("NOTIFY_SOCKET");
  if (!path || !path[0])
    return 0;
  struct sockaddr_un address = {.sun_family = AF_UNIX};
  size_t len = strlen(path);
  if ((path[0] != '/' && path[0] != '@') || len >= sizeof(address.sun_path))
    return -EINVAL;
  memcpy(address.sun_path, path, len);
  if (path[0] == '@')
    address.sun_path[0] = '\0'; /* an abstract socket */
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -errno;
  socklen_t address_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
  ssize_t sent = sendto(fd, state, strlen(state), MSG_NOSIGNAL, (const struct sockaddr *)&address,
                        address_len);
  int rc = sent < 0 ? -errno : 0;
  close(fd);
  return rc;
}
