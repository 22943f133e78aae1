//! The shape of an operation, read from its document before anything runs: how many fields it
//! selects at its root, how many aliases it uses, how deep its data selections nest and how
//! deep its introspection selections nest (apart: `__schema` and `__type` follow the schema's
//! own fixed nesting, which must not count against the data's depth), and what its data and
//! its introspection each cost in fields (apart too: introspection has a budget of its own).
//! Fields are counted as async-graphql's complexity counts a field without a cost of its own,
//! 1 each, `__typename` nothing. Fragments are counted where they are spread, as the executor
//! would run them; the walk stops once it has seen more fields than an operation may have, so a
//! document whose fragments multiply cannot make it long.

use std::collections::HashMap;

use async_graphql::{
    Name, Positioned,
    parser::types::{DocumentOperations, ExecutableDocument, FragmentDefinition, SelectionSet},
};

/// The root fields that answer from the schema itself.
const INTROSPECTION_ROOTS: [&str; 2] = ["__schema", "__type"];

/// What [`shape`] found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Shape {
    /// Fields selected at the root (through fragments too).
    pub root_fields: usize,
    /// Fields given an alias, each time it would be executed.
    pub aliases: usize,
    /// Fields on the longest path of data fields (`{ a { b } }` is 2).
    pub data_depth: usize,
    /// Fields on the longest path under `__schema` or `__type`, those included.
    pub introspection_depth: usize,
    /// Fields it would execute, `__typename` included, counted up to the walk's bound.
    pub fields: usize,
    /// Data fields (not `__typename`), counted up to the walk's bound.
    pub data_fields: usize,
    /// Fields under `__schema` or `__type`, those included (not `__typename`), counted up to
    /// the walk's bound: each costs 1 in async-graphql's complexity, as a data field does.
    pub introspection_fields: usize,
    /// Whether it selects `__schema` or `__type`.
    pub introspection: bool,
    /// Whether the walk stopped at its bound (`fields` is then a lower bound).
    pub truncated: bool,
}

/// The shape of the operation a request runs (`operation_name`, or the only one); of every
/// operation of the document merged when the name matches none (validation refuses that
/// request later). The walk stops after `max_fields` fields.
pub fn shape(
    document: &ExecutableDocument,
    operation_name: Option<&str>,
    max_fields: usize,
) -> Shape {
    let mut walk = Walk {
        fragments: &document.fragments,
        shape: Shape::default(),
        max_fields,
        spreading: Vec::new(),
    };
    let named = match (&document.operations, operation_name) {
        (DocumentOperations::Multiple(operations), Some(name)) => operations.get(name),
        _ => None,
    };
    match (named, &document.operations) {
        (Some(operation), _) => walk.root(&operation.node.selection_set.node),
        (None, DocumentOperations::Single(operation)) => {
            walk.root(&operation.node.selection_set.node);
        }
        (None, DocumentOperations::Multiple(operations)) => {
            for operation in operations.values() {
                walk.root(&operation.node.selection_set.node);
            }
        }
    }
    walk.shape
}

struct Walk<'a> {
    fragments: &'a HashMap<Name, Positioned<FragmentDefinition>>,
    shape: Shape,
    max_fields: usize,
    /// The fragments being expanded, outermost first: a spread of one of them again is a
    /// cycle (validation refuses it; the walk only must not loop).
    spreading: Vec<&'a Name>,
}

/// Where a selection set sits.
#[derive(Debug, Clone, Copy)]
enum Level {
    /// The operation's root.
    Root,
    /// Under data fields, this many deep.
    Data(usize),
    /// Under an introspection root, this many deep (the root included).
    Introspection(usize),
}

impl<'a> Walk<'a> {
    fn root(&mut self, selection_set: &'a SelectionSet) {
        self.selections(selection_set, Level::Root);
    }

    fn selections(&mut self, selection_set: &'a SelectionSet, level: Level) {
        use async_graphql::parser::types::Selection;
        for item in &selection_set.items {
            if self.shape.fields >= self.max_fields {
                self.shape.truncated = true;
                return;
            }
            match &item.node {
                Selection::Field(field) => {
                    let field = &field.node;
                    self.shape.fields += 1;
                    if field.alias.is_some() {
                        self.shape.aliases += 1;
                    }
                    let costs = field.name.node != "__typename";
                    let inner = match level {
                        Level::Root => {
                            self.shape.root_fields += 1;
                            if INTROSPECTION_ROOTS.contains(&field.name.node.as_str()) {
                                self.shape.introspection = true;
                                Level::Introspection(1)
                            } else {
                                Level::Data(1)
                            }
                        }
                        Level::Data(depth) => Level::Data(depth + 1),
                        Level::Introspection(depth) => Level::Introspection(depth + 1),
                    };
                    match inner {
                        Level::Data(depth) => {
                            self.shape.data_depth = self.shape.data_depth.max(depth);
                            self.shape.data_fields += usize::from(costs);
                        }
                        Level::Introspection(depth) => {
                            self.shape.introspection_depth =
                                self.shape.introspection_depth.max(depth);
                            self.shape.introspection_fields += usize::from(costs);
                        }
                        Level::Root => {}
                    }
                    self.selections(&field.selection_set.node, inner);
                }
                Selection::InlineFragment(fragment) => {
                    self.selections(&fragment.node.selection_set.node, level);
                }
                Selection::FragmentSpread(spread) => {
                    let name = &spread.node.fragment_name.node;
                    if self.spreading.contains(&name) {
                        continue;
                    }
                    if let Some(fragment) = self.fragments.get(name) {
                        self.spreading.push(name);
                        self.selections(&fragment.node.selection_set.node, level);
                        self.spreading.pop();
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(query: &str) -> Shape {
        let document = async_graphql::parser::parse_query(query).expect("a document");
        shape(&document, None, 10_000)
    }

    #[test]
    fn root_fields_aliases_and_depth() {
        let found = of("{ a: posts { id author { name } } b: posts { id } users { id } }");
        assert_eq!(found.root_fields, 3);
        assert_eq!(found.aliases, 2);
        assert_eq!(found.data_depth, 3);
        assert_eq!(found.fields, 8);
        assert_eq!(found.data_fields, 8);
        assert_eq!(found.introspection_fields, 0);
        assert!(!found.introspection);
    }

    #[test]
    fn fragments_count_where_they_are_spread() {
        let found = of("query { ...F ...F x: users { ...G } } \
             fragment F on Query { a: posts { id } b: posts { id } } \
             fragment G on User { y: posts { id } }");
        assert_eq!(found.root_fields, 5);
        assert_eq!(found.aliases, 6);
        assert_eq!(found.data_depth, 3);
    }

    #[test]
    fn introspection_nesting_is_apart_from_data_depth() {
        let found = of(
            "{ __schema { types { fields { type { ofType { ofType { name } } } } } } \
                          posts { id } }",
        );
        assert!(found.introspection);
        assert_eq!(found.data_depth, 2);
        assert_eq!(found.introspection_depth, 7);
        assert_eq!(found.data_fields, 2);
        assert_eq!(found.introspection_fields, 7);
    }

    #[test]
    fn typename_costs_nothing_and_introspection_costs_apart() {
        let found = of(
            "{ __typename posts { __typename id }                           __schema { __typename types { __typename name } }                           ...Q }                         fragment Q on Query { __type(name: \"Post\") { ... on __Type { name } } }",
        );
        assert_eq!(found.fields, 11);
        assert_eq!(found.data_fields, 2);
        assert_eq!(found.introspection_fields, 5);
    }

    #[test]
    fn the_named_operation_is_the_one_measured() {
        let document = async_graphql::parser::parse_query(
            "query Small { posts { id } } query Wide { a: posts { id } b: posts { id } }",
        )
        .expect("a document");
        assert_eq!(shape(&document, Some("Small"), 100).aliases, 0);
        assert_eq!(shape(&document, Some("Wide"), 100).aliases, 2);
        assert_eq!(shape(&document, None, 100).aliases, 2);
    }

    #[test]
    fn multiplying_fragments_stop_at_the_bound() {
        // Each fragment spreads the next twice: 2^20 fields if expanded in full.
        let mut query = String::from("{ ...F0 }");
        for level in 0..20 {
            query.push_str(&format!(
                " fragment F{level} on Query {{ ...F{next} ...F{next} }}",
                next = level + 1
            ));
        }
        query.push_str(" fragment F20 on Query { posts { id } }");
        let document = async_graphql::parser::parse_query(&query).expect("a document");
        let found = shape(&document, None, 1000);
        assert!(found.truncated);
        assert_eq!(found.fields, 1000);
    }

    #[test]
    fn fragment_cycles_end() {
        let found = of("{ ...A } fragment A on Query { posts { id } ...B } \
                        fragment B on Query { users { id } ...A }");
        assert_eq!(found.root_fields, 2);
        assert!(!found.truncated);
    }
}
