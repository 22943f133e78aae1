//! The direct path's request parser and response relay on arbitrary bytes; the invariants are
//! `gateway::direct::fuzzing`'s.

#![no_main]

use std::sync::LazyLock;

use gateway::direct::fuzzing::Harness;
use libfuzzer_sys::fuzz_target;

static HARNESS: LazyLock<Harness> = LazyLock::new(Harness::new);

fuzz_target!(|data: &[u8]| HARNESS.run(data));
