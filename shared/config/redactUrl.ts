/**
 * Connection strings without their secrets, for anything a person or a log may see (lab status,
 * lab.json, test output, error messages).
 */

const REDACTED = '***';

/**
 * `url` with its password replaced by `***` (`postgres://hothot:***@127.0.0.1:8181/hothot`). Also
 * handles libpq key=value strings (`password=…`). A string that is neither comes back as a fixed
 * placeholder, since it might be anything.
 */
export function redactUrl(url: string): string {
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(url)) {
    try {
      const u = new URL(url);
      if (u.password !== '') u.password = REDACTED;
      for (const key of [...u.searchParams.keys()]) {
        if (/pass|secret|key/i.test(key)) u.searchParams.set(key, REDACTED);
      }
      return u.toString();
    } catch {
      return '(unparsable URL)';
    }
  }
  if (/\w+\s*=/.test(url))
    return url.replace(/\b(password|passfile|sslkey\w*)\s*=\s*('(?:[^'\\]|\\.)*'|\S+)/gi, `$1=${REDACTED}`);
  return '(unparsable URL)';
}
