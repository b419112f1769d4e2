// Tests of the observation sources assert the failure, not just that something threw.
import { expect } from 'vitest';
import { ObservationError } from '../../reconciler/sources/types.js';

/** Awaits a promise that must reject with an ObservationError, and returns that error. */
export async function failure(promise: Promise<unknown>): Promise<ObservationError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ObservationError);
  return error as ObservationError;
}
