/* sd_notify.h — tells systemd about the service's state (Type=notify units) by sending a datagram
 * to $NOTIFY_SOCKET, as sd_notify(3) does, without depending on libsystemd. Without the variable
 * (not started by systemd) it does nothing. */
#ifndef CDR_SD_NOTIFY_H
#define CDR_SD_NOTIFY_H

/* Sends state, e.g. "READY=1\nSTATUS=serving". Returns 0, or a negative errno (logged by the
 * caller if it matters; systemd then times the start out, which is the right outcome). */
int sd_notify_send(const char *state);

#endif
