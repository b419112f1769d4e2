// Entry point of the local SimpleDB endpoint for other modules and tests.
export { startSimpleDbLocal, parseFaults, DEFAULT_FAULTS, FaultsError, type Faults, type SimpleDbLocal, type SimpleDbLocalOptions } from './server.js';
export { SdbError, errorStatus, type SdbErrorCode } from './errors.js';
export { parseSelect, type SelectQuery, type Expr } from './select/parser.js';
