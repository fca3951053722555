/**
 * Metric names in a PromQL expression, for checking rules and dashboards against the catalog.
 *
 * Not a full PromQL parser: it removes what cannot name a metric — string literals, label
 * matchers `{...}`, range and subquery selectors `[...]`, grouping lists after by / without / on /
 * ignoring / group_left / group_right, numbers and durations, Grafana variables — and keeps the
 * identifiers that remain, minus function and aggregation names (an identifier followed by `(`)
 * and PromQL keywords. Syntax per https://prometheus.io/docs/prometheus/latest/querying/basics/.
 */

const KEYWORDS = new Set(['and', 'or', 'unless', 'bool', 'offset', 'by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'inf', 'nan', 'atan2', 'start', 'end']);

export function metricNamesIn(expr: string): string[] {
  let s = expr;
  s = s.replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, ' '); // string literals
  s = s.replace(/\{[^}]*\}/g, ' '); // label matchers
  s = s.replace(/\[[^\]]*\]/g, ' '); // range / subquery selectors
  s = s.replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' '); // grouping labels
  s = s.replace(/\$\{[^}]*\}|\$[A-Za-z_][A-Za-z0-9_]*/g, ' '); // Grafana variables ($__rate_interval, ${cluster})
  s = s.replace(/(?<![A-Za-z0-9_:])(?:0x[0-9a-fA-F]+|\d+(?:\.\d+)?(?:[eE][+-]?\d+)?(?:ms|[smhdwy])?)+/g, ' '); // numbers, durations
  const names = new Set<string>();
  const ident = /([A-Za-z_:][A-Za-z0-9_:]*)(\s*\()?/g;
  for (let mt = ident.exec(s); mt !== null; mt = ident.exec(s)) {
    const name = mt[1] as string;
    if (mt[2] !== undefined) continue; // a function or aggregation call
    if (KEYWORDS.has(name.toLowerCase())) continue;
    names.add(name);
  }
  return [...names].sort();
}

/** The series name of a promtool test input series: `name{labels}`. */
export function seriesName(series: string): string {
  const i = series.indexOf('{');
  return (i < 0 ? series : series.slice(0, i)).trim();
}
