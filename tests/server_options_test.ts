import { assert, assertEquals, assertRejects, assertThrows } from "@std/assert";
import type { ServeGreetingOptions } from "../lib/server/options.ts";
import { serveGreeting } from "../lib/server/serve_greeting.ts";
import { closedPort } from "./_helpers.ts";

const HOST = "127.0.0.1";

interface BadCase {
  /** The option's name, as the error's `option` field gives it. */
  option: string;
  /** The bad value, as the error's `value` field gives it. */
  value: unknown;
  Kind: typeof RangeError | typeof TypeError;
  /** The options, given a free port that a valid server would listen on. */
  options: (port: number) => Record<string, unknown>;
}

/** A bad value of a top-level option, next to a valid address. */
function top(
  option: string,
  value: unknown,
  Kind: typeof RangeError | typeof TypeError,
): BadCase {
  return {
    option,
    value,
    Kind,
    options: (port) => ({ hostname: HOST, port, [option]: value }),
  };
}

const CASES: BadCase[] = [
  top("maxPerIp", 0, RangeError),
  top("maxPerIp", -1, RangeError),
  top("maxPerIp", 1.5, RangeError),
  top("maxPerIp", "2", TypeError),
  top("ratePerIp", 0, RangeError),
  top("ratePerIp", -1, RangeError),
  top("ratePerIp", NaN, RangeError),
  top("ratePerIp", Infinity, RangeError),
  top("backlog", -5, RangeError),
  top("backlog", 0, RangeError),
  top("backlog", 70_000, RangeError),
  top("timeout", -1, RangeError),
  top("timeout", 2 ** 31, RangeError),
  top("linger", -1, RangeError),
  top("drainTimeout", NaN, RangeError),
  top("maxConnections", 0, RangeError),
  top("greeting", "hello", TypeError),
  top("refuseMessage", "x", TypeError),
  top("onClose", "x", TypeError),
  {
    option: "port",
    value: 70_000,
    Kind: RangeError,
    // The free port is not used: nothing may listen on it either way.
    options: () => ({ hostname: HOST, port: 70_000 }),
  },
  {
    option: "listen",
    value: [],
    Kind: RangeError,
    // hostname and port are ignored when listen is given; checked all the
    // same, to prove that nothing falls back to them.
    options: (port) => ({ hostname: HOST, port, listen: [] }),
  },
  {
    option: "listen[0].path",
    value: undefined,
    Kind: TypeError,
    options: () => ({ listen: [{ transport: "unix" }] }),
  },
  {
    option: "listen[0].transport",
    value: "udp",
    Kind: RangeError,
    options: () => ({ listen: [{ transport: "udp" }] }),
  },
  {
    option: "listen[0].fd",
    value: undefined,
    Kind: TypeError,
    options: () => ({ listen: [{ transport: "fd", tls: "x" }] }),
  },
  {
    option: "listen[0].tls",
    value: "x",
    Kind: TypeError,
    options: () => ({ listen: [{ transport: "fd", fd: 3, tls: "x" }] }),
  },
  {
    option: "listen[0].port",
    value: 70_000,
    Kind: RangeError,
    // Checked in order: the host, the port, then the TLS pair.
    options: () => ({ listen: [{ hostname: HOST, port: 70_000, tls: "x" }] }),
  },
  {
    option: "listen[0].tls",
    value: "x",
    Kind: TypeError,
    options: (port) => ({ listen: [{ transport: "tcp", port, tls: "x" }] }),
  },
  {
    option: "listen[1].path",
    value: undefined,
    Kind: TypeError,
    // A valid first target must not be listened on before the second fails.
    options: (port) => ({
      listen: [{ hostname: HOST, port }, { transport: "unix" }],
    }),
  },
];

/** Connecting to `port` on loopback is refused: nothing listens there. */
async function assertNothingListens(port: number): Promise<void> {
  await assertRejects(
    () => Deno.connect({ hostname: HOST, port }),
    Deno.errors.ConnectionRefused,
  );
}

function show(value: unknown): string {
  return typeof value === "string"
    ? JSON.stringify(value)
    : Array.isArray(value)
    ? "[]"
    : String(value);
}

for (const { option, value, Kind, options } of CASES) {
  Deno.test(`serveGreeting() rejects ${option} ${show(value)} with a ${Kind.name} before listening`, async () => {
    const port = closedPort();
    const error = assertThrows(
      () => serveGreeting(options(port) as ServeGreetingOptions),
      Kind,
    ) as Error & { option?: unknown; value?: unknown };
    // RangeError is not a TypeError and vice versa: the class is exact.
    assertEquals(error.constructor, Kind);
    assertEquals(error.option, option);
    if (Array.isArray(value)) assertEquals(error.value, value);
    else assert(Object.is(error.value, value), `value: ${error.value}`);
    assert(/^[A-Z]/.test(error.message), `sentence case: ${error.message}`);
    assert(
      error.message.includes(option),
      `names the option: ${error.message}`,
    );
    assert(!error.message.includes("--"), `no flag: ${error.message}`);
    await assertNothingListens(port);
  });
}

// The control: the same port and options, valid, are listened on, so the
// tests above would see a listener if a bad value let one open.
Deno.test("serveGreeting() listens on the free port when every option is valid", async () => {
  const port = closedPort();
  const server = serveGreeting({
    hostname: HOST,
    port,
    maxPerIp: 2,
    ratePerIp: 0.5,
    backlog: 1,
    timeout: 2 ** 31 - 1,
    linger: 0,
    maxConnections: 1,
  });
  try {
    const conn = await Deno.connect({ hostname: HOST, port });
    conn.close();
  } finally {
    await server.shutdown();
  }
  await assertNothingListens(port);
});

Deno.test("serveGreeting() rejects an allow list of strings before listening", async () => {
  const port = closedPort();
  let server: ReturnType<typeof serveGreeting> | undefined;
  try {
    const error = assertThrows(
      () => {
        server = serveGreeting({
          hostname: HOST,
          port,
          allow: ["127.0.0.0/8"] as unknown as ServeGreetingOptions["allow"],
        });
      },
      TypeError,
    ) as Error & { option?: unknown };
    assert(String(error.option).startsWith("allow"), `${error.option}`);
    assert(/^[A-Z]/.test(error.message), error.message);
    await assertNothingListens(port);
  } finally {
    await server?.shutdown().catch(() => {});
  }
});

Deno.test("serveGreeting() and reload() reject options that are not an object with a TypeError", async () => {
  // (No options at all are the defaults.)
  for (const value of [null, "x", 1]) {
    assertThrows(
      () => serveGreeting(value as unknown as ServeGreetingOptions),
      TypeError,
      "Invalid options option: expected an object, got ",
    );
  }
  await using server = serveGreeting({ hostname: HOST, port: 0 });
  // A reload says what changes: it has no defaults to fall back on.
  for (const value of [null, undefined, "x", 1]) {
    assertThrows(
      () => server.reload(value as unknown as ServeGreetingOptions),
      TypeError,
      "Invalid options option: expected an object, got ",
    );
  }
});

Deno.test("reload() rejects tls on a server without a TLS listener with a TypeError, and changes nothing", async () => {
  await using server = serveGreeting({ hostname: HOST, port: 0 });
  const hello = new TextEncoder().encode("Hello\r\n");
  // Even a pair that is no certificate at all: nothing would have read it.
  const error = assertThrows(
    () => server.reload({ greeting: hello, tls: { cert: "x", key: "y" } }),
    TypeError,
    "Invalid tls option: expected undefined (this server has no TLS " +
      "listener), got a value of type object",
  );
  assertEquals((error as { option?: string }).option, "tls");
  const conn = await Deno.connect({ hostname: HOST, port: server.addr.port });
  const bytes = new Uint8Array(await new Response(conn.readable).arrayBuffer());
  assertEquals(
    new TextDecoder().decode(bytes),
    "Connection Established\r\n",
  );
});
