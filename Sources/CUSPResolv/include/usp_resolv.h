#ifndef USP_RESOLV_H
#define USP_RESOLV_H

/// Sends one DNS query (class IN, `type`) for `name` through the system's stub resolver
/// (/etc/resolv.conf), or through `server` (an IPv4 address literal) at `port` when `server` is
/// not NULL. The query asks for DNSSEC records (EDNS0 with the DO bit) and the answer keeps the
/// resolver's AD bit (RES_TRUSTAD), so the caller can tell a validated answer.
///
/// Returns the length of the answer written to `answer`, or -1; then `*error` is the resolver's
/// h_errno (1 HOST_NOT_FOUND: no such name, 2 TRY_AGAIN, 3 NO_RECOVERY, 4 NO_DATA: no record of
/// that type), or -1 if the resolver could not be set up, or -2 if `server` is not an IPv4 address.
int usp_dns_query(const char *name, int type, const char *server, int port, unsigned char *answer, int length, int *error);

#endif
