import config from "../deno.json" with { type: "json" };

/** greeter's version, from deno.json; compiled binaries carry it too. */
export const VERSION: string = config.version;
