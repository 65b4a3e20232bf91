/**
 * What the model's zod schemas share. They are written with `zod/mini` (the functional API) so
 * that a bundled calicoctl carries only the validators it uses, not all of zod: the CLI's
 * start-up time is mostly module loading. Importing this module also installs zod's English
 * messages (mini ships without a locale), so an issue we give no message of our own reads
 * "Invalid input: expected string, received number", as with classic zod.
 */
import * as z from 'zod/mini';
import { en } from 'zod/locales';

z.config(en());

/** `schema`'s output mapped by `convert`; undefined from `convert` is the issue `message(input)`. */
export function converted<I, O>(schema: z.ZodMiniType<I>, convert: (input: I) => O | undefined, message: (input: I) => string) {
  return z.pipe(
    schema,
    z.transform((input: I, ctx) => {
      const output = convert(input);
      if (output !== undefined) return output;
      ctx.issues.push({ code: 'custom', message: message(input), input });
      return z.NEVER;
    }),
  );
}

/** Like `converted` for a string member that may be null or absent (both become undefined). */
export function convertedNullish<O>(convert: (input: string) => O | undefined, message: (input: string) => string) {
  return z.pipe(
    z.nullish(z.string()),
    z.transform((input: string | null | undefined, ctx) => {
      if (input === null || input === undefined) return undefined;
      const output = convert(input);
      if (output !== undefined) return output;
      ctx.issues.push({ code: 'custom', message: message(input), input });
      return z.NEVER;
    }),
  );
}

/** A check adding the issue `problem` returns, if any. */
export function customCheck<T>(problem: (value: T) => string | undefined) {
  return z.check<T>((ctx) => {
    const message = problem(ctx.value);
    if (message !== undefined) ctx.issues.push({ code: 'custom', message, input: ctx.value });
  });
}
