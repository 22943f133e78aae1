// Whether graphql-service's schema is a superset of the seed's: graphql-js's
// findBreakingChanges(seed, ours) must find nothing.
//
// Usage: node check-superset.mjs <seed SDL file> <introspection result JSON file>
// The JSON file is the service's answer to getIntrospectionQuery() (`{"data": {"__schema": …}}`).
// Prints {"breaking": [...], "dangerous": [...]} on stdout; exits 1 when a change is breaking,
// 2 when an input cannot be read.
//
// The seed declares no directive: the built-in ones (`@deprecated`, `@skip`, …) that buildSchema
// adds to it are this graphql-js version's definitions, not the seed's, so they are left out of
// the comparison (graphql-js 16.15's `@deprecated` takes DIRECTIVE_DEFINITION, which servers
// of the current spec do not list).
import { readFileSync } from "node:fs";
import {
  buildClientSchema,
  buildSchema,
  findBreakingChanges,
  findDangerousChanges,
  GraphQLSchema,
  isSpecifiedDirective,
} from "graphql";

const [seedPath, introspectionPath] = process.argv.slice(2);
if (!seedPath || !introspectionPath) {
  console.error("usage: node check-superset.mjs <seed SDL file> <introspection JSON file>");
  process.exit(2);
}
let seed;
let ours;
try {
  const declared = buildSchema(readFileSync(seedPath, "utf8"));
  seed = new GraphQLSchema({
    ...declared.toConfig(),
    directives: declared.getDirectives().filter((directive) => !isSpecifiedDirective(directive)),
  });
  const introspection = JSON.parse(readFileSync(introspectionPath, "utf8"));
  ours = buildClientSchema(introspection.data ?? introspection);
} catch (error) {
  console.error(`cannot read a schema: ${error.message}`);
  process.exit(2);
}
const breaking = findBreakingChanges(seed, ours);
const dangerous = findDangerousChanges(seed, ours);
console.log(JSON.stringify({ breaking, dangerous }, null, 2));
process.exit(breaking.length > 0 ? 1 : 0);
