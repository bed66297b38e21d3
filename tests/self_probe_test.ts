// The /healthz self-probe of an idle server is no client: never logged,
// counted or refused, with one thread, with workers and behind PROXY.
import { assert, assertEquals } from "@std/assert";
import { scrapeSeries, startCli, waitForMetricsPort } from "./_helpers.ts";

const CASES: { name: string; args: string[]; linux?: boolean }[] = [
  { name: "one thread", args: [] },
  {
    name: "--proxy-protocol",
    args: ["--proxy-protocol", "--proxy-from", "192.0.2.1"],
  },
  { name: "--workers 2", args: ["--workers", "2"], linux: true },
];

for (const { name, args, linux } of CASES) {
  Deno.test({
    name: `greeter --metrics probes an idle server for /healthz without a ` +
      `client line, a count or a refusal (${name})`,
    ignore: linux === true && Deno.build.os !== "linux",
    async fn() {
      await using server = await startCli([
        "-H",
        "127.0.0.1",
        "-p",
        "0",
        "--log-rate",
        "0",
        "--metrics",
        "127.0.0.1:0",
        ...args,
      ], { permissions: ["--allow-net", "--allow-read"] });
      const port = await waitForMetricsPort(server);
      for (let probe = 0; probe < 2; probe++) {
        // Idle for over a second: the check probes the greeting port.
        await new Promise((resolve) => setTimeout(resolve, 1_100));
        const response = await fetch(`http://127.0.0.1:${port}/healthz`);
        assertEquals([response.status, await response.text()], [200, "ok\n"]);
      }
      const series = await scrapeSeries(port);
      assertEquals(series.get("greeter_connections_accepted_total"), 0);
      for (const [key, value] of series) {
        if (key.startsWith("greeter_connections_refused_total")) {
          assertEquals(value, 0, key);
        }
      }
      const { code, stdout } = await server.stop();
      assertEquals(code, 0);
      assert(!stdout.includes("Connection received"), stdout);
    },
  });
}
