// Types for npm:deno-std@1.4.0/cli/parse_args.js, which ships JavaScript
// only. They follow jsr:@std/cli@1's parseArgs: the names given as `string`,
// `boolean` and `collect` (as literals) type the result, `default`, `alias`,
// `negatable` and `"--"` shape it. Written for greeter rather than copied;
// where they differ from JSR's they are stricter, so code that checks here
// checks there:
// - keys of an untyped call are `unknown`, not `any`;
// - names that are not literals (a `string[]` variable) or that contain a
//   dot (std nests `a.b` as `{ a: { b } }`) give `Record<string, unknown>`.

/** Flag names, one or a list. */
type Names<T extends string> = T | readonly T[];

/** Aliases: a name to another name or several. */
type Aliases = Record<string, string | readonly string[]>;

/** The names an alias entry points to. */
type Targets<V> = V extends readonly (infer A extends string)[] ? A
  : V extends string ? V
  : never;

/** One flag's value: from its kind, negation and default. */
type FlagValue<
  K extends string,
  TBooleans extends string,
  TStrings extends string,
  TCollect extends string,
  TNegatable extends string,
  TDefault,
> =
  | ([K] extends [TCollect] ? [K] extends [TBooleans] ? boolean[]
    : [K] extends [TStrings] ? string[]
    : unknown[]
    : [K] extends [TStrings]
      ? string | (K extends keyof TDefault ? never : undefined)
    : [K] extends [TBooleans] ? boolean
    : unknown)
  | (K extends TNegatable ? false : never)
  | (K extends keyof TDefault ? TDefault[K] : never);

/** Every declared or defaulted flag, typed. */
type Flags<
  TBooleans extends string,
  TStrings extends string,
  TCollect extends string,
  TNegatable extends string,
  TDefault,
> = {
  [K in TBooleans | TStrings | TCollect | (keyof TDefault & string)]: FlagValue<
    K,
    TBooleans,
    TStrings,
    TCollect,
    TNegatable,
    TDefault
  >;
};

/** Alias names, typed like the flag they stand for (either direction). */
type AliasFlags<TFlags, TAlias extends Aliases> = {
  [
    K in keyof TAlias & string as K extends keyof TFlags ? Targets<TAlias[K]>
      : K
  ]: K extends keyof TFlags ? TFlags[K]
    : Targets<TAlias[K]> extends keyof TFlags ? TFlags[Targets<TAlias[K]>]
    : unknown;
};

/** Whether the names are literal, undotted ones the result can be typed by. */
type Typeable<T extends string> = string extends T ? false
  : T extends `${string}.${string}` ? false
  : true;

/** Flattens an intersection for readable hovers. */
type Flat<T> = { [K in keyof T]: T[K] };

/** The `"--"` part of the result. */
type DoubleDash<T extends boolean> = boolean extends T ? { "--"?: string[] }
  : T extends true ? { "--": string[] }
  : Record<never, never>;

/** The value returned from `parseArgs`. */
export type Args<
  TArgs extends Record<string, unknown> = Record<string, unknown>,
  TDoubleDash extends boolean = false,
> = Flat<
  & TArgs
  & {
    /** Arguments that are not options (numbers where they look like one). */
    _: Array<string | number>;
  }
  & DoubleDash<TDoubleDash>
>;

/** The flags of a `parseArgs` result, from its options. */
export type ParsedFlags<
  TBooleans extends string,
  TStrings extends string,
  TCollect extends string,
  TNegatable extends string,
  TDefault extends Record<string, unknown>,
  TAlias extends Aliases,
> = Typeable<TBooleans | TStrings | TCollect | TNegatable> extends false
  ? Record<string, unknown>
  :
    & Record<string, unknown>
    & Flags<TBooleans, TStrings, TCollect, TNegatable, TDefault>
    & AliasFlags<
      Flags<TBooleans, TStrings, TCollect, TNegatable, TDefault>,
      TAlias
    >;

/** The options of `parseArgs`. */
export interface ParseOptions<
  TBooleans extends string = string,
  TStrings extends string = string,
  TCollect extends string = string,
  TNegatable extends string = string,
  TDefault extends Record<string, unknown> = Record<string, unknown>,
  TAlias extends Aliases = Aliases,
  TDoubleDash extends boolean = boolean,
> {
  /** Puts the arguments after `--` in `"--"` rather than in `_`. */
  "--"?: TDoubleDash;
  /** Other names for flags: `{ h: "help" }`. */
  alias?: TAlias;
  /** Flags that are switches; `true` makes every `--flag` without `=` one. */
  boolean?: true | Names<TBooleans>;
  /** Values for flags not given. */
  default?: TDefault;
  /** Everything after the first non-option goes to `_`. */
  stopEarly?: boolean;
  /** Flags that take a string value. */
  string?: Names<TStrings>;
  /** Flags that may repeat; their values are collected in an array. */
  collect?: Names<TCollect>;
  /** Flags that `--no-NAME` sets to false. */
  negatable?: Names<TNegatable>;
  /**
   * Called for each argument not declared; returning false leaves it out of
   * the result.
   */
  unknown?: (arg: string, key?: string, value?: unknown) => unknown;
}

/**
 * Parses command-line arguments. Flags named in `string`, `boolean` and
 * `collect` are typed in the result; others are `unknown`.
 */
export declare function parseArgs<
  const TBooleans extends string = never,
  const TStrings extends string = never,
  const TCollect extends string = never,
  const TNegatable extends string = never,
  TDefault extends Record<string, unknown> = Record<never, never>,
  const TAlias extends Aliases = Record<never, never>,
  TDoubleDash extends boolean = false,
>(
  args: readonly string[],
  options?: ParseOptions<
    TBooleans,
    TStrings,
    TCollect,
    TNegatable,
    TDefault,
    TAlias,
    TDoubleDash
  >,
): Args<
  ParsedFlags<TBooleans, TStrings, TCollect, TNegatable, TDefault, TAlias>,
  TDoubleDash
>;
