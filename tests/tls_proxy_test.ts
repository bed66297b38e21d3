// TLS behind a PROXY protocol balancer: the header comes in clear, then the
// TLS handshake on the same connection (HAProxy's send-proxy-v2 in front of
// a TLS backend). The library, greeter's own client, and real HAProxy with
// openssl s_client.
import { assertEquals, assertStringIncludes } from "@std/assert";
import { encodeProxyHeader } from "./_proxy_header.ts";
import { parseCidr } from "../lib/net/ip.ts";
import type { ConnectionRecord } from "../lib/server/options.ts";
import { serveGreeting } from "../lib/server/serve_greeting.ts";
import { fetchGreeting } from "../lib/client/read_greeting.ts";
import {
  canRun,
  runCli,
  startCli,
  waitUntil,
  withTempDir,
} from "./_helpers.ts";
import { type Certificates, makeCertificates, run } from "./_tools.ts";
import { freePort, haproxy } from "./_haproxy.ts";

const GREETING = "Connection Established\r\n";
const decoder = new TextDecoder();
const openssl = await canRun("openssl", ["version"]);

/** A TLS greeter on loopback that expects a PROXY header from 127.0.0.1. */
function tlsBehindProxy(certs: Certificates): string[] {
  return [
    ...["-H", "127.0.0.1", "-p", "0"],
    ...["--tls-cert", certs.certFile, "--tls-key", certs.keyFile],
    ...["--proxy-protocol", "--proxy-from", "127.0.0.1"],
  ];
}

Deno.test({
  name: "serveGreeting() with tls and proxyProtocol reads the header in " +
    "clear, then serves TLS to the client it names" +
    (openssl ? "" : " (skipped: openssl makes the certificates)"),
  ignore: !openssl,
  async fn() {
    await withTempDir(async (dir) => {
      const certs = await makeCertificates(dir);
      const records: ConnectionRecord[] = [];
      await using server = serveGreeting({
        hostname: "127.0.0.1",
        port: 0,
        tls: { cert: certs.cert, key: certs.key },
        proxyProtocol: { from: [parseCidr("127.0.0.1")] },
        onClose: (record) => records.push(record),
      });
      const port = server.addr.port;
      // greeter's own client: a LOCAL header, then TLS, verified.
      const bytes = await fetchGreeting({
        hostname: "127.0.0.1",
        port,
        tls: { caCerts: [certs.ca] },
        proxyHeader: true,
      });
      assertEquals(decoder.decode(bytes), GREETING);
      // A balancer naming another client: the record has that client.
      const tcp = await Deno.connect({ hostname: "127.0.0.1", port });
      await tcp.write(encodeProxyHeader({
        version: 2,
        command: "proxy",
        source: { transport: "tcp", hostname: "192.0.2.9", port: 4321 },
        destination: { transport: "tcp", hostname: "127.0.0.1", port },
      }));
      const tls = await Deno.startTls(tcp, {
        hostname: "127.0.0.1",
        caCerts: [certs.ca],
      });
      let text = "";
      const buffer = new Uint8Array(64);
      for (let n; (n = await tls.read(buffer)) !== null;) {
        text += decoder.decode(buffer.subarray(0, n));
      }
      tls.close();
      assertEquals(text, GREETING);
      await waitUntil(() => records.length === 2, 2_000, "two records");
      assertEquals(
        records.map((
          r,
        ) => [r.outcome, (r.remoteAddr as Deno.NetAddr).hostname]),
        [["greeted", "127.0.0.1"], ["greeted", "192.0.2.9"]],
      );
    });
  },
});

Deno.test({
  name: "greeter check --tls --proxy-header passes against a TLS greeter " +
    "behind the PROXY protocol" + (openssl ? "" : " (skipped: no openssl)"),
  ignore: !openssl,
  async fn() {
    await withTempDir(async (dir) => {
      const certs = await makeCertificates(dir);
      await using server = await startCli(tlsBehindProxy(certs));
      const target = `127.0.0.1:${server.port}`;
      const check = await runCli([
        "check",
        "--tls",
        "--ca",
        certs.caFile,
        "--proxy-header",
        target,
      ]);
      assertEquals(check.code, 0, check.stdout + check.stderr);
      const insecure = await runCli([
        "connect",
        "--tls",
        "--insecure",
        "--proxy-header",
        target,
      ]);
      assertEquals([insecure.code, insecure.stdout], [0, GREETING]);
    });
  },
});

Deno.test({
  name: "HAProxy send-proxy-v2 in front of a TLS greeter: openssl s_client " +
    "through it gets the exact greeting, and the log names the real client" +
    (haproxy && openssl ? "" : " (skipped: needs haproxy and openssl)"),
  ignore: !haproxy || !openssl,
  async fn() {
    await withTempDir(async (dir) => {
      const certs = await makeCertificates(dir);
      await using server = await startCli([
        ...tlsBehindProxy(certs),
        "--log-rate",
        "0",
      ]);
      const front = freePort("127.0.0.1");
      await Deno.writeTextFile(
        `${dir}/haproxy.cfg`,
        [
          "defaults",
          "  mode tcp",
          "  timeout connect 2s",
          "  timeout client 5s",
          "  timeout server 5s",
          "frontend tls",
          `  bind 127.0.0.1:${front}`,
          "  default_backend greeter",
          "backend greeter",
          `  server g 127.0.0.1:${server.port} send-proxy-v2`,
          "",
        ].join("\n"),
      );
      const balancer = new Deno.Command("haproxy", {
        args: ["-db", "-f", `${dir}/haproxy.cfg`],
        stdin: "null",
        stdout: "null",
        stderr: "null",
      }).spawn();
      try {
        // Bound once s_client gets through; a few tries while it starts.
        let result = { code: -1, stdout: "", stderr: "" };
        for (let tries = 0; tries < 50; tries++) {
          result = await run("openssl", [
            "s_client",
            "-quiet",
            "-verify_return_error",
            "-CAfile",
            certs.caFile,
            "-connect",
            `127.0.0.1:${front}`,
          ], "");
          if (result.stdout !== "") break;
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
        assertEquals(result.stdout, GREETING, result.stderr);
        const [line] = await server.waitFor(
          /^Connection received from 127\.0\.0\.1:\d+ \(via 127\.0\.0\.1:\d+\)$/m,
        );
        assertStringIncludes(line, "Connection received from 127.0.0.1:");
      } finally {
        balancer.kill("SIGTERM");
        await balancer.status;
      }
    });
  },
});
