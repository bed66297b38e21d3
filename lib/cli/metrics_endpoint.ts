import { formatAddress, isNetAddr } from "../net/address.ts";
import { createHealthCheck, probeAddress } from "../observe/health.ts";
import { type MetricsServer, serveMetrics } from "../observe/metrics_server.ts";
import {
  loadProcessMetrics,
  readProcessSample,
  renderProcessMetrics,
} from "../observe/process_metrics.ts";
import { ListenError } from "../server/listeners.ts";
import { explainListen } from "./explain.ts";
import { type Serving, SHARED } from "./run_server.ts";

/**
 * Opens `--metrics`, before the greeting ports: if its port is taken,
 * nothing has started greeting. `render` gives the server's families; the
 * standard `process_*` families follow (the descriptor counts only where
 * Deno may read /proc, which 2.9 allows only under `--allow-all`), then the
 * endpoint's own `greeter_metrics_*`. The endpoint keeps its defaults: 64
 * connections at most, each closed 5 s after it was accepted.
 */
export async function startMetrics(
  listen: { hostname: string; port: number; fd?: number },
  render: () => string | Promise<string>,
  running: () => Serving | undefined,
): Promise<MetricsServer> {
  await loadProcessMetrics();
  // The health check, for a server that may not have started yet.
  const check = createHealthCheck({
    stats: () => running()!.stats,
    draining: () => running()?.draining ?? true,
    probe: () => {
      // The server's addresses are TCP or Unix: never UDP.
      const tcp = running()!.addrs.find(isNetAddr);
      // A server on Unix sockets alone has no port to probe (a probe there
      // would be served and logged as a client): idle is not stalled, so
      // only draining and exhaustion turn it to 503.
      return tcp
        ? probeAddress(tcp, SHARED)
        : Promise.resolve({ connected: true, accepted: () => true, done() {} });
    },
  });
  try {
    return serveMetrics({
      ...listen,
      render: async () =>
        await render() + renderProcessMetrics(readProcessSample()),
      // Health or a promise of it, as serveMetrics takes either.
      health: () => running() ? check() : { ok: false, reason: "starting" },
    });
  } catch (error) {
    const address = listen.fd === undefined
      ? formatAddress({ transport: "tcp", ...listen })
      : `file descriptor ${listen.fd}`;
    const failed = new ListenError(address, listen.port, error);
    return explainListen(failed, "--metrics");
  }
}
