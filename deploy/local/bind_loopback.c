/*
 * LD_PRELOAD shim: turns a bind() to the wildcard address into a bind() to loopback.
 *
 * DynamoDB Local has no option for its listen address and binds every interface; the local
 * stack must listen on 127.0.0.1 only. Loaded with LD_PRELOAD, this replaces INADDR_ANY with
 * 127.0.0.1 and in6addr_any with ::ffff:127.0.0.1 (so a dual-stack socket still accepts IPv4
 * clients on 127.0.0.1). Every other bind() passes through unchanged.
 *
 * Built by deploy/local/install.sh: gcc -shared -fPIC -O2 -o bind_loopback.so bind_loopback.c -ldl
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dlfcn.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

typedef int (*bind_fn)(int, const struct sockaddr *, socklen_t);

int bind(int fd, const struct sockaddr *addr, socklen_t len) {
    static bind_fn real_bind = NULL;
    if (real_bind == NULL) {
        real_bind = (bind_fn)dlsym(RTLD_NEXT, "bind");
    }
    if (addr != NULL && addr->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
        struct sockaddr_in v4;
        memcpy(&v4, addr, sizeof v4);
        if (v4.sin_addr.s_addr == htonl(INADDR_ANY)) {
            v4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            return real_bind(fd, (const struct sockaddr *)&v4, sizeof v4);
        }
    } else if (addr != NULL && addr->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
        struct sockaddr_in6 v6;
        memcpy(&v6, addr, sizeof v6);
        if (memcmp(&v6.sin6_addr, &in6addr_any, sizeof(struct in6_addr)) == 0) {
            inet_pton(AF_INET6, "::ffff:127.0.0.1", &v6.sin6_addr);
            return real_bind(fd, (const struct sockaddr *)&v6, sizeof v6);
        }
    }
    return real_bind(fd, addr, len);
}
