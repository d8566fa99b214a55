//! Migrations: the numbered, append-only `.sql` files under `migrations/`,
//! applied in order and recorded in `loupe.schema_migrations`; and their
//! rendering for a ClickHouse cluster.
//!
//! Invariants:
//! - The same SQL text runs on the embedded engine and on a server.
//! - Applying is idempotent: applied versions are skipped, and every
//!   statement is `IF NOT EXISTS`, so a half-applied migration can re-run.
//! - An applied migration whose text changed is an error, never re-applied.
//! - Cluster rendering is a pure text transform (snapshot-tested): each table
//!   becomes a `Replicated*MergeTree` `<name>_local` plus a `Distributed`
//!   table under the original name, so queries stay the same text.

use std::collections::BTreeSet;
use std::sync::OnceLock;

use regex::Regex;
use sha2::{Digest, Sha256};

use crate::{Store, StoreError};

/// One migration file, embedded at build time.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub version: u32,
    pub name: &'static str,
    pub sql: &'static str,
}

/// Every migration, in order. A test checks this matches `migrations/`.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "0001_spans",
        sql: include_str!("../../migrations/0001_spans.sql"),
    },
    Migration {
        version: 2,
        name: "0002_rollups",
        sql: include_str!("../../migrations/0002_rollups.sql"),
    },
    Migration {
        version: 3,
        name: "0003_alerts",
        sql: include_str!("../../migrations/0003_alerts.sql"),
    },
    Migration {
        version: 4,
        name: "0004_dashboard",
        sql: include_str!("../../migrations/0004_dashboard.sql"),
    },
    Migration {
        version: 5,
        name: "0005_ingest_cost",
        sql: include_str!("../../migrations/0005_ingest_cost.sql"),
    },
];

const LEDGER: &str = "loupe.schema_migrations";

const LEDGER_DDL: &str = "CREATE TABLE IF NOT EXISTS loupe.schema_migrations
(
    version UInt32,
    name String,
    checksum String,
    applied_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
ORDER BY version";

impl Migration {
    pub fn checksum(&self) -> String {
        hex::encode(Sha256::digest(self.sql.as_bytes()))
    }

    /// The statements of this migration, comments dropped.
    pub fn statements(&self) -> Vec<String> {
        split_statements(self.sql)
    }
}

/// Splits SQL text into statements at `;` ending a line. Comment lines are
/// kept apart so the cluster renderer can read `loupe:` annotations.
pub fn split_statements(sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for line in sql.lines() {
        let t = line.trim();
        if t.is_empty() || (t.starts_with("--") && !t.starts_with("-- loupe:")) {
            continue;
        }
        cur.push_str(line);
        cur.push('\n');
        if t.ends_with(';') {
            let stmt = cur.trim().trim_end_matches(';').trim().to_string();
            if !stmt.is_empty() {
                out.push(stmt);
            }
            cur.clear();
        }
    }
    let rest = cur.trim().trim_end_matches(';').trim();
    if !rest.is_empty() {
        out.push(rest.to_string());
    }
    out
}

/// What `apply` did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Applied {
    pub applied: Vec<u32>,
    pub already: Vec<u32>,
}

/// Applies pending migrations. With `cluster`, renders them for that cluster first.
pub async fn apply(store: &Store, cluster: Option<&str>) -> Result<Applied, StoreError> {
    let render = |sql: &str| -> Vec<String> {
        match cluster {
            Some(c) => render_statements(c, &split_statements(sql)),
            None => split_statements(sql),
        }
    };
    for stmt in render(&format!(
        "CREATE DATABASE IF NOT EXISTS loupe;\n{LEDGER_DDL};"
    )) {
        store.execute(&stmt).await?;
    }
    let rows: Vec<(u32, String)> = store
        .client()
        .query(&format!(
            "SELECT version, any(checksum) FROM {LEDGER} GROUP BY version"
        ))
        .fetch_all()
        .await
        .map_err(StoreError::from)?;
    let mut result = Applied::default();
    for m in MIGRATIONS {
        if let Some((_, sum)) = rows.iter().find(|(v, _)| *v == m.version) {
            if *sum != m.checksum() {
                return Err(StoreError::Migration(format!(
                    "migration {} was changed after it was applied; add a new migration instead",
                    m.name
                )));
            }
            result.already.push(m.version);
            continue;
        }
        for stmt in render(m.sql) {
            store
                .execute(&stmt)
                .await
                .map_err(|e| StoreError::Migration(format!("migration {} failed: {e}", m.name)))?;
        }
        store
            .client()
            .query(&format!(
                "INSERT INTO {LEDGER} (version, name, checksum) VALUES (?, ?, ?)"
            ))
            .bind(m.version)
            .bind(m.name)
            .bind(m.checksum())
            .execute()
            .await
            .map_err(StoreError::from)?;
        tracing::info!(migration = m.name, "applied migration");
        result.applied.push(m.version);
    }
    Ok(result)
}

/// Every migration rendered for `cluster`, as one printable script.
pub fn render_cluster_script(cluster: &str) -> String {
    let mut out = format!(
        "-- Loupe migrations rendered for cluster {cluster}.\n-- Tables are Replicated*MergeTree `<name>_local` with a Distributed table under the original name.\n\n"
    );
    let ledger = split_statements(&format!(
        "CREATE DATABASE IF NOT EXISTS loupe;\n{LEDGER_DDL};"
    ));
    for stmt in render_statements(cluster, &ledger) {
        out.push_str(&stmt);
        out.push_str(";\n\n");
    }
    for m in MIGRATIONS {
        out.push_str(&format!("-- {}\n", m.name));
        for stmt in render_statements(cluster, &m.statements()) {
            out.push_str(&stmt);
            out.push_str(";\n\n");
        }
    }
    out
}

fn re(pattern: &'static str, cell: &'static OnceLock<Regex>) -> &'static Regex {
    cell.get_or_init(|| Regex::new(pattern).unwrap_or_else(|_| unreachable!("static regex")))
}

/// Renders statements for a cluster. Tables created by any migration are
/// known by name, so later references (`FROM loupe.spans` in a view,
/// `ALTER TABLE`) are pointed at the local tables too.
pub fn render_statements(cluster: &str, stmts: &[String]) -> Vec<String> {
    static CREATE_DB: OnceLock<Regex> = OnceLock::new();
    static CREATE_TABLE: OnceLock<Regex> = OnceLock::new();
    static CREATE_MV: OnceLock<Regex> = OnceLock::new();
    static ALTER: OnceLock<Regex> = OnceLock::new();
    static ENGINE: OnceLock<Regex> = OnceLock::new();
    static SHARD: OnceLock<Regex> = OnceLock::new();
    static TABLE_REF: OnceLock<Regex> = OnceLock::new();

    let create_db = re(r"(?is)^CREATE DATABASE IF NOT EXISTS (\w+)$", &CREATE_DB);
    let create_table = re(
        r"(?is)^CREATE TABLE IF NOT EXISTS loupe\.(\w+)(\s*\(.*)$",
        &CREATE_TABLE,
    );
    let create_mv = re(
        r"(?is)^CREATE MATERIALIZED VIEW IF NOT EXISTS loupe\.(\w+) TO loupe\.(\w+) AS(.*)$",
        &CREATE_MV,
    );
    let alter = re(r"(?is)^ALTER TABLE loupe\.(\w+)\s(.*)$", &ALTER);
    let engine = re(
        r"(?m)^ENGINE = (MergeTree|AggregatingMergeTree|ReplacingMergeTree|SummingMergeTree)\s*$",
        &ENGINE,
    );
    let shard = re(r"(?m)^-- loupe:shard_key (.+)$\n?", &SHARD);
    let table_ref = re(r"\bloupe\.(\w+)\b", &TABLE_REF);

    let mut tables: BTreeSet<String> = all_table_names();
    let mut out = Vec::new();
    for stmt in stmts {
        let shard_key = shard
            .captures(stmt)
            .and_then(|c| c.get(1))
            .map(|m| m.as_str().trim().to_string())
            .unwrap_or_else(|| "rand()".to_string());
        let stmt = shard.replace_all(stmt, "").trim().to_string();
        let local_refs = |s: &str, tables: &BTreeSet<String>| -> String {
            table_ref
                .replace_all(s, |c: &regex::Captures<'_>| {
                    let name = &c[1];
                    if tables.contains(name) {
                        format!("loupe.{name}_local")
                    } else {
                        format!("loupe.{name}")
                    }
                })
                .into_owned()
        };
        if let Some(c) = create_db.captures(&stmt) {
            out.push(format!(
                "CREATE DATABASE IF NOT EXISTS {} ON CLUSTER {cluster}",
                &c[1]
            ));
        } else if let Some(c) = create_table.captures(&stmt) {
            let name = c[1].to_string();
            tables.insert(name.clone());
            let body = engine.replace(&c[2], |e: &regex::Captures<'_>| {
                format!(
                    "ENGINE = Replicated{}('/clickhouse/tables/{{shard}}/loupe/{name}_local', '{{replica}}')",
                    &e[1]
                )
            });
            out.push(format!(
                "CREATE TABLE IF NOT EXISTS loupe.{name}_local ON CLUSTER {cluster}{body}"
            ));
            out.push(format!(
                "CREATE TABLE IF NOT EXISTS loupe.{name} ON CLUSTER {cluster} AS loupe.{name}_local\nENGINE = Distributed({cluster}, loupe, {name}_local, {shard_key})"
            ));
        } else if let Some(c) = create_mv.captures(&stmt) {
            let select = local_refs(&c[3], &tables);
            out.push(format!(
                "CREATE MATERIALIZED VIEW IF NOT EXISTS loupe.{} ON CLUSTER {cluster} TO loupe.{}_local AS{select}",
                &c[1], &c[2]
            ));
        } else if let Some(c) = alter.captures(&stmt) {
            let (name, rest) = (&c[1], &c[2]);
            out.push(format!(
                "ALTER TABLE loupe.{name}_local ON CLUSTER {cluster} {rest}"
            ));
            // Column changes must reach the Distributed table as well.
            if rest.to_ascii_uppercase().contains("COLUMN") {
                out.push(format!(
                    "ALTER TABLE loupe.{name} ON CLUSTER {cluster} {rest}"
                ));
            }
        } else {
            out.push(local_refs(&stmt, &tables));
        }
    }
    out
}

fn all_table_names() -> BTreeSet<String> {
    static NAMES: OnceLock<Regex> = OnceLock::new();
    let r = re(r"(?i)CREATE TABLE IF NOT EXISTS loupe\.(\w+)", &NAMES);
    MIGRATIONS
        .iter()
        .map(|m| m.sql)
        .chain(std::iter::once(LEDGER_DDL))
        .flat_map(|sql| {
            r.captures_iter(sql)
                .map(|c| c[1].to_string())
                .collect::<Vec<_>>()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_in_migrations_is_listed_in_order() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".sql"))
            .collect();
        files.sort();
        let listed: Vec<String> = MIGRATIONS
            .iter()
            .map(|m| format!("{}.sql", m.name))
            .collect();
        assert_eq!(files, listed);
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version as usize, i + 1, "versions are dense and ordered");
            assert!(m.name.starts_with(&format!("{:04}_", m.version)));
        }
    }

    #[test]
    fn statements_split_at_line_end_semicolons() {
        let s = split_statements(
            "-- c\nCREATE DATABASE IF NOT EXISTS loupe;\n\nSELECT 1,\n 2;\nSELECT 3",
        );
        assert_eq!(
            s,
            vec![
                "CREATE DATABASE IF NOT EXISTS loupe",
                "SELECT 1,\n 2",
                "SELECT 3"
            ]
        );
    }

    #[test]
    fn every_table_statement_is_qualified_and_idempotent() {
        for m in MIGRATIONS {
            for s in m.statements() {
                let up = s.to_ascii_uppercase();
                if up.starts_with("CREATE") {
                    assert!(up.contains("IF NOT EXISTS"), "{}: {s}", m.name);
                }
                if up.starts_with("CREATE TABLE") || up.starts_with("CREATE MATERIALIZED") {
                    assert!(s.contains("loupe."), "{}: unqualified table in {s}", m.name);
                }
            }
        }
    }

    #[test]
    fn cluster_rendering_matches_the_snapshot() {
        let rendered = render_cluster_script("loupe_cluster");
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots/cluster.sql");
        if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &rendered).unwrap();
        }
        let expected = std::fs::read_to_string(&path)
            .expect("snapshot missing: run with UPDATE_SNAPSHOTS=1 and review the file");
        assert_eq!(
            rendered, expected,
            "cluster rendering changed: review and UPDATE_SNAPSHOTS=1"
        );
    }

    #[test]
    fn cluster_rendering_replicates_and_distributes_every_table() {
        let rendered = render_cluster_script("c1");
        for t in [
            "spans",
            "trace_index",
            "evaluations",
            "usage_hourly",
            "validation_hourly",
            "schema_migrations",
        ] {
            assert!(
                rendered.contains(&format!(
                    "CREATE TABLE IF NOT EXISTS loupe.{t}_local ON CLUSTER c1"
                )),
                "{t} local"
            );
            assert!(
                rendered.contains(&format!("ENGINE = Distributed(c1, loupe, {t}_local,")),
                "{t} distributed"
            );
        }
        assert!(rendered.contains("TO loupe.usage_hourly_local AS"));
        assert!(rendered.contains("FROM loupe.spans_local"));
        assert!(!rendered.contains("ENGINE = MergeTree\n"));
        assert!(rendered.contains("ReplicatedAggregatingMergeTree('/clickhouse/tables/{shard}/loupe/usage_hourly_local', '{replica}')"));
        assert!(
            rendered
                .contains("Distributed(c1, loupe, spans_local, cityHash64(tenant_id, trace_id))")
        );
    }
}
