#!/usr/bin/env python3
"""Holds a listening socket as systemd does for an Accept=no .socket unit,
and runs the command with it (LISTEN_FDS=1, LISTEN_PID of the child, fd 3).
Each line "restart" on stdin stops the command (SIGTERM), waits for it and
starts it again on the same socket, which stays open throughout: clients
wait in the backlog meanwhile. EOF on stdin stops it and exits.

  socket_holder.py HOST PORT COMMAND...     (prints "listening PORT")
"""
import os
import signal
import socket
import sys

host, port, command = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind((host, port))
listener.listen(4096)


def start():
    pid = os.fork()
    if pid == 0:
        os.dup2(listener.fileno(), 3)
        os.set_inheritable(3, True)
        os.environ["LISTEN_FDS"] = "1"
        os.environ["LISTEN_PID"] = str(os.getpid())
        os.environ["LISTEN_FDNAMES"] = "greeting"
        os.execvp(command[0], command)
    return pid


def stop(pid):
    os.kill(pid, signal.SIGTERM)
    _, status = os.waitpid(pid, 0)
    return status


child = start()
print("listening", listener.getsockname()[1], flush=True)
for line in sys.stdin:
    if line.strip() == "restart":
        status = stop(child)
        child = start()
        print("restarted", status, flush=True)
stop(child)
