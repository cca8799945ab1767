//! Statement reuse for one-off SQL calls.
//!
//! rusqlite's `Connection::execute` and `Connection::query_row` parse and plan their SQL on every
//! call. Under an alarm storm the SMN and function-service queries ran thousands of times a
//! second that way: a profile of the 10k traces/s end-to-end run showed SQLite's parser at ≈ 11 %
//! of the async workers' time. These do the same through the connection's statement cache
//! (its capacity is raised where connections are opened, `db.rs`).

use rusqlite::{Connection, Params, Row};

/// [`Connection::execute`] and [`Connection::query_row`] through the statement cache.
pub trait CachedStatements {
    /// Like [`Connection::execute`], reusing the prepared statement.
    fn execute_cached<P: Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize>;
    /// Like [`Connection::query_row`], reusing the prepared statement.
    fn query_row_cached<T, P, F>(&self, sql: &str, params: P, f: F) -> rusqlite::Result<T>
    where
        P: Params,
        F: FnOnce(&Row<'_>) -> rusqlite::Result<T>;
}

impl CachedStatements for Connection {
    fn execute_cached<P: Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize> {
        self.prepare_cached(sql)?.execute(params)
    }

    fn query_row_cached<T, P, F>(&self, sql: &str, params: P, f: F) -> rusqlite::Result<T>
    where
        P: Params,
        F: FnOnce(&Row<'_>) -> rusqlite::Result<T>,
    {
        self.prepare_cached(sql)?.query_row(params, f)
    }
}

/// Statements kept prepared per connection: every statement the services run, with room to
/// spare (rusqlite's default of 16 made the cache thrash once several services shared the
/// writer).
pub(crate) const STATEMENT_CACHE_CAPACITY: usize = 512;

#[cfg(test)]
mod tests {
    /// `.cargo/config.toml` builds the bundled SQLite without memory statistics (a global mutex
    /// per allocation); this fails if a build loses that flag.
    #[test]
    fn sqlite_is_built_without_memory_statistics() -> rusqlite::Result<()> {
        let c = rusqlite::Connection::open_in_memory()?;
        let mut stmt = c.prepare("PRAGMA compile_options")?;
        let options = stmt
            .query_map([], |r| r.get::<_, String>(0))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        assert!(
            options.iter().any(|o| o == "DEFAULT_MEMSTATUS=0"),
            "compile options: {options:?}"
        );
        Ok(())
    }
}
