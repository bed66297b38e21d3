// The per-connection cost of a greeting: the static fast path against
// compiled templates and presets.
// Run: deno bench scripts/bench/template_cost_bench.ts
import {
  daytimeGreeting,
  qotdGreeting,
  timeGreeting,
} from "../../lib/greeting/presets.ts";
import {
  compileTemplate,
  encodeGreeting,
  type GreetingContext,
  type GreetingSource,
} from "../../lib/greeting/template.ts";

const context: GreetingContext = {
  remoteAddr: { transport: "tcp", hostname: "192.168.100.200", port: 51234 },
  localAddr: { transport: "tcp", hostname: "0.0.0.0", port: 8080 },
  count: 0,
};
const ipv6: GreetingContext = {
  ...context,
  remoteAddr: { transport: "tcp", hostname: "2001:db8::1234", port: 51234 },
};
const TEMPLATE = "Hello {remote_addr}:{remote_port}, you are visitor {count}";

let sink = 0;

/** What the server does per connection: get the bytes for this client. */
function greet(source: GreetingSource, ctx: GreetingContext): void {
  ctx.count++;
  const bytes = typeof source === "function" ? source(ctx) : source;
  sink += bytes.length;
}

const fixed = compileTemplate("Hello, you are a visitor");
const template = compileTemplate(TEMPLATE);
const timed = compileTemplate(`{time} ${TEMPLATE}`);

Deno.bench("static bytes (fast path)", {
  group: "per connection",
  baseline: true,
}, () => greet(fixed, context));

Deno.bench("template {remote_addr}:{remote_port} {count}", {
  group: "per connection",
}, () => greet(template, context));

Deno.bench("same template, IPv6 client", {
  group: "per connection",
}, () => greet(template, ipv6));

Deno.bench("same template plus {time}", {
  group: "per connection",
}, () => greet(timed, context));

Deno.bench("naive: format the string, then encodeGreeting", {
  group: "per connection",
}, () => {
  context.count++;
  const text = `Hello ${context.remoteAddr.hostname}:` +
    `${context.remoteAddr.port}, you are visitor ${context.count}`;
  sink += encodeGreeting(text).length;
});

const daytime = daytimeGreeting();
const time = timeGreeting();
const qotd = qotdGreeting(
  new TextEncoder().encode("One quote.\n%\nAnother\nquote.\n%\nA third."),
);

Deno.bench(
  "preset daytime",
  { group: "presets" },
  () => greet(daytime, context),
);
Deno.bench("preset time", { group: "presets" }, () => greet(time, context));
Deno.bench(
  "preset qotd (3 quotes)",
  { group: "presets" },
  () => greet(qotd, context),
);

globalThis.addEventListener("unload", () => {
  if (sink < 0) console.log(sink);
});
