// SimpleDB error codes with the HTTP status each one is answered with. Statuses follow AWS's
// API model (botocore sdb/2009-04-15 service-2.json) and the Developer Guide's "API Error Codes".

export const errorStatus = {
  AttributeDoesNotExist: 404,
  AuthMissingFailure: 403,
  ConditionalCheckFailed: 409,
  DuplicateItemName: 400,
  ExistsAndExpectedValue: 400,
  IncompleteExpectedExpression: 400,
  InternalError: 500,
  InvalidAction: 400,
  InvalidClientTokenId: 403,
  InvalidHttpRequest: 400,
  InvalidNextToken: 400,
  InvalidNumberPredicates: 400,
  InvalidNumberValueTests: 400,
  InvalidParameterCombination: 400,
  InvalidParameterValue: 400,
  InvalidQueryExpression: 400,
  InvalidSortExpression: 400,
  MissingAction: 400,
  MissingParameter: 400,
  MultipleExpectedNames: 400,
  MultiValuedAttribute: 409,
  NoSuchDomain: 400,
  NoSuchVersion: 400,
  NumberDomainAttributesExceeded: 409,
  NumberDomainsExceeded: 409,
  NumberItemAttributesExceeded: 409,
  NumberSubmittedAttributesExceeded: 409,
  NumberSubmittedItemsExceeded: 409,
  RequestExpired: 400,
  RequestTimeout: 408,
  ServiceUnavailable: 503,
  SignatureDoesNotMatch: 403,
  TooManyRequestedAttributes: 400,
  UnsupportedHttpVerb: 400,
} as const;

export type SdbErrorCode = keyof typeof errorStatus;

/** An error answered to the client as SimpleDB's `<Response><Errors><Error>` XML. */
export class SdbError extends Error {
  override readonly name = 'SdbError';
  readonly code: SdbErrorCode;
  readonly status: number;

  constructor(code: SdbErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.status = errorStatus[code];
  }
}

export function invalidParameter(name: string, value: string, why: string): SdbError {
  return new SdbError('InvalidParameterValue', `Value (${value}) for parameter ${name} is invalid. ${why}`);
}

export function missingParameter(name: string): SdbError {
  return new SdbError('MissingParameter', `The request must contain the parameter ${name}`);
}

export function noSuchDomain(): SdbError {
  return new SdbError('NoSuchDomain', 'The specified domain does not exist.');
}
