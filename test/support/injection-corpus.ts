// Hostile strings for every lookup path: SimpleDB select and SQL injections, LIKE/glob wildcards,
// NUL and control characters, XML-breaking text, lone surrogates, lookalikes of valid ids, very long
// values, and URL-encoded variants. Tests send each one to each lookup path on both backends and
// require: never a 5xx, and every record returned matches the query literally.
//
// The original server built SimpleDB select strings by concatenation, so
// `/query/container_id/" or "1"="1` listed everything; these are the strings that would have hurt it.

/** Injections aimed at SimpleDB's select grammar (quotes, backticks, itemName(), like). */
export const SIMPLEDB_INJECTIONS = [
  `' or itemName() like '%`,
  `' or itemName() is not null or '`,
  `" or "1"="1`,
  `') or ('1'='1`,
  `' or '1'='1`,
  `' or 1=1 or '`,
  '`',
  '``',
  '` or `a`=`a',
  "` = '' or `container_id` like '%",
  `x' intersect every(\`state\`) = 'running`,
  `' order by itemName() limit 2500 --`,
  `select * from \`containers\``,
  `'' ''`,
  `\\'`,
] as const;

/** Classic SQL injections (the SQLite backend). */
export const SQL_INJECTIONS = [
  `' OR 1=1 --`,
  `' OR '1'='1' /*`,
  `; DROP TABLE containers; --`,
  `'; DROP TABLE containers; --`,
  `1; SELECT * FROM containers`,
  `' UNION SELECT container_id, doc FROM containers --`,
  `" OR ""="`,
  `') OR ('x'='x`,
  `?`,
  `:id`,
  `@id`,
  `$1`,
  `\\`,
  `' COLLATE NOCASE --`,
] as const;

/** Characters that are wildcards somewhere (SQL LIKE, GLOB, SimpleDB like, shell, regex). */
export const WILDCARDS = ['%', '_', '*', '?', '%%', '_%', '%_%', '[a-f]*', '.*', '^', '$', '\\%', '\\_', '|', '%25', '%2525'] as const;

/** Bytes and characters that break parsers, XML and encoders. */
export const CONTROL = [
  '\u0000',
  'abc\u0000def',
  '\u0000\' or \'1\'=\'1',
  '\r\n',
  '\t',
  '\u001b[31m',
  '<x/>',
  ']]>',
  '&amp;',
  '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>&e;',
  '\uFEFF',
  '\u202E',
  '\uFFFF',
  '\uD800',
  'a\uDFFFb',
  '😀',
  ' ',
  '',
] as const;

/** Strings that look like valid ids to a human but are not, byte for byte. */
export const LOOKALIKES = [
  // Cyrillic а and е, fullwidth digits, Turkish dotless ı.
  'аbcdef012345',
  'еcs-web-3-app',
  '０１２３４５６７８９ab',
  'ecs-web-3-apı',
  // Hex ids with trailing junk or padding.
  '0123456789ab ',
  ' 0123456789ab',
  '0123456789ab\n',
  '0123456789ab%',
  '0123456789ab_',
  '0123456789ab*',
  '0123456789abg',
  'i-0123456789abcdef0\u0000',
] as const;

/** Very long values (longer than every limit the API and the stores have). */
export const LONG = ['a'.repeat(300), '%'.repeat(2000), `${"' or '1'='1".repeat(250)}`, 'f'.repeat(65), 'f'.repeat(5000), '😀'.repeat(600)] as const;

/** Every hostile string, once. */
export const INJECTION_CORPUS: readonly string[] = [...new Set<string>([...SIMPLEDB_INJECTIONS, ...SQL_INJECTIONS, ...WILDCARDS, ...CONTROL, ...LOOKALIKES, ...LONG])];

/**
 * The ways a string can reach a path segment or a query value: plainly encoded, double-encoded
 * (what a broken proxy does), and with only the dangerous characters encoded.
 */
export function urlVariants(value: string): string[] {
  const once = safeEncode(value);
  const twice = safeEncode(once);
  const partial = value.replace(/['" %`;]/g, (c) => '%' + c.charCodeAt(0).toString(16).padStart(2, '0').toUpperCase());
  return [...new Set([once, twice, /^[\x21-\x7e]*$/.test(partial) ? partial : once])];
}

/** encodeURIComponent that survives lone surrogates (it throws on them): they go as their WTF-8 bytes. */
export function safeEncode(value: string): string {
  let out = '';
  for (let i = 0; i < value.length; i++) {
    const code = value.charCodeAt(i);
    if (code >= 0xd800 && code <= 0xdfff) {
      const next = value.charCodeAt(i + 1);
      if (code <= 0xdbff && next >= 0xdc00 && next <= 0xdfff) {
        out += encodeURIComponent(value.slice(i, i + 2));
        i++;
        continue;
      }
      // A lone surrogate: the three bytes a WTF-8 encoder would write.
      out += [0xe0 | (code >> 12), 0x80 | ((code >> 6) & 0x3f), 0x80 | (code & 0x3f)].map((b) => '%' + b.toString(16).toUpperCase()).join('');
      continue;
    }
    out += encodeURIComponent(value[i]);
  }
  return out;
}
