/*
 * greeter benchmark helper, compiled by scripts/bench/loadgen.ts with `cc -O2`.
 *
 *   loadgen run --port P [--host 127.0.0.1] [--connections N]
 *               [--concurrency C] [--timeout-ms MS] [--deadline-ms MS]
 *               [--expect TEXT]
 *       Single-threaded epoll load: keeps C nonblocking connections in
 *       flight until N are done, reads each until EOF, compares the bytes
 *       with TEXT exactly, and prints one JSON summary line: done,
 *       mismatches, errors by kind, elapsed, latency p50/p99/max (connect
 *       start to EOF, microseconds) and its own CPU time (getrusage).
 *
 *   loadgen startup --port P [--host H] [--line TEXT] [--expect TEXT]
 *                   [--timeout-ms MS] -- COMMAND ARGS...
 *       Spawns COMMAND (stdout to a pipe), then probes the port every
 *       0.25 ms and reads the pipe; prints JSON with the milliseconds from
 *       just before fork() to the first correct greeting and to the first
 *       stdout line containing TEXT. Kills COMMAND afterwards.
 *
 *   loadgen exec --stdout FILE [--stderr FILE] -- COMMAND ARGS...
 *       Redirects stdout/stderr to files and exec()s COMMAND: same PID, no
 *       shell, so the benchmark measures the server process itself.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONCURRENCY 4096
#define READ_BUF 4096

static const char *DEFAULT_EXPECT = "Connection Established\r\n";

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static double cpu_seconds(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec +
         ru.ru_stime.tv_usec / 1e6;
}

static void die(const char *msg) {
  fprintf(stderr, "loadgen: %s\n", msg);
  exit(2);
}

static long parse_long(const char *s, const char *what) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || *end || v < 0) {
    fprintf(stderr, "loadgen: bad %s: %s\n", what, s);
    exit(2);
  }
  return v;
}

/* ---------------------------------------------------------------- run --- */

enum err_kind {
  E_REFUSED,
  E_RESET,
  E_TIMEOUT,
  E_ADDRNOTAVAIL,
  E_SOCKET,
  E_OTHER,
  E_KINDS
};
static const char *ERR_NAMES[E_KINDS] = {"refused",       "reset",  "timeout",
                                         "addrnotavail", "socket", "other"};

struct slot {
  int fd;
  int64_t start;
  size_t got;
  int mismatch;
};

static int classify(int err) {
  switch (err) {
  case ECONNREFUSED:
    return E_REFUSED;
  case ECONNRESET:
  case EPIPE:
    return E_RESET;
  case ETIMEDOUT:
    return E_TIMEOUT;
  case EADDRNOTAVAIL:
    return E_ADDRNOTAVAIL;
  case EMFILE:
  case ENFILE:
  case ENOBUFS:
  case ENOMEM:
    return E_SOCKET;
  default:
    return E_OTHER;
  }
}

static struct sockaddr_in target;
static const char *expect;
static size_t expect_len;

/* State of `run`. */
static int ep = -1;
static struct slot *slots;
static long n_total, started, finished;
static long errors[E_KINDS];

/* Fills slot i with a new in-flight connection while any are left to start;
 * connections that fail at once are counted as finished with an error. */
static void start_slot(long i) {
  struct slot *s = &slots[i];
  s->fd = -1;
  while (started < n_total && s->fd < 0) {
    started++;
    s->start = now_ns();
    s->got = 0;
    s->mismatch = 0;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      errors[classify(errno)]++;
      finished++;
      continue;
    }
    if (connect(fd, (struct sockaddr *)&target, sizeof target) < 0 &&
        errno != EINPROGRESS) {
      errors[classify(errno)]++;
      finished++;
      close(fd);
      continue;
    }
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP,
                             .data.u64 = (uint64_t)i};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
      errors[E_OTHER]++;
      finished++;
      close(fd);
      continue;
    }
    s->fd = fd;
  }
}

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

static int cmd_run(int argc, char **argv) {
  const char *host = "127.0.0.1";
  long port = -1, n = 50000, c = 32, timeout_ms = 5000, deadline_ms = 300000;
  expect = DEFAULT_EXPECT;
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!v) die("option without value");
    if (!strcmp(a, "--port")) port = parse_long(v, "port");
    else if (!strcmp(a, "--host")) host = v;
    else if (!strcmp(a, "--connections")) n = parse_long(v, "connections");
    else if (!strcmp(a, "--concurrency")) c = parse_long(v, "concurrency");
    else if (!strcmp(a, "--timeout-ms")) timeout_ms = parse_long(v, "timeout");
    else if (!strcmp(a, "--deadline-ms")) deadline_ms = parse_long(v, "deadline");
    else if (!strcmp(a, "--expect")) expect = v;
    else die("unknown option for run");
    i++;
  }
  if (port <= 0 || port > 65535) die("--port is required");
  if (c < 1 || c > MAX_CONCURRENCY) die("--concurrency must be 1-4096");
  if (n < 1) die("--connections must be at least 1");
  if (c > n) c = n;
  expect_len = strlen(expect);
  memset(&target, 0, sizeof target);
  target.sin_family = AF_INET;
  target.sin_port = htons((uint16_t)port);
  if (inet_pton(AF_INET, host, &target.sin_addr) != 1) die("bad --host");

  n_total = n;
  ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) die("epoll_create1 failed");
  slots = calloc((size_t)c, sizeof *slots);
  int64_t *lat = malloc((size_t)n * sizeof *lat);
  if (!slots || !lat) die("out of memory");
  long ok = 0, mismatches = 0;
  char buf[READ_BUF];

  double cpu0 = cpu_seconds();
  int64_t t0 = now_ns();
  int64_t deadline = t0 + deadline_ms * 1000000LL;
  int deadline_hit = 0;

  for (long i = 0; i < c; i++) start_slot(i);

  struct epoll_event events[256];
  int64_t last_sweep = t0;
  while (finished < n) {
    int k = epoll_wait(ep, events, 256, 100);
    if (k < 0) {
      if (errno == EINTR) continue;
      die("epoll_wait failed");
    }
    int64_t now = now_ns();
    for (int e = 0; e < k; e++) {
      long i = (long)events[e].data.u64;
      struct slot *s = &slots[i];
      if (s->fd < 0) continue;
      int done = 0, failed = -1;
      for (;;) {
        ssize_t r = read(s->fd, buf, sizeof buf);
        if (r > 0) {
          if (s->got + (size_t)r > expect_len ||
              memcmp(buf, expect + s->got, (size_t)r) != 0)
            s->mismatch = 1;
          s->got += (size_t)r;
          continue;
        }
        if (r == 0) {
          done = 1;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
          if (events[e].events & (EPOLLERR | EPOLLHUP)) {
            int soerr = 0;
            socklen_t len = sizeof soerr;
            getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &soerr, &len);
            failed = classify(soerr ? soerr : ECONNRESET);
          }
        } else if (errno == EINTR) {
          continue;
        } else {
          failed = classify(errno);
        }
        break;
      }
      if (!done && failed < 0) continue;
      now = now_ns();
      if (done) {
        if (s->mismatch || s->got != expect_len) mismatches++;
        else lat[ok++] = now - s->start;
      } else {
        errors[failed]++;
      }
      close(s->fd); /* closing also removes it from the epoll set */
      s->fd = -1;
      finished++;
      start_slot(i);
    }
    /* Time out connections stuck for longer than timeout_ms. */
    if (now - last_sweep > 50000000LL) {
      last_sweep = now;
      for (long i = 0; i < c; i++) {
        struct slot *s = &slots[i];
        if (s->fd >= 0 && now - s->start > timeout_ms * 1000000LL) {
          close(s->fd);
          s->fd = -1;
          errors[E_TIMEOUT]++;
          finished++;
          start_slot(i);
        }
      }
      if (now > deadline) {
        deadline_hit = 1;
        break;
      }
    }
  }
  int64_t t1 = now_ns();
  double cpu1 = cpu_seconds();
  long in_flight = 0;
  for (long i = 0; i < c; i++)
    if (slots[i].fd >= 0) {
      close(slots[i].fd);
      in_flight++;
    }

  qsort(lat, (size_t)ok, sizeof *lat, cmp_i64);
#define PCT(p) (ok ? lat[(size_t)((double)(ok - 1) * (p))] / 1000.0 : 0.0)
  double elapsed = (t1 - t0) / 1e9;
  double cpu = cpu1 - cpu0;
  printf("{\"connections\":%ld,\"concurrency\":%ld,\"done\":%ld,\"ok\":%ld,"
         "\"mismatches\":%ld,\"errors\":{",
         n, c, finished, ok, mismatches);
  for (int e = 0; e < E_KINDS; e++)
    printf("%s\"%s\":%ld", e ? "," : "", ERR_NAMES[e], errors[e]);
  printf("},\"unfinished\":%ld,\"deadlineHit\":%s,\"elapsedSec\":%.6f,"
         "\"p50Us\":%.1f,\"p99Us\":%.1f,\"maxUs\":%.1f,\"cpuSec\":%.6f,"
         "\"cpuUtil\":%.4f}\n",
         in_flight + (n - started), deadline_hit ? "true" : "false", elapsed,
         PCT(0.50), PCT(0.99), ok ? lat[ok - 1] / 1000.0 : 0.0, cpu,
         elapsed > 0 ? cpu / elapsed : 0.0);
  return mismatches || deadline_hit ? 1 : 0;
}

/* ------------------------------------------------------------ startup --- */

static int probe_greeting(void) {
  /* 1: got exactly the greeting; 0: not listening yet; -1: wrong bytes. */
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  if (connect(fd, (struct sockaddr *)&target, sizeof target) < 0) {
    close(fd);
    return 0;
  }
  struct timeval tv = {.tv_sec = 5};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  char buf[READ_BUF];
  size_t got = 0;
  int bad = 0;
  for (;;) {
    ssize_t r = read(fd, buf, sizeof buf);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      if (r < 0) bad = 1;
      break;
    }
    if (got + (size_t)r > expect_len || memcmp(buf, expect + got, (size_t)r))
      bad = 1;
    got += (size_t)r;
  }
  close(fd);
  return bad || got != expect_len ? -1 : 1;
}

static void stop_child(pid_t pid) {
  kill(pid, SIGTERM);
  for (int i = 0; i < 300; i++) {
    if (waitpid(pid, NULL, WNOHANG) == pid) return;
    usleep(10000);
  }
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);
}

static int cmd_startup(int argc, char **argv) {
  const char *host = "127.0.0.1", *line = NULL;
  long port = -1, timeout_ms = 10000;
  expect = DEFAULT_EXPECT;
  int i = 0;
  for (; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--")) {
      i++;
      break;
    }
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!v) die("option without value");
    if (!strcmp(a, "--port")) port = parse_long(v, "port");
    else if (!strcmp(a, "--host")) host = v;
    else if (!strcmp(a, "--line")) line = v;
    else if (!strcmp(a, "--expect")) expect = v;
    else if (!strcmp(a, "--timeout-ms")) timeout_ms = parse_long(v, "timeout");
    else die("unknown option for startup");
    i++;
  }
  if (i >= argc) die("startup needs -- COMMAND");
  if (port <= 0 || port > 65535) die("--port is required");
  expect_len = strlen(expect);
  memset(&target, 0, sizeof target);
  target.sin_family = AF_INET;
  target.sin_port = htons((uint16_t)port);
  if (inet_pton(AF_INET, host, &target.sin_addr) != 1) die("bad --host");

  int pipefd[2];
  if (pipe2(pipefd, O_CLOEXEC) < 0) die("pipe failed");
  int64_t t0 = now_ns();
  pid_t pid = fork();
  if (pid < 0) die("fork failed");
  if (pid == 0) {
    dup2(pipefd[1], 1);
    int devnull = open("/dev/null", O_WRONLY);
    if (devnull >= 0) dup2(devnull, 2);
    execvp(argv[i], argv + i);
    _exit(127);
  }
  close(pipefd[1]);
  fcntl(pipefd[0], F_SETFL, O_NONBLOCK);

  double line_ms = -1, greet_ms = -1;
  int bad_greeting = 0, exited = 0;
  char acc[8192];
  size_t acc_len = 0;
  int64_t deadline = t0 + timeout_ms * 1000000LL;
  while (now_ns() < deadline && (greet_ms < 0 || (line && line_ms < 0))) {
    struct pollfd pfd = {.fd = pipefd[0], .events = POLLIN};
    poll(&pfd, 1, 0);
    if (pfd.revents) {
      ssize_t r = read(pipefd[0], acc + acc_len, sizeof acc - 1 - acc_len);
      if (r > 0) {
        acc_len += (size_t)r;
        acc[acc_len] = 0;
        if (line && line_ms < 0 && strstr(acc, line))
          line_ms = (now_ns() - t0) / 1e6;
        if (acc_len > sizeof acc / 2) { /* keep the tail only */
          memmove(acc, acc + acc_len - 256, 256);
          acc_len = 256;
        }
      }
    }
    if (greet_ms < 0) {
      int p = probe_greeting();
      if (p == 1) greet_ms = (now_ns() - t0) / 1e6;
      else if (p < 0) {
        bad_greeting = 1;
        break;
      }
    }
    if (waitpid(pid, NULL, WNOHANG) == pid) {
      exited = 1;
      break;
    }
    struct timespec ts = {0, 250000};
    nanosleep(&ts, NULL);
  }
  if (!exited) stop_child(pid);
  close(pipefd[0]);
  printf("{\"greetingMs\":%.3f,\"lineMs\":%.3f,\"badGreeting\":%s,"
         "\"exitedEarly\":%s}\n",
         greet_ms, line_ms, bad_greeting ? "true" : "false",
         exited ? "true" : "false");
  return greet_ms < 0 ? 1 : 0;
}

/* --------------------------------------------------------------- exec --- */

static int cmd_exec(int argc, char **argv) {
  const char *out = NULL, *err = NULL;
  int i = 0;
  for (; i < argc; i++) {
    if (!strcmp(argv[i], "--")) {
      i++;
      break;
    }
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!v) die("option without value");
    if (!strcmp(argv[i], "--stdout")) out = v;
    else if (!strcmp(argv[i], "--stderr")) err = v;
    else die("unknown option for exec");
    i++;
  }
  if (i >= argc) die("exec needs -- COMMAND");
  if (out) {
    int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || dup2(fd, 1) < 0) die("cannot open --stdout file");
    close(fd);
  }
  if (err) {
    int fd = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || dup2(fd, 2) < 0) die("cannot open --stderr file");
    close(fd);
  }
  execvp(argv[i], argv + i);
  fprintf(stderr, "loadgen: cannot exec %s: %s\n", argv[i], strerror(errno));
  return 127;
}

int main(int argc, char **argv) {
  signal(SIGPIPE, SIG_IGN);
  if (argc < 2) die("usage: loadgen run|startup|exec ...");
  if (!strcmp(argv[1], "run")) return cmd_run(argc - 2, argv + 2);
  if (!strcmp(argv[1], "startup")) return cmd_startup(argc - 2, argv + 2);
  if (!strcmp(argv[1], "exec")) return cmd_exec(argc - 2, argv + 2);
  die("unknown command (run, startup, exec)");
  return 2;
}
