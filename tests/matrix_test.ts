// Every feature with every other (issue 19): each pair of the features below
// runs together against real clients, and either works (the exact greeting
// reaches the client, the log line and the metric are right) or is refused
// at start-up with one usage line that names both flags. The matrix is data:
// a new feature adds a row to FEATURES, not a test.
import { assert, assertEquals, assertMatch } from "@std/assert";
import { encodeProxyHeader } from "./_proxy_header.ts";
import { canRun, parseSeries, startCli } from "./_helpers.ts";
import { makeCertificates } from "./_tools.ts";

const LINUX = Deno.build.os === "linux";
const DEFAULT = "Connection Established\r\n";

/** What a run of the server needs from its features, and gives a client. */
interface Setup {
  dir: string;
  certs?: { certFile: string; keyFile: string; ca: string };
}

/** How a client reaches the server and what it must get. */
interface Plan {
  tls: boolean;
  /** PROXY header versions the balancer sends (none: no header). */
  proxy: (1 | 2)[];
  unix?: string;
  /** The greeting for a client at `client` (the address the server sees). */
  greeting: (client: string) => string | RegExp;
  json: boolean;
  quiet: boolean;
  workers: boolean;
  reload: boolean;
  metrics: boolean;
  /** Held by --tarpit: endless lines instead of the greeting. */
  tarpit: boolean;
  /** --greet-pause and --log-address truncate: lines name a /24. */
  sensor: boolean;
}

/** One feature: its server flags, and what it changes in the plan. */
interface Feature {
  name: string;
  args(setup: Setup): string[];
  plan?(plan: Plan, setup: Setup): void;
  /** Only where the platform has it. */
  needs?: boolean;
}

const FEATURES: Feature[] = [
  {
    name: "tls",
    args: (
      { certs },
    ) => ["--tls-cert", certs!.certFile, "--tls-key", certs!.keyFile],
    plan: (plan) => plan.tls = true,
  },
  {
    name: "proxy-v1",
    args: () => ["--proxy-protocol", "--proxy-from", "127.0.0.1"],
    plan: (plan) => plan.proxy = [...new Set([...plan.proxy, 1 as const])],
  },
  {
    name: "proxy-v2",
    args: () => ["--proxy-protocol", "--proxy-from", "127.0.0.1"],
    plan: (plan) => plan.proxy = [...new Set([...plan.proxy, 2 as const])],
  },
  {
    name: "unix",
    args: ({ dir }) => ["--unix", `${dir}/greeter.sock`],
    plan: (plan, { dir }) => plan.unix = `${dir}/greeter.sock`,
    needs: LINUX,
  },
  {
    name: "workers",
    args: () => ["--workers", "2"],
    plan: (plan) => plan.workers = true,
    needs: LINUX,
  },
  {
    name: "reload",
    args: () => [],
    plan: (plan) => plan.reload = true,
    needs: Deno.build.os !== "windows",
  },
  {
    name: "metrics",
    args: () => ["--metrics", "127.0.0.1:0"],
    plan: (plan) => plan.metrics = true,
  },
  {
    name: "limits",
    args: () => ["--max-per-ip", "4", "--rate-per-ip", "1000"],
  },
  {
    name: "access",
    args: () => [
      "--allow",
      "127.0.0.0/8",
      "--allow",
      "192.0.2.0/24",
      "--deny",
      "198.51.100.0/24",
    ],
  },
  {
    name: "template",
    args: () => ["--message", "Hello {remote_addr}"],
    plan: (plan) => plan.greeting = (client) => `Hello ${client}\r\n`,
  },
  {
    name: "preset",
    args: () => ["--preset", "daytime"],
    plan: (plan) =>
      plan.greeting = () => /^\w+, \w+ \d+, \d{4} [\d:]+-\w+\r\n$/,
  },
  {
    name: "json",
    args: () => ["--log-format", "json"],
    plan: (plan) => plan.json = true,
  },
  {
    name: "tarpit",
    args: () => ["--tarpit", "--tarpit-interval", "20ms"],
    plan: (plan) => plan.tarpit = true,
  },
  {
    name: "sensor",
    args: () => [
      "--greet-pause",
      "50ms",
      "--capture",
      "64",
      "--log-address",
      "truncate",
    ],
    plan: (plan) => plan.sensor = true,
  },
  {
    name: "quiet",
    args: () => ["--quiet"],
    plan: (plan) => plan.quiet = true,
  },
];

const decoder = new TextDecoder();

/** Reads until the server closes; what came. */
async function readToEnd(conn: Deno.Conn | Deno.TlsConn): Promise<string> {
  let text = "";
  const buffer = new Uint8Array(512);
  while (true) {
    const n = await conn.read(buffer).catch(() => null);
    if (n === null) return text;
    text += decoder.decode(buffer.subarray(0, n));
  }
}

/** Reads until `count` whole lines have come (a tarpit never ends). */
async function readLines(
  conn: Deno.Conn | Deno.TlsConn,
  count: number,
): Promise<string> {
  let text = "";
  const buffer = new Uint8Array(512);
  while ((text.match(/\r\n/g) ?? []).length < count) {
    const n = await conn.read(buffer);
    if (n === null) break;
    text += decoder.decode(buffer.subarray(0, n));
  }
  return text;
}

/**
 * One client as the plan says: over the Unix socket or TCP, with a PROXY
 * header of `version` naming 192.0.2.N, then TLS. Returns what it got and
 * the client address the server should report.
 */
async function visit(
  plan: Plan,
  port: number,
  ca: string | undefined,
  version: 1 | 2 | undefined,
  n: number,
): Promise<{ text: string; client: string }> {
  let conn: Deno.Conn = plan.unix
    ? await Deno.connect({ transport: "unix", path: plan.unix })
    : await Deno.connect({ hostname: "127.0.0.1", port });
  let client = plan.unix ? "" : "127.0.0.1";
  if (version) {
    client = `192.0.2.${n}`;
    await conn.write(encodeProxyHeader({
      version,
      command: "proxy",
      source: { transport: "tcp", hostname: client, port: 40_000 + n },
      destination: { transport: "tcp", hostname: "127.0.0.1", port },
    }));
  }
  // TLS serves the TCP listeners; a Unix socket stays plain.
  if (plan.tls && !plan.unix) {
    conn = await Deno.startTls(conn as Deno.TcpConn, {
      hostname: "127.0.0.1",
      caCerts: [ca!],
    });
  }
  try {
    return {
      text: plan.tarpit ? await readLines(conn, 3) : await readToEnd(conn),
      client,
    };
  } finally {
    try {
      conn.close();
    } catch {
      // Closed already.
    }
  }
}

/** A usage error that names a flag of each feature: a refused pair. */
function namesBoth(stderr: string, a: Feature, b: Feature, setup: Setup) {
  const flagsOf = (feature: Feature) =>
    feature.args(setup).filter((arg) => arg.startsWith("-"));
  return flagsOf(a).some((flag) => stderr.includes(flag)) &&
    flagsOf(b).some((flag) => stderr.includes(flag));
}

/** Runs one combination; resolves to "works" or "refused". */
async function runPair(
  features: Feature[],
  setup: Setup,
): Promise<"works" | "refused"> {
  const plan: Plan = {
    tls: false,
    proxy: [],
    greeting: () => DEFAULT,
    json: false,
    quiet: false,
    workers: false,
    reload: false,
    metrics: false,
    tarpit: false,
    sensor: false,
  };
  const args = ["-H", "127.0.0.1", "-p", "0", "--log-rate", "0"];
  for (const feature of features) {
    args.push(...feature.args(setup));
    feature.plan?.(plan, setup);
  }
  const label = features.map((f) => f.name).join(" + ");
  let server;
  try {
    server = await startCli(args, {
      permissions: ["--allow-net", "--allow-read", "--allow-write"],
    });
  } catch (error) {
    // Refused at start-up: one usage line (exit 2) naming both flags.
    const message = String(error);
    const stderr = /stderr: ([\s\S]*)$/.exec(message)?.[1] ?? "";
    assertEquals(stderr.trim().split("\n").length, 1, `${label}: ${message}`);
    assert(stderr.startsWith("greeter: "), `${label}: ${message}`);
    assert(
      features.length < 2 || namesBoth(stderr, features[0], features[1], setup),
      `${label}: the refusal names both flags: ${stderr}`,
    );
    return "refused";
  }
  await using running = server;
  const versions: (1 | 2 | undefined)[] = plan.proxy.length > 0
    ? plan.proxy
    : [undefined];
  const seen: string[] = [];
  const round = async (base: number) => {
    for (const [i, version] of versions.entries()) {
      const { text, client } = await visit(
        plan,
        running.port,
        setup.certs?.ca,
        version,
        base + i,
      );
      if (plan.tarpit) {
        // Endless SSH-style lines, none a version line.
        const lines = text.split("\r\n").slice(0, 3);
        assertEquals(lines.length, 3, `${label}: ${JSON.stringify(text)}`);
        for (const line of lines) {
          assert(!line.startsWith("SSH-"), `${label}: ${line}`);
        }
      } else {
        const want = plan.greeting(client);
        if (typeof want === "string") assertEquals(text, want, label);
        else assertMatch(text, want, label);
      }
      seen.push(client);
    }
  };
  await round(1);
  if (plan.reload) {
    running.process.kill("SIGHUP");
    await running.waitFor(/Configuration reloaded/);
    await round(11);
  }
  if (plan.metrics) {
    const [, metricsPort] = await running.waitFor(
      /Metrics are served on http:\/\/127\.0\.0\.1:(\d+)\/|"greeter.metrics":"127\.0\.0\.1:(\d+)"/,
    ).then((m) => [m[0], m[1] ?? m[2]]);
    // Workers report their counts every so often: wait for them.
    // A tarpit's clients count once they leave; its bytes at once.
    const series = plan.tarpit
      ? "greeter_tarpit_bytes_sent_total"
      : 'greeter_connections_total{outcome="greeted"}';
    const wanted = plan.tarpit ? 1 : seen.length;
    let greeted = 0;
    for (let tries = 0; tries < 50 && greeted < wanted; tries++) {
      const text = await (await fetch(
        `http://127.0.0.1:${metricsPort}/metrics`,
      )).text();
      greeted = parseSeries(text).get(series) ?? 0;
      if (greeted < wanted) {
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
    if (plan.tarpit) assert(greeted > 0, `${label}: tarpit bytes`);
    else assertEquals(greeted, seen.length, `${label}: greeted in the metrics`);
  }
  const { code, stdout } = await running.stop();
  assertEquals(code, 0, label);
  const lines = stdout.trim().split("\n");
  if (plan.json) {
    for (const line of lines) JSON.parse(line);
  }
  // A tarpit's JSON record is its leave line; text has both lines.
  const received = lines.filter((line) =>
    line.includes("Connection received from") ||
    (plan.tarpit && plan.json && line.includes("Tarpit released"))
  );
  if (plan.quiet) {
    assertEquals(received, [], `${label}: --quiet logs no connection`);
  } else {
    assertEquals(received.length, seen.length, `${label}: ${stdout}`);
    for (const seenClient of seen) {
      if (!seenClient) continue;
      // --log-address truncate: the client's /24, and no port.
      const client = plan.sensor
        ? `${seenClient.split(".").slice(0, 3).join(".")}.0/24`
        : seenClient;
      assert(
        received.some((line) =>
          line.includes(`from ${client}${plan.sensor ? " " : ":"}`) ||
          line.includes(`released ${client}${plan.sensor ? " " : ":"}`)
        ),
        `${label}: a line names ${client}: ${stdout}`,
      );
    }
  }
  return "works";
}

const openssl = await canRun("openssl", ["version"]);
const usable = FEATURES.filter((feature) =>
  feature.needs !== false && (feature.name !== "tls" || openssl)
);

Deno.test({
  name: `every pair of ${usable.length} features works together or is ` +
    "refused at start-up with one line naming both" +
    (openssl ? "" : " (tls left out: openssl makes its certificates)"),
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "greeter-matrix-" });
    try {
      const setup: Setup = { dir };
      if (openssl) setup.certs = await makeCertificates(dir);
      const pairs: Feature[][] = usable.map((feature) => [feature]);
      for (let i = 0; i < usable.length; i++) {
        for (let j = i + 1; j < usable.length; j++) {
          pairs.push([usable[i], usable[j]]);
        }
      }
      const verdicts = new Map<string, string>();
      // A few at once: each is a process of its own.
      let next = 0;
      await Promise.all(Array.from({ length: 4 }, async (_, lane) => {
        const own = { ...setup, dir: `${dir}/${lane}` };
        await Deno.mkdir(own.dir);
        while (next < pairs.length) {
          const pair = pairs[next++];
          verdicts.set(
            pair.map((f) => f.name).join(" + "),
            await runPair(pair, own),
          );
          await Deno.remove(`${own.dir}/greeter.sock`).catch(() => {});
        }
      }));
      const refused = [...verdicts].filter(([, v]) => v === "refused");
      console.log(
        `${verdicts.size} combinations: ${
          verdicts.size - refused.length
        } work, ${refused.length} refused at start-up: ${
          refused.map(([k]) => k).join("; ") || "none"
        }`,
      );
      // A feature alone always works.
      for (const feature of usable) {
        assertEquals(verdicts.get(feature.name), "works", feature.name);
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
