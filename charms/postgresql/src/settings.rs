//! The charm's config, validated into PostgreSQL parameters. A bad value is an
//! `Error::InvalidConfig` naming the option and the value (a blocked status).

use std::collections::BTreeMap;

use charm::{Config, Error, Result};

/// `synchronous_node_count` as configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncNodeCount {
    /// Every replica (units − 1).
    All,
    /// Half of the units (units // 2).
    Majority,
    /// A number, capped at units − 1.
    Count(u32),
}

impl SyncNodeCount {
    /// The count for a cluster of `units` members (at least 1: Patroni's minimum).
    pub fn resolve(self, units: usize) -> u32 {
        let replicas = u32::try_from(units.saturating_sub(1)).unwrap_or(u32::MAX);
        let n = match self {
            Self::All => replicas,
            Self::Majority => u32::try_from(units / 2).unwrap_or(u32::MAX),
            Self::Count(n) => n.min(replicas),
        };
        n.max(1)
    }
}

/// Settings the config describes.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// `production` or `testing`.
    pub profile: String,
    /// PostgreSQL parameters (name → value as PostgreSQL reads it).
    pub parameters: BTreeMap<String, String>,
    /// Patroni: maximum replica lag (bytes) for a failover candidate.
    pub maximum_lag_on_failover: i64,
    /// Patroni: synchronous mode (a committed transaction is on a replica too).
    pub synchronous_mode: bool,
    /// Patroni: refuse writes when no synchronous replica is available.
    pub synchronous_mode_strict: bool,
    /// Patroni: how many synchronous replicas.
    pub synchronous_node_count: SyncNodeCount,
    /// Only TLS connections from clients (hostssl in pg_hba).
    pub require_tls: bool,
}

fn invalid(key: &str, value: impl ToString, reason: &str) -> Error {
    Error::InvalidConfig {
        key: key.into(),
        value: value.to_string(),
        reason: reason.into(),
    }
}

fn int(cfg: &Config, key: &str, min: i64, max: i64) -> Result<Option<i64>> {
    cfg.get_int_between(key, min, max)
}

fn one_of(cfg: &Config, key: &str, allowed: &[&str], default: &str) -> Result<String> {
    cfg.get_one_of(key, allowed, default)
}

fn on_off(b: bool) -> String {
    if b { "on" } else { "off" }.to_string()
}

/// Validates the whole config; the first bad option is reported.
pub fn settings(cfg: &Config, unit_memory_mb: i64) -> Result<Settings> {
    let profile = one_of(cfg, "profile", &["production", "testing"], "production")?;
    let mut p = BTreeMap::new();
    let limit_mb = int(cfg, "profile_limit_memory", 128, 9_999_999)?.unwrap_or(unit_memory_mb);
    // Sizing as upstream: production takes 25% of the memory for shared_buffers; testing
    // keeps PostgreSQL small.
    let shared_buffers_pages = match int(cfg, "memory_shared_buffers", 16, 1 << 30)? {
        Some(pages) => pages,
        None if profile == "production" => (limit_mb * 1024 / 4 / 8).max(16),
        None => 128 * 1024 / 8,
    };
    if shared_buffers_pages * 8 > limit_mb * 1024 * 2 / 5 {
        return Err(invalid(
            "memory_shared_buffers",
            shared_buffers_pages,
            &format!("more than 40% of the unit's memory ({limit_mb} MB)"),
        ));
    }
    p.insert(
        "shared_buffers".into(),
        format!("{}kB", shared_buffers_pages * 8),
    );
    if profile == "production" {
        let cache_kb = (limit_mb * 1024 - shared_buffers_pages * 8).max(8);
        p.insert("effective_cache_size".into(), format!("{cache_kb}kB"));
    }
    let max_connections = int(cfg, "experimental_max_connections", 10, 262_143)?
        .unwrap_or(if profile == "production" { 200 } else { 100 });
    p.insert("max_connections".into(), max_connections.to_string());
    if let Some(v) = int(cfg, "memory_work_mem", 64, 2_147_483_647)? {
        p.insert("work_mem".into(), format!("{v}kB"));
    }
    if let Some(v) = int(cfg, "memory_maintenance_work_mem", 1024, 2_147_483_647)? {
        p.insert("maintenance_work_mem".into(), format!("{v}kB"));
    }
    if let Some(v) = int(cfg, "memory_temp_buffers", 100, 1_073_741_823)? {
        p.insert("temp_buffers".into(), format!("{}kB", v * 8));
    }
    if let Some(v) = int(cfg, "memory_max_prepared_transactions", 0, 262_143)? {
        p.insert("max_prepared_transactions".into(), v.to_string());
    }
    let commit = one_of(
        cfg,
        "durability_synchronous_commit",
        // off and local can lose acknowledged commits on failover.
        &["on", "remote_apply", "remote_write"],
        "on",
    )?;
    p.insert("synchronous_commit".into(), commit);
    if let Some(v) = int(cfg, "durability_wal_keep_size", 0, 2_147_483_647)? {
        p.insert("wal_keep_size".into(), format!("{v}MB"));
    }
    if let Some(v) = int(cfg, "connection_authentication_timeout", 1, 600)? {
        p.insert("authentication_timeout".into(), format!("{v}s"));
    }
    if let Some(v) = int(cfg, "connection_statement_timeout", 0, 2_147_483_647)? {
        p.insert("statement_timeout".into(), format!("{v}ms"));
    }
    if let Some(v) = int(
        cfg,
        "session_idle_in_transaction_session_timeout",
        0,
        2_147_483_647,
    )? {
        p.insert(
            "idle_in_transaction_session_timeout".into(),
            format!("{v}ms"),
        );
    }
    let levels = [
        "debug5", "debug4", "debug3", "debug2", "debug1", "log", "notice", "warning", "error",
    ];
    p.insert(
        "client_min_messages".into(),
        one_of(cfg, "logging_client_min_messages", &levels, "notice")?,
    );
    for (key, guc) in [
        ("logging_log_connections", "log_connections"),
        ("logging_log_disconnections", "log_disconnections"),
        ("logging_log_lock_waits", "log_lock_waits"),
    ] {
        if let Some(b) = cfg.get_bool(key)? {
            p.insert(guc.into(), on_off(b));
        }
    }
    if let Some(v) = int(cfg, "logging_log_min_duration_statement", -1, 2_147_483_647)? {
        p.insert("log_min_duration_statement".into(), v.to_string());
    }
    p.insert(
        "track_functions".into(),
        one_of(
            cfg,
            "logging_track_functions",
            &["none", "pl", "all"],
            "none",
        )?,
    );

    let node_count = cfg
        .get_str("synchronous_node_count")?
        .unwrap_or_else(|| "all".into());
    let synchronous_node_count = match node_count.as_str() {
        "all" => SyncNodeCount::All,
        "majority" => SyncNodeCount::Majority,
        n => match n.parse::<u32>() {
            Ok(v) if v >= 1 => SyncNodeCount::Count(v),
            _ => {
                return Err(invalid(
                    "synchronous_node_count",
                    &node_count,
                    "must be \"all\", \"majority\" or a positive number",
                ))
            }
        },
    };
    Ok(Settings {
        profile,
        parameters: p,
        maximum_lag_on_failover: int(cfg, "durability_maximum_lag_on_failover", 0, i64::MAX)?
            .unwrap_or(1_048_576),
        synchronous_mode: cfg
            .get_bool("durability_synchronous_mode")?
            .unwrap_or(false),
        synchronous_mode_strict: cfg.get_bool("synchronous_mode_strict")?.unwrap_or(true),
        synchronous_node_count,
        require_tls: cfg.get_bool("connection_require_tls")?.unwrap_or(false),
    })
}

/// The memory available to the unit in MB (cgroup limit, else the machine's).
pub fn unit_memory_mb() -> i64 {
    let cgroup = std::fs::read_to_string("/sys/fs/cgroup/memory.max")
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok());
    let total = std::fs::read_to_string("/proc/meminfo").ok().and_then(|m| {
        m.lines()
            .find(|l| l.starts_with("MemTotal:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<i64>().ok())
            .map(|kb| kb / 1024)
    });
    match (cgroup, total) {
        (Some(bytes), Some(t)) => (bytes / 1024 / 1024).min(t),
        (Some(bytes), None) => bytes / 1024 / 1024,
        (None, Some(t)) => t,
        (None, None) => 1024,
    }
}

#[cfg(test)]
mod tests {
    use super::SyncNodeCount;

    #[test]
    fn synchronous_node_count_resolves_as_upstream() {
        assert_eq!(SyncNodeCount::All.resolve(3), 2);
        assert_eq!(SyncNodeCount::Majority.resolve(5), 2);
        assert_eq!(SyncNodeCount::Majority.resolve(3), 1);
        assert_eq!(SyncNodeCount::Count(5).resolve(3), 2, "capped at units - 1");
        // Patroni needs at least 1, even on a single unit (strict mode is then off).
        assert_eq!(SyncNodeCount::All.resolve(1), 1);
    }
}
