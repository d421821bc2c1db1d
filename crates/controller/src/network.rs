//! Unit addresses: each controller home owns one block of loopback addresses,
//! `127.B.0.0/16` with `B` in 1..=254, so that controllers running side by side
//! on one machine (several `WARD_HOME`s, parallel tests) never hand two units
//! the same address and every unit can still use its workload's standard port.
//!
//! A home's block is claimed once and kept in `<home>/address-block`. Claims
//! are made in a machine-wide registry directory (default
//! `/tmp/ward-address-blocks`, or `$WARD_ADDRESS_REGISTRY`) holding one file
//! per claimed block that names the home owning it, under an exclusive `flock`
//! of `<registry>/.lock`. The search starts at a block derived from a hash of
//! the home's path and probes onwards. A claim whose home no longer records
//! that block (the home was destroyed or deleted) is stale and is taken over.
//!
//! ```
//! use controller::network::AddressBlock;
//! let b = AddressBlock::new(7).unwrap();
//! assert_eq!(b.unit_address(1), "127.7.0.1");
//! assert_eq!(b.unit_address(255), "127.7.1.1");
//! ```

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The file in a controller home that records its block.
pub const BLOCK_FILE: &str = "address-block";

/// Blocks available: the second octet of `127.B.0.0/16`; 0 is left to the
/// host (127.0.0.1, Debian's 127.0.1.1) and 255 unused.
const BLOCKS: u16 = 254;

/// Hosts used per /24: .1 to .254 (no .0 or .255, which some tools refuse).
const HOSTS: i64 = 254;

/// Errors claiming an address block.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    /// A registry or home file could not be used.
    #[error("unit address block: {what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The home's block file holds something else than a block number.
    #[error("unit address block: {path} holds {content:?}, not a number in 1..=254; remove it to claim a new block")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What it holds.
        content: String,
    },
}

/// A controller's block of unit addresses, `127.B.0.0/16`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AddressBlock(u8);

impl AddressBlock {
    /// The block with second octet `b` (1..=254).
    pub fn new(b: u8) -> Option<AddressBlock> {
        (1..=254).contains(&b).then_some(AddressBlock(b))
    }

    /// The second octet.
    pub fn octet(self) -> u8 {
        self.0
    }

    /// The address of the `seq`-th unit ever added to the model (1-based):
    /// `127.B.C.H` with `H` in 1..=254; after 65,024 units it wraps.
    pub fn unit_address(self, seq: i64) -> String {
        let i = (seq.max(1) - 1) % (HOSTS * 256);
        format!("127.{}.{}.{}", self.0, i / HOSTS, 1 + i % HOSTS)
    }

    /// The block a home's path hashes to: where the search for a free block starts.
    fn preferred(home: &Path) -> u16 {
        // FNV-1a: stable across Rust versions, unlike std's hasher.
        let h = home
            .as_os_str()
            .as_encoded_bytes()
            .iter()
            .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
                (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
            });
        (h % u64::from(BLOCKS)) as u16
    }
}

impl std::fmt::Display for AddressBlock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "127.{}.0.0/16", self.0)
    }
}

/// The registry directory: `$WARD_ADDRESS_REGISTRY`, else `/tmp/ward-address-blocks`.
pub fn default_registry() -> PathBuf {
    std::env::var_os("WARD_ADDRESS_REGISTRY")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp/ward-address-blocks"))
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> NetworkError {
    let path = path.to_path_buf();
    move |source| NetworkError::Io { what, path, source }
}

/// The block `home` recorded, if any.
fn recorded(home: &Path) -> Result<Option<AddressBlock>, NetworkError> {
    let path = home.join(BLOCK_FILE);
    match std::fs::read_to_string(&path) {
        Ok(s) => s
            .trim()
            .parse::<u8>()
            .ok()
            .and_then(AddressBlock::new)
            .map(Some)
            .ok_or(NetworkError::Corrupt {
                path,
                content: s.trim().to_string(),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io("reading", &path)(e)),
    }
}

/// Whether the claim file for `block` in the registry is held by a live home
/// other than `home` (one whose own block file still names `block`).
fn held_by_other(claim: &Path, block: AddressBlock, home: &Path) -> bool {
    let Ok(owner) = std::fs::read_to_string(claim) else {
        return false;
    };
    let owner = PathBuf::from(owner.trim());
    owner != home && matches!(recorded(&owner), Ok(Some(b)) if b == block)
}

/// The block of controller home `home`: the one it recorded, else a newly
/// claimed one (recorded in the home). `registry` is shared by every
/// controller on the machine. When every block is held by a live home, the
/// hashed block is shared (and a warning logged) rather than failing.
pub fn claim(home: &Path, registry: &Path) -> Result<AddressBlock, NetworkError> {
    std::fs::create_dir_all(home).map_err(io("creating", home))?;
    let home = home.canonicalize().map_err(io("resolving", home))?;
    let mine = recorded(&home)?;
    if std::fs::create_dir_all(registry).is_ok() {
        // World-writable with the sticky bit, like /tmp: every user's controllers share it.
        let _ = std::fs::set_permissions(registry, std::fs::Permissions::from_mode(0o1777));
    }
    let lock_path = registry.join(".lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o666)
        .open(&lock_path);
    let lock = match lock {
        Ok(f) => nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusive)
            .map_err(|(_, e)| io("locking", &lock_path)(e.into()))?,
        Err(e) => {
            // No usable registry: the home's own record, else its hash, without coordination.
            if let Some(b) = mine {
                return Ok(b);
            }
            tracing::warn!(registry = %registry.display(), error = %e, "unit address registry unusable; choosing a block from WARD_HOME's hash");
            let b = AddressBlock(AddressBlock::preferred(&home) as u8 + 1);
            record(&home, b)?;
            return Ok(b);
        }
    };
    let claim_path = |b: AddressBlock| registry.join(format!("127.{}", b.0));
    let start = match mine {
        Some(b) => u16::from(b.0) - 1,
        None => AddressBlock::preferred(&home),
    };
    let mut chosen = None;
    for i in 0..BLOCKS {
        let b = AddressBlock(((start + i) % BLOCKS + 1) as u8);
        if !held_by_other(&claim_path(b), b, &home) {
            chosen = Some(b);
            break;
        }
    }
    let b = chosen.unwrap_or_else(|| {
        let b = mine.unwrap_or(AddressBlock(start as u8 + 1));
        tracing::warn!(block = %b, "every unit address block is held by a live controller home; sharing one");
        b
    });
    let path = claim_path(b);
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o644)
        .open(&path)
        .map_err(io("claiming", &path))?;
    f.write_all(home.as_os_str().as_encoded_bytes())
        .map_err(io("claiming", &path))?;
    if mine != Some(b) {
        if let Some(old) = mine {
            // Our recorded block went to another home (its claim file was overwritten while
            // we were away): the old units keep their addresses, new ones use the new block.
            tracing::warn!(old = %old, new = %b, "unit address block changed");
        }
        record(&home, b)?;
    }
    drop(lock);
    Ok(b)
}

/// Release `home`'s claim (on destroy), if the registry still names it.
pub fn release(home: &Path, registry: &Path) {
    let Ok(home) = home.canonicalize() else {
        return;
    };
    if let Ok(Some(b)) = recorded(&home) {
        let claim = registry.join(format!("127.{}", b.0));
        if std::fs::read_to_string(&claim).is_ok_and(|o| Path::new(o.trim()) == home) {
            let _ = std::fs::remove_file(claim);
        }
    }
}

fn record(home: &Path, b: AddressBlock) -> Result<(), NetworkError> {
    let path = home.join(BLOCK_FILE);
    std::fs::write(&path, format!("{}\n", b.0)).map_err(io("writing", &path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn unit_addresses_stay_inside_the_block_and_skip_network_and_broadcast() {
        let b = AddressBlock::new(42).unwrap();
        assert_eq!(b.unit_address(1), "127.42.0.1");
        assert_eq!(b.unit_address(254), "127.42.0.254");
        assert_eq!(b.unit_address(255), "127.42.1.1");
        let mut seen = HashSet::new();
        for seq in 1..=(HOSTS * 256) {
            let a = b.unit_address(seq);
            let o: Vec<u16> = a.split('.').map(|x| x.parse().unwrap()).collect();
            assert_eq!(o[..2], [127, 42], "{a}");
            assert!((1..=254).contains(&o[3]), "{a}");
            assert!(seen.insert(a));
        }
        assert_eq!(b.unit_address(HOSTS * 256 + 1), "127.42.0.1");
    }

    #[test]
    fn blocks_exclude_the_hosts_own_127_0_and_255() {
        assert!(AddressBlock::new(0).is_none());
        assert!(AddressBlock::new(255).is_none());
        assert_eq!(AddressBlock::new(1).unwrap().to_string(), "127.1.0.0/16");
    }

    #[test]
    fn distinct_homes_get_distinct_blocks_and_a_home_keeps_its_own() {
        let d = tempfile::tempdir().unwrap();
        let reg = d.path().join("registry");
        let mut blocks = HashSet::new();
        for i in 0..40 {
            let home = d.path().join(format!("home{i}"));
            let b = claim(&home, &reg).unwrap();
            assert!(blocks.insert(b), "{b} handed out twice");
            assert_eq!(claim(&home, &reg).unwrap(), b, "reopening changes nothing");
        }
    }

    #[test]
    fn the_same_hashed_start_probes_to_the_next_free_block() {
        let d = tempfile::tempdir().unwrap();
        let reg = d.path().join("registry");
        let a = d.path().join("a");
        let b = d.path().join("b");
        let first = claim(&a, &reg).unwrap();
        // Make b's claim start where a's is: its hash is irrelevant once a holds it.
        std::fs::create_dir_all(&b).unwrap();
        std::fs::write(b.join(BLOCK_FILE), format!("{}\n", first.octet())).unwrap();
        let second = claim(&b, &reg).unwrap();
        assert_ne!(first, second);
        assert_eq!(recorded(&b).unwrap(), Some(second));
        assert_eq!(claim(&a, &reg).unwrap(), first);
    }

    #[test]
    fn a_deleted_homes_claim_is_stale_and_taken_over() {
        let d = tempfile::tempdir().unwrap();
        let reg = d.path().join("registry");
        let gone = d.path().join("gone");
        let b = claim(&gone, &reg).unwrap();
        std::fs::remove_dir_all(&gone).unwrap();
        // Every other block is held by a live home: only the stale one is free.
        for i in 1..=254u8 {
            let block = AddressBlock(i);
            if block == b {
                continue;
            }
            let h = d.path().join(format!("live{i}"));
            std::fs::create_dir_all(&h).unwrap();
            record(&h, block).unwrap();
            std::fs::write(reg.join(format!("127.{i}")), h.to_str().unwrap()).unwrap();
        }
        let newcomer = d.path().join("new");
        assert_eq!(claim(&newcomer, &reg).unwrap(), b);
        // Now everything is held: a further home shares rather than fails.
        let extra = d.path().join("extra");
        assert!(claim(&extra, &reg).is_ok());
    }

    #[test]
    fn release_frees_the_block_for_others() {
        let d = tempfile::tempdir().unwrap();
        let reg = d.path().join("registry");
        let a = d.path().join("a");
        let b = claim(&a, &reg).unwrap();
        release(&a, &reg);
        assert!(!reg.join(format!("127.{}", b.octet())).exists());
    }

    #[test]
    fn a_corrupt_block_file_names_itself() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join(BLOCK_FILE), "x\n").unwrap();
        let e = claim(d.path(), &d.path().join("reg")).unwrap_err();
        assert!(e.to_string().contains(BLOCK_FILE), "{e}");
    }
}
