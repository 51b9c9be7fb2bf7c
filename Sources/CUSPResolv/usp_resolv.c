#include "usp_resolv.h"

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <netinet/in.h>
#include <resolv.h>
#include <string.h>

int usp_dns_query(const char *name, int type, const char *server, int port, unsigned char *answer, int length, int *error) {
    struct __res_state state;
    memset(&state, 0, sizeof state);
    if (res_ninit(&state) != 0) {
        *error = -1;
        return -1;
    }
    state.options |= RES_USE_EDNS0 | RES_USE_DNSSEC;
#ifdef RES_TRUSTAD
    state.options |= RES_TRUSTAD;
#endif
    if (server != NULL) {
        struct sockaddr_in address;
        memset(&address, 0, sizeof address);
        address.sin_family = AF_INET;
        address.sin_port = htons((unsigned short)port);
        if (inet_pton(AF_INET, server, &address.sin_addr) != 1) {
            res_nclose(&state);
            *error = -2;
            return -1;
        }
        state.nsaddr_list[0] = address;
        state.nscount = 1;
        state.retrans = 2;
        state.retry = 2;
    }
    int n = res_nquery(&state, name, ns_c_in, type, answer, length);
    *error = n < 0 ? state.res_h_errno : 0;
    res_nclose(&state);
    return n;
}
