// A greeter worker that crashes 200 ms after it is told to start, when it
// is not the first: for tests/workers_test.ts.
import "../lib/cli/workers/entry.ts";

globalThis.addEventListener("message", (event) => {
  const { data } = event as MessageEvent<{ type: string; ports?: number[] }>;
  if (data.type === "start" && data.ports) {
    setTimeout(() => {
      throw new Error("boom");
    }, 200);
  }
});
