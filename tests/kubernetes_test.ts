// deploy/kubernetes/: every manifest validated against the Kubernetes API
// schemas by kubernetes-models (generated from the upstream OpenAPI
// definitions and maintained outside this project), and the Deployment's
// flags, ports and probes checked against greeter itself and the
// Dockerfile, by running greeter with them. No cluster runs here.
import { assert, assertEquals, assertMatch, assertThrows } from "@std/assert";
import { parseAllDocuments } from "yaml";
import { Deployment } from "kubernetes-models/apps/v1/Deployment";
import { Service } from "kubernetes-models/v1/Service";
import { PodDisruptionBudget } from "kubernetes-models/policy/v1/PodDisruptionBudget";
import { HorizontalPodAutoscaler } from "kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler";
import { ROOT, runCli, startCli, waitForMetricsPort } from "./_helpers.ts";
import { parseDuration } from "../lib/cli/duration.ts";

const DIR = `${ROOT}/deploy/kubernetes`;

// deno-lint-ignore no-explicit-any
type Manifest = any;

/** The model class that validates each apiVersion and kind used here. */
const MODELS: Record<string, new (data: Manifest) => { validate(): void }> = {
  "apps/v1 Deployment": Deployment,
  "v1 Service": Service,
  "policy/v1 PodDisruptionBudget": PodDisruptionBudget,
  "autoscaling/v2 HorizontalPodAutoscaler": HorizontalPodAutoscaler,
};

/** Every YAML document in the folder, by file. */
async function manifests(): Promise<{ file: string; doc: Manifest }[]> {
  const found = [];
  for await (const entry of Deno.readDir(DIR)) {
    if (!entry.name.endsWith(".yaml")) continue;
    const text = await Deno.readTextFile(`${DIR}/${entry.name}`);
    for (const document of parseAllDocuments(text)) {
      assertEquals(document.errors, [], entry.name);
      found.push({ file: entry.name, doc: document.toJS() });
    }
  }
  return found.sort((a, b) => a.file.localeCompare(b.file));
}

function validate(doc: Manifest): void {
  const Model = MODELS[`${doc.apiVersion} ${doc.kind}`];
  if (!Model) throw new Error(`No schema for ${doc.apiVersion} ${doc.kind}`);
  new Model(doc).validate();
}

async function deployment(): Promise<Manifest> {
  const all = await manifests();
  const found = all.filter(({ doc }) => doc.kind === "Deployment");
  assertEquals(found.length, 1);
  return found[0].doc;
}

/** The Dockerfile's instructions, continuation lines joined. */
async function dockerfile() {
  const lines = (await Deno.readTextFile(`${ROOT}/Dockerfile`))
    .replace(/\\\n\s*/g, " ").split("\n")
    .filter((line) => line.trim() !== "" && !line.startsWith("#"));
  const last = (name: string) =>
    lines.findLast((l) => l.startsWith(name + " "));
  return {
    entrypoint: JSON.parse(last("ENTRYPOINT")!.slice(11)) as string[],
    expose: last("EXPOSE")!.split(/\s+/).slice(1).map((p) => Number(p)),
    user: last("USER")!.split(/\s+/)[1],
  };
}

/** The value after `flag` in `args`, which must appear once. */
function flag(args: string[], name: string): string {
  const at = args.flatMap((arg, i) => arg === name ? [i] : []);
  assertEquals(at.length, 1, `${name} once in ${args.join(" ")}`);
  return args[at[0] + 1];
}

Deno.test("deploy/kubernetes manifests pass the Kubernetes API schemas of kubernetes-models", async () => {
  const all = await manifests();
  const kinds = all.filter(({ file }) => file !== "kustomization.yaml")
    .map(({ doc }) => `${doc.apiVersion} ${doc.kind}`);
  assertEquals(kinds.sort(), Object.keys(MODELS).sort());
  for (const { file, doc } of all) {
    if (file === "kustomization.yaml") continue;
    try {
      validate(doc);
    } catch (error) {
      throw new Error(`${file}: ${error}`);
    }
  }
});

Deno.test("deploy/kubernetes schema validation refuses a broken Deployment", async () => {
  // The validator is not a rubber stamp: wrong types and a missing
  // required field fail.
  const broken = [
    (d: Manifest) =>
      d.spec.template.spec.containers[0].ports[0].containerPort = "8080",
    (d: Manifest) => delete d.spec.selector,
    (d: Manifest) => d.spec.template.spec.containers[0].args = "--port 8080",
    (d: Manifest) =>
      d.spec.template.spec.containers[0].livenessProbe.timeoutSeconds = "3",
  ];
  for (const edit of broken) {
    const doc = await deployment();
    edit(doc);
    assertThrows(() => validate(doc), Error, undefined, String(edit));
  }
});

Deno.test("deploy/kubernetes kustomization.yaml lists every manifest", async () => {
  const all = await manifests();
  const kustomization = all.find(({ file }) => file === "kustomization.yaml")!
    .doc;
  assertEquals(kustomization.kind, "Kustomization");
  const others = [...new Set(all.map(({ file }) => file))]
    .filter((file) => file !== "kustomization.yaml");
  assertEquals([...kustomization.resources].sort(), others.sort());
});

Deno.test("deploy/kubernetes Deployment agrees with the Dockerfile and greeter's flags", async () => {
  const docker = await dockerfile();
  const all = await manifests();
  const byKind = (kind: string) =>
    all.find(({ doc }) => doc.kind === kind)!.doc;
  const deploy = byKind("Deployment");
  const pod = deploy.spec.template;
  const [container] = pod.spec.containers;
  const args: string[] = container.args;
  const ports = Object.fromEntries(
    container.ports.map((p: Manifest) => [p.name, p.containerPort]),
  );

  // The image's ENTRYPOINT runs, and the args replace its CMD.
  assertEquals(container.command, undefined);
  const greetingPort = Number(flag(args, "--port"));
  assertEquals(docker.expose, [greetingPort]);
  assertEquals(ports.greeting, greetingPort);
  const metrics = flag(args, "--metrics");
  assertMatch(metrics, /^0\.0\.0\.0:\d+$/, "metrics reachable by the kubelet");
  const metricsPort = Number(metrics.split(":")[1]);
  assertEquals(ports.metrics, metricsPort);

  // Liveness: the image's binary, greeter check, the greeting port.
  const live = container.livenessProbe;
  const [binary, command, target, ...checkArgs] = live.exec.command;
  assertEquals([binary], docker.entrypoint);
  assertEquals(command, "check");
  assertEquals(target, `127.0.0.1:${greetingPort}`);
  const checkTimeout = parseDuration(flag(checkArgs, "--timeout"));
  assert(live.timeoutSeconds * 1000 > checkTimeout, "probe outlasts check");

  // Readiness: /healthz on the metrics port (by name or number).
  const ready = container.readinessProbe.httpGet;
  assertEquals(ready.path, "/healthz");
  assertEquals(ports[ready.port] ?? ready.port, metricsPort);
  assertEquals(
    pod.metadata.annotations["prometheus.io/port"],
    `${metricsPort}`,
  );
  assertEquals(pod.metadata.annotations["prometheus.io/path"], "/metrics");

  // The Service sends the greeting port to the greeting container port.
  const service = byKind("Service");
  const [servicePort] = service.spec.ports;
  assertEquals(
    ports[servicePort.targetPort] ?? servicePort.targetPort,
    greetingPort,
  );
  assertEquals(service.spec.selector, deploy.spec.selector.matchLabels);
  assertEquals(
    byKind("PodDisruptionBudget").spec.selector,
    deploy.spec.selector,
  );
  assertEquals(
    byKind("HorizontalPodAutoscaler").spec.scaleTargetRef.name,
    deploy.metadata.name,
  );

  // The image's user, no privileges, nothing writable but /tmp.
  assertEquals(
    `${pod.spec.securityContext.runAsUser}:${pod.spec.securityContext.runAsGroup}`,
    docker.user,
  );
  assertEquals(pod.spec.securityContext.runAsNonRoot, true);
  const security = container.securityContext;
  assertEquals(security.readOnlyRootFilesystem, true);
  assertEquals(security.allowPrivilegeEscalation, false);
  assertEquals(security.capabilities, { drop: ["ALL"] });
  for (const kind of ["requests", "limits"]) {
    assert(
      container.resources[kind].cpu && container.resources[kind].memory,
      kind,
    );
  }

  // SIGTERM comes after preStop; the drain must end before SIGKILL.
  const drainMs = parseDuration(flag(args, "--drain-timeout"));
  const preStopMs = (container.lifecycle?.preStop?.sleep?.seconds ?? 0) * 1000;
  assert(pod.spec.terminationGracePeriodSeconds * 1000 > preStopMs + drainMs);
});

Deno.test("deploy/kubernetes Deployment's args start greeter, and its probes pass against it", async () => {
  const deploy = await deployment();
  const [container] = deploy.spec.template.spec.containers;
  const args: string[] = [...container.args];
  // The same flags on loopback with free ports: only the addresses change.
  args[args.indexOf("--host") + 1] = "127.0.0.1";
  args[args.indexOf("--port") + 1] = "0";
  args[args.indexOf("--metrics") + 1] = "127.0.0.1:0";
  await using server = await startCli(args);
  const metricsPort = await waitForMetricsPort(server);

  const [, , , ...checkArgs] = container.livenessProbe.exec.command;
  const live = await runCli([
    "check",
    `127.0.0.1:${server.port}`,
    ...checkArgs,
  ]);
  assertEquals(live.code, 0, live.stdout + live.stderr);
  assertMatch(live.stdout, /^OK /);

  const { path } = container.readinessProbe.httpGet;
  const response = await fetch(`http://127.0.0.1:${metricsPort}${path}`);
  assertEquals(response.status, 200);
  await response.body?.cancel();

  // SIGTERM, as the kubelet sends it: greeter drains and exits 0.
  const { code, stdout } = await server.stop("SIGTERM");
  assertEquals(code, 0, stdout);
});

Deno.test("deploy/kubernetes liveness probe fails against --proxy-protocol, as its comment says, works with --proxy-header, and /healthz still answers", async () => {
  const deploy = await deployment();
  const [container] = deploy.spec.template.spec.containers;
  const comments = await Deno.readTextFile(`${DIR}/deployment.yaml`);
  assertMatch(comments, /--proxy-protocol/);
  assertMatch(comments, /refuses a probe that sends no\s+#\s+PROXY header/);
  assertMatch(comments, /--proxy-header/);
  const args: string[] = [...container.args];
  args[args.indexOf("--host") + 1] = "127.0.0.1";
  args[args.indexOf("--port") + 1] = "0";
  args[args.indexOf("--metrics") + 1] = "127.0.0.1:0";
  const [, , , ...checkArgs] = container.livenessProbe.exec.command;
  // Untrusted (the probe's 127.0.0.1 is not the balancer), and trusted but
  // without a header (a short --timeout bounds the header's wait).
  const cases = [
    { from: "10.0.0.0/16", reason: "proxy_untrusted" },
    { from: "127.0.0.1/32", reason: "proxy_header" },
  ];
  for (const { from, reason } of cases) {
    await using server = await startCli([
      ...args,
      "--proxy-protocol",
      "--proxy-from",
      from,
      "--timeout",
      "300ms",
    ]);
    const metricsPort = await waitForMetricsPort(server);
    const live = await runCli([
      "check",
      `127.0.0.1:${server.port}`,
      ...checkArgs,
    ]);
    assertEquals(live.code, 1, live.stdout + live.stderr);
    // Closed without a byte: greeter refused it, for the reason expected.
    assertMatch(live.stdout, /got "" \(0 bytes, then closed\)/);
    const metrics = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
    assertMatch(
      await metrics.text(),
      new RegExp(
        `^greeter_connections_refused_total\\{reason="${reason}"\\} 1$`,
        "m",
      ),
    );
    // The fix the comment gives: a v2 LOCAL header, from a trusted address.
    if (from === "127.0.0.1/32") {
      const fixed = await runCli([
        "check",
        `127.0.0.1:${server.port}`,
        ...checkArgs,
        "--proxy-header",
      ]);
      assertEquals(fixed.code, 0, fixed.stdout + fixed.stderr);
    }
    // Or the other replacement the comment suggests.
    const { path } = container.readinessProbe.httpGet;
    const response = await fetch(`http://127.0.0.1:${metricsPort}${path}`);
    assertEquals(response.status, 200);
    await response.body?.cancel();
  }
});
