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
import { NetworkPolicy } from "kubernetes-models/networking.k8s.io/v1/NetworkPolicy";
import { ROOT, runCli, startCli, waitForMetricsPort } from "./_helpers.ts";
import { parseDuration } from "../lib/cli/duration.ts";
import { VERSION } from "../lib/version.ts";

const DIR = `${ROOT}/deploy/kubernetes`;

// deno-lint-ignore no-explicit-any
type Manifest = any;

/** The model class that validates each apiVersion and kind used here. */
const MODELS: Record<string, new (data: Manifest) => { validate(): void }> = {
  "apps/v1 Deployment": Deployment,
  "v1 Service": Service,
  "policy/v1 PodDisruptionBudget": PodDisruptionBudget,
  "autoscaling/v2 HorizontalPodAutoscaler": HorizontalPodAutoscaler,
  "networking.k8s.io/v1 NetworkPolicy": NetworkPolicy,
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

  // Both probes: an HTTP GET of /healthz on the metrics port (by name or
  // number), no process per probe and no client of the greeting port.
  for (const kind of ["livenessProbe", "readinessProbe"]) {
    const probe = container[kind];
    assertEquals(probe.exec, undefined, kind);
    assertEquals(probe.httpGet.path, "/healthz", kind);
    assertEquals(ports[probe.httpGet.port] ?? probe.httpGet.port, metricsPort);
  }
  // Readiness tolerates one miss.
  assert(container.readinessProbe.failureThreshold >= 2);
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

  // The placeholder image cannot be pulled, and the kustomization names it.
  const image: string = container.image;
  assertEquals(image, `registry.example.invalid/greeter:${VERSION}`);
  const kustomization = await Deno.readTextFile(`${DIR}/kustomization.yaml`);
  assertMatch(kustomization, new RegExp(`- name: ${image.split(":")[0]}\n`));

  // The preStop sleep action needs Kubernetes 1.30, and the files say so.
  if (container.lifecycle?.preStop?.sleep) {
    for (const file of ["deployment.yaml", "kustomization.yaml"]) {
      assertMatch(
        await Deno.readTextFile(`${DIR}/${file}`),
        /Needs Kubernetes 1\.30 or later/,
        file,
      );
    }
  }

  // SIGTERM comes after preStop; the drain must end before SIGKILL.
  const drainMs = parseDuration(flag(args, "--drain-timeout"));
  const preStopMs = (container.lifecycle?.preStop?.sleep?.seconds ?? 0) * 1000;
  assert(pod.spec.terminationGracePeriodSeconds * 1000 > preStopMs + drainMs);
});

Deno.test("deploy/kubernetes NetworkPolicy opens the greeting port to all and the metrics port only to the scraper", async () => {
  const all = await manifests();
  const deploy = all.find(({ doc }) => doc.kind === "Deployment")!.doc;
  const policy = all.find(({ doc }) => doc.kind === "NetworkPolicy")!.doc;
  assertEquals(policy.spec.podSelector, deploy.spec.selector);
  assertEquals(policy.spec.policyTypes, ["Ingress"]);
  const rules: Manifest[] = policy.spec.ingress;
  const [container] = deploy.spec.template.spec.containers;
  const named = Object.fromEntries(
    container.ports.map((p: Manifest) => [p.name, p.containerPort]),
  );
  const opened = (port: string) =>
    rules.filter((rule) =>
      rule.ports.some((p: Manifest) =>
        (named[p.port] ?? p.port) === named[port]
      )
    );
  // The greeting port: one rule, from anywhere.
  assertEquals(opened("greeting").map((rule) => rule.from), [undefined]);
  // The metrics port: only from selected pods, never from everywhere.
  const metrics = opened("metrics");
  assertEquals(metrics.length, 1);
  assert(metrics[0].from?.length > 0);
  for (const peer of metrics[0].from) {
    assertEquals(peer.ipBlock, undefined);
    assert(peer.podSelector?.matchLabels, "a pod selector for the scraper");
  }
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

  for (const kind of ["livenessProbe", "readinessProbe"]) {
    const { path } = container[kind].httpGet;
    const response = await fetch(`http://127.0.0.1:${metricsPort}${path}`);
    assertEquals(response.status, 200, kind);
    await response.body?.cancel();
  }
  // Probed while busy (a client was accepted within the last second), the
  // probes add no connection to the greeting port's log or counters.
  const greeted = await runCli(["connect", `127.0.0.1:${server.port}`]);
  assertEquals(greeted.code, 0);
  for (let i = 0; i < 3; i++) {
    const response = await fetch(`http://127.0.0.1:${metricsPort}/healthz`);
    assertEquals(response.status, 200);
    await response.body?.cancel();
  }
  const scrape = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
  assertMatch(await scrape.text(), /^greeter_connections_accepted_total 1$/m);

  // SIGTERM, as the kubelet sends it: greeter drains and exits 0.
  const { code, stdout } = await server.stop("SIGTERM");
  assertEquals(code, 0, stdout);
});

Deno.test("deploy/kubernetes probes pass against --proxy-protocol, which refuses a greeting-port probe", async () => {
  const deploy = await deployment();
  const [container] = deploy.spec.template.spec.containers;
  const comments = await Deno.readTextFile(`${DIR}/deployment.yaml`);
  assertMatch(comments, /--proxy-protocol does not refuse them/);
  const args: string[] = [...container.args];
  args[args.indexOf("--host") + 1] = "127.0.0.1";
  args[args.indexOf("--port") + 1] = "0";
  args[args.indexOf("--metrics") + 1] = "127.0.0.1:0";
  await using server = await startCli([
    ...args,
    "--proxy-protocol",
    "--proxy-from",
    "10.0.0.0/16",
  ]);
  const metricsPort = await waitForMetricsPort(server);
  // What an exec probe of the greeting port would get: refused.
  const check = await runCli(["check", `127.0.0.1:${server.port}`]);
  assertEquals(check.code, 1, check.stdout + check.stderr);
  assertMatch(check.stdout, /got "" \(0 bytes, then closed\)/);
  for (const kind of ["livenessProbe", "readinessProbe"]) {
    const { path } = container[kind].httpGet;
    const response = await fetch(`http://127.0.0.1:${metricsPort}${path}`);
    assertEquals(response.status, 200, kind);
    await response.body?.cancel();
  }
});
