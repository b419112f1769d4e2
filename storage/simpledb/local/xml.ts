// The XML documents SimpleDB answers with (namespace http://sdb.amazonaws.com/doc/2009-04-15/).
// Names and values that are not valid XML characters are sent base64-encoded with
// <AlternateNameEncoding>/<AlternateValueEncoding>base64</…> ("Working with XML-Restricted Characters").

export const SDB_NAMESPACE = 'http://sdb.amazonaws.com/doc/2009-04-15/';

export function escapeXml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' })[c]!);
}

const XML_SAFE = /^[\u0009\u000A\u000D\u0020-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]*$/u;

export function isXmlSafe(text: string): boolean {
  return XML_SAFE.test(text);
}

/** `<Name>…</Name>` (or `<Value>`), base64 with the matching Alternate…Encoding when needed. */
export function encodedElement(tag: 'Name' | 'Value', text: string): string {
  if (isXmlSafe(text)) return `<${tag}>${escapeXml(text)}</${tag}>`;
  return `<${tag}>${Buffer.from(text, 'utf8').toString('base64')}</${tag}><Alternate${tag}Encoding>base64</Alternate${tag}Encoding>`;
}

export function attributeXml(name: string, value: string): string {
  return `<Attribute>${encodedElement('Name', name)}${encodedElement('Value', value)}</Attribute>`;
}

export function formatBoxUsage(hours: number): string {
  return hours.toFixed(10);
}

/** `<{Action}Response>` with an optional `<{Action}Result>` body and the ResponseMetadata. */
export function successXml(action: string, resultBody: string | undefined, requestId: string, boxUsage: number): string {
  const result = resultBody === undefined ? '' : `<${action}Result>${resultBody}</${action}Result>`;
  return (
    `<?xml version="1.0"?>\n<${action}Response xmlns="${SDB_NAMESPACE}">${result}` +
    `<ResponseMetadata><RequestId>${requestId}</RequestId><BoxUsage>${formatBoxUsage(boxUsage)}</BoxUsage></ResponseMetadata>` +
    `</${action}Response>`
  );
}

export function errorXml(code: string, message: string, requestId: string, boxUsage: number): string {
  return (
    `<?xml version="1.0"?>\n<Response><Errors><Error><Code>${escapeXml(code)}</Code><Message>${escapeXml(message)}</Message>` +
    `<BoxUsage>${formatBoxUsage(boxUsage)}</BoxUsage></Error></Errors><RequestID>${requestId}</RequestID></Response>`
  );
}
