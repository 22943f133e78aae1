//! What a list field costs in the complexity limit: its page size times its items, so a
//! query's cost bounds the nodes of its answer. Every list field of [`crate::schema`] declares
//! its cost with [`list_cost`] (async-graphql's `complexity` attribute).

/// The cost of a list field: 1, plus its page size (`limit`, else `default`; the largest page
/// when `limit` is out of range, which the resolver refuses anyway) times its items' cost.
/// Bounded far below overflow, so sums of costs stay exact enough to compare with a limit.
pub fn list_cost(limit: Option<i32>, default: u32, items: usize) -> usize {
    const CEILING: usize = 1 << 32;
    let page = match limit {
        None => default,
        Some(limit) => u32::try_from(limit)
            .ok()
            .filter(|limit| *limit <= server::MAX_LIMIT)
            .unwrap_or(server::MAX_LIMIT),
    };
    let page = usize::try_from(page).unwrap_or(CEILING);
    page.saturating_mul(items).saturating_add(1).min(CEILING)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_costs_its_page_times_its_items() {
        assert_eq!(list_cost(None, 100, 3), 301);
        assert_eq!(list_cost(Some(5), 100, 3), 16);
        assert_eq!(list_cost(Some(0), 100, 3), 1);
        assert_eq!(list_cost(Some(-1), 100, 1), 1001);
        assert_eq!(list_cost(Some(5000), 100, 1), 1001);
        assert_eq!(list_cost(Some(1000), 100, usize::MAX), 1 << 32);
    }
}
