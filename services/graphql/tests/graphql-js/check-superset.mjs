// Whether graphql-service's schema is a superset of the seed's: graphql-js's
// findBreakingChanges(seed, ours) must find nothing.
//
// Usage: node check-superset.mjs <seed SDL file> <introspection result JSON file>
// The JSON file is the service's answer to getIntrospectionQuery() (`{"data": {"__schema": …}}`).
// Prints {"breaking": [...], "dangerous": [...]} on stdout; exits 1 when a change is breaking,
// 2 when an input cannot be read.
//
// The seed declares no directive of its own, so its directives are the built-ins its clients
// write: @skip and @include (in queries) and @deprecated (in SDL). This graphql-js version's
// definitions of them are compared, except that @deprecated keeps only the spec's locations (FIELD_DEFINITION, ARGUMENT_DEFINITION, INPUT_FIELD_DEFINITION,
// ENUM_VALUE): graphql-js 16.15 adds DIRECTIVE_DEFINITION, which servers of the current spec do
// not list. The other built-ins (@specifiedBy, @oneOf) are graphql-js's, not the seed's, and
// are left out.
import { readFileSync } from "node:fs";
import {
  buildClientSchema,
  buildSchema,
  findBreakingChanges,
  findDangerousChanges,
  DirectiveLocation,
  GraphQLDeprecatedDirective,
  GraphQLDirective,
  GraphQLIncludeDirective,
  GraphQLSchema,
  GraphQLSkipDirective,
  isSpecifiedDirective,
} from "graphql";

/** The spec's locations of @deprecated. */
const DEPRECATED_LOCATIONS = [
  DirectiveLocation.FIELD_DEFINITION,
  DirectiveLocation.ARGUMENT_DEFINITION,
  DirectiveLocation.INPUT_FIELD_DEFINITION,
  DirectiveLocation.ENUM_VALUE,
];

/** The built-in directives the seed's clients use, as the spec defines them. */
const SEED_BUILT_INS = [
  GraphQLSkipDirective,
  GraphQLIncludeDirective,
  new GraphQLDirective({
    ...GraphQLDeprecatedDirective.toConfig(),
    locations: GraphQLDeprecatedDirective.locations.filter((location) =>
      DEPRECATED_LOCATIONS.includes(location),
    ),
  }),
];

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
    directives: [
      ...SEED_BUILT_INS,
      ...declared.getDirectives().filter((directive) => !isSpecifiedDirective(directive)),
    ],
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
