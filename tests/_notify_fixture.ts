// Sends a fixed sequence of systemd notifications as a separate process, so
// the receiver sees this process's PID. Run with --unstable-net.
//
//   deno run --unstable-net ... _notify_fixture.ts send
//     Sends to $NOTIFY_SOCKET and prints what the notifier reported.
//   deno run --unstable-net ... _notify_fixture.ts loopback PATH|@NAME
//     Also binds the receiving socket itself (no Python needed) and prints
//     what it received.
//   deno run ... _notify_fixture.ts usec
//     Prints monotonicUsec() alone.
import {
  createSystemdNotifier,
  monotonicUsec,
} from "../lib/cli/systemd_notify.ts";

const [mode, target] = Deno.args;
if (mode === "usec") {
  console.log(String(monotonicUsec()));
  Deno.exit(0);
}

let receiver: Deno.DatagramConn | undefined;
if (mode === "loopback") {
  receiver = Deno.listenDatagram({
    transport: "unixpacket",
    path: target.startsWith("@") ? `\0${target.slice(1)}` : target,
  });
}

const notifier = createSystemdNotifier(
  mode === "loopback" ? { socket: target } : {},
);
// Not awaited one by one: the notifier must keep them in order anyway.
const results = await Promise.all([
  notifier.ready("Listening on 127.0.0.1:1"),
  notifier.reloading(),
  notifier.ready(),
  notifier.status("line one\nline two \x1b[31m"),
  notifier.stopping(),
]);

const received: string[] = [];
if (receiver) {
  const decoder = new TextDecoder();
  for (let i = 0; i < notifier.sent; i++) {
    const [data] = await receiver.receive();
    received.push(decoder.decode(data));
  }
  receiver.close();
}

console.log(JSON.stringify({
  pid: Deno.pid,
  results,
  sent: notifier.sent,
  failed: notifier.failed,
  error: notifier.lastError?.message,
  received,
}));
