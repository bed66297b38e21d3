// Types for npm:deno-std@1.4.0/assert/mod.js, which ships JavaScript only.
// Each declaration follows the signature of the same function in
// jsr:@std/assert@1 (generics, overloads and assertion signatures), so code
// checked against these also checks against JSR's.

/** A constructor of anything, for the instance-of assertions. */
// deno-lint-ignore no-explicit-any
type AnyConstructor = abstract new (...args: any[]) => any;
/** A constructor of errors of type `E`. */
// deno-lint-ignore no-explicit-any
type ErrorConstructorOf<E extends Error> = abstract new (...args: any[]) => E;
/** The values `assertFalse` lets through. */
type Falsy = false | 0 | 0n | "" | null | undefined;
/** An array or array-like object. */
type ArrayLikeArg<T> = ArrayLike<T> & object;

/** The error every failed assertion throws. */
export declare class AssertionError extends Error {
  /** Makes an assertion error with a message. */
  constructor(message: string, options?: ErrorOptions);
}

/** Deep equality, as `assertEquals` compares. */
export declare function equal(a: unknown, b: unknown): boolean;

/** Asserts that `expr` is truthy. */
export declare function assert(expr: unknown, msg?: string): asserts expr;
/** Asserts that `expr` is falsy. */
export declare function assertFalse(
  expr: unknown,
  msg?: string,
): asserts expr is Falsy;
/** Asserts that `actual` is neither null nor undefined. */
export declare function assertExists<T>(
  actual: T,
  msg?: string,
): asserts actual is NonNullable<T>;

/** Asserts that `actual` and `expected` are deeply equal. */
export declare function assertEquals<T>(
  actual: T,
  expected: T,
  msg?: string,
): void;
/** Asserts that `actual` and `expected` are not deeply equal. */
export declare function assertNotEquals<T>(
  actual: T,
  expected: T,
  msg?: string,
): void;
/** Asserts that `actual` and `expected` are the same value (`Object.is`). */
export declare function assertStrictEquals<T>(
  actual: unknown,
  expected: T,
  msg?: string,
): asserts actual is T;
/** Asserts that `actual` and `expected` are not the same value. */
export declare function assertNotStrictEquals<T>(
  actual: T,
  expected: T,
  msg?: string,
): void;
/** Asserts that two numbers are within `tolerance` of each other. */
export declare function assertAlmostEquals(
  actual: number,
  expected: number,
  tolerance?: number,
  msg?: string,
): void;

/** Asserts `actual > expected`. */
export declare function assertGreater<T>(
  actual: T,
  expected: T,
  msg?: string,
): void;
/** Asserts `actual >= expected`. */
export declare function assertGreaterOrEqual<T>(
  actual: T,
  expected: T,
  msg?: string,
): void;
/** Asserts `actual < expected`. */
export declare function assertLess<T>(
  actual: T,
  expected: T,
  msg?: string,
): void;
/** Asserts `actual <= expected`. */
export declare function assertLessOrEqual<T>(
  actual: T,
  expected: T,
  msg?: string,
): void;

/** Asserts that `actual` includes every element of `expected`. */
export declare function assertArrayIncludes<T>(
  actual: ArrayLikeArg<T>,
  expected: ArrayLikeArg<T>,
  msg?: string,
): void;
/** Asserts that `actual` includes `expected`. */
export declare function assertStringIncludes(
  actual: string,
  expected: string,
  msg?: string,
): void;
/** Asserts that `actual` matches `expected`. */
export declare function assertMatch(
  actual: string,
  expected: RegExp,
  msg?: string,
): void;
/** Asserts that `actual` does not match `expected`. */
export declare function assertNotMatch(
  actual: string,
  expected: RegExp,
  msg?: string,
): void;
/** Asserts that `actual` has (at least) the properties of `expected`. */
export declare function assertObjectMatch(
  // deno-lint-ignore no-explicit-any
  actual: Record<PropertyKey, any>,
  expected: Record<PropertyKey, unknown>,
  msg?: string,
): void;

/** Asserts that `actual` is an instance of `expectedType`. */
export declare function assertInstanceOf<T extends AnyConstructor>(
  actual: unknown,
  expectedType: T,
  msg?: string,
): asserts actual is InstanceType<T>;
/** Asserts that `actual` is not an instance of `unexpectedType`. */
export declare function assertNotInstanceOf<A, T>(
  actual: A,
  // deno-lint-ignore no-explicit-any
  unexpectedType: abstract new (...args: any[]) => T,
  msg?: string,
): asserts actual is Exclude<A, T>;
/**
 * Asserts that `error` is an Error, of `ErrorClass` if given, whose message
 * includes or matches `msgMatches` if given.
 */
export declare function assertIsError<E extends Error = Error>(
  error: unknown,
  ErrorClass?: ErrorConstructorOf<E>,
  msgMatches?: string | RegExp,
  msg?: string,
): asserts error is E;

/** Asserts that `fn` throws; returns what it threw. */
export declare function assertThrows(
  fn: () => unknown,
  msg?: string,
): unknown;
/**
 * Asserts that `fn` throws an `ErrorClass` whose message includes
 * `msgIncludes`; returns the error.
 */
export declare function assertThrows<E extends Error = Error>(
  fn: () => unknown,
  ErrorClass: ErrorConstructorOf<E>,
  msgIncludes?: string,
  msg?: string,
): E;

/** Asserts that the promise `fn` returns rejects; resolves to the reason. */
export declare function assertRejects(
  fn: () => PromiseLike<unknown>,
  msg?: string,
): Promise<unknown>;
/**
 * Asserts that the promise `fn` returns rejects with an `ErrorClass` whose
 * message includes `msgIncludes`; resolves to the error.
 */
export declare function assertRejects<E extends Error = Error>(
  fn: () => PromiseLike<unknown>,
  ErrorClass: ErrorConstructorOf<E>,
  msgIncludes?: string,
  msg?: string,
): Promise<E>;

/** Fails the test. */
export declare function fail(msg?: string): never;
/** Marks code not written yet. */
export declare function unimplemented(msg?: string): never;
/** Marks code that cannot be reached. */
export declare function unreachable(msg?: string): never;
