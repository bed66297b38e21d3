// Shared by the tests that run Debian's HAProxy with the shipped
// deploy/haproxy/haproxy.cfg on loopback.
import { assertEquals, assertMatch } from "@std/assert";
import { canRun, ROOT } from "./_helpers.ts";

/** The shipped config. */
export const CONFIG = `${ROOT}/deploy/haproxy/haproxy.cfg`;
/** Whether haproxy runs here. */
export const haproxy = await canRun("haproxy", ["-v"]);
/** Appended to test names: why they are skipped, when they are. */
export const skipped = haproxy
  ? ""
  : " (skipped: haproxy is not installed; apt-get install haproxy)";

const decoder = new TextDecoder();

/** A port that was free on `hostname` a moment ago. */
export function freePort(hostname: string): number {
  const listener = Deno.listen({ hostname, port: 0 });
  const { port } = listener.addr;
  listener.close();
  return port;
}

/**
 * The shipped config, with its send-proxy-v2 server lines changed by `edit`
 * and, if given, one more line at the top of `defaults`.
 */
export async function shippedConfig(
  edit: (keyword: string) => string = (keyword) => keyword,
  defaults = "",
): Promise<string> {
  let text = await Deno.readTextFile(CONFIG);
  if (defaults) {
    assertMatch(text, /^defaults\n/m);
    text = text.replace(/^defaults\n/m, `defaults\n  ${defaults}\n`);
  }
  const servers = text.match(/^\s*server .* send-proxy-v2$/gm) ?? [];
  assertEquals(servers.length, 2, "two greeter servers with send-proxy-v2");
  return text.replace(
    /^(\s*server .*) send-proxy-v2$/gm,
    (_, head) => head + " " + edit("send-proxy-v2"),
  );
}

/** One server's row of HAProxy's `show stat`, by column name. */
export type StatRow = Record<string, string>;

/** A running HAProxy with a stats socket. */
export interface Haproxy extends AsyncDisposable {
  /** The frontend's port on 127.0.0.1. */
  port: number;
  /** The backend servers' rows of `show stat` (status, check_status, ...). */
  servers(): Promise<StatRow[]>;
  /** Stops it; resolves to what it printed. */
  stop(): Promise<string>;
}

/**
 * Runs HAProxy with `config` (text) and `env` on a free 127.0.0.1 port,
 * with a stats socket added by a second config file. A frontend port taken
 * in the meantime is retried with a new one.
 */
export async function startHaproxy(
  config: string,
  env: Record<string, string>,
): Promise<Haproxy> {
  const dir = await Deno.makeTempDir({ prefix: "greeter-haproxy-" });
  const socket = `${dir}/stats.sock`;
  await Deno.writeTextFile(`${dir}/haproxy.cfg`, config);
  // Sections may repeat: this global adds to the shipped one.
  await Deno.writeTextFile(
    `${dir}/stats.cfg`,
    `global\n  stats socket ${socket} mode 600 level user\n`,
  );
  for (let attempt = 1;; attempt++) {
    const port = freePort("127.0.0.1");
    const process = new Deno.Command("haproxy", {
      args: ["-db", "-f", `${dir}/haproxy.cfg`, "-f", `${dir}/stats.cfg`],
      env: { ...env, GREETER_BIND: `127.0.0.1:${port}` },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const output = process.output();
    let exited = false;
    process.status.then(() => exited = true);
    // The stats socket appears once HAProxy has bound everything.
    const deadline = performance.now() + 5_000;
    let ready = false;
    while (!exited && performance.now() < deadline) {
      ready = await Deno.stat(socket).then(() => true, () => false);
      if (ready) break;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    if (!ready) {
      if (!exited) process.kill("SIGKILL");
      const { stdout, stderr } = await output;
      const log = decoder.decode(stdout) + decoder.decode(stderr);
      if (exited && attempt < 3 && /cannot bind/i.test(log)) continue;
      await Deno.remove(dir, { recursive: true });
      throw new Error(`haproxy did not start:\n${log}`);
    }
    let stopped: Promise<string> | undefined;
    const stop = () =>
      stopped ??= (async () => {
        if (!exited) process.kill("SIGTERM");
        const { stdout, stderr } = await output;
        await Deno.remove(dir, { recursive: true });
        return decoder.decode(stdout) + decoder.decode(stderr);
      })();
    return {
      port,
      async servers() {
        const text = await statsCommand(socket, "show stat");
        const [head, ...rows] = text.trim().split("\n");
        const names = head.replace(/^# /, "").split(",");
        return rows.map((row) =>
          Object.fromEntries(row.split(",").map((v, i) => [names[i], v]))
        ).filter((row) =>
          row.svname !== "FRONTEND" && row.svname !== "BACKEND"
        );
      },
      stop,
      async [Symbol.asyncDispose]() {
        await stop();
      },
    };
  }
}

/** Sends one command to HAProxy's stats socket and reads the answer. */
async function statsCommand(path: string, command: string): Promise<string> {
  const conn = await Deno.connect({ transport: "unix", path });
  try {
    await conn.write(new TextEncoder().encode(command + "\n"));
    let text = "";
    const buffer = new Uint8Array(16 * 1024);
    for (let n; (n = await conn.read(buffer)) !== null;) {
      text += decoder.decode(buffer.subarray(0, n));
    }
    return text;
  } finally {
    conn.close();
  }
}
