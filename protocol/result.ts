/**
 * Expected failures are values; bugs throw (STYLE §7). Every parse / verify / activate function
 * returns a `Result` whose error carries a stable string-literal `code`.
 */
export type Ok<T> = { readonly ok: true; readonly value: T };
export type Err<E> = { readonly ok: false; readonly error: E };
export type Result<T, E> = Ok<T> | Err<E>;

export const ok = <T>(value: T): Ok<T> => ({ ok: true, value });
export const err = <E>(error: E): Err<E> => ({ ok: false, error });
