/*
 * The floor of the greeter benchmark: the least a greeting server can do.
 * Blocking accept loop on 127.0.0.1:PORT; write the greeting, close.
 * Prints "ready PORT" once listening. Compiled by scripts/bench/loadgen.ts.
 *
 *   floor PORT [GREETING]
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv) {
  const char *greeting = argc > 2 ? argv[2] : "Connection Established\r\n";
  size_t len = strlen(greeting);
  int port = argc > 1 ? atoi(argv[1]) : 0;
  signal(SIGPIPE, SIG_IGN);

  int lfd = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in addr = {.sin_family = AF_INET,
                             .sin_port = htons((unsigned short)port)};
  inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  if (bind(lfd, (struct sockaddr *)&addr, sizeof addr) < 0 ||
      listen(lfd, 511) < 0) {
    perror("floor: listen");
    return 1;
  }
  socklen_t alen = sizeof addr;
  getsockname(lfd, (struct sockaddr *)&addr, &alen);
  printf("ready %d\n", ntohs(addr.sin_port));
  fflush(stdout);

  for (;;) {
    int fd = accept(lfd, NULL, NULL);
    if (fd < 0) {
      if (errno == EMFILE || errno == ENFILE) usleep(1000);
      continue;
    }
    (void)!write(fd, greeting, len);
    close(fd);
  }
}
