//! The shape of an operation, read from its document before anything runs: how many fields it
//! selects at its root, how many aliases it uses, how deep its data selections nest and how
//! deep its introspection selections nest (apart: `__schema` and `__type` follow the schema's
//! own fixed nesting, which must not count against the data's depth), and what its data and
//! its introspection each cost in fields (apart too: introspection has a budget of its own).
//! Fields are counted as async-graphql's complexity counts a field without a cost of its own,
//! 1 each, `__typename` nothing. Fragments are counted where they are spread, as the executor
//! would run them.
//!
//! Expanding fragments where they are spread multiplies: a fragment spreading the next twice,
//! thirty deep, is 2^30 selections from a few hundred bytes, and async-graphql walks that
//! expansion itself (its recursion-depth check, then validation) once the document is parsed.
//! So [`admit`] reads every document first, in time linear in its text: a fragment spreading
//! itself is refused as validation refuses it, and so is a document whose operations expand to
//! more than [`selection_bound`] selections (each fragment's expanded size counted once, then
//! added where it is spread; a spread of a fragment the document does not define counts 1, and
//! validation answers it). [`shape`]'s walk stops at its bound of fields and at that bound of
//! selections, spreads and inline fragments included, so it ends on any document.

use std::collections::HashMap;

use async_graphql::{
    Name, Pos, Positioned,
    parser::types::{
        DocumentOperations, ExecutableDocument, FragmentDefinition, Selection, SelectionSet,
    },
};

/// Selections (fields, fragment spreads, inline fragments) allowed for each field an operation
/// may execute: headroom for the spreads and inline fragments that wrap fields. An operation
/// the other limits accept may still go past it (inline fragments nested around one
/// `__typename` are several selections for a field that costs nothing); the bound only keeps
/// the expansion async-graphql walks proportionate to the limits.
const SELECTIONS_PER_FIELD: usize = 4;

/// The most selections, fragments expanded where they are spread, that the operations of a
/// document measured against `max_fields` fields may hold (a spread and an inline fragment count
/// 1 each, as a field does, besides what they select).
pub fn selection_bound(max_fields: usize) -> usize {
    max_fields.saturating_mul(SELECTIONS_PER_FIELD)
}

/// Why [`admit`] refused a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unfit {
    /// A fragment spreads itself, directly or through others: the first cycle async-graphql's
    /// validation (its rule `NoFragmentCycles`) reports, fragments taken in document order.
    FragmentCycle {
        /// The fragment spread again while it is being expanded.
        name: String,
        /// Where validation places the error: the spread in that fragment that begins the
        /// cycle (the one closing it when the fragment spreads itself directly).
        pos: Pos,
    },
    /// Its operations expand to more than this many selections.
    TooManySelections(usize),
}

/// One definition of a document (an operation or a fragment) as written: its selections,
/// fragments not expanded, and the fragments it spreads, once per spread.
#[derive(Default)]
struct Written<'a> {
    selections: usize,
    spreads: Vec<(&'a Name, Pos)>,
}

impl<'a> Written<'a> {
    fn of(selection_set: &'a SelectionSet) -> Self {
        let mut written = Self::default();
        written.read(selection_set);
        written
    }

    /// The parser nests selection sets at most 64 deep, so this recursion is shallow.
    fn read(&mut self, selection_set: &'a SelectionSet) {
        for item in &selection_set.items {
            self.selections = self.selections.saturating_add(1);
            match &item.node {
                Selection::Field(field) => self.read(&field.node.selection_set.node),
                Selection::InlineFragment(fragment) => {
                    self.read(&fragment.node.selection_set.node);
                }
                Selection::FragmentSpread(spread) => {
                    self.spreads
                        .push((&spread.node.fragment_name.node, spread.pos));
                }
            }
        }
    }
}

/// Refuses a document whose fragments form a cycle (what validation refuses, and what
/// async-graphql's recursion-depth check would walk before it), or whose operations, every one
/// of them, expand to more than `max_selections` selections (what async-graphql's own walks of
/// the expansion must not be given). A spread of a fragment the document does not define is
/// the spread alone, 1 selection: validation reports every such spread. Linear in the
/// document: each definition is read once, and each fragment's expanded size is computed once,
/// after the fragments it spreads (a depth-first order kept on a stack of its own, so a long
/// chain of fragments cannot exhaust the thread's).
pub fn admit(document: &ExecutableDocument, max_selections: usize) -> Result<(), Unfit> {
    // In document order, as validation looks for cycles: the first found is its first.
    let mut names: Vec<&Name> = document.fragments.keys().collect();
    names.sort_by_key(|name| document.fragments[*name].pos);
    let index: HashMap<&Name, usize> = names
        .iter()
        .enumerate()
        .map(|(at, name)| (*name, at))
        .collect();
    let fragments: Vec<Written<'_>> = names
        .iter()
        .map(|name| Written::of(&document.fragments[*name].node.selection_set.node))
        .collect();
    let operations: Vec<Written<'_>> = document
        .operations
        .iter()
        .map(|(_, operation)| Written::of(&operation.node.selection_set.node))
        .collect();

    let mut states = vec![Sizing::Unseen; names.len()];
    for start in 0..names.len() {
        if states[start] != Sizing::Unseen {
            continue;
        }
        // Each fragment being expanded, with how many of its spreads have been looked at: the
        // last of them looked at is the one being followed.
        let mut stack = vec![(start, 0_usize)];
        states[start] = Sizing::Expanding;
        while let Some((fragment, next)) = stack.last_mut() {
            let fragment = *fragment;
            if let Some((name, _)) = fragments[fragment].spreads.get(*next) {
                *next += 1;
                let Some(&spread) = index.get(name) else {
                    continue;
                };
                match states[spread] {
                    Sizing::Unseen => {
                        states[spread] = Sizing::Expanding;
                        stack.push((spread, 0));
                    }
                    Sizing::Expanding => {
                        // The spread `spread`'s frame is following: the one beginning the cycle.
                        let pos = stack
                            .iter()
                            .find(|(on, _)| *on == spread)
                            .map(|&(on, looked_at)| fragments[on].spreads[looked_at - 1].1)
                            .unwrap_or_else(|| {
                                unreachable!("a fragment expanding is on the stack")
                            });
                        return Err(Unfit::FragmentCycle {
                            name: name.to_string(),
                            pos,
                        });
                    }
                    Sizing::Sized(_) => {}
                }
            } else {
                states[fragment] = Sizing::Sized(expanded(&fragments[fragment], &index, &states));
                stack.pop();
            }
        }
    }
    let total = operations.iter().fold(0_usize, |total, operation| {
        total.saturating_add(expanded(operation, &index, &states))
    });
    if total > max_selections {
        return Err(Unfit::TooManySelections(max_selections));
    }
    Ok(())
}

/// Where [`admit`] is with a fragment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sizing {
    Unseen,
    /// On the stack: a spread of it now is a cycle.
    Expanding,
    /// Its selections, with every fragment it spreads expanded (saturating).
    Sized(usize),
}

/// The selections of `written` with each fragment it spreads expanded, every fragment it
/// spreads sized already (a spread of an undefined fragment adds nothing to its own 1).
fn expanded(written: &Written<'_>, index: &HashMap<&Name, usize>, states: &[Sizing]) -> usize {
    written
        .spreads
        .iter()
        .filter_map(|(name, _)| index.get(name))
        .fold(written.selections, |size, &spread| match states[spread] {
            Sizing::Sized(spread) => size.saturating_add(spread),
            Sizing::Unseen | Sizing::Expanding => {
                unreachable!("a fragment is sized after every fragment it spreads")
            }
        })
}

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
    /// Whether the walk stopped at one of its bounds (the counts are then lower bounds).
    pub truncated: bool,
}

/// The shape of the operation a request runs (`operation_name`, or the only one); of every
/// operation of the document merged when the name matches none (validation refuses that
/// request later). The walk stops after `max_fields` fields, or after
/// [`selection_bound`]`(max_fields)` selections.
pub fn shape(
    document: &ExecutableDocument,
    operation_name: Option<&str>,
    max_fields: usize,
) -> Shape {
    let mut walk = Walk {
        fragments: &document.fragments,
        shape: Shape::default(),
        max_fields,
        max_selections: selection_bound(max_fields),
        selections: 0,
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
    max_selections: usize,
    /// Selections visited: fields, spreads and inline fragments, each time it is expanded (a
    /// spread of an undefined fragment, or one closing a cycle, too: neither selects a field,
    /// so the fields alone would not bound the walk).
    selections: usize,
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
        for item in &selection_set.items {
            if self.shape.fields >= self.max_fields || self.selections >= self.max_selections {
                self.shape.truncated = true;
                return;
            }
            self.selections += 1;
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
        let document = doubling(20, " fragment F20 on Query { posts { id } }");
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

    /// `f`'s answer, failing unless it comes within 5 s (the thread computing it is left
    /// behind otherwise, so an unbounded walk fails the test instead of hanging it).
    fn within<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        let (answer, answered) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = answer.send(f());
        });
        answered
            .recv_timeout(std::time::Duration::from_secs(5))
            .expect("an answer within 5 s")
    }

    /// `{ ...F0 }` and `levels` fragments, each spreading the next twice, then `last`.
    fn doubling(levels: usize, last: &str) -> ExecutableDocument {
        async_graphql::parser::parse_query(doubling_query(levels, last)).expect("a document")
    }

    /// [`doubling`]'s text.
    fn doubling_query(levels: usize, last: &str) -> String {
        let mut query = String::from("{ ...F0 }");
        for level in 0..levels {
            query.push_str(&format!(
                " fragment F{level} on Query {{ ...F{next} ...F{next} }}",
                next = level + 1
            ));
        }
        query.push_str(last);
        query
    }

    #[test]
    fn spreads_that_select_no_field_still_stop_the_walk() {
        // 2^41 spreads of an undefined fragment, or of one being expanded: no field at all.
        for last in ["", " fragment F40 on Query { ...F0 ...F0 }"] {
            let document = doubling(40, last);
            let found = within(move || shape(&document, None, 1000));
            assert!(found.truncated, "{last}");
            assert_eq!(found.fields, 0, "{last}");
        }
    }

    #[test]
    fn inline_fragments_count_against_the_walk() {
        // Inline fragments 10 deep around one field; a bound of 1 field allows 4 selections.
        let query = format!(
            "{{ {}posts {{ id }}{} }}",
            "... on Query { ".repeat(10),
            " }".repeat(10)
        );
        let document = async_graphql::parser::parse_query(&query).expect("a document");
        let found = shape(&document, None, 1);
        assert!(found.truncated);
        assert_eq!(found.fields, 0);
        assert!(!shape(&document, None, 3).truncated);
    }

    /// Where `needle` first begins in a one-line `query`.
    fn at(query: &str, needle: &str) -> Pos {
        Pos {
            line: 1,
            column: query.find(needle).expect("in the query") + 1,
        }
    }

    /// The cycle refused: its fragment's name and where validation reports it.
    fn cycle(query: &str) -> Option<(String, Pos)> {
        let document = async_graphql::parser::parse_query(query).expect("a document");
        match within(move || admit(&document, 1000)) {
            Err(Unfit::FragmentCycle { name, pos }) => Some((name, pos)),
            _ => None,
        }
    }

    #[test]
    fn cycles_are_refused_where_validation_reports_them() {
        // Validation reports the spread, in the fragment spread again, that begins the cycle.
        let query = "{ posts { ...P } } fragment P on Post { author { posts { ...Q } } } \
                     fragment Q on Post { ... on Post { ...P } }";
        assert_eq!(cycle(query), Some(("P".into(), at(query, "...Q"))));
        // Fragments are taken in document order, as validation takes them.
        let query = "{ posts { ...Q } } fragment Q on Post { ... on Post { ...P } } \
                     fragment P on Post { author { posts { ...Q } } }";
        assert_eq!(cycle(query), Some(("Q".into(), at(query, "...P"))));
        // A fragment no operation spreads is read too, as validation reads it; a fragment
        // spreading itself is reported at that spread.
        let query = "{ posts { id } } fragment Lone on Query { __typename ...Lone }";
        assert_eq!(cycle(query), Some(("Lone".into(), at(query, "...Lone"))));
        let query = doubling_query(40, " fragment F40 on Query { ...F0 ...F0 }");
        assert_eq!(cycle(&query), Some(("F0".into(), at(&query, "...F1"))));
        let document = async_graphql::parser::parse_query(
            "{ posts { ...P } } fragment P on Post { id ...Q } fragment Q on Post { title }",
        )
        .expect("a document");
        assert_eq!(admit(&document, 1000), Ok(()));
    }

    #[test]
    fn undefined_spreads_are_left_to_validation_and_count_1() {
        // 1 + 2 + 4 + 8 spreads, the last 8 of F3, which the document does not define.
        let document = doubling(3, "");
        assert_eq!(admit(&document, 15), Ok(()));
        assert_eq!(admit(&document, 14), Err(Unfit::TooManySelections(14)));
        // 2^71 - 1 spreads, more than a usize holds: sized at once.
        let document = doubling(70, "");
        assert_eq!(
            within(move || admit(&document, 1_000_000)),
            Err(Unfit::TooManySelections(1_000_000))
        );
    }

    #[test]
    fn expansions_are_sized_without_being_walked() {
        // 2^61 selections, and more than a usize holds at 70 levels: sized at once.
        for levels in [60, 70] {
            let document = doubling(
                levels,
                &format!(" fragment F{levels} on Query {{ __typename }}"),
            );
            assert_eq!(
                within(move || admit(&document, 1_000_000)),
                Err(Unfit::TooManySelections(1_000_000))
            );
        }
        // `{ ...F0 }` with F0..F2 doubling into F3 { __typename }: 1 + 2 + 4 + 8 spreads and
        // 8 fields, 23 selections; every operation counts.
        let document = doubling(3, " fragment F3 on Query { __typename }");
        assert_eq!(admit(&document, 23), Ok(()));
        assert_eq!(admit(&document, 22), Err(Unfit::TooManySelections(22)));
        let document = async_graphql::parser::parse_query(
            "query A { posts { id } } query B { ... on Query { posts { id } } }",
        )
        .expect("a document");
        assert_eq!(admit(&document, 5), Ok(()));
        assert_eq!(admit(&document, 4), Err(Unfit::TooManySelections(4)));
    }
}
