//! PostgreSQL on the sandbox substrate: deploy → active for 1 and for 3 units, and write
//! downtime when the primary fails, measured by write loops (the gap between the last
//! acknowledged insert before the fault and the first after), without and with Patroni's
//! synchronous mode, counting acknowledged rows that are missing afterwards.
//!
//! `pg-bench <project-root> [deploy|kill|freeze]` (one group of rows, or all of them as
//! bench/run.sh runs it). Three faults on the primary unit:
//! - kill -9 of its postmaster: Patroni restarts PostgreSQL in place;
//! - kill -9 of its Patroni with its postmaster: Pebble restarts Patroni, which still holds
//!   the leader key, so the same unit is primary again (a restart in place too, no
//!   replica is promoted);
//! - SIGSTOP of its Patroni and every PostgreSQL process: nothing restarts them, the leader
//!   key expires (Patroni's ttl) and a replica is promoted, a real failover. Then SIGCONT:
//!   how long until the old primary is back as a streaming replica (3 healthy members).
//!
//! The table goes to stdout (bench/run.sh turns Markdown tables into JSON); what Patroni
//! logged on the killed or thawed unit goes to stderr. A measurement that fails gets a
//! `failed: …` row, the others still run, and the exit status is 1.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use controller::Controller;
use postgresql_charm::patroni;
use serde_json::{json, Value};
use ward_e2e::{copy_dir, get_password, psql, units, Model};

/// How long writes may take to come back after a fault.
const RESUME_TIMEOUT: Duration = Duration::from_secs(120);
/// How long the thawed old primary may take to stream from the new one.
const REJOIN_TIMEOUT: Duration = Duration::from_secs(180);

fn wait_active(ctl: &Controller, n: usize, timeout: Duration) -> anyhow::Result<()> {
    let t = Instant::now();
    loop {
        let u = units(ctl);
        if u.len() == n && u.iter().all(|x| x.1 == "active") && ctl.is_settled()? {
            return Ok(());
        }
        if t.elapsed() > timeout {
            bail!("not active after {timeout:?}: {u:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

struct Bins {
    jujuc: PathBuf,
    pebble: PathBuf,
    runner: PathBuf,
    charm: PathBuf,
}

fn model(bins: &Bins, root: &Path) -> anyhow::Result<(tempfile::TempDir, Model, PathBuf)> {
    let home = tempfile::Builder::new()
        .prefix("pg-bench")
        .tempdir_in("/tmp")?;
    let charm = home.path().join("postgresql");
    copy_dir(&root.join("metadata/postgresql"), &charm)?;
    std::fs::copy(&bins.charm, charm.join("dispatch"))?;
    let m = Model::start_sandboxed(home.path(), &bins.jujuc, &bins.pebble, Some(&bins.runner))?;
    Ok((home, m, charm))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Three units deployed and active, a `bench` table on the primary.
struct Cluster {
    // Dropped before `home`: stopping the sandboxes needs their directory.
    m: Model,
    home: tempfile::TempDir,
    /// (unit, address) of every unit.
    units: Vec<(String, String)>,
    /// (unit, address) of the primary when the run started.
    primary: (String, String),
    /// The `operator` superuser's password.
    password: String,
}

impl Cluster {
    fn deploy(bins: &Bins, root: &Path, sync: bool) -> anyhow::Result<Cluster> {
        let (home, m, charm) = model(bins, root)?;
        let ctl = &m.ctl;
        ctl.deploy(
            "postgresql",
            &charm,
            3,
            [("profile".to_string(), json!("testing"))].into(),
        )?;
        if let Err(e) = wait_active(ctl, 3, Duration::from_secs(180)) {
            // Why a unit is stuck: the end of its charm's log and of Patroni's.
            for u in units(ctl).iter().filter(|u| u.1 != "active") {
                let log = std::fs::read_to_string(ctl.unit_log_path(&u.0)).unwrap_or_default();
                let lines: Vec<&str> = log.lines().collect();
                eprintln!("pg-bench: {} is {} ({}); its log ends:", u.0, u.1, u.2);
                for l in &lines[lines.len().saturating_sub(40)..] {
                    eprintln!("    {l}");
                }
                let entries = patroni_entries(&patroni_log(home.path(), &u.0));
                eprintln!("pg-bench: Patroni on {} ends:", u.0);
                for l in &entries[entries.len().saturating_sub(30)..] {
                    eprintln!("    {l}");
                }
            }
            return Err(e);
        }
        let primary = units(ctl)
            .into_iter()
            .find(|u| u.2 == "Primary")
            .context("no primary")?;
        if sync {
            ctl.set_config(
                "postgresql",
                [("durability_synchronous_mode".to_string(), Some(json!(true)))].into(),
            )?;
            let t = Instant::now();
            while !patroni::members(&primary.3)?
                .iter()
                .any(|m| m.1 == "sync_standby")
            {
                if t.elapsed() > Duration::from_secs(60) {
                    bail!("no synchronous standby after 60 s");
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        let password = get_password(&m.rt, ctl, &primary.0, None)?;
        psql(
            &primary.3,
            "operator",
            &password,
            "postgres",
            "CREATE TABLE bench (n int)",
        )
        .map_err(anyhow::Error::msg)?;
        let all = units(ctl).into_iter().map(|u| (u.0, u.3)).collect();
        Ok(Cluster {
            m,
            home,
            units: all,
            primary: (primary.0, primary.3),
            password,
        })
    }

    fn addresses(&self) -> Vec<String> {
        self.units.iter().map(|u| u.1.clone()).collect()
    }

    fn unit_at(&self, address: &str) -> String {
        self.units
            .iter()
            .find(|u| u.1 == address)
            .map(|u| u.0.clone())
            .unwrap_or_else(|| address.to_string())
    }

    /// The address of the member Patroni's DCS names leader, asked of each unit in turn.
    fn leader(&self) -> Option<String> {
        self.units.iter().find_map(|(_, a)| {
            let v = rest_get(a, "/cluster")?;
            v["members"].as_array()?.iter().find_map(|m| {
                patroni::is_primary_role(m["role"].as_str()?)
                    .then(|| m["host"].as_str().map(str::to_string))?
            })
        })
    }

    /// Acknowledged rows (of `acks`) missing on the current leader.
    fn lost(&self, acks: &[Ack]) -> anyhow::Result<usize> {
        // The leader may be restarting (again): each failure is said, and tried again.
        let deadline = Instant::now() + Duration::from_secs(60);
        let present = loop {
            let read = self
                .leader()
                .context("no member is leader")
                .and_then(|leader| {
                    psql(
                        &leader,
                        "operator",
                        &self.password,
                        "postgres",
                        "SELECT string_agg(n::text, ',') FROM bench",
                    )
                    .map_err(anyhow::Error::msg)
                    .with_context(|| format!("reading the bench table on {leader}"))
                });
            match read {
                Ok(present) => break present,
                Err(e) if Instant::now() < deadline => {
                    let e = format!("{e:#}");
                    eprintln!("pg-bench: {}; trying again", e.lines().next().unwrap_or(""));
                    std::thread::sleep(Duration::from_secs(1));
                }
                Err(e) => return Err(e),
            }
        };
        let present: BTreeSet<u64> = present.split(',').filter_map(|s| s.parse().ok()).collect();
        Ok(acks.iter().filter(|a| !present.contains(&a.row)).count())
    }

    /// Patroni's entries (see [`patroni_entries`]) on `unit` since `before`, a snapshot of
    /// its log, printed on stderr under `what`.
    fn print_log_since(&self, unit: &str, before: &[String], what: &str) -> Vec<String> {
        let after = patroni_log(self.home.path(), unit);
        let start = before
            .last()
            .and_then(|l| after.iter().rposition(|x| x == l))
            .map_or(0, |i| i + 1);
        let entries = patroni_entries(&after[start..]);
        eprintln!("pg-bench: Patroni on {unit} {what}:");
        for l in &entries {
            eprintln!("    {}", l.replace('\n', "\n        "));
        }
        entries
    }
}

/// A GET to a member's Patroni REST API (plain HTTP: the bench deploys without TLS); the
/// body of a 200 answer.
fn rest_get(address: &str, path: &str) -> Option<Value> {
    match patroni::rest(address, "GET", path, None, None, None) {
        Ok((200, v)) => Some(v),
        _ => None,
    }
}

/// One acknowledged insert.
#[derive(Clone, Debug)]
struct Ack {
    row: u64,
    /// When psql started: a backend that was serving it before a kill -9 of its postmaster
    /// can still commit it after.
    sent: Instant,
    /// When psql returned success.
    at: Instant,
    /// The address that took it.
    by: String,
}

/// One write loop per unit's address (rows numbered from one counter), so that a unit
/// that hangs holds up only its own loop: replicas refuse the inserts, the primary takes
/// them. Dropping it tells the loops to stop without waiting for them.
struct Writer {
    acks: Arc<Mutex<Vec<Ack>>>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Writer {
    fn start(addresses: &[String], password: &str) -> Writer {
        let acks = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let next = Arc::new(AtomicU64::new(0));
        let threads = addresses
            .iter()
            .map(|a| {
                let (acks, stop, next) = (acks.clone(), stop.clone(), next.clone());
                let (a, password) = (a.clone(), password.to_string());
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        let n = next.fetch_add(1, Ordering::Relaxed) + 1;
                        let sql = format!("INSERT INTO bench VALUES ({n})");
                        let sent = Instant::now();
                        let ok = psql(&a, "operator", &password, "postgres", &sql).is_ok();
                        if ok {
                            lock(&acks).push(Ack {
                                row: n,
                                sent,
                                at: Instant::now(),
                                by: a.clone(),
                            });
                        }
                        // Refused inserts (replicas) are retried less often, for the CPU.
                        std::thread::sleep(Duration::from_millis(if ok { 20 } else { 50 }));
                    }
                })
            })
            .collect();
        Writer {
            acks,
            stop,
            threads,
        }
    }

    fn acks(&self) -> Vec<Ack> {
        lock(&self.acks).clone()
    }

    /// Waits (up to `timeout`) for a write sent after `at` and acknowledged by an address
    /// `counts` accepts; returns the gap since the write acknowledged last before it (which
    /// may be one sent before `at` and acknowledged after: a backend the fault has not
    /// reached yet), and that address.
    fn resumed(
        &self,
        at: Instant,
        counts: impl Fn(&str) -> bool,
        timeout: Duration,
    ) -> Option<(Duration, String)> {
        let deadline = Instant::now() + timeout;
        loop {
            let acks = self.acks();
            if let Some(first) = acks
                .iter()
                .filter(|a| a.sent > at && counts(&a.by))
                .min_by_key(|a| a.at)
            {
                let last = acks
                    .iter()
                    .filter(|a| a.at < first.at && a.sent <= at)
                    .map(|a| a.at)
                    .max()
                    .unwrap_or(at);
                return Some((first.at - last, first.by.clone()));
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the loops, waits for them, and returns every acknowledged write.
    fn finish(mut self) -> Vec<Ack> {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        self.acks()
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn all_pids() -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse().ok())
        .collect()
}

fn cmdline(pid: u32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| {
            String::from_utf8_lossy(&c)
                .split('\0')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn parent(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ppid …`; comm may hold spaces and parentheses.
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// The processes of `unit` in the model at `home` whose command line `is` picks out. Every
/// unit runs the same command lines, and other models (other people's tests) may have a
/// unit of the same name and even address: a process is told apart by its unit's
/// directory, which its mounts name. A fork that has not run its new program yet has
/// its parent's command line: only the topmost of the matches are kept.
fn unit_processes(home: &Path, unit: &str, is: impl Fn(&[String]) -> bool) -> Vec<u32> {
    let dir = format!(
        "{}/units/{}/",
        home.file_name().unwrap_or_default().to_string_lossy(),
        controller::substrate::unit_tag(unit)
    );
    let found: BTreeSet<u32> = all_pids()
        .into_iter()
        .filter(|&p| {
            is(&cmdline(p))
                && std::fs::read_to_string(format!("/proc/{p}/mountinfo"))
                    .is_ok_and(|m| m.contains(&dir))
        })
        .collect();
    found
        .iter()
        .copied()
        .filter(|&p| parent(p).is_none_or(|pp| !found.contains(&pp)))
        .collect()
}

/// The postmaster of `unit` (at `address`: Patroni passes it `--listen_addresses`).
fn postmaster(home: &Path, unit: &str, address: &str) -> Vec<u32> {
    let arg = format!("--listen_addresses={address}");
    unit_processes(home, unit, |c| c.contains(&arg))
}

/// The Patroni of `unit`.
fn patroni_of(home: &Path, unit: &str) -> Vec<u32> {
    unit_processes(home, unit, |c| {
        c.iter().any(|a| a.ends_with("patroni")) && c.iter().any(|a| a == patroni::CONFIG_PATH)
    })
}

/// Every process below one of `roots` (not the roots themselves).
fn descendants(roots: &BTreeSet<u32>) -> BTreeSet<u32> {
    let parents: BTreeMap<u32, u32> = all_pids()
        .into_iter()
        .filter_map(|p| Some((p, parent(p)?)))
        .collect();
    parents
        .keys()
        .copied()
        .filter(|&p| {
            let mut cur = p;
            for _ in 0..64 {
                match parents.get(&cur) {
                    Some(&pp) if roots.contains(&pp) => return true,
                    Some(&pp) if pp > 1 => cur = pp,
                    _ => return false,
                }
            }
            false
        })
        .collect()
}

/// Sends `sig` (a name: STOP, CONT, KILL) to each of `pids` (all positive: never a group).
fn signal(sig: &str, pids: impl IntoIterator<Item = u32>) {
    let pids: Vec<String> = pids.into_iter().map(|p| p.to_string()).collect();
    if !pids.is_empty() {
        let _ = std::process::Command::new("kill")
            .args(["-s", sig, "--"])
            .args(&pids)
            .status();
    }
}

/// A unit's Patroni and PostgreSQL processes, stopped with SIGSTOP. Dropping it sends them
/// SIGCONT, so that a run that fails half-way leaves nothing frozen for the model's
/// teardown (which stops sandboxes with SIGTERM first).
struct Frozen {
    pids: BTreeSet<u32>,
    thawed: bool,
}

impl Frozen {
    fn freeze(home: &Path, unit: &str, address: &str) -> anyhow::Result<Frozen> {
        let pm = postmaster(home, unit, address);
        let pa = patroni_of(home, unit);
        if pm.len() != 1 || pa.len() != 1 {
            bail!("freezing {unit}: expected one postmaster on {address} and one Patroni, found {pm:?} and {pa:?}");
        }
        let mut f = Frozen {
            pids: BTreeSet::new(),
            thawed: false,
        };
        // The postmaster first, so that it forks no new backend, then whatever runs below
        // it and Patroni, until a pass finds nothing new.
        signal("STOP", pm.iter().chain(&pa).copied());
        f.pids.extend(pm.iter().chain(&pa));
        for _ in 0..20 {
            let new: Vec<u32> = descendants(&f.pids).difference(&f.pids).copied().collect();
            if new.is_empty() {
                return Ok(f);
            }
            signal("STOP", new.iter().copied());
            f.pids.extend(new);
        }
        bail!("freezing {unit}: new processes kept appearing")
    }

    fn thaw(&mut self) {
        if !self.thawed {
            signal("CONT", self.pids.iter().copied());
            self.thawed = true;
        }
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        self.thaw();
    }
}

/// The log lines of the `postgresql` service (Patroni) that a unit's Pebble holds.
fn patroni_log(home: &Path, unit: &str) -> Vec<String> {
    let socket = home
        .join("units")
        .join(controller::substrate::unit_tag(unit))
        .join("containers/postgresql/sock/pebble.socket");
    let Ok(mut s) = std::os::unix::net::UnixStream::connect(&socket) else {
        return Vec::new();
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    // HTTP/1.0: the answer is not chunked, and ends when the connection closes.
    let request = "GET /v1/logs?services=postgresql&n=-1 HTTP/1.0\r\nHost: localhost\r\n\r\n";
    let mut out = Vec::new();
    if s.write_all(request.as_bytes()).is_err() || s.read_to_end(&mut out).is_err() {
        return Vec::new();
    }
    let out = String::from_utf8_lossy(&out);
    let body = out.split_once("\r\n\r\n").map(|x| x.1).unwrap_or("");
    body.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| v["message"].as_str().map(|m| m.trim_end().to_string()))
        .collect()
}

/// Patroni's own entries in its service's log, which also holds PostgreSQL's: an entry
/// starts `YYYY-MM-DD HH:MM:SS,mmm LEVEL: ` (PostgreSQL's `.mmm UTC`), and lines without a
/// timestamp continue the entry before them; kept only for pg_rewind's output. Routine
/// and debug entries, and the tracebacks of REST requests whose clients gave up while it
/// was frozen, are left out.
fn patroni_entries(lines: &[String]) -> Vec<String> {
    let stamped = |l: &str, sep: u8| {
        let b = l.as_bytes();
        b.len() > 24 && b[4] == b'-' && b[10] == b' ' && b[19] == sep
    };
    let mut entries: Vec<String> = Vec::new();
    let mut in_patroni = false;
    for l in lines {
        if stamped(l, b',') {
            entries.push(l.clone());
            in_patroni = true;
        } else if stamped(l, b'.') {
            in_patroni = false;
        } else if in_patroni {
            if let Some(e) = entries.last_mut().filter(|e| e.contains(" stderr=")) {
                e.push('\n');
                e.push_str(l);
            }
        }
    }
    entries.retain(|e| {
        ![
            " DEBUG: ",
            "no action.",
            "Exception happened during processing",
            "Traceback",
        ]
        .iter()
        .any(|x| e.contains(x))
    });
    entries
}

/// What Patroni's entries say of pg_rewind: whether it ran, from whom, how it ended, and
/// where the timelines diverged.
fn rewind_summary(entries: &[String]) -> String {
    let message = |e: &String| {
        e.split_once(": ")
            .map_or(String::new(), |x| x.1.to_string())
    };
    let from = entries.iter().map(message).find_map(|m| {
        m.strip_prefix("running pg_rewind from ")
            .filter(|f| !f.contains('=') && !f.ends_with("in progress"))
            .map(str::to_string)
    });
    let Some(from) = from else {
        return "pg_rewind not run".to_string();
    };
    let exit = entries
        .iter()
        .map(message)
        .find_map(|m| m.strip_prefix("pg_rewind exit code=").map(str::to_string))
        .unwrap_or_else(|| "unknown".to_string());
    let diverged = entries.iter().flat_map(|e| e.lines()).find_map(|l| {
        l.split_once("pg_rewind: servers diverged")
            .map(|x| x.1.trim().to_string())
    });
    match diverged {
        Some(d) => format!("pg_rewind from {from}, exit code {exit}, diverged {d}"),
        None => format!("pg_rewind from {from}, exit code {exit}"),
    }
}

/// Whether Patroni (asked through `via`) reports three members, one leader and the others
/// running on its timeline, and the leader's PostgreSQL has two replicas streaming.
fn healthy(via: &str, password: &str) -> bool {
    let Some(v) = rest_get(via, "/cluster") else {
        return false;
    };
    let Some(members) = v["members"].as_array() else {
        return false;
    };
    let leaders: Vec<&Value> = members
        .iter()
        .filter(|m| patroni::is_primary_role(m["role"].as_str().unwrap_or("")))
        .collect();
    let [leader] = leaders[..] else {
        return false;
    };
    let timeline = &leader["timeline"];
    if members.len() != 3
        || !members.iter().all(|m| {
            m["state"] == "running" && (m["timeline"].is_null() || m["timeline"] == *timeline)
        })
    {
        return false;
    }
    let Some(host) = leader["host"].as_str() else {
        return false;
    };
    psql(
        host,
        "operator",
        password,
        "postgres",
        "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'",
    )
    .is_ok_and(|n| n == "2")
}

/// (downtime, acknowledged rows lost, whether writes resumed on another unit)
fn kill(
    bins: &Bins,
    root: &Path,
    sync: bool,
    kill_patroni: bool,
) -> anyhow::Result<(Duration, usize, bool)> {
    let c = Cluster::deploy(bins, root, sync)?;
    let writer = Writer::start(&c.addresses(), &c.password);
    std::thread::sleep(Duration::from_secs(2));
    let mut victims = postmaster(c.home.path(), &c.primary.0, &c.primary.1);
    if kill_patroni {
        victims.extend(patroni_of(c.home.path(), &c.primary.0));
    }
    if victims.len() != 1 + usize::from(kill_patroni) {
        bail!(
            "{}: no postmaster or no Patroni to kill, or more than one: {victims:?}",
            c.primary.0
        );
    }
    let log_before = patroni_log(c.home.path(), &c.primary.0);
    let killed = Instant::now();
    signal("KILL", victims);
    let resumed = writer.resumed(killed, |_| true, RESUME_TIMEOUT);
    if let Some((gap, by)) = &resumed {
        eprintln!(
            "pg-bench: kill -9 on {}; writes resumed on {} after {:.1} s",
            c.primary.0,
            c.unit_at(by),
            gap.as_secs_f64()
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    let acks = writer.finish();
    let orphans = acks
        .iter()
        .filter(|a| a.sent <= killed && a.at > killed)
        .count();
    if orphans > 0 {
        eprintln!("pg-bench: {orphans} write(s) sent before the kill acknowledged after it (a backend still running)");
    }
    let lost = c.lost(&acks);
    c.print_log_since(&c.primary.0, &log_before, "after the kill");
    let (downtime, by) =
        resumed.with_context(|| format!("writes did not resume within {RESUME_TIMEOUT:?}"))?;
    Ok((downtime, lost?, by != c.primary.1))
}

/// What freezing the primary until a failover, then thawing it, measured.
struct Failover {
    /// Patroni's ttl and loop_wait (s), from the leader's dynamic configuration.
    ttl: u64,
    loop_wait: u64,
    /// The write gap, and the unit that took the first write after it; `None` when no
    /// other unit took a write within [`RESUME_TIMEOUT`].
    resumed: Option<(Duration, String)>,
    /// Acknowledged rows missing on the leader once the old primary rejoined (or gave up).
    lost: usize,
    /// How many writes the old primary took after SIGCONT, and the last one when.
    after_thaw: (usize, Option<Duration>),
    /// From SIGCONT until its Patroni reports it a replica.
    demoted: Option<Duration>,
    /// From SIGCONT until [`healthy`].
    healthy: Option<Duration>,
    /// What Patroni logged about pg_rewind on the old primary.
    rewind: String,
    /// The units whose charm status says Primary at the end, those not active, and
    /// Patroni's leader.
    status_primary: Vec<String>,
    inactive: Vec<String>,
    leader: Option<String>,
}

fn freeze(bins: &Bins, root: &Path, sync: bool) -> anyhow::Result<Failover> {
    let c = Cluster::deploy(bins, root, sync)?;
    let (old_unit, old) = c.primary.clone();
    let config = rest_get(&old, "/config").context("Patroni's /config")?;
    let (ttl, loop_wait) = (
        config["ttl"].as_u64().unwrap_or(0),
        config["loop_wait"].as_u64().unwrap_or(0),
    );
    let writer = Writer::start(&c.addresses(), &c.password);
    std::thread::sleep(Duration::from_secs(2));
    // Declared after the writer and the cluster: dropped (thawed) before them, on any exit.
    let mut frozen = Frozen::freeze(c.home.path(), &old_unit, &old)?;
    let at = Instant::now();
    let resumed = writer.resumed(at, |by| by != old, RESUME_TIMEOUT);
    if let Some((gap, by)) = &resumed {
        eprintln!(
            "pg-bench: {old_unit} frozen; writes resumed on {} after {:.1} s",
            c.unit_at(by),
            gap.as_secs_f64()
        );
        // A little more on the new primary before the old one wakes up.
        std::thread::sleep(Duration::from_secs(2));
    }
    let taken_frozen = writer
        .acks()
        .iter()
        .filter(|a| a.at > at && a.by == old)
        .count();
    if taken_frozen > 0 {
        bail!(
            "{old_unit} acknowledged {taken_frozen} writes while frozen: not all of it was stopped"
        );
    }
    let log_before = patroni_log(c.home.path(), &old_unit);
    frozen.thaw();
    let thawed = Instant::now();
    let (mut demoted, mut healthy_after) = (None, None);
    while healthy_after.is_none() && thawed.elapsed() < REJOIN_TIMEOUT {
        // Its role changes as it demotes itself (`demoted`, then `replica`), before
        // PostgreSQL runs again as a replica.
        if demoted.is_none()
            && rest_get(&old, "/patroni")
                .is_some_and(|v| !patroni::is_primary_role(v["role"].as_str().unwrap_or("master")))
        {
            demoted = Some(thawed.elapsed());
        }
        // Without a failover it never lost the leader key: nothing to demote.
        if (demoted.is_some() || resumed.is_none())
            && c.addresses()
                .iter()
                .filter(|a| **a != old)
                .any(|a| healthy(a, &c.password))
        {
            healthy_after = Some(thawed.elapsed());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    // What Patroni did on the old primary since it woke: what it logged after its last
    // line before the freeze (frozen, it logged nothing).
    let woke = c.print_log_since(&old_unit, &log_before, "after SIGCONT");
    let rewind = rewind_summary(&woke);
    // The charm hears of role changes from Patroni's callback; give its hooks a moment.
    let leader = c.leader().map(|l| c.unit_at(&l));
    let t = Instant::now();
    let statuses = loop {
        let u = units(&c.m.ctl);
        let primaries: Vec<&String> = u
            .iter()
            .filter(|u| u.2 == "Primary")
            .map(|u| &u.0)
            .collect();
        let settled = u.iter().all(|u| u.1 == "active")
            && primaries.len() == 1
            && Some(primaries[0]) == leader.as_ref();
        if settled || t.elapsed() > Duration::from_secs(60) {
            break u;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let status_primary = statuses
        .iter()
        .filter(|u| u.2 == "Primary")
        .map(|u| u.0.clone())
        .collect();
    let inactive = statuses
        .iter()
        .filter(|u| u.1 != "active")
        .map(|u| format!("{} {}: {}", u.0, u.1, u.2))
        .collect();
    let acks = writer.finish();
    let taken_after: Vec<Instant> = acks
        .iter()
        .filter(|a| a.at > thawed && a.by == old)
        .map(|a| a.at)
        .collect();
    let after_thaw = (
        taken_after.len(),
        taken_after.iter().max().map(|t| *t - thawed),
    );
    let lost = c.lost(&acks)?;
    Ok(Failover {
        ttl,
        loop_wait,
        resumed: resumed.map(|(gap, by)| (gap, c.unit_at(&by))),
        lost,
        after_thaw,
        demoted,
        healthy: healthy_after,
        rewind,
        status_primary,
        inactive,
        leader,
    })
}

fn secs(d: Option<Duration>) -> String {
    d.map_or("never".to_string(), |d| format!("{:.1} s", d.as_secs_f64()))
}

fn run() -> anyhow::Result<()> {
    let root = PathBuf::from(
        std::env::args()
            .nth(1)
            .context("usage: pg-bench <project-root> [deploy|kill|freeze]")?,
    );
    // One group of rows only, when asked (a full run takes a quarter of an hour).
    let only = std::env::args().nth(2);
    let wanted = |group: &str| only.as_deref().is_none_or(|o| o == group);
    let dir = std::env::current_exe()?
        .parent()
        .context("no binary directory")?
        .to_path_buf();
    let bins = Bins {
        jujuc: dir.join("e2e-jujuc"),
        pebble: dir.join("e2e-pebble"),
        runner: dir.join("e2e-hook-runner"),
        charm: dir.join("postgresql-charm"),
    };
    println!("| measure | value | target |");
    println!("|---|---|---|");
    // A measurement that fails says so in its row, and the others still run.
    let mut failed = 0;
    let mut fail = |what: &str, e: anyhow::Error, target: &str| {
        failed += 1;
        let e = format!("{e:#}").replace('|', "/").replace('\n', " ");
        println!("| {what} | failed: {e} | {target} |");
    };
    for n in [1usize, 3].into_iter().filter(|_| wanted("deploy")) {
        let target = if n == 3 { "< 15 s" } else { "" };
        let measure = format!("deploy → active/idle, {n} unit(s)");
        let deploy = || -> anyhow::Result<Duration> {
            let (_home, m, charm) = model(&bins, &root)?;
            let t = Instant::now();
            m.ctl.deploy(
                "postgresql",
                &charm,
                n,
                [("profile".to_string(), json!("testing"))].into(),
            )?;
            wait_active(&m.ctl, n, Duration::from_secs(180))?;
            Ok(t.elapsed())
        };
        match deploy() {
            Ok(t) => println!("| {measure} | {:.1} s | {target} |", t.as_secs_f64()),
            Err(e) => fail(&measure, e, target),
        }
    }
    let kills = [(false, false), (true, false), (false, true), (true, true)];
    for (sync, kill_patroni) in kills.into_iter().filter(|_| wanted("kill")) {
        let what = if kill_patroni {
            "Patroni + postmaster"
        } else {
            "postmaster"
        };
        let mode = if sync { "synchronous" } else { "asynchronous" };
        let measure =
            format!("kill -9 of the primary's {what}, {mode}: write gap / acknowledged rows lost");
        let target = "< 10 s / 0 in sync mode";
        match kill(&bins, &root, sync, kill_patroni) {
            Ok((downtime, lost, moved)) => println!(
                "| {measure} | {:.1} s / {lost} ({}) | {target} |",
                downtime.as_secs_f64(),
                if moved {
                    "writes resumed on another unit: failover"
                } else {
                    "writes resumed on the same unit: restarted in place"
                }
            ),
            Err(e) => fail(&measure, e, target),
        }
    }
    for sync in [false, true].into_iter().filter(|_| wanted("freeze")) {
        let mode = if sync { "synchronous" } else { "asynchronous" };
        let measure = format!("SIGSTOP of the primary's Patroni + PostgreSQL (a replica is promoted once the leader key expires), {mode}: write gap / acknowledged rows lost");
        let target = "< 10 s / 0 in sync mode; a failover on the leader key's expiry is bounded below by Patroni's ttl";
        match freeze(&bins, &root, sync) {
            Ok(f) => print_failover(&measure, mode, &f),
            Err(e) => fail(&measure, e, target),
        }
    }
    if failed > 0 {
        bail!("{failed} measurement(s) failed (see their rows)");
    }
    Ok(())
}

/// The two rows of a freeze run.
fn print_failover(measure: &str, mode: &str, f: &Failover) {
    let (gap, mut notes) = match &f.resumed {
        Some((gap, unit)) => (
            format!("{:.1} s", gap.as_secs_f64()),
            vec![format!("writes resumed on {unit}: failover")],
        ),
        None => (
            format!("no failover within {} s", RESUME_TIMEOUT.as_secs()),
            vec!["no other unit took a write".to_string()],
        ),
    };
    notes.push("rows counted after the old primary rejoined".to_string());
    notes.push(match f.after_thaw {
        (0, _) => "none acknowledged by the old primary after SIGCONT".to_string(),
        (n, last) if f.resumed.is_some() => format!(
            "{n} of them acknowledged by the old primary after SIGCONT, the last {} after, before its Patroni found it had lost the leader key",
            secs(last)
        ),
        (n, _) => format!("{n} acknowledged by the old primary after SIGCONT"),
    });
    println!(
        "| {measure} | {gap} / {} ({}) | < 10 s / 0 in sync mode; bounded below by Patroni's ttl {} s less up to loop_wait {} s since the key's last renewal |",
        f.lost,
        notes.join("; "),
        f.ttl,
        f.loop_wait
    );
    let mut status = match (&f.status_primary[..], &f.leader) {
        ([s], Some(l)) if s == l => format!("charm status Primary on {s}, Patroni's leader"),
        (s, l) => format!(
            "charm status Primary on {}, but Patroni's leader is {}",
            if s.is_empty() {
                "no unit".to_string()
            } else {
                s.join(" and ")
            },
            l.as_deref().unwrap_or("none")
        ),
    };
    if !f.inactive.is_empty() {
        status.push_str(&format!("; not active: {}", f.inactive.join(", ")));
    }
    let demoted = if f.resumed.is_some() {
        format!("its Patroni demoted it after {}", secs(f.demoted))
    } else {
        "no failover: it was still primary".to_string()
    };
    println!(
        "| SIGCONT of the frozen old primary, {mode}: until 3 healthy members (it streams from the new primary) | {} ({demoted}; {}; {status}) | |",
        secs(f.healthy),
        f.rewind
    );
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pg-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}
