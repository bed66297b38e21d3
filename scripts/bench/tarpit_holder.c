/* The tarpit benchmark's clients: holds N TCP connections to
 * 127.0.0.1:PORT open, reading and discarding what arrives (so no server
 * write ever blocks), and prints "held N" once all are connected. Then, for
 * each line on stdin: "close" closes every connection, prints
 * "closed bytes B open O" and exits; anything else prints "bytes B open O"
 * (bytes received so far, connections the server has not closed or
 * half-closed; those it has stay open here all the same).
 * Usage: tarpit_holder PORT N */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv) {
  if (argc < 3) { fprintf(stderr, "usage: holder PORT N\n"); return 2; }
  int port = atoi(argv[1]), n = atoi(argv[2]);
  struct sockaddr_in sa = {0};
  sa.sin_family = AF_INET; sa.sin_port = htons(port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int ep = epoll_create1(0);
  int *fds = calloc(n, sizeof(int));
  int open = 0;
  for (int i = 0; i < n; i++) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) { perror("socket"); return 1; }
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) { perror("connect"); return 1; }
    fds[i] = fd; open++;
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
  }
  printf("held %d\n", open); fflush(stdout);
  long long bytes = 0;
  char buf[65536], line[64];
  struct epoll_event evs[256];
  struct epoll_event sev = {.events = EPOLLIN, .data.fd = 0};
  epoll_ctl(ep, EPOLL_CTL_ADD, 0, &sev);
  for (;;) {
    int k = epoll_wait(ep, evs, 256, 1000);
    for (int i = 0; i < k; i++) {
      int fd = evs[i].data.fd;
      if (fd == 0) {
        if (!fgets(line, sizeof line, stdin) || strncmp(line, "close", 5) == 0) {
          for (int j = 0; j < n; j++) close(fds[j]);
          printf("closed bytes %lld open %d\n", bytes, open); fflush(stdout);
          return 0;
        }
        printf("bytes %lld open %d\n", bytes, open); fflush(stdout);
        continue;
      }
      ssize_t r = read(fd, buf, sizeof buf);
      if (r > 0) bytes += r;
      else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
        /* Closed (or half-closed) by the server: no longer watched, but
         * kept open as a real client would be, until "close". */
        epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
        open--;
      }
    }
  }
}
